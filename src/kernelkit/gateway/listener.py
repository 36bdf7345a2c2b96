"""The comm port: where the provisioner sends signals, liveness polls and shutdown.

Each request is one TCP connection carrying one JSON object, ended by the
sender closing its side: ``{"signum": N}`` (0: the liveness poll, which the
connection itself answers; other numbers are sent to the kernel's process:
2 interrupts, 15 ends it, 9 kills it) or ``{"shutdown": 1}``. The listener
is a thread of the kernel's process, so it lives exactly as long as the kernel:
a refused connection tells the provisioner the kernel is gone, and no helper
process can outlive the kernel.
"""

import json
import logging
import os
import socket
import threading

from ..startup import StartupError
from ..startup.bind import range_order

log = logging.getLogger("kernelkit.gateway")

# a request is a few bytes; a peer that sends more, or stalls, is dropped
MAX_REQUEST = 4096
REQUEST_TIMEOUT = 5.0


def bind_comm_socket(ip: str, port_range: tuple[int, int] | None) -> socket.socket:
    """A listening TCP socket on a free port of ``port_range`` (any port without one)."""
    candidates = range_order(port_range) if port_range else [0]
    last = None
    for port in candidates:
        sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
        # as libzmq does for the kernel's ports: connections of the previous
        # kernel in TIME_WAIT must not keep a restarted one off its range
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
            sock.listen(16)
            return sock
        except OSError as e:
            sock.close()
            last = e
    raise StartupError(f"no free port left in {port_range[0]}..{port_range[1]} for the comm port ({last.strerror}); widen the port range")


class CommListener:
    """Serves ``sock`` on a daemon thread; ``on_shutdown()`` for a shutdown request."""

    def __init__(self, sock: socket.socket, on_shutdown):
        self.sock = sock
        self.on_shutdown = on_shutdown
        self.thread = threading.Thread(target=self._serve, name="kernelkit-gateway-comm", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        """Stop taking requests: the provisioner's next poll is refused (the kernel is gone)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return  # closed: the kernel is ending
            with conn:
                try:
                    request = self._read(conn)
                except (OSError, ValueError) as e:
                    log.warning("comm port: unreadable request from %s: %s", peer[0], e)
                    continue
            if request is not None:
                self._handle(request, peer[0])

    @staticmethod
    def _read(conn: socket.socket):
        conn.settimeout(REQUEST_TIMEOUT)
        data = b""
        while True:
            chunk = conn.recv(1024)
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_REQUEST:
                raise ValueError(f"more than {MAX_REQUEST} bytes")
        if not data.strip():
            return None
        request = json.loads(data)
        if not isinstance(request, dict):
            raise ValueError("not a JSON object")
        return request

    def _handle(self, request: dict, peer: str) -> None:
        if request.get("signum") is not None:
            try:
                signum = int(request["signum"])
                if signum:
                    log.info("comm port: signal %d from %s", signum, peer)
                    os.kill(os.getpid(), signum)
            except (TypeError, ValueError, OSError) as e:
                log.warning("comm port: cannot deliver signal %r from %s: %s", request["signum"], peer, e)
        if request.get("shutdown"):
            log.info("comm port: shutdown from %s", peer)
            self.on_shutdown()
