"""The I/O thread: the only thread that touches the shell, control, stdin and
iopub sockets.

It reads requests and hands them to callbacks (which put them on the
handlers' queues), and sends what the outbound FIFO holds, in order. A
message that cannot be sent yet (a slow reader) is held and retried while
the thread goes on reading; io/flow.py has every rule for that, io/outbound.py
the FIFO. Control replies never wait behind a held message: their lane is
sent at once (see ``_send_outbound``).
"""

import logging
import threading
from collections import deque

import zmq

from .. import threads
from ..logs import LogLimiter
from ..wire import Session, WireError
from ..wire.channels import CONTROL, IOPUB, SHELL, STDIN
from ..wire.errors import InvalidContent
from .flow import CONTROL_OVERTAKES, LARGE, RETRY_MS, Hold, Iopub, Routed
from .outbound import CONTROL_TURN, Outbound, frames_size
from .shortcuts import malloc_trim, recv_multipart

log = logging.getLogger("kernelkit.io")

CHANNELS = (SHELL, CONTROL, STDIN, IOPUB)
# Messages read from one socket before looking at the others (fairness).
RECV_BATCH = 64
# Messages sent before looking at the sockets again.
SEND_BATCH = 256
# While the main shell runs a request its messages are queued without waking
# this thread; it looks at the FIFO this often (ms) instead (io/outbound.py).
LAZY_MS = 5
# While iopub handshakes wait (io/peers.py), look at them this often (ms).
RESOLVE_MS = 50
# After large messages, once this thread has had nothing to do for this long
# (ms), freed memory goes back to the system (io/shortcuts.py).
TRIM_AFTER_MS = 1000


class IOThread(threading.Thread):
    """Owns the four request/broadcast sockets.

    ``on_message(channel, msg)`` is called (on this thread) for every valid
    message on shell, control and stdin; ``on_invalid(channel, msg, error)``
    for a message whose header is readable but whose content is not. Both
    must only enqueue, never block.
    """

    def __init__(self, ctx: zmq.Context, session: Session, sockets: dict, outbound: Outbound, on_message, on_invalid=None, peers=None):
        super().__init__(name=threads.name("io"), daemon=True)
        self.session = session
        self.sockets = {ch: sockets[ch] for ch in CHANNELS}
        self.outbound = outbound
        self.on_message = on_message
        self.on_invalid = on_invalid
        self._limiter = LogLimiter()
        hold = Hold()  # the head of _pending's
        self.peers = peers  # io/peers.py: ZAP, and iopub's connections (None: not told apart)
        self._iopub = Iopub(self.sockets[IOPUB], session, self._limiter, hold, peers)
        self._routed = Routed(self.sockets, self._limiter, hold)
        self._pending: deque = deque()  # taken from the FIFO, not yet sent: (channel, frames, size)
        self._wake = ctx.socket(zmq.PULL)
        self._wake.bind(outbound.wake_endpoint)
        self._stopped = False
        self._stop_marker = None
        self._control_early = 0  # control messages sent ahead of their turn
        self._trim_due = False  # large messages were sent since the last trim

    # -- the loop --------------------------------------------------------
    def run(self) -> None:
        self.outbound.io_ident = threading.get_ident()
        self.outbound.io_send = self._send_outbound
        poller = zmq.Poller()
        for ch in CHANNELS:
            poller.register(self.sockets[ch], zmq.POLLIN)
        poller.register(self._wake, zmq.POLLIN)
        peers = self.peers
        if peers is not None:
            poller.register(peers.zap, zmq.POLLIN)
            poller.register(peers.monitor, zmq.POLLIN)
        by_socket = {self.sockets[ch]: ch for ch in CHANNELS}
        try:
            while not self._stopped:
                if self._pending or self._iopub.welcomes:
                    timeout = RETRY_MS
                elif self.outbound.fifo:
                    timeout = 0  # a batch was cut short: read, then send on
                elif self.outbound.lazy_active:
                    timeout = LAZY_MS
                else:
                    timeout = TRIM_AFTER_MS if self._trim_due else None
                if peers is not None and peers.waiting and (timeout is None or timeout > RESOLVE_MS):
                    timeout = RESOLVE_MS  # (iopub handshakes wait: see io/peers.py)
                events = poller.poll(timeout)
                if not events and timeout == TRIM_AFTER_MS:
                    self._trim_due = False
                    malloc_trim()
                for sock, _ in events:
                    if sock is self._wake:
                        self._drain_wake()
                    elif sock is self.sockets[IOPUB]:
                        self._iopub.read_subscriptions()
                    elif peers is not None and sock is peers.zap:
                        peers.answer_zap(self._iopub.backlog)
                    elif peers is not None and sock is peers.monitor:
                        peers.read_monitor()
                    else:
                        self._read(by_socket[sock], sock)
                if peers is not None:
                    if peers.waiting:
                        if self._iopub.backlog:
                            peers.wait_longer()
                        else:
                            peers.admit_waiting()
                    if peers.cut_off:  # libzmq frees what it recorded for them
                        peers.cut_off = False
                        self._trim_due = True
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
                frames = recv_multipart(sock)
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

    # -- outgoing ----------------------------------------------------------
    def _send_outbound(self) -> None:
        """Welcomes first, then the FIFO in order, until a message must be held
        (control's lane then goes at once) or the FIFO is empty."""
        if not self._iopub.send_welcomes():
            self._send_control_lane()
            return
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
                    pending.append(self._take(fifo.popleft()))
                channel, frames, size = pending[0]
                if channel is None:  # a marker
                    pending.popleft()
                    if frames is CONTROL_TURN:
                        if self._control_early:
                            self._control_early -= 1  # it went while the FIFO was held
                        else:
                            self._routed.send_control(lane.popleft())
                        continue
                    self._stopped = True  # the stop marker
                    self._stop_marker = frames
                    return
                sent = self._iopub.publish(frames, size) if channel == IOPUB else self._routed.send(channel, frames)
                if not sent:
                    self._send_control_lane()
                    return  # keep the message, retry soon
                pending.popleft()
        finally:
            self.outbound.made_room()

    def _take(self, item) -> tuple:
        """A FIFO item as (channel, frames, size), its bytes counted out."""
        channel, frames = item
        if channel is None:
            return (None, frames, 0)
        size = frames_size(frames)
        if size > LARGE:
            self.outbound.took_large(size)
            self._trim_due = True
        if channel == IOPUB:
            self._iopub.taken(size)
        return (channel, frames, size)

    def _send_control_lane(self) -> None:
        """While the FIFO's head is held: send control's messages now, ahead of
        their turn (each turn marker they pass is then skipped)."""
        lane = self.outbound.control_lane
        while lane:
            self._routed.send_control(lane.popleft())
            self._control_early += 1

    def _close(self) -> None:
        for sock in self.sockets.values():
            sock.close()  # with the linger set at bind time
        self._wake.close(linger=0)
        if self.peers is not None:
            self.peers.close()
        if self._stop_marker is not None:
            self._stop_marker.event.set()
