"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class MoncaeError(Exception):
    """A problem the user can fix (bad input, missing data, wrong folder); never a bug."""


class DataError(MoncaeError):
    """A dataset cannot be found, or a data file is corrupt or malformed."""


class RunFolderError(MoncaeError):
    """A run folder is missing, incomplete, or would be overwritten."""


class MoncaeWarning(UserWarning):
    """Something the user should know that does not stop the command (shown as one line)."""


class RunFolderWarning(MoncaeWarning):
    """A run folder needed a repair (a torn journal line dropped) or holds something odd."""


def one_line(err: BaseException, *, with_type: bool = True, limit: int = 300) -> str:
    """An exception as one line for a message or a CSV cell: `Type: text`, whitespace collapsed,
    at most `limit` characters."""
    text = " ".join(str(err).split())
    if with_type:
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    text = text or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def brief(err: BaseException) -> str:
    """An exception's message alone, on one line of at most 200 characters (for data errors)."""
    return one_line(err, with_type=False, limit=200)
