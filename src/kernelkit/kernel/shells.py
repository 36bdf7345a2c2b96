"""The shells a shell request can be routed to: the main shell and the
subshells of JEP 91, each a queue of requests run in order on one thread."""

import queue
import threading
import uuid
from collections import deque

from .. import threads
from .errors import UnknownSubshell
from .request import Request

# put in a shell's queue: its loop ends
STOP = object()


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
            return self.queue.get_nowait()
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
            shell.queue.put(STOP)
