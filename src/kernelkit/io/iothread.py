"""The I/O thread and the one outbound FIFO.

Only the I/O thread touches the shell, control, stdin and iopub sockets.
Everything the kernel sends goes through ``Outbound``, a single bounded FIFO,
so the order in which code produces messages, on any channel, is the order
in which they leave. When the FIFO is full, producers wait (a print loop
cannot grow memory without limit). Incoming messages are parsed here and
handed to callbacks, which put them on the handlers' queues.

IOPub is an XPUB socket with XPUB_NODROP: when a subscriber is slow the send
fails with EAGAIN instead of dropping, and this thread holds the message and
retries, in order, while it goes on reading incoming requests. A subscriber
that makes no room for STALLED_AFTER seconds (plus time to read the large
messages it may still have queued) no longer holds anyone back: one message
is sent without NODROP, which libzmq drops for every pipe that is full and
takes those pipes out of the send until they have drained (HWM is per pipe),
so the stalled peer loses messages and the others get everything.

Room is the only sign of a subscriber's progress libzmq gives: a pipe's
reader reports what it has read every HWM/2 messages, so the high-water mark
is kept small (bind.IOPUB_HWM) and never changed while pipes exist (a pipe
lowered below what its reader has read but not yet reported is full for good
once the reader has caught up: it has nothing left to read, so it never
reports). Producers wait while the FIFO holds more than OUTBOUND_BYTES of
large messages.

Messages with a frame of ZERO_COPY bytes or more go to libzmq without a copy
and are tracked, so libzmq's share is bounded in bytes too: while tracked
messages of IOPUB_BYTES wait for some subscriber, the next one is held. Each
one a subscriber lets go of is progress; when none is for STALLED_AFTER, the
subscriber is taken as stalled and the bound is waived until half of it is
free again (the stalled one keeps at most HWM messages; over TCP the system
closes its connection once it has read nothing for bind's IOPUB_TCP_TIMEOUT,
which frees them).

Control replies never wait behind iopub: they go into a lane of their own,
with a turn marker in the FIFO where they were produced. In order as usual;
while the FIFO's head is held, or more than CONTROL_OVERTAKES messages are
ahead of them, the lane is sent at once.

Waking this thread costs the producer a GIL hand-off, so the main shell sends
lazily while it runs a request (see ``Outbound.send``): this thread then
looks at the FIFO every LAZY_MS and is woken when the request ends. A request
that finds the main shell idle is announced (busy, execute_input) by this
thread as it arrives (``Lifecycle.arrive``), so those leave at once.
"""

import logging
import threading
import time
from collections import deque

import zmq

from ..wire import Session, WireError
from ..wire.errors import InvalidContent

log = logging.getLogger("kernelkit.io")

SHELL, CONTROL, STDIN, IOPUB = "shell", "control", "stdin", "iopub"
CHANNELS = (SHELL, CONTROL, STDIN, IOPUB)

# Outbound FIFO capacity: enough to keep the socket busy, small enough that a
# runaway producer waits instead of eating memory.
OUTBOUND_MAXSIZE = 4096
# While iopub is full, retry this often (ms). XPUB always reports POLLOUT, so
# the retry has to be timed.
RETRY_MS = 2
# Messages read from one socket before looking at the others (fairness).
RECV_BATCH = 64
# Messages sent before looking at the sockets again.
SEND_BATCH = 256
# While the main shell runs a request, its messages are queued without waking
# this thread (each wake-up is a GIL hand-off that slows the request down);
# this thread looks at the FIFO this often (ms) instead, and is woken when the
# request ends.
LAZY_MS = 5
# How long an input_request waits for the client's stdin socket to connect
# (it usually follows its shell socket by milliseconds) before it is dropped.
STDIN_CONNECT_WAIT = 5.0
# A subscriber that lets iopub refuse every send for this long (s) is stalled:
# it stops holding back the others and loses what does not fit its queue...
STALLED_AFTER = 5.0
# ... plus one second for each SLOW_READ bytes of large messages among the last
# HWM sent (what it may have to read before libzmq reports its progress), so a
# reader on a slow link is not taken for a stalled one; STALLED_MAX at most.
SLOW_READ = 4 << 20
STALLED_MAX = 30.0
# Messages larger than this (bytes) are counted in bytes as well.
LARGE = 4096
# An iopub message with a frame at least this large (bytes; pyzmq's own
# threshold for zero-copy) is handed to libzmq without a copy and tracked:
# pyzmq says when every subscriber's queue has let go of it. Smaller ones are
# bounded by the message count alone (IOPUB_HWM of them per subscriber).
ZERO_COPY = 64 << 10
# The most libzmq may hold of tracked messages for iopub subscribers (bytes):
# beyond it the next one is held, as when a queue is full in messages, so a
# reader on a slow link pins this much, not 1,000 images. One larger message
# still goes.
IOPUB_BYTES = 64 << 20
# The most the FIFO holds in large messages (bytes); one larger message still goes.
OUTBOUND_BYTES = 32 << 20
# The longest subscription topic accepted (bytes). Topics are
# kernel.<session>.<msg_type>; libzmq keeps every subscription in a trie of
# about 50 bytes per topic byte, so a 10 MB topic would cost the kernel 500 MB.
MAX_TOPIC = 256
# What the iopub socket may receive in one frame (bind sets ZMQ_MAXMSGSIZE):
# a longer subscription disconnects its peer inside libzmq, before any trie.
# (the slack covers ZMTP 3.1's SUBSCRIBE command name)
MAX_SUBSCRIPTION_FRAME = MAX_TOPIC + 32
# A control message waits for its turn behind at most this many messages in
# the FIFO; with more ahead of it (or the head held) it leaves at once.
CONTROL_OVERTAKES = 256
# Welcomes waiting while iopub is held; beyond this, new subscribers get none.
MAX_WELCOMES_HELD = 1000
# After large messages, once this thread has had nothing to do for this long
# (ms), freed memory goes back to the system: glibc keeps what a burst of
# large outputs used (5,000 displays of 100 kB left the kernel 127 MB larger).
TRIM_AFTER_MS = 1000


def _find_malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_malloc_trim = _find_malloc_trim()


def _name_pyzmq_gc_thread() -> None:
    # pyzmq lets go of zero-copy frames on a thread of its own, started with
    # the first one; named like ours so the debugger leaves it out
    from zmq.utils.garbage import gc

    if gc.thread is not None:
        gc.thread.name = "kernelkit-pyzmq-gc"


# pyzmq's send_multipart type-checks every frame and goes through its Python
# send wrapper per frame; ours are bytes already, so call the backend's send
# (and recv: these are on every message).
# (As in pyzmq, an EAGAIN can only come on the first frame: ZeroMQ takes a
# multipart message whole or not at all.)
_backend_send = zmq.backend.Socket.send
_MORE = zmq.SNDMORE | zmq.NOBLOCK


def _send_multipart(sock, frames) -> None:
    send = _backend_send
    for frame in frames[:-1]:
        send(sock, frame, _MORE)
    send(sock, frames[-1], zmq.NOBLOCK)


_backend_recv = zmq.backend.Socket.recv
_backend_get = zmq.backend.Socket.get


def _recv_multipart(sock) -> list:
    """One whole message as bytes (raises zmq.Again if none is waiting)."""
    recv, get = _backend_recv, _backend_get
    parts = [recv(sock, zmq.NOBLOCK)]
    while get(sock, zmq.RCVMORE):
        parts.append(recv(sock, zmq.NOBLOCK))
    return parts


class _Marker:
    __slots__ = ("name", "event")

    def __init__(self, name: str):
        self.name = name
        self.event = threading.Event()


# in the FIFO where a control message was produced: its turn in the order
_CONTROL_TURN = _Marker("control")


def _size(frames) -> int:
    return sum(map(len, frames))


def _let_go(tracked) -> bool:
    """Has libzmq let go of this tracked message ((trackers, size)) everywhere?"""
    return all(t.done for t in tracked[0])


class Outbound:
    """The single outbound FIFO. Thread-safe; any thread may ``send``.

    A deque, not a ``queue.Queue``: appending is one atomic step, which keeps
    the hot path cheap. Only the I/O thread takes from it. When it holds
    ``maxsize`` messages (give or take one per producer), producers wait for
    the I/O thread to make room.
    """

    def __init__(self, ctx: zmq.Context, maxsize: int = OUTBOUND_MAXSIZE, max_bytes: int = OUTBOUND_BYTES):
        self.fifo: deque = deque()
        self.maxsize = maxsize
        # control messages, in order; each has a _CONTROL_TURN in the FIFO
        self.control_lane: deque = deque()
        # bytes of large messages in the FIFO (under _room)
        self.max_bytes = max_bytes
        self._fifo_large_bytes = 0
        # threads that never wait for room (the control thread: its replies
        # and status must not wait behind iopub)
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
            self.fifo.append((None, _CONTROL_TURN))
            self._wake()
            return
        size = _size(frames)
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
                    while len(self.fifo) >= self.maxsize or (self._fifo_large_bytes and self._fifo_large_bytes + size > self.max_bytes):
                        self._wake()
                        self._room.wait(1.0)
                self._fifo_large_bytes += size
            finally:
                self._waiting_for_room -= 1

    def took_large(self, size: int) -> None:
        """Called by the I/O thread when it takes a large message from the FIFO."""
        with self._room:
            self._fifo_large_bytes -= size
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
                self._wake_socket.send(b"", zmq.NOBLOCK)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far has been handed to ZeroMQ."""
        marker = _Marker("flush")
        self.fifo.append((None, marker))
        self._wake()
        return marker.event.wait(timeout)

    def stop(self) -> _Marker:
        """Ask the I/O thread to send what is queued, close its sockets and end."""
        marker = _Marker("stop")
        self.fifo.append((None, marker))
        self._wake()
        return marker

    def close(self) -> None:
        with self._wake_lock:
            if self._wake_socket is not None:
                self._wake_socket.close(linger=0)
                self._wake_socket = None


class LogLimiter:
    """At most one log line per second per kind of problem, with a count of the rest."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self._last: dict = {}
        self._suppressed: dict = {}

    def warn(self, key, text: str, logger=None) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        extra = self._suppressed.pop(key, 0)
        self._last[key] = now
        (logger or log).warning("%s%s", text, f" ({extra} more like it suppressed)" if extra else "")


class IOThread(threading.Thread):
    """Owns the four request/broadcast sockets.

    ``on_message(channel, msg)`` is called (on this thread) for every valid
    message on shell, control and stdin; ``on_invalid(channel, msg, error)``
    for a message whose header is readable but whose content is not. Both
    must only enqueue, never block.
    """

    def __init__(self, ctx: zmq.Context, session: Session, sockets: dict, outbound: Outbound, on_message, on_invalid=None):
        super().__init__(name="kernelkit-io", daemon=True)
        self.ctx = ctx
        self.session = session
        self.sockets = {ch: sockets[ch] for ch in CHANNELS}
        self.outbound = outbound
        self.on_message = on_message
        self.on_invalid = on_invalid
        self.welcomed = threading.Event()  # set after the first iopub_welcome
        self._pending: deque = deque()  # messages taken from the FIFO but not yet sent
        self._welcomes: deque = deque()  # iopub_welcome (and the first status), sent first
        self._limiter = LogLimiter()
        self._wake = ctx.socket(zmq.PULL)
        self._wake.bind(outbound.wake_endpoint)
        self._stopped = False
        self._stop_marker = None
        self._held_since = None  # when iopub started refusing (slow subscriber)
        self._control_early = 0  # control messages sent ahead of their turn
        self._hwm = self.sockets[IOPUB].sndhwm
        # (sequence number, size) of the large messages among the last _hwm
        # iopub messages sent, and the sum of their sizes
        self._large: deque = deque()
        self._recent_large_bytes = 0
        self._seq = 0  # iopub messages counted while large ones are about
        self._trim_due = False  # large messages were sent since the last trim
        # tracked (zero-copy) iopub messages libzmq may still hold: ([trackers],
        # size), oldest first; the sum of their sizes; whether the bound is
        # waived (a subscriber stalled while it was full)
        self._tracked: deque = deque()
        self._pinned = 0
        self._bytes_waived = False
        self._tracked_sent = 0
        # shell/stdin clients that left their replies unread for STALLED_AFTER:
        # their messages are dropped without waiting until one gets through
        self._unread_clients: set = set()

    # -- the loop --------------------------------------------------------
    def run(self) -> None:
        self.outbound.io_ident = threading.get_ident()
        poller = zmq.Poller()
        for ch in CHANNELS:
            poller.register(self.sockets[ch], zmq.POLLIN)
        poller.register(self._wake, zmq.POLLIN)
        by_socket = {self.sockets[ch]: ch for ch in CHANNELS}
        try:
            while not self._stopped:
                if self._pending or self._welcomes:
                    timeout = RETRY_MS
                elif self.outbound.fifo:
                    timeout = 0  # a batch was cut short: read, then send on
                elif self.outbound.lazy_active:
                    timeout = LAZY_MS
                else:
                    timeout = TRIM_AFTER_MS if self._trim_due else None
                events = poller.poll(timeout)
                if not events and timeout == TRIM_AFTER_MS:
                    self._trim_due = False
                    if _malloc_trim is not None:
                        _malloc_trim(0)
                for sock, _ in events:
                    if sock is self._wake:
                        self._drain_wake()
                    elif sock is self.sockets[IOPUB]:
                        self._read_subscriptions()
                    else:
                        self._read(by_socket[sock], sock)
                self._send_outbound()
        finally:
            # (an exception goes on to threading.excepthook: in a kernel
            # process, io.fatal ends the process)
            self._close()

    def _drain_wake(self) -> None:
        # at most one wake-up is in flight (producers send one only while
        # wake_pending is clear), so one read empties the socket
        try:
            self._wake.recv(zmq.NOBLOCK)
        except zmq.Again:
            pass
        # Clear the flag only after the socket is empty, and before the FIFO
        # is drained: a producer that saw the flag set queued its message
        # before we drain; one that sees it clear sends a wake-up that stays
        # in the socket. (Clearing first could swallow a wake-up whose flag
        # is then left set, and the kernel would stall.)
        self.outbound.wake_pending = False

    # -- incoming ----------------------------------------------------------
    def _read(self, channel: str, sock) -> None:
        # poll said readable: read until ZMQ says nothing is left (asking is
        # cheaper than the exception a failed read raises)
        for _ in range(RECV_BATCH):
            try:
                frames = _recv_multipart(sock)
            except zmq.Again:
                return
            try:
                msg = self.session.parse(frames)
            except InvalidContent as e:
                self._limiter.warn((channel, type(e).__name__), f"{channel}: invalid request content: {e}")
                if self.on_invalid is not None:
                    self.on_invalid(channel, e.message, e)
            except WireError as e:
                self._limiter.warn(
                    (channel, type(e).__name__),
                    f"{channel}: dropped malformed message ({type(e).__name__}: {e})",
                )
            else:
                self.on_message(channel, msg)
            if not sock.get(zmq.EVENTS) & zmq.POLLIN:
                return

    def _read_subscriptions(self) -> None:
        sock = self.sockets[IOPUB]
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            # a subscription event is one frame: \x01<topic> or \x00<topic>
            if len(frames) != 1 or not frames[0] or frames[0][0] not in (0, 1):
                self._limiter.warn("iopub-junk", "iopub: ignored a message that is not a subscription")
                continue
            event = frames[0]
            if len(event) > MAX_TOPIC + 1:
                self._limiter.warn("iopub-long", f"iopub: refused a subscription to a topic of {len(event) - 1} bytes (at most {MAX_TOPIC})")
                continue
            try:
                topic = event[1:].decode("utf-8")
            except UnicodeDecodeError:
                self._limiter.warn("iopub-topic", "iopub: ignored a subscription to a non-UTF-8 topic")
                continue
            # XPUB_MANUAL: nothing reaches this subscriber until we apply it here
            sock.setsockopt(zmq.SUBSCRIBE if event[0] == 1 else zmq.UNSUBSCRIBE, event[1:])
            if event[0] == 1:
                log.debug("iopub: welcoming a subscriber to %r", topic)
                self._welcome(topic)

    def _welcome(self, topic: str) -> None:
        if len(self._welcomes) >= MAX_WELCOMES_HELD:
            # (a subscription flood while iopub is held)
            self._limiter.warn("iopub-flood", f"iopub: {len(self._welcomes)} welcomes waiting to be sent; a new subscriber got none")
            return
        frames = self.session.frames("iopub_welcome", {"subscription": topic})
        if topic:
            frames.insert(0, topic.encode("utf-8"))
        # welcomes go before anything still held, so each is the first
        # message its subscriber sees; among themselves, in arrival order
        self._welcomes.append((IOPUB, frames))
        if not self.welcomed.is_set():
            starting = self.session.frames("status", {"execution_state": "starting"})
            starting.insert(0, self.session.iopub_topic("status"))
            self._welcomes.append((IOPUB, starting))
            self.welcomed.set()

    # -- outgoing ----------------------------------------------------------
    def _send_outbound(self) -> None:
        welcomes = self._welcomes
        while welcomes:
            if not self._publish(welcomes[0][1], 0):
                self._send_control_lane()
                return
            welcomes.popleft()
        pending = self._pending
        fifo = self.outbound.fifo
        lane = self.outbound.control_lane
        taken = 0
        try:
            while True:
                if lane and len(fifo) > CONTROL_OVERTAKES:
                    self._send_control_lane()  # not behind a long FIFO either
                if not pending:
                    if not fifo:  # only this thread takes from the FIFO
                        return
                    if taken == SEND_BATCH:
                        return  # (a producer as fast as this thread must not keep it from reading)
                    taken += 1
                    item = fifo.popleft()
                    if item[0] is not None:
                        size = _size(item[1])
                        if size > LARGE:
                            self.outbound.took_large(size)
                            self._trim_due = True
                        if item[0] == IOPUB and (size > LARGE or self._large):
                            self._count_large(size)
                        item = (item[0], item[1], size)
                    pending.append(item)
                head = pending[0]
                channel, frames = head[0], head[1]
                if channel is None:  # a marker
                    pending.popleft()
                    if frames is _CONTROL_TURN:
                        if self._control_early:
                            self._control_early -= 1  # it went while the FIFO was held
                        else:
                            self._send_control(self.outbound.control_lane.popleft())
                        continue
                    if frames.name == "stop":
                        self._stopped = True
                        self._stop_marker = frames
                        return
                    frames.event.set()
                    continue
                if channel == IOPUB:
                    if not self._publish(frames, head[2]):
                        self._send_control_lane()
                        return  # keep the message, retry soon
                elif not self._send_routed(channel, frames):
                    self._send_control_lane()
                    return  # keep the message, retry soon
                pending.popleft()
                self._held_since = None
        finally:
            self.outbound.made_room()

    def _send_routed(self, channel: str, frames) -> bool:
        """Send to one client on shell or stdin (ROUTER_MANDATORY); False when
        it must be held and retried."""
        try:
            _send_multipart(self.sockets[channel], frames)
        except zmq.Again:
            # the client's queue is full: it has SHELL_HWM replies unread
            client = frames[0]
            if client not in self._unread_clients:
                held = self._note_held()
                if held < STALLED_AFTER:
                    return False
                if len(self._unread_clients) > 1000:
                    self._unread_clients.clear()
                self._unread_clients.add(client)
            self._limiter.warn(
                (channel, "unread"),
                f"{channel}: a client has not read its replies for {STALLED_AFTER:.0f} s; "
                "a message for it was dropped (others go on)",
            )
        except zmq.ZMQError as e:
            if e.errno != zmq.EHOSTUNREACH:
                self._limiter.warn((channel, e.errno), f"cannot send on {channel}: {e}")
            elif channel != STDIN:
                self._limiter.warn((channel, "gone"), f"{channel}: dropped a reply for a client that has gone")
            elif self._note_held() < STDIN_CONNECT_WAIT:
                return False  # the client's stdin socket is not connected yet
            else:
                log.warning("stdin: no client stdin socket connected for %.0f s; input_request dropped", STDIN_CONNECT_WAIT)
        else:
            if self._unread_clients:
                self._unread_clients.discard(frames[0])  # it reads again
        return True

    def _send_control(self, frames) -> None:
        # never held (control must not wait); a full or gone client loses it
        try:
            _send_multipart(self.sockets[CONTROL], frames)
        except zmq.Again:
            self._limiter.warn((CONTROL, "unread"), "control: a client has 1,000 replies unread; a reply to it was dropped")
        except zmq.ZMQError as e:
            if e.errno == zmq.EHOSTUNREACH:
                self._limiter.warn((CONTROL, "gone"), "control: dropped a reply for a client that has gone")
            else:
                self._limiter.warn((CONTROL, e.errno), f"cannot send on {CONTROL}: {e}")

    def _send_control_lane(self) -> None:
        """While the FIFO's head is held: send control's messages now, ahead of
        their turn (each turn marker they pass is then skipped)."""
        lane = self.outbound.control_lane
        while lane:
            self._send_control(lane.popleft())
            self._control_early += 1

    def _publish(self, frames, size: int) -> bool:
        """Send on iopub; False when it must be held and retried (a subscriber's
        queue is full, in messages, or in bytes of tracked ones)."""
        sock = self.sockets[IOPUB]
        tracked = size >= ZERO_COPY and max(map(len, frames)) >= ZERO_COPY
        if tracked and not self._bytes_waived and self._pinned + size > IOPUB_BYTES and self._pinned:
            if self._sweep(whole=True):
                self._held_since = None  # a subscriber let go of some: progress
            if self._pinned and self._pinned + size > IOPUB_BYTES:
                held = self._note_held()
                if held < STALLED_AFTER:
                    return False
                self._limiter.warn(
                    "stalled",
                    f"iopub: {self._pinned / 1e6:.0f} MB of output has waited {held:.0f} s for a "
                    "subscriber that reads nothing; output goes on without it (the other "
                    "subscribers get every message)",
                )
                self._bytes_waived = True
        send = self._send_tracked if tracked else _send_multipart
        try:
            send(sock, frames)
        except zmq.Again:
            held = self._note_held()
            # (while the byte bound is waived a stalled subscriber is known to
            # be there: its queue filling up in messages is no news)
            if held < (STALLED_AFTER if self._bytes_waived else self.stalled_after()):
                return False
            # No subscriber made room for STALLED_AFTER: send this one without
            # NODROP. libzmq drops it for each full pipe and leaves those out
            # until they have drained, so the others need not wait any more.
            self._limiter.warn(
                "stalled",
                f"iopub: a subscriber has read nothing for {held:.0f} s; it loses messages "
                "until it reads again (the other subscribers get every message)",
            )
            sock.setsockopt(zmq.XPUB_NODROP, 0)
            try:
                send(sock, frames)
            finally:
                sock.setsockopt(zmq.XPUB_NODROP, 1)
        self._held_since = None
        return True

    def _send_tracked(self, sock, frames) -> None:
        """Send without copying the large frames, and keep their trackers
        (``_send_multipart`` for messages with a frame of ZERO_COPY or more)."""
        trackers = []
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            flags = zmq.NOBLOCK if i == last else _MORE
            if len(frame) >= ZERO_COPY:
                trackers.append(_backend_send(sock, frame, flags, False, True))
            else:
                _backend_send(sock, frame, flags)
        size = _size(frames)
        self._tracked.append((trackers, size))
        self._pinned += size
        self._tracked_sent += 1
        if self._tracked_sent == 1:
            _name_pyzmq_gc_thread()
        # the oldest are let go of first; now and then look at them all (a
        # stalled subscriber's hold on old ones hides newer ones let go of)
        self._sweep(whole=self._tracked_sent % 64 == 0)

    def _sweep(self, whole: bool = False) -> bool:
        """Forget tracked messages libzmq has let go of; True if there were any."""
        tracked = self._tracked
        before = self._pinned
        while tracked and _let_go(tracked[0]):
            self._pinned -= tracked.popleft()[1]
        if whole and tracked:
            kept = deque(m for m in tracked if not _let_go(m))
            self._pinned = sum(m[1] for m in kept)
            self._tracked = kept
        if self._bytes_waived and self._pinned <= IOPUB_BYTES // 2:
            self._bytes_waived = False
        return self._pinned < before

    def stalled_after(self) -> float:
        """How long a subscriber may make no room before it is taken as stalled."""
        return min(STALLED_MAX, STALLED_AFTER + self._recent_large_bytes / SLOW_READ)

    def _count_large(self, size: int) -> None:
        """Keep the sizes of the large messages among the last HWM sent."""
        self._seq += 1
        large = self._large
        if size > LARGE:
            large.append((self._seq, size))
            self._recent_large_bytes += size
        while large and large[0][0] <= self._seq - self._hwm:
            self._recent_large_bytes -= large.popleft()[1]

    def _note_held(self) -> float:
        """Note that the head message could not be sent; return for how long."""
        now = time.monotonic()
        if self._held_since is None:
            self._held_since = now
        return now - self._held_since

    def _close(self) -> None:
        for sock in self.sockets.values():
            sock.close()  # with the linger set at bind time
        self._wake.close(linger=0)
        if self._stop_marker is not None:
            self._stop_marker.event.set()
