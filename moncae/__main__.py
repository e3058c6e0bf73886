"""`python -m moncae`: the same as the `moncae` command."""

from moncae.cli.entry import run

if __name__ == "__main__":  # worker processes (spawned) import this module too
    run()
