"""Notice when the process that started the kernel dies, so no kernel is orphaned.

The parent is the process whose pid is ``JPY_PARENT_PID`` (jupyter_client's
launcher sets it), or else the parent at start. The kernel's parent has died
when ``os.getppid()`` changes (the kernel was re-parented), or when the
``JPY_PARENT_PID`` process is gone (the kernel runs under a wrapper that
outlived the launcher). A kernel that starts with parent pid 1 (started by
init, or already orphaned) is not watched.

On Linux a pidfd makes the wait an event (no wake-ups while the parent
lives); elsewhere the watch looks every ``POLL_INTERVAL`` seconds.
"""

import logging
import os
import select

from .. import threads

log = logging.getLogger("kernelkit.kernel")

POLL_INTERVAL = 0.5


def _declared_parent() -> int | None:
    raw = os.environ.get("JPY_PARENT_PID", "").strip()
    try:
        pid = int(raw)
    except ValueError:
        return None
    return pid if pid > 1 else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def _pidfd(pid: int):
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


class ParentWatch:
    """Calls ``on_gone(reason)`` once, from its own daemon thread, when the parent dies."""

    def __init__(self, on_gone):
        self.on_gone = on_gone
        self.ppid = os.getppid()
        declared = _declared_parent()
        # the launcher itself, when it is not our direct parent (a wrapper in between)
        self.launcher = declared if declared not in (None, self.ppid) else None
        self.watching = self.ppid > 1 or self.launcher is not None

    def start(self) -> None:
        if not self.watching:
            log.debug("parent watch: started by init (pid %s), nothing to watch", self.ppid)
            return
        threads.start(self._run, "parent-watch")

    def gone(self) -> str | None:
        """Why the parent counts as dead, or None while it lives."""
        if self.ppid > 1 and os.getppid() != self.ppid:
            return f"parent process {self.ppid} exited"
        if self.launcher is not None and not _alive(self.launcher):
            return f"launcher process {self.launcher} (JPY_PARENT_PID) exited"
        return None

    def _run(self) -> None:
        pids = [p for p in (self.ppid, self.launcher) if p is not None and p > 1]
        fds = {}
        for pid in pids:
            fd = _pidfd(pid)
            if fd is not None:
                fds[fd] = pid
        try:
            # without a pidfd for every pid, look again every POLL_INTERVAL
            timeout = None if len(fds) == len(pids) else POLL_INTERVAL
            while True:
                # checked after the pidfds are open: a parent that died just
                # before (its pid perhaps reused) is caught here
                reason = self.gone()
                if reason is None:
                    readable, _, _ = select.select(list(fds), [], [], timeout)
                    if readable:  # a pidfd is readable once its process has exited
                        reason = f"process {fds[readable[0]]} that started the kernel exited"
                if reason is not None:
                    log.warning("%s: the kernel ends", reason)
                    self.on_gone(reason)
                    return
        finally:
            for fd in fds:
                os.close(fd)
