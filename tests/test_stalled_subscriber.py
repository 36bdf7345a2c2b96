"""A subscriber that stops reading (anyone who can reach the iopub port, no
key needed) holds output back for STALLED_AFTER seconds at most: then the
others get every message, and control answers all along."""

import time

import pytest
import zmq

from kernelkit.io.iothread import STALLED_AFTER
from rawkernel import RawKernel, recv, reply_to


@pytest.fixture
def rk(tmp_path):
    k = RawKernel(tmp_path)
    try:
        yield k
    finally:
        k.close()


def test_a_stalled_subscriber_holds_back_nobody(rk):
    reader = rk.start_and_wait()
    recv(rk, reader, 5)  # starting
    # the stalled one: tiny receive queues, and it never reads after its welcome
    stalled = rk.sub(rcvhwm=1, rcvbuf=4096)
    assert recv(rk, stalled, 5).msg_type == "iopub_welcome"
    shell, control = rk.dealer("shell"), rk.dealer("control")
    n = 20_000
    msg_id = rk.send(shell, "execute_request", {"code": f"for i in range({n}): kernel.display_data({{'text/plain': str(i)}})"})

    poller = zmq.Poller()
    poller.register(reader, zmq.POLLIN)
    poller.register(control, zmq.POLLIN)
    shown, waits, asked, last = [], [], None, 0.0
    done = False
    deadline = time.monotonic() + STALLED_AFTER + 40
    while not done:
        assert time.monotonic() < deadline, f"{len(shown)} of {n} displays, {len(waits)} control replies"
        # a kernel_info on control every 0.25 s, through the stall and after
        if asked is None and time.monotonic() - last > 0.25:
            info_id, asked = rk.send(control, "kernel_info_request"), time.monotonic()
            last = asked
        for sock, _ in poller.poll(100):
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                msg = rk.session.parse(frames, check_replay=False)
                if sock is control:
                    assert msg.msg_type == "kernel_info_reply" and msg.parent_header["msg_id"] == info_id
                    waits.append(time.monotonic() - asked)
                    asked = None
                elif msg.parent_header.get("msg_id") == msg_id:
                    if msg.msg_type == "display_data":
                        shown.append(msg.content["data"]["text/plain"])
                    elif msg.msg_type == "status" and msg.content["execution_state"] == "idle":
                        done = True
    assert shown == [str(i) for i in range(n)], "the reading subscriber lost or reordered displays"
    reply, _ = reply_to(rk, shell, msg_id)
    assert reply.content["status"] == "ok"
    assert asked is None or time.monotonic() - asked < 1.0, "a kernel_info_request on control went unanswered"
    # (one every 0.25 s while the stalled subscriber held output back)
    assert len(waits) >= 2 * STALLED_AFTER and max(waits) < 1.0, f"control replies took up to {max(waits):.2f} s: {waits}"
    # the stalled subscriber lost what did not fit its queue
    got = 0
    while recv(rk, stalled, 0.5) is not None:
        got += 1
    assert got < n, f"the stalled subscriber got all {got} messages"
    assert "a subscriber has read nothing for" in rk.stderr_after_exit()


def _rss_mb(pid) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def test_iopub_buffering_is_bounded_in_bytes(rk):
    """3,000 displays of 100 kB (300 MB) for a subscriber that reads nothing
    until the cell is done: the kernel holds at most OUTBOUND_BYTES in its
    FIFO and IOPUB_BYTES in the subscriber's queue, not every display."""
    from kernelkit.io.iothread import IOPUB_BYTES, OUTBOUND_BYTES

    sub = rk.start_and_wait()
    pid = rk.proc.proc.pid
    shell = rk.dealer("shell")
    msg_id = rk.send(shell, "execute_request", {"code": "x = 'x' * 100_000\nfor i in range(3000): kernel.display_data({'text/plain': x})"})
    base = peak = _rss_mb(pid)
    # sample the kernel's memory until the cell is done (sampling is the
    # measurement here, not a wait for an event)
    while not shell.poll(50):
        peak = max(peak, _rss_mb(pid))
    bound = (IOPUB_BYTES + OUTBOUND_BYTES) / 1e6
    assert peak - base < bound + 40, f"the kernel grew by {peak - base:.0f} MB holding output (bound {bound:.0f} MB + TCP buffers)"
    reply, _ = reply_to(rk, shell, msg_id, 30)
    assert reply.content["status"] == "ok"
    # what it lost while stalled it lost; what it gets is whole
    got = 0
    while (r := recv(rk, sub, 1)) is not None:
        if r.msg_type == "display_data":
            assert len(r.content["data"]["text/plain"]) == 100_000
            got += 1
    assert 0 < got < 3000
