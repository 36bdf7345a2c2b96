"""Shortcuts past pyzmq and glibc, each on the message path or its memory.

- ``send_multipart``/``recv_multipart``: pyzmq's own type-check every frame
  and go through its Python wrapper per frame; ours are bytes already, so
  these call the backend's send and recv directly (every message pays this).
  As in pyzmq, an EAGAIN can only come on the first frame: ZeroMQ takes a
  multipart message whole or not at all.
- ``backend_send`` with ``track=True``: the zero-copy send whose tracker says
  when libzmq has let go of a frame (io/flow.py bounds those bytes).
- ``name_pyzmq_gc_thread``: pyzmq lets go of zero-copy frames on a thread of
  its own, started with the first one; named like ours so the debugger leaves
  it out.
- ``malloc_trim``: glibc keeps what a burst of large outputs used (5,000
  displays of 100 kB left the kernel 127 MB larger); the I/O thread gives it
  back once idle (ctypes, to reach it, is loaded then). Nothing where the C
  library is not glibc.
"""

import zmq

from .. import threads

MORE = zmq.SNDMORE | zmq.NOBLOCK
backend_send = zmq.backend.Socket.send
_backend_recv = zmq.backend.Socket.recv
_backend_get = zmq.backend.Socket.get


def send_multipart(sock, frames) -> None:
    """Send ``frames`` without blocking (raises zmq.Again when the peer is full)."""
    send = backend_send
    for frame in frames[:-1]:
        send(sock, frame, MORE)
    send(sock, frames[-1], zmq.NOBLOCK)


def recv_multipart(sock) -> list:
    """One whole message as bytes (raises zmq.Again if none is waiting)."""
    recv, get = _backend_recv, _backend_get
    parts = [recv(sock, zmq.NOBLOCK)]
    while get(sock, zmq.RCVMORE):
        parts.append(recv(sock, zmq.NOBLOCK))
    return parts


def name_pyzmq_gc_thread() -> None:
    from zmq.utils.garbage import gc

    if gc.thread is not None:
        gc.thread.name = threads.name("pyzmq-gc")


_malloc_trim = None  # glibc's, found by the first trim (ctypes is loaded then, not at start)


def malloc_trim() -> None:
    """Give memory glibc keeps but does not use back to the system (nothing
    where the C library is not glibc)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):  # not glibc
            _malloc_trim = lambda pad: 0  # noqa: E731
    _malloc_trim(0)
