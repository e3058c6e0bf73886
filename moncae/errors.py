"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class MoncaeError(Exception):
    """A problem the user can fix (bad input, missing data, wrong folder); never a bug."""


class DataError(MoncaeError):
    """A dataset cannot be found, or a data file is corrupt or malformed."""


class RunFolderError(MoncaeError):
    """A run folder is missing, incomplete, or would be overwritten."""
