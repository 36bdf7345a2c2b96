"""Helpers for process-level tests that talk to a kernel over raw ZeroMQ sockets.

No jupyter_client here: the tests decide exactly which sockets exist (so that,
for instance, no forgotten client iopub socket acts as a slow subscriber) and
exactly which frames are sent.
"""

import time

import zmq
from jupyter_client.connect import write_connection_file

from kernelkit.wire import DELIMITER, Session
from support import EXEC_KERNEL, KernelProcess

KEY = b"test-key"


class Received:
    """One message as a raw socket got it: the frames before the delimiter
    (topic or identities) and the parsed message."""

    def __init__(self, prefix, msg):
        self.prefix = prefix
        self.msg = msg

    @property
    def msg_type(self):
        return self.msg.msg_type

    @property
    def content(self):
        return self.msg.content

    @property
    def parent_id(self):
        return self.msg.parent_header.get("msg_id")

    def __repr__(self):
        return f"<{self.msg_type} {self.content!r:.80} parent={self.parent_id}>"


class RawKernel:
    """An exec test kernel process plus raw sockets to it.

    Sockets can be made (and a SUB subscribed) before ``start``: ZeroMQ
    connects as soon as the kernel binds.
    """

    def __init__(self, tmp_path, key=KEY):
        self.file, self.info = write_connection_file(str(tmp_path / "kernel.json"), key=key, ip="127.0.0.1")
        self.session = Session(key, self.info["signature_scheme"])
        self.ctx = zmq.Context()
        self.proc = None
        self._sockets = []

    # -- process ---------------------------------------------------------
    def start(self, extra_args=()):
        self.proc = KernelProcess(EXEC_KERNEL, self.file, extra_args)
        return self

    def start_and_wait(self, timeout=20.0, extra_args=()):
        """Start the kernel; return a SUB (topic b'') that has read its welcome
        (so the kernel is up and that subscriber is live)."""
        sub = self.sub()
        self.start(extra_args)
        first = recv(self, sub, timeout)
        if first is None:
            self.proc.kill()
            raise AssertionError(f"kernel never welcomed a subscriber; stderr:\n{self.proc.stderr}")
        assert first.msg_type == "iopub_welcome", first
        return sub

    def stderr_after_exit(self) -> str:
        """Kill the kernel and return everything it wrote on stderr."""
        self.proc.kill()
        return self.proc.stderr

    def close(self):
        try:
            if self.proc is not None:
                self.proc.kill()
        finally:
            for s in self._sockets:
                s.close(linger=0)
            self.ctx.term()

    # -- sockets -----------------------------------------------------------
    def url(self, channel):
        return f"tcp://127.0.0.1:{self.info[channel + '_port']}"

    def socket(self, kind, channel, **opts):
        s = self.ctx.socket(kind)
        s.linger = 0
        for name, value in opts.items():
            s.setsockopt(getattr(zmq, name.upper()), value)
        s.connect(self.url(channel))
        self._sockets.append(s)
        return s

    def sub(self, topic=b"", **opts):
        s = self.ctx.socket(zmq.SUB)
        s.linger = 0
        for name, value in opts.items():
            s.setsockopt(getattr(zmq, name.upper()), value)
        s.setsockopt(zmq.SUBSCRIBE, topic)
        s.connect(self.url("iopub"))
        self._sockets.append(s)
        return s

    def dealer(self, channel):
        return self.socket(zmq.DEALER, channel)

    def forget(self, sock):
        """Close one socket now (linger 0)."""
        self._sockets.remove(sock)
        sock.close(linger=0)

    # -- messages ------------------------------------------------------------
    def request_frames(self, msg_type, content=None, header_extra=None):
        msg = self.session.message(msg_type, content if content is not None else {})
        if header_extra:
            msg.header.update(header_extra)
        return msg.msg_id, self.session.serialize(msg, [])

    def send(self, sock, msg_type, content=None):
        msg_id, frames = self.request_frames(msg_type, content)
        sock.send_multipart(frames)
        return msg_id

    def signed(self, header: bytes, content: bytes = b"{}", parent: bytes = b"{}", metadata: bytes = b"{}"):
        """Frames with exactly these four parts, correctly signed."""
        parts = [header, parent, metadata, content]
        return [DELIMITER, self.session.signer.sign(parts), *parts]


def recv(kernel, sock, timeout):
    """The next message on ``sock`` within ``timeout`` seconds, else None."""
    if not sock.poll(int(timeout * 1000)):
        return None
    frames = sock.recv_multipart()
    msg = kernel.session.parse(frames, check_replay=False)
    idx = frames.index(DELIMITER)
    return Received(frames[:idx], msg)


def ready(kernel, poller, timeout_ms):
    """(socket, parsed message) for every message waiting on ``poller``'s
    sockets, after waiting up to ``timeout_ms`` for the first."""
    for sock, _ in poller.poll(timeout_ms):
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            yield sock, kernel.session.parse(frames, check_replay=False)


def collect_until(kernel, sock, stop, timeout):
    """Read ``sock`` until ``stop(received)`` is true for a message (included);
    fail if that takes longer than ``timeout`` seconds."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        r = recv(kernel, sock, max(left, 0))
        assert r is not None, f"timed out after {timeout}s; got {len(got)} messages, last: {got[-3:]}"
        got.append(r)
        if stop(r):
            return got


def reply_to(kernel, sock, msg_id, timeout=10.0):
    """Read ``sock`` until the reply to ``msg_id``; return (reply, others)."""
    got = collect_until(kernel, sock, lambda r: r.parent_id == msg_id, timeout)
    return got[-1], got[:-1]


def idle_for(msg_id):
    return lambda r: r.msg_type == "status" and r.parent_id == msg_id and r.content.get("execution_state") == "idle"
