"""Errors the CLI turns into one line and an exit code (2: the user asked for something wrong,
1: the work itself failed)."""


class I2IError(Exception):
    """A failure to report to the user as one line; the message names the file or option and the fix."""

    exit_code = 1


class UsageError(I2IError):
    """A bad path, option or combination of options."""

    exit_code = 2


class ImageError(I2IError):
    """An image that cannot be read or written."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's text (its type's name when it has none): what goes between
    the parentheses of a one-line message."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


# errors that mean no later file can be written either: stop instead of failing file after file
FATAL_WRITE_ERRNOS = {28, 122, 30, 13, 1}  # ENOSPC, EDQUOT, EROFS, EACCES, EPERM


def os_error_message(e: OSError) -> str:
    """One line for an OSError: the file, what went wrong, and what to do."""
    where = f"{e.filename}: " if getattr(e, "filename", None) else ""
    hints = {28: "the disk is full; free some space and run the command again",
             122: "the disk quota is exceeded; free some space and run the command again",
             30: "the file system is read-only; choose another folder",
             13: "permission denied; choose a folder you can write to",
             1: "operation not permitted; choose a folder you can write to"}
    return f"{where}{hints.get(e.errno, e.strerror or str(e))}"
