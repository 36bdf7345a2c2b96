"""Create the kernel's five sockets and bind them, picking ports where asked."""

import errno
import logging
import os
import random

import zmq

from ..wire.channels import CHANNELS, CONTROL, HB, IOPUB, SHELL, STDIN
from .endpoints import endpoint, ipc_path
from .errors import StartupError
from .files import ConnectionInfo
from .keys import curve_server

log = logging.getLogger("kernelkit.startup")

# How long a closing socket may still try to deliver queued messages (ms):
# long enough that a shutdown reply leaves, short enough that exit is prompt.
LINGER_MS = 1000
SOCKET_TYPES = {
    SHELL: zmq.ROUTER,
    CONTROL: zmq.ROUTER,
    STDIN: zmq.ROUTER,
    IOPUB: zmq.XPUB,
    HB: zmq.ROUTER,
}


def _configure(sock, channel: str, conn: ConnectionInfo, options: dict):
    sock.linger = LINGER_MS
    if conn.transport == "tcp" and ":" in conn.ip:
        sock.ipv6 = True
    if conn.curve_secretkey:
        curve_server(sock, conn.curve_secretkey, conn.curve_publickey)  # before bind
    if channel in (SHELL, CONTROL, STDIN):
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        # a message for a client whose queue is full, or who is not (or not
        # yet) connected, fails instead of vanishing: the I/O thread holds and
        # retries it, or drops it with a log line (stdin: a client's socket
        # may still be connecting)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    for option, value in options.get(channel, {}).items():
        sock.setsockopt(option, value)


class _InUse(StartupError):
    """The port is taken (a preferred port then falls back to a fresh one)."""


def _bind_preferred(sock, channel: str, conn: ConnectionInfo, port: int, label: str) -> int | None:
    """Bind ``port`` if it is free; None (and a log line) if it is taken."""
    # an existing ipc path is taken: binding would steal it from whoever made it
    if not (conn.transport == "ipc" and os.path.exists(ipc_path(conn.ip, port))):
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
        while os.path.exists(ipc_path(prefix, port)):
            port += 1
    sock.bind(endpoint("ipc", prefix, port))
    os.chmod(ipc_path(prefix, port), 0o600)
    return port


def _bind_one(sock, channel: str, conn: ConnectionInfo, port: int, label: str) -> int:
    if conn.transport == "ipc":
        try:
            return bind_ipc(sock, conn.ip, port)
        except zmq.ZMQError as e:
            raise StartupError(f"{label}: cannot bind {channel} to ipc path {ipc_path(conn.ip, port or 'N')}: {e.strerror}") from None
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
    options=None,
    port_range: tuple[int, int] | None = None,
    before_bind=None,
):
    """Bind shell, control, stdin, iopub (in ``ctx``) and hb (in ``hb_ctx``).

    Returns ``(sockets, ports)``; ports of 0 in ``conn`` are picked at bind
    time, so nothing can take them between picking and binding, except where
    ``preferred`` (channel -> port) names one to bind first if it is free.
    With ``port_range`` (tcp), picked ports come from that range. On failure
    every socket made so far is closed before StartupError propagates.
    ``options``: ``channel -> {zmq option: value}`` to set before binding (the
    kernel's flow control, io/flow.py ``socket_options``); ``before_bind``:
    ``channel -> callable(socket)``, called then too (io/peers.py's watch).
    """
    preferred = preferred or {}
    options = options or {}
    sockets, ports = {}, {}
    try:
        for channel in CHANNELS:
            sock = (hb_ctx if channel == HB else ctx).socket(SOCKET_TYPES[channel])
            sockets[channel] = sock
            _configure(sock, channel, conn, options)
            if before_bind and channel in before_bind:
                before_bind[channel](sock)
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
