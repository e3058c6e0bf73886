"""The `moncae` console script: the command group, loaded under a Ctrl-C guard. Loading the
commands takes ~0.2 s (NumPy, pandas, Click), and a Ctrl-C then printed Python's traceback;
it now exits 130 with nothing done, as a Ctrl-C later does (with its own message)."""

import sys


def run() -> None:
    try:
        from moncae.cli.main import main
    except KeyboardInterrupt:  # stopped while starting: nothing was done
        sys.exit(130)
    main()
