"""Who is connected to iopub: each connection told apart, its subscriptions
bounded, and one that floods cut off, so libzmq's memory stays bounded.

XPUB does not say which connection a subscription comes from, and with
XPUB_MANUAL libzmq records every subscription a connection sends (to
unsubscribe it when the connection ends) whatever the kernel does with it;
no option bounds that record, and only the connection's end frees it
(200,000 distinct topics once cost 450 MB). Two libzmq facilities make
per-connection rules possible:

- ZAP. The iopub socket has a ZAP domain, so libzmq asks the kernel about
  every connection at its handshake (NULL security included); the answer's
  user id (``iopub-<n>``) rides on every message of that connection,
  subscriptions included (pyzmq: ``frame.get("User-Id")``). This handler
  also answers CURVE's requests for the kernel's other sockets (a context
  has one ZAP handler): with CURVE on, only clients holding the kernel's
  key pair are admitted (``admits``, startup/keys.py's rule).
- The socket monitor, which says which file descriptor each accepted
  connection has. libzmq has no call to end one connection of a bound
  socket; shutting its descriptor down makes libzmq end it, and free what it
  recorded (the unsubscriptions it then reports carry no user id).

A connection is matched to its descriptor when its ZAP request comes: the
descriptor accepted, not matched yet, that has received a whole greeting (a
handshake is answered by ZAP only after its accept is reported). When
several are at that point, the handshakes cannot be told apart (ZAP gives
the peer's address without its port): the request is answered, the others
wait, and the descriptor the kernel has sent more to (TCP: the handshake's
end, acknowledged) when the connection's first subscription comes is its own. One that sends nothing
for RESOLVE_WAIT stays unmatched (it cannot be cut off; over ipc the bytes
are not known, so neither can one of several handshakes at once). A
descriptor is checked by its inode before it is shut, so one reused by a
newer connection is left alone.

libzmq moves what a connection has sent into the socket's queue, and
records it, whenever the kernel calls into the socket, far ahead of what the
kernel has read: with libzmq's default receive high-water mark one call took
in a waiting flood of 200,000; with io/flow.py's SUBSCRIPTIONS_AHEAD about
130. What a flooder sent before it was cut waits in that one queue ahead of
everything else, and a connection that came meanwhile would flood unseen
behind it. So new iopub connections are admitted (their ZAP request
answered) only once the kernel has read every subscription waiting.

A connection that must be cut off but was left unmatched has all the
unmatched connections past their handshake cut off with it (a ZeroMQ client
reconnects and is welcomed again).

Everything here runs on the I/O thread.
"""

import logging
import os
import struct
import sys
import time
from collections import deque

import zmq
from zmq.utils import z85

from ..logs import LogLimiter

log = logging.getLogger("kernelkit.io")

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
# the iopub socket's ZAP domain: requests in it are iopub connections
IOPUB_DOMAIN = b"kernelkit-iopub"
USER_PREFIX = "iopub-"
_MONITORED = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
# a monitor event's first frame: event id, value (the descriptor). (pyzmq's
# parse_monitor_message is this, but its module imports asyncio.)
_EVENT = struct.Struct("=Hi")
# struct tcp_info's tcpi_bytes_acked and tcpi_bytes_received (Linux 4.1 and later)
_TCP_BYTES = struct.Struct("=QQ")
_TCP_BYTES_AT = 120
# a ZMTP greeting: a connection at its ZAP request has received at least this
_GREETING = 64
# How long other iopub handshakes wait for an ambiguous one's first
# subscription (s): clients subscribe as they connect.
RESOLVE_WAIT = 1.0


class Connection:
    """One iopub connection: the topics it has subscribed to (distinct, for
    its life: each is welcomed once), the messages it sent, its
    descriptors ((fd, inode) pairs) and whether it is cut off."""

    __slots__ = ("topics", "messages", "fds", "cut")

    def __init__(self):
        self.topics: set = set()
        self.messages = 0  # subscriptions and unsubscriptions
        self.fds: list = []  # (matched at the ZAP request, or at its first subscription)
        self.cut = False


class Peers:
    """The ZAP handler of the kernel's context and the iopub socket's
    connections. ``admits(z85_public_key) -> bool`` is the CURVE rule (None:
    no CURVE)."""

    def __init__(self, ctx: zmq.Context, admits=None):
        self._limiter = LogLimiter()
        self._admits = admits
        self.zap = ctx.socket(zmq.ROUTER)
        self.zap.linger = 0
        self.zap.bind(ZAP_ENDPOINT)  # before any socket that asks binds
        self.waiting: deque = deque()  # iopub's requests not answered yet
        # a connection answered while other handshakes were at the same point:
        # (user, {fd: (inode, bytes received then)}, until when others wait)
        self._resolving = None
        self.monitor = None
        self._accepted: dict = {}  # fd -> inode, accepted and not matched yet (in accept order)
        self._fd_owner: dict = {}  # fd -> user id, matched
        self.connections: dict = {}  # user id -> Connection
        self._count = 0
        self.held = 0  # distinct topics held by all connections together
        self.cut_off = False  # a connection was cut off (set here, cleared by the I/O thread)

    def watch(self, iopub) -> None:
        """Before ``iopub`` binds: ask ZAP about its connections and report
        their descriptors."""
        iopub.setsockopt(zmq.ZAP_DOMAIN, IOPUB_DOMAIN)
        self.monitor = iopub.get_monitor_socket(_MONITORED)

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close(linger=0)
        self.zap.close(linger=0)

    # -- ZAP -----------------------------------------------------------------
    def answer_zap(self, backlog: bool) -> None:
        """Answer every waiting ZAP request; iopub's wait while there is a
        ``backlog`` of subscriptions (see above)."""
        while True:
            try:
                frames = self.zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                split = frames.index(b"") + 1
            except ValueError:
                continue  # (libzmq sends well-formed requests)
            envelope, request = frames[:split], frames[split:]
            if len(request) > 2 and request[2] == IOPUB_DOMAIN and (backlog or self.waiting or self._resolving):
                self.waiting.append((envelope, request))
                continue
            self.zap.send_multipart(envelope + self._answer(request))

    def wait_longer(self) -> None:
        """Subscriptions wait to be read: the ambiguous connection's first may
        be among them, so its time does not run meanwhile."""
        if self._resolving is not None:
            user, ready, _ = self._resolving
            self._resolving = (user, ready, time.monotonic() + RESOLVE_WAIT)

    def admit_waiting(self) -> None:
        """The backlog is read: answer iopub's waiting requests, one at a time
        while a connection's descriptor is ambiguous."""
        if self._resolving is not None and time.monotonic() > self._resolving[2]:
            self._resolving = None  # it sent nothing: left unmatched
        while self.waiting and self._resolving is None:
            envelope, request = self.waiting.popleft()
            self.zap.send_multipart(envelope + self._answer(request))

    def _answer(self, request) -> list:
        if len(request) < 6:  # (libzmq sends well-formed requests)
            return [b"1.0", request[1] if len(request) > 1 else b"", b"500", b"malformed ZAP request", b"", b""]
        version, request_id, domain, _address, _identity, mechanism = request[:6]
        if mechanism == b"CURVE" and self._admits is not None:
            key = request[6] if len(request) > 6 else b""
            if len(key) != 32 or not self._admits(z85.encode(key)):
                return [version, request_id, b"400", b"not the kernel's key", b"", b""]
        user = b""
        if domain == IOPUB_DOMAIN:
            user = self._new_connection().encode()
        return [version, request_id, b"200", b"OK", user, b""]

    def _new_connection(self) -> str:
        self.read_monitor()  # this connection's accept is reported by now
        self._count += 1
        user = f"{USER_PREFIX}{self._count}"
        self.connections[user] = Connection()
        if len(self._accepted) == 1:  # (the usual case: its own)
            self._match(user, *next(iter(self._accepted.items())))
            return user
        # (one still in its greeting is not at its ZAP request)
        ready = {fd: (ino, got) for fd, ino in self._accepted.items() if (got := _tcp_bytes(fd)) is None or got[1] >= _GREETING}
        # one the kernel has sent more to is past its ZAP answer already (a
        # connection left unmatched): not this one, which has had the least
        sent = [got[0] for _, got in ready.values() if got is not None]
        if sent:
            least = min(sent)
            ready = {fd: v for fd, v in ready.items() if v[1] is None or v[1][0] == least}
        if len(ready) == 1:
            fd, (ino, _) = ready.popitem()
            self._match(user, fd, ino)
        elif ready:
            self._resolving = (user, ready, time.monotonic() + RESOLVE_WAIT)
        return user

    def _match(self, user, fd, ino) -> None:
        del self._accepted[fd]
        self._fd_owner[fd] = user
        self.connections[user].fds.append((fd, ino))

    def _resolve(self) -> None:
        """The ambiguous connection's first subscription: its descriptor is
        the one the kernel has sent more to since (its handshake's end: the
        others wait for their ZAP answer, and a client subscribes only once it
        has that end, acknowledging it)."""
        user, ready, _ = self._resolving
        self._resolving = None
        self.read_monitor()
        grown = [(fd, ino) for fd, (ino, got) in ready.items()
                 if got is not None and self._accepted.get(fd) == ino and ((_tcp_bytes(fd) or got)[0] > got[0])]
        if len(grown) == 1 and user in self.connections:
            self._match(user, *grown[0])

    # -- the monitor -----------------------------------------------------------
    def read_monitor(self) -> None:
        """Note accepted and ended connections."""
        monitor = self.monitor
        while monitor is not None:
            try:
                frames = monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event, fd = _EVENT.unpack(frames[0])
            if event == zmq.EVENT_ACCEPTED:
                try:
                    self._accepted[fd] = os.fstat(fd).st_ino
                except OSError:
                    pass  # gone already (its end is reported next)
            else:  # ended
                self._accepted.pop(fd, None)
                user = self._fd_owner.pop(fd, None)
                conn = self.connections.get(user)
                if conn is not None:
                    conn.fds = [f for f in conn.fds if f[0] != fd]
                    if not conn.fds:  # ended: forgotten
                        del self.connections[user]
                        self.held -= len(conn.topics)

    # -- subscriptions -----------------------------------------------------------
    def subscribe(self, frame, topic, limits: tuple) -> bool | None:
        """A subscription (``topic``: bytes) or, with ``topic`` None, an
        unsubscription, read as ``frame`` (which says its connection's user
        id). For a subscription: True if
        it is new to that connection (to be welcomed), False if it holds it
        already; None if it must not be applied (the connection is, or is now,
        cut off). ``limits``: (distinct topics, messages) per connection, and
        distinct topics held by all."""
        user = _user(frame)
        if self._resolving is not None and user == self._resolving[0]:
            self._resolve()
        conn = self.connections.get(user)
        if conn is None:
            if self._ended(user):
                return None  # read by libzmq before the connection ended
            return True  # (no user id: judged by the overall rules alone)
        if conn.cut:
            return None
        max_topics, max_messages, max_held = limits
        conn.messages += 1
        if conn.messages > max_messages:
            self.cut(user, f"it sent more than {max_messages} subscriptions")
            return None
        if topic is None or topic in conn.topics:
            return False
        if len(conn.topics) >= max_topics:
            self.cut(user, f"it subscribed to more than {max_topics} distinct topics")
            return None
        conn.topics.add(topic)
        if not conn.fds:
            return True  # (unmatched: not counted in all, its end is not seen)
        self.held += 1
        if self.held > max_held:
            live = [u for u, c in self.connections.items() if not c.cut and c.fds]
            biggest = max(live, key=lambda u: len(self.connections[u].topics))
            self.cut(biggest, f"{max_held} subscriptions are held by all connections together and it held the most")
            if biggest == user:
                return None
        return True

    def _ended(self, user) -> bool:
        """Is ``user`` the id of a connection that has ended (or was cut)?"""
        if not user or not user.startswith(USER_PREFIX):
            return False
        try:
            return int(user[len(USER_PREFIX):]) <= self._count
        except ValueError:
            return False

    def cut(self, user, why: str) -> None:
        """End connection ``user``: libzmq then frees every subscription it
        recorded for it. Its further subscriptions are not applied meanwhile."""
        conn = self.connections[user]
        conn.cut = True
        self.read_monitor()
        fds = conn.fds
        if not fds:
            # unmatched (see above): it is one of those left unmatched past
            # their handshake; they are all cut off (a ZeroMQ client reconnects
            # and is welcomed again), and this one is forgotten
            del self.connections[user]
            fds = [(fd, ino) for fd, ino in self._accepted.items() if (got := _tcp_bytes(fd)) is None or got[0] > _GREETING]
        shut = sum(_shut(fd, ino) for fd, ino in fds)
        if shut:
            self.cut_off = True
            self._limiter.warn("iopub-cut", f"iopub: disconnected a subscriber: {why}")
        else:
            self._limiter.warn("iopub-uncut", f"iopub: could not disconnect a subscriber ({why}): its connection was not found; its subscriptions are ignored")


def _user(frame):
    """The user id of the connection a subscription came from, or None: the
    unsubscriptions libzmq makes when a connection ends carry none."""
    try:
        return frame.get("User-Id")
    except zmq.ZMQError:
        return None


def _socket_of(fd: int):
    """A socket object on a duplicate of libzmq's descriptor ``fd`` (closing it
    leaves libzmq's open), or None if ``fd`` is gone or not a socket."""
    import socket  # (only when connections must be told apart: not at launch)

    try:
        dup = os.dup(fd)
    except OSError:
        return None
    try:
        return socket.socket(fileno=dup)
    except OSError:
        os.close(dup)
        return None


def _tcp_bytes(fd: int):
    """(bytes sent and acknowledged, bytes received) of a TCP connection in
    all; None for other transports and systems (Linux's layout)."""
    import socket

    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None or not sys.platform.startswith("linux"):
        return None
    sock = _socket_of(fd)
    if sock is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, 256)
    except OSError:
        return None
    finally:
        sock.close()
    if len(info) < _TCP_BYTES_AT + _TCP_BYTES.size:
        return None
    return _TCP_BYTES.unpack_from(info, _TCP_BYTES_AT)


def _shut(fd: int, inode: int) -> bool:
    """Shut connection ``fd`` down (both ways) if it is still the one whose
    socket has ``inode``; libzmq sees it end and closes it."""
    import socket

    sock = _socket_of(fd)
    if sock is None:
        return False
    try:
        if os.fstat(sock.fileno()).st_ino != inode:
            return False  # closed, and the number reused for another
        sock.shutdown(socket.SHUT_RDWR)
        return True
    except OSError:
        return False
    finally:
        sock.close()
