"""What a request can fail with, and how a failure reads in a reply."""

import os
import traceback

# frames of these folders (the kernel core) are left out of a handler's traceback
_CORE = tuple(os.path.join(os.path.dirname(os.path.dirname(__file__)), d) + os.sep for d in ("kernel", "io", "wire", "startup"))


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


class WrongReturn(ExecutionError):
    """A kernel method returned something that is not reply content."""


def wrong_return(kernel, method: str, value) -> WrongReturn:
    text = f"{type(kernel).__name__}.{method} returned {type(value).__name__}, not a dict of reply content (or None)"
    return WrongReturn("TypeError", text, [f"TypeError: {text}"])


def _authors_frames(tb):
    """The traceback from the first frame outside the kernel core: an
    author's exception shows the author's code, not kernelkit's dispatch."""
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_CORE):
        tb = tb.tb_next
    return tb


def describe_exception(exc: BaseException) -> dict:
    """``ename``, ``evalue`` and ``traceback`` of an error reply or message."""
    if isinstance(exc, ExecutionError):
        return {"ename": exc.ename, "evalue": exc.evalue, "traceback": exc.traceback}
    if isinstance(exc, RequestError):
        return {"ename": type(exc).__name__, "evalue": str(exc), "traceback": []}
    tb = traceback.format_exception(type(exc), exc, _authors_frames(exc.__traceback__))
    return {"ename": type(exc).__name__, "evalue": str(exc), "traceback": [line.rstrip("\n") for line in tb]}
