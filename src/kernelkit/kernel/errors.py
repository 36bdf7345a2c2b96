"""What a request can fail with, and how a failure reads in a reply."""

import traceback


class ExecutionError(Exception):
    """Raise from ``Kernel.execute`` to report an error in the user's code
    with exactly this ename, evalue and traceback (a list of lines)."""

    def __init__(self, ename: str, evalue: str, traceback: list | None = None):
        super().__init__(evalue)
        self.ename, self.evalue, self.traceback = ename, evalue, list(traceback or [])


class RequestError(Exception):
    """The request cannot be served as asked (the client's doing, not a bug):
    an error reply without a traceback, and no traceback in the log."""


class UnknownSubshell(RequestError, LookupError):
    """A request named a subshell_id that does not exist (or was deleted)."""


class SubshellDeleted(RequestError, RuntimeError):
    """The subshell was deleted before this queued request started."""


class SubshellsNotSupported(RequestError):
    """A subshell request to a kernel that does not offer subshells."""


def describe_exception(exc: BaseException) -> dict:
    """``ename``, ``evalue`` and ``traceback`` of an error reply or message."""
    if isinstance(exc, ExecutionError):
        return {"ename": exc.ename, "evalue": exc.evalue, "traceback": exc.traceback}
    if isinstance(exc, RequestError):
        return {"ename": type(exc).__name__, "evalue": str(exc), "traceback": []}
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {"ename": type(exc).__name__, "evalue": str(exc), "traceback": [line.rstrip("\n") for line in tb]}
