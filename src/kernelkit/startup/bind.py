"""Create the kernel's five sockets and bind them, picking ports where asked."""

import errno
import logging
import os
import random

import zmq

from ..io.iothread import MAX_SUBSCRIPTION_FRAME
from .errors import StartupError
from .files import CHANNELS, ConnectionInfo

log = logging.getLogger("kernelkit.startup")

# How long a closing socket may still try to deliver queued messages (ms):
# long enough that a shutdown reply leaves, short enough that exit is prompt.
LINGER_MS = 1000
# Messages the iopub socket may queue per subscriber before the I/O thread has
# to hold and retry (XPUB_NODROP turns overflow into EAGAIN instead of loss).
# libzmq's default. Small on purpose: a subscriber's reads are reported every
# HWM/2 messages, the only progress the stalled-subscriber rule can see, and
# the bytes a stalled subscriber pins are those of its last HWM messages.
IOPUB_HWM = 1000

# An iopub subscriber over TCP whose receive window stays shut this long (s)
# while output waits for it is disconnected by the system (TCP_USER_TIMEOUT,
# libzmq's TCP_MAXRT). That frees what its queue in libzmq held: up to
# IOPUB_HWM messages of any size, the one part of iopub buffering that is not
# bounded in bytes. A client that reads again reconnects and is welcomed
# again; one that never reads does not notice. The longest a subscriber is
# waited for (io.iothread.STALLED_MAX), so a reader that only pauses keeps
# its connection. KERNELKIT_IOPUB_TCP_TIMEOUT overrides it; 0 turns it off.
IOPUB_TCP_TIMEOUT = 30.0

# Replies a shell client may leave unread before the I/O thread has to hold
# them (a client that queues thousands of cells and reads iopub first). Replies
# are small; a client that never reads is dropped by the stall rule.
SHELL_HWM = 100_000

SOCKET_TYPES = {
    "shell": zmq.ROUTER,
    "control": zmq.ROUTER,
    "stdin": zmq.ROUTER,
    "iopub": zmq.XPUB,
    "hb": zmq.ROUTER,
}


def endpoint(transport: str, ip: str, port=None) -> str:
    """The ZeroMQ address of ``port`` on ``ip`` (ipc: the path ``<ip>-<port>``);
    without a port, the tcp address to give bind_to_random_port."""
    if transport == "tcp":
        host = f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip
        return f"tcp://{host}" if port is None else f"tcp://{host}:{port}"
    return f"ipc://{ip}-{port}"


def _configure(sock, channel: str, conn: ConnectionInfo, iopub_tcp_timeout: float):
    sock.linger = LINGER_MS
    if conn.transport == "tcp" and ":" in conn.ip:
        sock.ipv6 = True
    if conn.curve_secretkey:
        # must be set before bind: every socket is a CurveZMQ server
        sock.curve_secretkey = conn.curve_secretkey
        sock.curve_publickey = conn.curve_publickey
        sock.curve_server = True
    if channel in ("shell", "control", "stdin"):
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        # a message for a client whose queue is full, or who is not (or not
        # yet) connected, fails instead of vanishing: the I/O thread holds and
        # retries it, or drops it with a log line (stdin: a client's socket
        # may still be connecting)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    if channel == "shell":
        sock.sndhwm = SHELL_HWM
    if channel == "iopub":
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        # the I/O thread applies each subscription itself, right before the
        # welcome, so a new subscriber's first message is its welcome
        sock.setsockopt(zmq.XPUB_MANUAL, 1)
        sock.setsockopt(zmq.XPUB_NODROP, 1)
        sock.sndhwm = IOPUB_HWM
        # over-long subscription topics are refused before libzmq stores them
        sock.maxmsgsize = MAX_SUBSCRIPTION_FRAME
        if conn.transport == "tcp" and iopub_tcp_timeout > 0:
            sock.setsockopt(zmq.TCP_MAXRT, int(iopub_tcp_timeout * 1000))


class _InUse(StartupError):
    """The port is taken (a preferred port then falls back to a fresh one)."""


def _bind_preferred(sock, channel: str, conn: ConnectionInfo, port: int, label: str) -> int | None:
    """Bind ``port`` if it is free; None (and a log line) if it is taken."""
    # an existing ipc path is taken: binding would steal it from whoever made it
    if not (conn.transport == "ipc" and os.path.exists(f"{conn.ip}-{port}")):
        try:
            return _bind_one(sock, channel, conn, port, label)
        except _InUse:
            pass
    log.info("%s: preferred %s_port %s is taken; binding a fresh one", label, channel, port)
    return None


def bind_ipc(sock, prefix: str, port: int = 0) -> int:
    """Bind ``ipc://<prefix>-<port>`` (Jupyter's ipc "ports"); port 0: the first
    number whose path does not exist. Only the owner may connect (mode 0600)."""
    if port == 0:
        port = 1
        while os.path.exists(f"{prefix}-{port}"):
            port += 1
    sock.bind(endpoint("ipc", prefix, port))
    os.chmod(f"{prefix}-{port}", 0o600)
    return port


def _bind_one(sock, channel: str, conn: ConnectionInfo, port: int, label: str) -> int:
    if conn.transport == "ipc":
        try:
            return bind_ipc(sock, conn.ip, port)
        except zmq.ZMQError as e:
            raise StartupError(f"{label}: cannot bind {channel} to ipc path {conn.ip}-{port or 'N'}: {e.strerror}") from None
    try:
        sock.bind(endpoint("tcp", conn.ip, port or "*"))
    except zmq.ZMQError as e:
        if e.errno == errno.EADDRINUSE:
            raise _InUse(
                f"{label}: {channel}_port {port} is already in use on {conn.ip}; "
                "free it, pick other ports, or start with a registration file"
            ) from None
        if e.errno in (errno.EADDRNOTAVAIL, errno.EINVAL, errno.ENODEV):
            raise StartupError(f"{label}: cannot bind {channel} to ip {conn.ip!r}: {e.strerror}") from None
        raise StartupError(f"{label}: cannot bind {channel}_port {port} on {conn.ip}: {e}") from None
    bound = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    return int(bound.rsplit(":", 1)[1])


def range_order(port_range: tuple[int, int]) -> list:
    """Every port of ``(low, high)`` (both included), starting at a random one:
    kernels started at once on one host try different ports first."""
    low, high = port_range
    ports = list(range(low, high + 1))
    start = random.randrange(len(ports))
    return ports[start:] + ports[:start]


def _bind_in_range(sock, channel: str, conn: ConnectionInfo, port_range: tuple[int, int], label: str) -> int:
    """Bind the first free port of ``port_range``: one bind per port tried, the
    socket keeps the one that succeeds (nothing is closed and bound again)."""
    for port in range_order(port_range):
        try:
            return _bind_one(sock, channel, conn, port, label)
        except _InUse:
            continue
    raise StartupError(f"{label}: no free port left in {port_range[0]}..{port_range[1]} for {channel}; widen the port range")


def bind_sockets(
    ctx: zmq.Context,
    hb_ctx: zmq.Context,
    conn: ConnectionInfo,
    label: str = "connection file",
    preferred=None,
    iopub_tcp_timeout: float = IOPUB_TCP_TIMEOUT,
    port_range: tuple[int, int] | None = None,
):
    """Bind shell, control, stdin, iopub (in ``ctx``) and hb (in ``hb_ctx``).

    Returns ``(sockets, ports)``; ports of 0 in ``conn`` are picked at bind
    time, so nothing can take them between picking and binding, except where
    ``preferred`` (channel -> port) names one to bind first if it is free.
    With ``port_range`` (tcp), picked ports come from that range. On failure
    every socket made so far is closed before StartupError propagates.
    """
    preferred = preferred or {}
    sockets, ports = {}, {}
    try:
        for channel in CHANNELS:
            sock = (hb_ctx if channel == "hb" else ctx).socket(SOCKET_TYPES[channel])
            sockets[channel] = sock
            _configure(sock, channel, conn, iopub_tcp_timeout)
            port = conn.ports.get(channel, 0)
            bound = None
            if not port and channel in preferred:
                bound = _bind_preferred(sock, channel, conn, preferred[channel], label)
            if bound is None and not port and port_range and conn.transport == "tcp":
                bound = _bind_in_range(sock, channel, conn, port_range, label)
            ports[channel] = bound if bound is not None else _bind_one(sock, channel, conn, port, label)
    except BaseException:
        for sock in sockets.values():
            sock.close(linger=0)
        raise
    return sockets, ports
