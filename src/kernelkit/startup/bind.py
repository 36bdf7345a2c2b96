"""Create the kernel's five sockets and bind them, picking ports where asked."""

import errno
import os

import zmq

from ..io.iothread import MAX_SUBSCRIPTION_FRAME
from .errors import StartupError
from .files import CHANNELS, ConnectionInfo

# How long a closing socket may still try to deliver queued messages (ms):
# long enough that a shutdown reply leaves, short enough that exit is prompt.
LINGER_MS = 1000
# Messages the iopub socket may queue per subscriber before the I/O thread has
# to hold and retry (XPUB_NODROP turns overflow into EAGAIN instead of loss).
IOPUB_HWM = 10_000

SOCKET_TYPES = {
    "shell": zmq.ROUTER,
    "control": zmq.ROUTER,
    "stdin": zmq.ROUTER,
    "iopub": zmq.XPUB,
    "hb": zmq.ROUTER,
}


def _endpoint(transport: str, ip: str, port) -> str:
    if transport == "tcp":
        host = f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip
        return f"tcp://{host}:{port}"
    return f"ipc://{ip}-{port}"


def _configure(sock, channel: str, conn: ConnectionInfo):
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
    if channel == "stdin":
        # an input_request for a client whose stdin socket is still connecting
        # fails instead of vanishing, so the I/O thread can retry it
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    if channel == "iopub":
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        # the I/O thread applies each subscription itself, right before the
        # welcome, so a new subscriber's first message is its welcome
        sock.setsockopt(zmq.XPUB_MANUAL, 1)
        sock.setsockopt(zmq.XPUB_NODROP, 1)
        sock.sndhwm = IOPUB_HWM
        # over-long subscription topics are refused before libzmq stores them
        sock.maxmsgsize = MAX_SUBSCRIPTION_FRAME


def _bind_one(sock, channel: str, conn: ConnectionInfo, port: int, label: str) -> int:
    if conn.transport == "ipc":
        if port == 0:
            port = 1
            while os.path.exists(f"{conn.ip}-{port}"):
                port += 1
        sock.bind(_endpoint("ipc", conn.ip, port))
        return port
    try:
        sock.bind(_endpoint("tcp", conn.ip, port or "*"))
    except zmq.ZMQError as e:
        if e.errno == errno.EADDRINUSE:
            raise StartupError(
                f"{label}: {channel}_port {port} is already in use on {conn.ip}; "
                "free it, pick other ports, or start with a registration file"
            ) from None
        if e.errno in (errno.EADDRNOTAVAIL, errno.EINVAL, errno.ENODEV):
            raise StartupError(f"{label}: cannot bind {channel} to ip {conn.ip!r}: {e.strerror}") from None
        raise StartupError(f"{label}: cannot bind {channel}_port {port} on {conn.ip}: {e}") from None
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    return int(endpoint.rsplit(":", 1)[1])


def bind_sockets(ctx: zmq.Context, hb_ctx: zmq.Context, conn: ConnectionInfo, label: str = "connection file"):
    """Bind shell, control, stdin, iopub (in ``ctx``) and hb (in ``hb_ctx``).

    Returns ``(sockets, ports)``; ports of 0 in ``conn`` are picked at bind
    time, so nothing can take them between picking and binding. On failure
    every socket made so far is closed before StartupError propagates.
    """
    sockets, ports = {}, {}
    try:
        for channel in CHANNELS:
            sock = (hb_ctx if channel == "hb" else ctx).socket(SOCKET_TYPES[channel])
            sockets[channel] = sock
            _configure(sock, channel, conn)
            ports[channel] = _bind_one(sock, channel, conn, conn.ports.get(channel, 0), label)
    except BaseException:
        for sock in sockets.values():
            sock.close(linger=0)
        raise
    return sockets, ports
