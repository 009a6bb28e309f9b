"""User-facing errors: the CLI prints them as one line and exits non-zero."""

__all__ = ["UserError", "EventFileError", "ResultFileError"]


class UserError(Exception):
    """An error caused by user input; its message is shown as is, without a traceback."""


class EventFileError(UserError):
    """An event file that cannot be read."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ResultFileError(UserError):
    """A result file that cannot be read."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
