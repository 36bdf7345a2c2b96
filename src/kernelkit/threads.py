"""Naming kernelkit's threads.

A thread's name is its type tag: a kernelkit thread that dies ends the
process (io/fatal.py), and the debugger leaves kernelkit's threads out of
what it shows, except subshells, which run user code. So every thread of
kernelkit's own is named here.
"""

import threading

PREFIX = "kernelkit-"
_SUBSHELL = PREFIX + "subshell-"


def name(role: str) -> str:
    """The name of kernelkit's thread doing ``role``."""
    return PREFIX + role


def subshell_name(subshell_id: str) -> str:
    return _SUBSHELL + subshell_id[:8]


def start(target, role: str, *args) -> threading.Thread:
    """Start a daemon thread of kernelkit's own, named for ``role``."""
    thread = threading.Thread(target=target, args=args, name=name(role), daemon=True)
    thread.start()
    return thread


def is_kernelkit(thread: threading.Thread) -> bool:
    """Started by kernelkit (subshells included)."""
    return thread.name.startswith(PREFIX)


def is_machinery(thread: threading.Thread) -> bool:
    """kernelkit's own threads (I/O, control, output, heartbeat, ...), as
    opposed to the main shell, subshells and threads user code started."""
    return is_kernelkit(thread) and not thread.name.startswith(_SUBSHELL)
