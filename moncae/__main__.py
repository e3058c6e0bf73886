"""`python -m moncae`: the same as the `moncae` command."""

from moncae.cli.main import main

main()
