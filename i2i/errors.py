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
