"""A kernel thread that dies ends the process.

Without this, a kernel whose I/O, control or shell thread has died lives on:
the heartbeat (answered inside libzmq) says it is alive, while no request is
ever answered again. Instead the traceback goes to stderr and the process
exits at once with EXIT_CODE, so the client sees a dead kernel and can
restart it.
"""

import os
import sys
import threading
import traceback

from .. import threads

EXIT_CODE = 1

# a copy of file descriptor 2 as it was at install(): a kernel may replace
# sys.stderr and capture the descriptor itself for cell output (the Python
# kernel does), and the dying words must reach the process's real stderr
_stderr_fd = None

_previous_hook = None


def die(where: str, exc: BaseException) -> None:
    """Write ``exc``'s traceback and end the process now."""
    try:
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        text = f"kernelkit: the {where} died; the kernel exits\n{''.join(lines)}"
        if _stderr_fd is None:
            sys.stderr.write(text)
            sys.stderr.flush()
        else:
            data = text.encode("utf-8", "replace")
            while data:
                data = data[os.write(_stderr_fd, data) :]
    finally:
        os._exit(EXIT_CODE)


def _hook(args) -> None:
    thread = args.thread
    if thread is not None and threads.is_kernelkit(thread) and args.exc_type is not SystemExit:
        die(f"thread {thread.name}", args.exc_value)
    _previous_hook(args)


def install() -> None:
    """From now on, an exception that ends a kernelkit thread ends the process."""
    global _previous_hook, _stderr_fd
    if _stderr_fd is None:
        try:
            _stderr_fd = os.dup(2)
        except OSError:  # no stderr at all
            pass
    if threading.excepthook is not _hook:
        _previous_hook = threading.excepthook
        threading.excepthook = _hook
