"""The `moncae` command line: a thin Click layer over the `moncae` Python API, one file per command."""
