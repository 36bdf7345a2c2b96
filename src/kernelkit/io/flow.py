"""Flow control: every bound on what the kernel holds for a slow reader, and
every rule for giving up on one that reads nothing.

| what is bounded | limit | when it is reached | set by |
|---|---|---|---|
| messages in the outbound FIFO | 4,096 | producers wait (the control thread never does) | OUTBOUND_MAXSIZE |
| bytes of large messages (over LARGE) in the FIFO | 32 MiB | producers of large messages wait; one larger message still goes | OUTBOUND_BYTES, LARGE |
| messages libzmq queues per iopub subscriber | 1,000 | the send fails (XPUB_NODROP): the message is held and retried every RETRY_MS, in order, while requests are still read | IOPUB_HWM |
| bytes of zero-copy iopub messages libzmq holds | 64 MiB | the next one is held, as above; one larger message still goes | IOPUB_BYTES, ZERO_COPY |
| replies queued per shell client | 100,000 | the reply is held and retried | SHELL_HWM |
| iopub held, no subscriber makes room | 5 s of the kernel's running time (a gap over RUN_STEP between retries counts as RUN_STEP: a stopped kernel's pause is not the subscriber's), plus 1 s per 4 MiB of large messages among the last IOPUB_HWM sent, 30 s at most | one message goes without XPUB_NODROP: every full subscriber loses it and is left out until it has room; the others get everything | STALLED_AFTER, SLOW_READ, STALLED_MAX, RUN_STEP |
| tracked bytes at IOPUB_BYTES, none let go of | 5 s | the byte bound is waived until half of it is free | STALLED_AFTER |
| a TCP subscriber's receive window shut | 30 s (= STALLED_MAX) | the system disconnects it (libzmq's TCP_MAXRT), freeing its queue; it reconnects and is welcomed again if it reads again | IOPUB_TCP_TIMEOUT, `--iopub-tcp-timeout`, `KERNELKIT_IOPUB_TCP_TIMEOUT` (0: never) |
| a shell or stdin client leaves its replies unread | 5 s | its messages are dropped, logged, until one gets through | STALLED_AFTER |
| a client's stdin socket not connected | 5 s | the input_request is dropped, logged | STDIN_CONNECT_WAIT |
| a control client's queue full, or the client gone | libzmq's HWM (1,000) | the reply is dropped at once, logged (control never waits) | - |
| messages ahead of a control reply in the FIFO | 256, or the FIFO's head held | control's lane is sent at once, ahead of its turn | CONTROL_OVERTAKES |
| subscription events read at once | 256 | the rest are read after the other sockets have had their turn (a flood does not hold up requests) | SUBSCRIPTION_BATCH |
| a subscription's topic | 256 bytes | refused, logged; a frame over MAX_SUBSCRIPTION_FRAME disconnects its peer inside libzmq | MAX_TOPIC |
| distinct subscription topics, all subscribers together | 1,000 | a subscription to a new topic is refused (not applied: that subscriber gets nothing of it), logged; topics already held, and "" and the other prefixes of `kernel.<session>.` (what clients use), are still applied | MAX_TOPICS |
| distinct topics one iopub connection subscribes to, in its life | 100 | it is disconnected (its descriptor shut down: libzmq then frees every subscription it recorded for it), logged; its subscriptions meanwhile are not applied. Each topic is welcomed once per connection: a duplicate gets no welcome | MAX_CONNECTION_TOPICS, io/peers.py |
| those of all iopub connections together | 4,000 | the connection holding the most is disconnected, as above | MAX_HELD, io/peers.py |
| subscription messages one iopub connection sends, in its life (duplicates and unsubscriptions too) | 1,000 | it is disconnected, as above | MAX_CONNECTION_SUBSCRIPTIONS |
| new iopub connections while subscriptions wait to be read (libzmq reads a flood far ahead of the kernel) | none admitted: their handshake waits | admitted once every waiting subscription is read | io/peers.py |
| subscriptions libzmq reads from one iopub connection ahead of the kernel | 8 queued, and a 4 kB system receive buffer (a call into the socket took in about 130 of a waiting flood, against all 200,000 with libzmq's default) | its sender waits (TCP flow control) | SUBSCRIPTIONS_AHEAD, SUBSCRIPTION_BYTES_AHEAD |
| welcomes waiting | one per topic (a subscription to a topic whose welcome has not been sent yet adds none: the waiting one reaches it first); for topics other than the prefixes of `kernel.<session>.`, 1,000 | a subscriber to another topic gets no welcome, logged; welcomes for "" and the kernel's own prefixes (what clients use) are never dropped | MAX_TOPICS |

Room is the only sign of a subscriber's progress libzmq gives: a pipe's
reader reports what it has read every HWM/2 messages, so the high-water mark
is kept small and never changed while pipes exist (a pipe lowered below what
its reader has read but not yet reported is full for good once the reader has
caught up: it has nothing left to read, so it never reports). Tracked
(zero-copy) messages tell more: pyzmq says when every queue has let go of one,
and each one let go of is progress.

``socket_options`` sets the socket side of these rules at bind time;
``Iopub`` (subscriptions, welcomes, publishing) and ``Routed`` (shell, stdin,
control) apply the rest on the I/O thread; ``io/outbound.py`` applies the
FIFO's two bounds.
"""

import json
import logging
import time
from collections import deque

import zmq

from ..wire.channels import CONTROL, IOPUB, SHELL, STDIN
from ..wire.session import DELIMITER
from .shortcuts import MORE, backend_send, name_pyzmq_gc_thread, send_multipart

log = logging.getLogger("kernelkit.io")

# -- the limits (see the table above) ------------------------------------------
# The FIFO: enough to keep the sockets busy, small enough that a runaway
# producer waits instead of eating memory.
OUTBOUND_MAXSIZE = 4096
OUTBOUND_BYTES = 32 << 20
# A message larger than this (bytes) is a large one: counted in bytes as well
# as in messages (in the FIFO, and among the last IOPUB_HWM sent).
LARGE = 4096
# libzmq's default. Small on purpose: a subscriber's reads are reported every
# HWM/2 messages, and the bytes a stalled subscriber pins are those of its
# last HWM messages.
IOPUB_HWM = 1000
# An iopub message with a frame at least this large (pyzmq's own threshold for
# zero-copy) is handed to libzmq without a copy and tracked.
ZERO_COPY = 64 << 10
# The most libzmq may hold of tracked messages for iopub subscribers (bytes):
# a reader on a slow link pins this much, not 1,000 images.
IOPUB_BYTES = 64 << 20
# A client that queues thousands of cells and reads iopub first. Replies are
# small; a client that never reads is dropped by the stall rule.
SHELL_HWM = 100_000
STALLED_AFTER = 5.0
# bytes of large messages a slow reader is given one more second for
SLOW_READ = 4 << 20
STALLED_MAX = 30.0
# The longest a subscriber is waited for, so a reader that only pauses keeps
# its connection.
IOPUB_TCP_TIMEOUT = STALLED_MAX
# (it usually follows its shell socket by milliseconds)
STDIN_CONNECT_WAIT = 5.0
CONTROL_OVERTAKES = 256
# Subscription events read before the other sockets get a turn.
SUBSCRIPTION_BATCH = 256
# Topics are kernel.<session>.<msg_type>; libzmq keeps every subscription in a
# trie of about 50 bytes per topic byte, so a 10 MB topic would cost 500 MB.
MAX_TOPIC = 256
# (the slack covers ZMTP 3.1's SUBSCRIBE command name)
MAX_SUBSCRIPTION_FRAME = MAX_TOPIC + 32
# Distinct topics applied to the trie (at most about 13 MB of it). Clients
# subscribe to "" or a few kernel.<session>.<type> topics; anyone who reaches
# the port can subscribe. These are the topics the kernel applies (its
# filter); what each connection may send is bounded below (io/peers.py).
MAX_TOPICS = 1000
# What one connection may subscribe to (distinct topics, in its life), and
# all of them together: libzmq records each (about 50 bytes per topic byte:
# at most ~1.3 MB per connection, ~50 MB in all), and only the connection's
# end frees that (io/peers.py). Clients subscribe to "" or a few topics.
MAX_CONNECTION_TOPICS = 100
MAX_HELD = 4000
# Subscription messages one connection may send in its life (duplicates and
# unsubscriptions included: libzmq queues each it reads, far ahead of the kernel).
MAX_CONNECTION_SUBSCRIPTIONS = 1000
# The subscriptions of one connection libzmq queues for the kernel, and the
# system's receive buffer of an iopub connection (bytes).
SUBSCRIPTIONS_AHEAD = 8
SUBSCRIPTION_BYTES_AHEAD = 4096
LIMITS = (MAX_CONNECTION_TOPICS, MAX_CONNECTION_SUBSCRIPTIONS, MAX_HELD)
# While a message is held, retry this often (ms). XPUB always reports
# POLLOUT, so the retry has to be timed.
RETRY_MS = 2
# The most one retry adds to a hold's time (s): a longer gap between retries
# is time the kernel did not run (see Hold).
RUN_STEP = 0.02


def socket_options(transport: str, iopub_tcp_timeout: float = IOPUB_TCP_TIMEOUT) -> dict:
    """``channel -> {option: value}``, set before the socket binds."""
    iopub = {
        zmq.XPUB_VERBOSE: 1,
        # the I/O thread applies each subscription itself, right before the
        # welcome, so a new subscriber's first message is its welcome
        zmq.XPUB_MANUAL: 1,
        # a full subscriber makes the send fail instead of losing the message
        zmq.XPUB_NODROP: 1,
        zmq.SNDHWM: IOPUB_HWM,
        # over-long subscription topics are refused before libzmq stores them
        zmq.MAXMSGSIZE: MAX_SUBSCRIPTION_FRAME,
        # what libzmq reads of a connection's subscriptions, and records,
        # ahead of the kernel in one call: with its default (1,000) one poll
        # of a socket a flood waited on took in 200,000 subscriptions (450 MB,
        # 0.7 s); with 8, about 130. And what a connection has in flight when
        # it is cut off (io/peers.py). (Subscribers send nothing else.)
        zmq.RCVHWM: SUBSCRIPTIONS_AHEAD,
        zmq.RCVBUF: SUBSCRIPTION_BYTES_AHEAD,
    }
    if transport == "tcp" and iopub_tcp_timeout > 0:
        iopub[zmq.TCP_MAXRT] = int(iopub_tcp_timeout * 1000)
    return {SHELL: {zmq.SNDHWM: SHELL_HWM}, IOPUB: iopub}


class Hold:
    """How long the first message waiting to be sent has been held, counting
    only time the kernel ran.

    A held message is retried every RETRY_MS, and each retry adds the time
    since the last one, but at most RUN_STEP: a longer gap is time the process
    did not run (stopped by SIGSTOP, a cgroup freezer or CPU quota, a debugger,
    a VM stall) or its I/O thread did not get the GIL, and meanwhile no
    subscriber could be sent anything nor make room. So a reader that keeps
    reading is never judged stalled by a pause of the kernel (a 10 s SIGSTOP
    used to count as 10 s without room: thousands of displays lost at SIGCONT).
    """

    __slots__ = ("held", "_last")

    def __init__(self):
        self.held = 0.0
        self._last = None

    def note(self) -> float:
        """The message could not be sent; for how long now (s of running time)."""
        now = time.monotonic()
        if self._last is not None:
            self.held += min(now - self._last, RUN_STEP)
        self._last = now
        return self.held

    @property
    def holding(self) -> bool:
        """A message is being held."""
        return self._last is not None

    def clear(self) -> None:
        self.held = 0.0
        self._last = None


def _size(frames) -> int:
    return sum(map(len, frames))


def _let_go(tracked) -> bool:
    """Has libzmq let go of this tracked message ((trackers, size)) everywhere?"""
    return all(t.done for t in tracked[0])


class Iopub:
    """The XPUB socket's side: subscriptions and their welcomes, and sending
    under the bounds and stall rules above."""

    def __init__(self, sock, session, limiter, hold: Hold, peers=None):
        self.sock = sock
        self._peers = peers  # io/peers.py: who subscribed (None: not told apart)
        self.backlog = False  # subscriptions were left to read
        self.session = session
        self._limiter = limiter
        self._hold = hold
        self._hwm = sock.sndhwm
        # iopub_welcome (and the first status), sent before anything else
        self.welcomes: deque = deque()
        self._welcomes_waiting: set = set()  # the topics of those welcomes
        self._other_welcomes = 0  # those for topics not the kernel's own
        # the topics applied, as libzmq's trie holds them (it says when the
        # last subscriber of one has gone: an unsubscription)
        self._topics: set = set()
        self._welcomed = False
        # (sequence number, size) of the large messages among the last _hwm
        # sent, and the sum of their sizes
        self._recent_large: deque = deque()
        self.recent_large_bytes = 0
        self._seq = 0  # messages counted while large ones are about
        # tracked (zero-copy) messages libzmq may still hold: ([trackers],
        # size), oldest first; the sum of their sizes; whether the byte bound
        # is waived (a subscriber stalled while it was full)
        self._tracked: deque = deque()
        self.tracked_bytes = 0
        self._bytes_waived = False
        self._tracked_sent = 0

    # -- subscriptions ------------------------------------------------------------
    def read_subscriptions(self) -> None:
        """Read up to SUBSCRIPTION_BATCH subscription events; the rest stay
        readable. (Reading a flood to its end kept the I/O thread from
        requests and from sending the welcomes it queued for seconds.)"""
        sock = self.sock
        peers = self._peers
        for _ in range(SUBSCRIPTION_BATCH):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self.backlog = False
                return
            # a subscription event is one frame: \x01<topic> or \x00<topic>
            event = frames[0].bytes
            if len(frames) != 1 or not event or event[0] not in (0, 1):
                self._limiter.warn("iopub-junk", "iopub: ignored a message that is not a subscription")
                continue
            raw = event[1:]
            new = True  # to this connection: welcomed
            if peers is not None:
                # (first: libzmq has recorded it, whatever the kernel makes of it)
                new = peers.subscribe(frames[0], raw if event[0] else None, LIMITS)
                if new is None:
                    continue  # its connection is cut off
            if len(event) > MAX_TOPIC + 1:
                self._limiter.warn("iopub-long", f"iopub: refused a subscription to a topic of {len(event) - 1} bytes (at most {MAX_TOPIC})")
                continue
            try:
                topic = event[1:].decode("utf-8")
            except UnicodeDecodeError:
                self._limiter.warn("iopub-topic", "iopub: ignored a subscription to a non-UTF-8 topic")
                continue
            if event[0] == 0:
                sock.setsockopt(zmq.UNSUBSCRIBE, raw)
                self._topics.discard(raw)
                continue
            own = self._own_prefix(raw)
            if raw not in self._topics and not own:
                if len(self._topics) >= MAX_TOPICS:
                    self._limiter.warn("iopub-topics", f"iopub: refused a subscription: {MAX_TOPICS} topics are held already")
                    continue
                self._topics.add(raw)
            # XPUB_MANUAL: nothing reaches this subscriber until we apply it here
            sock.setsockopt(zmq.SUBSCRIBE, raw)
            if new:
                log.debug("iopub: welcoming a subscriber to %r", topic)
                self._welcome(topic, own)
        # (the batch may have taken the last one: then none is left)
        self.backlog = bool(sock.get(zmq.EVENTS) & zmq.POLLIN)

    def _own_prefix(self, topic: bytes) -> bool:
        """A prefix of every topic this kernel publishes under ("" included):
        never refused, so a flood of other topics cannot shut clients out."""
        return self.session.iopub_topic("").startswith(topic)

    def _welcome(self, topic: str, own: bool) -> None:
        if topic in self._welcomes_waiting:
            return  # the welcome waiting for this topic reaches this subscriber first
        if not own:
            # (topics come and go with their subscribers while iopub is held)
            if self._other_welcomes >= MAX_TOPICS:
                self._limiter.warn("iopub-flood", f"iopub: {MAX_TOPICS} welcomes for other topics than the kernel's wait; a subscriber to another got none")
                return
            self._other_welcomes += 1
        # Welcomes go before anything still held, so each is the first
        # message its subscriber sees; among themselves, in arrival order.
        # At most one per topic waits: so at most MAX_TOPICS for other topics,
        # and one for each prefix of the kernel's own topics, "" included,
        # which is never refused (a flood of other topics once took all the
        # room and a new client subscribing to "" went unwelcomed).
        identities = (topic.encode("utf-8"),) if topic else ()
        self.welcomes.append((topic, self.session.frames("iopub_welcome", {"subscription": topic}, identities=identities)))
        self._welcomes_waiting.add(topic)
        if not self._welcomed:
            self._welcomed = True
            status = {"execution_state": "starting"}
            self.welcomes.append((None, self.session.frames("status", status, identities=(self.session.iopub_topic("status"),))))

    def send_welcomes(self) -> bool:
        """Send the waiting welcomes; False if one must be held."""
        welcomes = self.welcomes
        while welcomes:
            topic, frames = welcomes[0]
            if not self.publish(frames, 0):
                return False
            welcomes.popleft()
            if topic is not None:
                self._welcomes_waiting.discard(topic)
                if not self._own_prefix(topic.encode("utf-8")):
                    self._other_welcomes -= 1
        return True

    # -- publishing ---------------------------------------------------------------
    def taken(self, size: int) -> None:
        """Count a message taken from the FIFO for iopub: the sizes of the
        large ones among the last HWM sent (what a subscriber may still have
        to read before libzmq reports its progress)."""
        if size <= LARGE and not self._recent_large:
            return
        self._seq += 1
        large = self._recent_large
        if size > LARGE:
            large.append((self._seq, size))
            self.recent_large_bytes += size
        while large and large[0][0] <= self._seq - self._hwm:
            self.recent_large_bytes -= large.popleft()[1]

    def stalled_after(self) -> float:
        """How long a subscriber may make no room before it is taken as stalled."""
        return min(STALLED_MAX, STALLED_AFTER + self.recent_large_bytes / SLOW_READ)

    def publish(self, frames, size: int) -> bool:
        """Send; False when it must be held and retried (a subscriber's queue
        is full, in messages, or in bytes of tracked ones)."""
        hold = self._hold
        tracked = size >= ZERO_COPY and max(map(len, frames)) >= ZERO_COPY
        if tracked and not self._bytes_waived and self.tracked_bytes and self.tracked_bytes + size > IOPUB_BYTES:
            if self._sweep(whole=True):
                hold.clear()  # a subscriber let go of some: progress
            if self.tracked_bytes and self.tracked_bytes + size > IOPUB_BYTES:
                held = hold.note()
                if held < STALLED_AFTER:
                    return False
                self._limiter.warn(
                    "stalled",
                    f"iopub: {self.tracked_bytes / 1e6:.0f} MB of output has waited {held:.0f} s for a "
                    "subscriber that reads nothing; output goes on without it (the other "
                    "subscribers get every message)",
                )
                self._bytes_waived = True
        send = self._send_tracked if tracked else send_multipart
        sock = self.sock
        try:
            send(sock, frames)
        except zmq.Again:
            held = hold.note()
            # (while the byte bound is waived a stalled subscriber is known to
            # be there: its queue filling up in messages is no news)
            if held < (STALLED_AFTER if self._bytes_waived else self.stalled_after()):
                return False
            # No subscriber made room in time: send this one without NODROP.
            # libzmq drops it for each full pipe and leaves those out until
            # they have drained (HWM is per pipe), so the others need not wait.
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
        hold.clear()
        return True

    def _send_tracked(self, sock, frames) -> None:
        """Send without copying the zero-copy frames, and keep their trackers."""
        trackers = []
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            flags = zmq.NOBLOCK if i == last else MORE
            if len(frame) >= ZERO_COPY:
                trackers.append(backend_send(sock, frame, flags, False, True))
            else:
                backend_send(sock, frame, flags)
        size = _size(frames)
        self._tracked.append((trackers, size))
        self.tracked_bytes += size
        self._tracked_sent += 1
        if self._tracked_sent == 1:
            name_pyzmq_gc_thread()
        # the oldest are let go of first; now and then look at them all (a
        # stalled subscriber's hold on old ones hides newer ones let go of)
        self._sweep(whole=self._tracked_sent % 64 == 0)

    def _sweep(self, whole: bool = False) -> bool:
        """Forget tracked messages libzmq has let go of; True if there were any."""
        tracked = self._tracked
        before = self.tracked_bytes
        while tracked and _let_go(tracked[0]):
            self.tracked_bytes -= tracked.popleft()[1]
        if whole and tracked:
            kept = deque(m for m in tracked if not _let_go(m))
            self.tracked_bytes = sum(m[1] for m in kept)
            self._tracked = kept
        if self._bytes_waived and self.tracked_bytes <= IOPUB_BYTES // 2:
            self._bytes_waived = False
        return self.tracked_bytes < before


class Routed:
    """Sending to one client on shell, stdin (ROUTER_MANDATORY: a full or
    absent client makes the send fail) and control."""

    def __init__(self, sockets: dict, limiter, hold: Hold):
        self.sockets = sockets
        self._limiter = limiter
        self._hold = hold
        # shell/stdin clients that left their replies unread for STALLED_AFTER:
        # their messages are dropped without waiting until one gets through
        self._unread_clients: set = set()

    def send(self, channel: str, frames) -> bool:
        """Send on shell or stdin; False when it must be held and retried."""
        try:
            send_multipart(self.sockets[channel], frames)
        except zmq.Again:
            # the client's queue is full: it has SHELL_HWM replies unread
            client = frames[0]
            if client not in self._unread_clients:
                if self._hold.note() < STALLED_AFTER:
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
                self._client_gone(channel, frames)
            elif self._hold.note() < STDIN_CONNECT_WAIT:
                return False  # the client's stdin socket is not connected yet
            else:
                log.warning("stdin: no client stdin socket connected for %.0f s; input_request dropped", STDIN_CONNECT_WAIT)
        else:
            if self._unread_clients:
                self._unread_clients.discard(frames[0])  # it reads again
        self._hold.clear()
        return True

    def send_control(self, frames) -> None:
        """Never held (control must not wait); a full or gone client loses it."""
        try:
            send_multipart(self.sockets[CONTROL], frames)
        except zmq.Again:
            self._limiter.warn((CONTROL, "unread"), "control: a client has 1,000 replies unread; a reply to it was dropped")
        except zmq.ZMQError as e:
            if e.errno == zmq.EHOSTUNREACH:
                self._client_gone(CONTROL, frames)
            else:
                self._limiter.warn((CONTROL, e.errno), f"cannot send on {CONTROL}: {e}")

    def _client_gone(self, channel: str, frames) -> None:
        """A reply whose client has closed its socket is dropped. A
        kernel_info_reply is the usual case and no fault: a probe asks on
        several channels and leaves at the first answer (jupyter_server's
        nudge asks on shell and control at every start): logged at INFO."""
        level = logging.INFO if _msg_type(frames) == "kernel_info_reply" else logging.WARNING
        self._limiter.warn((channel, "gone", level), f"{channel}: dropped a reply for a client that has gone", log, level)


def _msg_type(frames) -> str | None:
    """The msg_type of a message's frames (identities, delimiter, signature,
    header ...), None if unreadable. (Off the hot path: for log lines.)"""
    try:
        header = frames[list(map(bytes, frames)).index(DELIMITER) + 2]
        return json.loads(bytes(header)).get("msg_type")
    except (ValueError, IndexError, AttributeError, TypeError):
        return None
