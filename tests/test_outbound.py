"""The outbound FIFO and the I/O thread, in process: many producers, nothing lost or stalled."""

import sys
import threading
import time

import pytest
import zmq

from kernelkit.io import IOThread, Outbound, flow
from kernelkit.startup.bind import bind_sockets
from kernelkit.wire.channels import IOPUB
from kernelkit.startup.files import ConnectionInfo
from kernelkit.wire import Session


@pytest.fixture
def io_thread():
    ctx, hb_ctx = zmq.Context(), zmq.Context()
    session = Session(b"k")
    sockets, ports = bind_sockets(ctx, hb_ctx, ConnectionInfo(ip="127.0.0.1"), options=flow.socket_options("tcp"))
    sockets.pop("hb").close(linger=0)
    outbound = Outbound(ctx, maxsize=64)  # small, so producers often wait on a full FIFO
    io = IOThread(ctx, session, sockets, outbound, on_message=lambda ch, m: None)
    outbound.connect()
    io.start()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.connect(f"tcp://127.0.0.1:{ports['iopub']}")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    assert sub.poll(10_000), "no iopub_welcome"
    assert session.parse(sub.recv_multipart()).msg_type == "iopub_welcome"
    assert session.parse(sub.recv_multipart()).content == {"execution_state": "starting"}
    yield session, outbound, sub
    stopped = outbound.stop().event.wait(5)
    io.join(5)
    outbound.close()
    sub.close()
    hb_ctx.term()
    if stopped:  # a stalled I/O thread still owns its sockets: term() would hang
        ctx.term()


def test_many_producers_lose_nothing_and_never_stall(io_thread):
    session, outbound, sub = io_thread
    producers, per_producer = 4, 3000
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave producers and the I/O thread as much as possible

    def produce(p):
        for i in range(per_producer):
            outbound.send(IOPUB, session.frames("stream", {"name": "stdout", "text": f"{p}:{i}"}))

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    try:
        for t in threads:
            t.start()
        seen = {p: -1 for p in range(producers)}
        for _ in range(producers * per_producer):
            assert sub.poll(10_000), f"stalled: received up to {seen}"
            p, i = map(int, session.parse(sub.recv_multipart()).content["text"].split(":"))
            assert i == seen[p] + 1, "a producer's messages left out of order"
            seen[p] = i
    finally:
        sys.setswitchinterval(old)
        for t in threads:
            t.join(10)
    assert all(i == per_producer - 1 for i in seen.values())


def test_a_producer_outlives_an_ended_io_thread():
    """Once the I/O thread has ended (its wake-up socket closed), a producer's
    send neither raises nor waits: were the I/O thread dead, its own error must
    be the one that ends the process, not a producer's."""
    ctx = zmq.Context()
    outbound = Outbound(ctx, maxsize=64)
    pull = ctx.socket(zmq.PULL)
    pull.bind(outbound.wake_endpoint)
    outbound.connect()
    pull.close(linger=0)
    # libzmq's reaper ends the pipe in its own time: wait until the wake-up
    # socket can no longer send, as it finds when the I/O thread has ended
    deadline = time.monotonic() + 10
    while outbound._wake_socket.getsockopt(zmq.EVENTS) & zmq.POLLOUT:
        assert time.monotonic() < deadline, "the wake-up socket still has a peer"
        time.sleep(0.001)
    try:
        outbound.send(IOPUB, [b"a"])
        assert not outbound.wake_pending  # (the next producer would try again)
        outbound.send(IOPUB, [b"b"])
        outbound.stop()
        assert len(outbound.fifo) == 3
    finally:
        outbound.close()
        ctx.term()
