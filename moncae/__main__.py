"""`python -m moncae`: the same as the `moncae` command."""

from moncae.cli.main import main

if __name__ == "__main__":  # worker processes (spawned) import this module too
    main()
