"""The shells a shell request can be routed to: the main shell and the
subshells of JEP 91, each a queue of requests run in order on one thread."""

import os
import queue
import sys
import threading
import uuid
from collections import deque

from .. import threads
from .errors import UnknownSubshell
from .request import Request

# put in a shell's queue: its loop ends
STOP = object()
# put in the main shell's queue by Waker.nudge: not a request, the main
# thread goes back to the kernel's idle loop (take_nowait skips it)
NUDGE = object()


_ONE = (1).to_bytes(8, sys.byteorder)  # (an eventfd adds this 64-bit count; a pipe takes any bytes)


class Waker:
    """A file descriptor that becomes readable when a request is put in the
    main shell's queue while the main thread waits in the kernel's own event
    loop (``Kernel.idle``): the loop watches it and returns at once.

    Written only while ``waiting`` is set (the main thread sets it, then looks
    in the queue once more before it waits, so no request is missed); a
    spurious wake-up costs one more turn of the idle loop, nothing else."""

    def __init__(self, put):
        self.waiting = False
        self.on_queue = False  # (the main thread blocks on the queue instead: Kernel.idle returned False)
        self._put = put
        if hasattr(os, "eventfd"):  # Linux: one descriptor, no buffer to fill
            self._r = self._w = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        else:
            self._r, self._w = os.pipe()
            os.set_blocking(self._r, False)
            os.set_blocking(self._w, False)

    def fileno(self) -> int:
        """Readable once a request is waiting (watch it in the kernel's loop)."""
        return self._r

    def wake(self) -> None:
        try:
            os.write(self._w, _ONE)
        except (BlockingIOError, OSError):  # full: it is readable already (or closed at exit)
            pass

    def nudge(self) -> None:
        """(any thread) The kernel's loop has new work: if the main thread is
        idle, it calls ``Kernel.idle`` again, also when that had returned
        False and the main thread waits on the request queue itself."""
        if self.waiting or self.on_queue:
            self._put(NUDGE)

    def clear(self) -> None:
        """Read what was written (not readable until the next wake())."""
        try:
            while os.read(self._r, 4096) and self._r != self._w:
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        for fd in {self._r, self._w}:
            try:
                os.close(fd)
            except OSError:
                pass


class ShellQueue:
    """Requests for one shell, run in order on one thread: the main thread
    for the main shell, a thread of its own for each subshell."""

    def __init__(self, subshell_id=None):
        self.subshell_id = subshell_id
        # SimpleQueue: put and get are single C calls (this is the hand-off
        # from the I/O thread on every request)
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        # requests taken out and put back in front (see Lifecycle.abort_queued)
        self.put_back: deque = deque()
        self.current: Request | None = None
        # (main shell) its request announced and not ended, maybe not yet
        # taken from the queue: an interrupt now is for it
        self.announced: Request | None = None
        self.thread: threading.Thread | None = None
        # a subshell counts its own executions (JEP 91); the main shell's
        # count is Kernel.execution_count
        self.execution_count = 0
        # after a failed execute with stop_on_error: executes that arrived
        # up to this arrival number are answered "aborted"
        self.abort_through: int | None = None
        #: put(request): into the queue (the I/O thread); ``wake_on_put``
        #: makes it also wake a main thread waiting in the kernel's loop
        self.put = self.queue.put
        self.waker: Waker | None = None

    def wake_on_put(self) -> Waker:
        """From now on, a put while the waker is ``waiting`` makes it readable
        (the main shell of a kernel with its own idle loop)."""
        if self.waker is None:
            self.waker = Waker(self._put_and_wake)
            self.put = self._put_and_wake
        return self.waker

    def _put_and_wake(self, item) -> None:
        self.queue.put(item)
        if self.waker.waiting:
            self.waker.wake()

    @property
    def has_request(self) -> bool:
        """(main shell) A request is running or announced: an interrupt now is for it."""
        return self.current is not None or self.announced is not None

    @property
    def is_main(self) -> bool:
        return self.subshell_id is None

    def take(self):
        """The next request (waits until there is one)."""
        if self.put_back:
            req = self.take_nowait()
            if req is not None:
                return req
        return self.queue.get()

    def take_nowait(self):
        """The next request, or None if there is none now."""
        try:
            return self.put_back.popleft()
        except IndexError:  # the usual case; also safe if two threads race
            pass
        try:
            item = self.queue.get_nowait()
            while item is NUDGE:
                item = self.queue.get_nowait()
            return item
        except queue.Empty:
            return None


class Shells:
    """The main shell and the subshells, by subshell_id (None: the main shell)."""

    def __init__(self):
        self.main = ShellQueue(None)
        self._by_id = {None: self.main}

    def get(self, subshell_id) -> ShellQueue | None:
        """Where a request with this header subshell_id goes (None: nowhere)."""
        return self._by_id.get(subshell_id)

    def create(self, run) -> ShellQueue:
        """A new subshell whose thread runs ``run(shell)``."""
        shell = ShellQueue(uuid.uuid4().hex)
        shell.thread = threading.Thread(target=run, args=(shell,), name=threads.subshell_name(shell.subshell_id), daemon=True)
        shell.thread.start()
        self._by_id[shell.subshell_id] = shell  # routable once its thread runs
        return shell

    def remove(self, subshell_id) -> ShellQueue:
        """Stop routing to a subshell, at once (its loop is ended by the caller)."""
        if subshell_id is None or subshell_id not in self._by_id:
            raise UnknownSubshell(f"unknown subshell_id {subshell_id!r}")
        return self._by_id.pop(subshell_id)

    def subshell_ids(self) -> list:
        return [sid for sid in self._by_id if sid is not None]

    def stop_all(self) -> None:
        for shell in list(self._by_id.values()):
            shell.put(STOP)
