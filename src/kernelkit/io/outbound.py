"""The one outbound FIFO: everything the kernel sends, in the order produced.

Any thread may ``send``; only the I/O thread takes. Two bounds (io/flow.py):
producers wait while the FIFO holds OUTBOUND_MAXSIZE messages, or more than
OUTBOUND_BYTES of large ones (one larger message still goes), so a print loop
cannot grow memory without limit. The control thread and the I/O thread
never wait: only the I/O thread makes room, and control must not wait behind
iopub.

Control messages go into a lane of their own, with a turn marker in the FIFO
where they were produced (the I/O thread sends them in turn, or at once when
the FIFO's head is held; see io/iothread.py).

Waking the I/O thread costs the producer a GIL hand-off, so the main shell
sends lazily while it runs a request: the I/O thread looks at the FIFO every
LAZY_MS instead and is woken when the request ends (``grant_lazy``,
``lazy_done``).
"""

import threading
from collections import deque

import zmq

from ..wire.channels import CONTROL
from .flow import LARGE, OUTBOUND_BYTES, OUTBOUND_MAXSIZE


class Marker:
    """Put in the FIFO in place of a message: the I/O thread acts on it in turn."""

    __slots__ = ("name", "event")

    def __init__(self, name: str):
        self.name = name
        self.event = threading.Event()


# in the FIFO where a control message was produced: its turn in the order
CONTROL_TURN = Marker("control")


def frames_size(frames) -> int:
    return sum(map(len, frames))


class Outbound:
    """The single outbound FIFO. Thread-safe; any thread may ``send``.

    A deque, not a ``queue.Queue``: appending is one atomic step, which keeps
    the hot path cheap. Items are ``(channel, frames)``, or ``(None, Marker)``.
    """

    def __init__(self, ctx: zmq.Context, maxsize: int = OUTBOUND_MAXSIZE, max_bytes: int = OUTBOUND_BYTES):
        self.fifo: deque = deque()
        self.maxsize = maxsize
        # control messages, in order; each has a CONTROL_TURN in the FIFO
        self.control_lane: deque = deque()
        self.max_bytes = max_bytes
        self._large_bytes = 0  # bytes of large messages in the FIFO (under _room)
        # threads that never wait for room (the control thread)
        self._never_wait: set = set()
        self.wake_endpoint = f"inproc://kernelkit-wake-{id(self)}"
        self._ctx = ctx
        self._wake_socket = None
        self._wake_lock = threading.Lock()
        # True while a wake-up is on its way and the I/O thread has not yet
        # taken it: later producers need not send another.
        self.wake_pending = False
        # producers waiting for room, and where they wait
        self._room = threading.Condition(threading.Lock())
        self._waiting_for_room = 0
        # Lazy sending: requests handed to the lazy thread (counted by the I/O
        # thread) and finished by it. While they differ, the I/O thread polls
        # every LAZY_MS, so that thread's sends need not wake it.
        self.lazy_ident = None
        self.io_ident = None  # the I/O thread's, once it runs
        self.io_send = None  # the I/O thread's "send what is queued", once it runs
        self._lazy_granted = 0
        self._lazy_done = 0

    def connect(self) -> None:
        """Connect the wake socket (after the I/O thread has bound its end)."""
        sock = self._ctx.socket(zmq.PUSH)
        sock.linger = 0
        sock.connect(self.wake_endpoint)
        self._wake_socket = sock

    def send(self, channel: str, frames: list, lazy: bool = False) -> None:
        """Queue ``frames`` for ``channel``; waits while the FIFO is full.

        ``lazy``: the sender will soon send again or finish its request, so
        the message may wait up to LAZY_MS (only honoured on the lazy thread
        while it runs a request; a sender about to block must not be lazy).
        """
        ident = threading.get_ident()
        if channel == CONTROL:
            self.control_lane.append(frames)
            self.fifo.append((None, CONTROL_TURN))
            self._wake()
            return
        size = frames_size(frames)
        if ident == self.io_ident:
            # the I/O thread (announcing a request) sends what is queued
            # before it next waits; and it must never wait for room, which
            # only it can make
            if size > LARGE:
                self._admit_large(size, ident)
            self.fifo.append((channel, frames))
            return
        if size > LARGE:
            self._admit_large(size, ident)
        elif len(self.fifo) >= self.maxsize and ident not in self._never_wait:
            self._wait_for_room()
        self.fifo.append((channel, frames))
        if lazy and self._lazy_granted != self._lazy_done and ident == self.lazy_ident:
            return
        self._wake()

    def send_now(self) -> None:
        """(On the I/O thread) Send what the FIFO holds now, before going on."""
        if self.io_send is not None:
            self.io_send()

    def _wait_for_room(self) -> None:
        with self._room:
            # counted before looking, so the I/O thread either sees us
            # waiting or made room before we looked
            self._waiting_for_room += 1
            try:
                while len(self.fifo) >= self.maxsize:
                    self._wake()
                    self._room.wait(1.0)
            finally:
                self._waiting_for_room -= 1

    def _admit_large(self, size: int, ident) -> None:
        """Count a large message's bytes, first waiting while the FIFO is full
        in messages or in bytes (unless it holds no large message)."""
        with self._room:
            self._waiting_for_room += 1
            try:
                if ident not in self._never_wait and ident != self.io_ident:
                    while len(self.fifo) >= self.maxsize or (self._large_bytes and self._large_bytes + size > self.max_bytes):
                        self._wake()
                        self._room.wait(1.0)
                self._large_bytes += size
            finally:
                self._waiting_for_room -= 1

    def took_large(self, size: int) -> None:
        """Called by the I/O thread when it takes a large message from the FIFO."""
        with self._room:
            self._large_bytes -= size
            if self._waiting_for_room:
                self._room.notify_all()

    def never_wait(self) -> None:
        """The calling thread never waits for room (it may overfill the FIFO)."""
        self._never_wait.add(threading.get_ident())

    def made_room(self) -> None:
        """Called by the I/O thread after taking messages."""
        if self._waiting_for_room and len(self.fifo) < self.maxsize:
            with self._room:
                self._room.notify_all()

    # the I/O thread calls grant_lazy before it hands the lazy thread a request;
    # that thread calls lazy_done when it has finished it (which wakes the I/O
    # thread, so nothing queued lazily waits for the next look)
    def grant_lazy(self) -> None:
        self._lazy_granted += 1

    def lazy_done(self) -> None:
        self._lazy_done += 1
        self._wake()

    @property
    def lazy_active(self) -> bool:
        return self._lazy_granted != self._lazy_done

    def _wake(self) -> None:
        if self.wake_pending:
            return
        with self._wake_lock:
            # the lock serialises use of the one wake socket across threads
            if not self.wake_pending and self._wake_socket is not None:
                self.wake_pending = True
                try:
                    self._wake_socket.send(b"", zmq.NOBLOCK)
                except zmq.Again:
                    # At most one wake-up is ever in flight, so a full socket
                    # means the I/O thread's end is closed: it has ended, and
                    # if it died, its own error ends the process (io/fatal.py).
                    # Raising here would end this thread instead, under the
                    # wrong name. (The flag is cleared: were the I/O thread
                    # somehow alive, the next producer tries again.)
                    self.wake_pending = False

    def stop(self) -> Marker:
        """Ask the I/O thread to send what is queued, close its sockets and end."""
        marker = Marker("stop")
        self.fifo.append((None, marker))
        self._wake()
        return marker

    def close(self) -> None:
        with self._wake_lock:
            if self._wake_socket is not None:
                self._wake_socket.close(linger=0)
                self._wake_socket = None
