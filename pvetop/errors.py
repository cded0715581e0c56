"""One exception type for every failure a user can cause or fix.

The CLI turns a ``PvetopError`` into a single ``pvetop: error: ...`` line and its exit code, so
bad input, bad config and unreachable clusters never end in a traceback.
"""


class PvetopError(Exception):
    """A failure with a message meant for the user (and an optional hint on how to fix it)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(PvetopError):
    """Bad command-line arguments or config values (exit code 2, as argparse uses)."""

    exit_code = 2


class ConnectionFailed(PvetopError):
    """The Proxmox VE API could not be reached or refused our credentials (exit code 3)."""

    exit_code = 3


class ApiError(PvetopError):
    """The API answered with an error: keeps PVE's status code and text (exit code 4)."""

    exit_code = 4

    def __init__(self, status: int, message: str, *, errors: dict | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status
        self.errors = errors or {}


class ReadOnlyRefused(PvetopError):
    """A write (to the cluster or the rules store) while read-only mode is on: refused, exit code 2
    like any other request the options or the config rule out."""

    exit_code = 2
