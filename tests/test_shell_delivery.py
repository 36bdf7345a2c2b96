"""Shell replies are never lost silently: a client may leave many unread
(libzmq's ROUTER drops beyond its high-water mark unless ROUTER_MANDATORY),
one that never reads is held for STALLED_AFTER at most and then loses
replies with a log line, and a reply for a client that has gone is dropped
with a log line. Meanwhile the other clients are answered."""

import logging
import time

import zmq

from kernelkit.io import IOThread, Outbound, flow
from kernelkit.io.flow import STALLED_AFTER
from kernelkit.startup import bind
from kernelkit.wire.channels import SHELL
from kernelkit.startup.files import ConnectionInfo
from kernelkit.wire import Session
from rawkernel import collect_until, idle_for, recv, reply_to



def test_thousands_of_unread_replies_all_arrive(rk):
    """10,000 requests queued by a client that reads iopub to the end before
    it reads any reply, with almost no receive buffer of its own (10 MB of
    kernel_info replies: more than libzmq's default queue of 1,000 and the
    TCP buffers hold)."""
    sub = rk.start_and_wait()
    shell = rk.socket(zmq.DEALER, "shell", rcvhwm=1, rcvbuf=4096)
    n = 10_000
    ids = [rk.send(shell, "kernel_info_request") for _ in range(n)]
    collect_until(rk, sub, idle_for(ids[-1]), 60)
    got = []
    while len(got) < n:
        r = recv(rk, shell, 10)
        assert r is not None, f"{len(got)} of {n} replies arrived"
        got.append(r.parent_id)
    assert got == ids


def test_a_reply_for_a_client_that_has_gone_is_dropped_with_a_log_line(rk):
    sub = rk.start_and_wait()
    gone = rk.dealer("shell")
    msg_id = rk.send(gone, "execute_request", {"code": "import time; time.sleep(0.3)"})
    collect_until(rk, sub, lambda r: r.parent_id == msg_id and r.msg_type == "execute_input", 10)
    rk.forget(gone)  # while its cell runs
    other = rk.dealer("shell")
    reply, _ = reply_to(rk, other, rk.send(other, "execute_request", {"code": "pass"}), 10)
    assert reply.content["status"] == "ok"
    assert "shell: dropped a reply for a client that has gone" in rk.stderr_after_exit()


def test_a_client_that_never_reads_replies_holds_nobody_back(caplog, monkeypatch):
    """In process, with the shell high-water mark lowered to 10 for the test
    (a kernel has SHELL_HWM): the first reply that finds the non-reader's queue
    full waits STALLED_AFTER, then its replies are dropped at once, logged,
    while a reading client gets each of its replies."""
    monkeypatch.setattr(flow, "SHELL_HWM", 10)
    ctx, hb_ctx = zmq.Context(), zmq.Context()
    session = Session(b"k")
    sockets, ports = bind.bind_sockets(ctx, hb_ctx, ConnectionInfo(ip="127.0.0.1"), options=flow.socket_options("tcp"))
    sockets.pop("hb").close(linger=0)
    outbound = Outbound(ctx)
    clients = {}
    io = IOThread(ctx, session, sockets, outbound, on_message=lambda ch, m: clients.setdefault(m.msg_type, m.identities))
    outbound.connect()
    io.start()
    sockets_made = []

    def client(name, **opts):
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        for k, v in opts.items():
            s.setsockopt(getattr(zmq, k.upper()), v)
        s.connect(f"tcp://127.0.0.1:{ports['shell']}")
        s.send_multipart(session.frames(name, {}))  # so the kernel learns its identity
        sockets_made.append(s)
        return s

    def reply_for(identities, i):
        return [*identities, *session.frames("kernel_info_reply", {"i": i, "pad": "x" * 1000})]

    try:
        never = client("never_request", rcvhwm=1, rcvbuf=4096)
        reader = client("reader_request")
        deadline = time.monotonic() + 10
        while len(clients) < 2:
            assert time.monotonic() < deadline, "the kernel did not receive both clients' requests"
            time.sleep(0.01)  # (polling a dict the I/O thread fills)
        with caplog.at_level(logging.WARNING, logger="kernelkit.io"):
            for round_ in range(2):
                started = time.monotonic()
                # (10 MB: more than the TCP buffers between them hold)
                for i in range(10_000):
                    outbound.send(SHELL, reply_for(clients["never_request"], i))
                outbound.send(SHELL, reply_for(clients["reader_request"], round_))
                assert reader.poll(int((STALLED_AFTER + 10) * 1000)), f"round {round_}: the reading client got no reply"
                took = time.monotonic() - started
                assert session.parse(reader.recv_multipart()).content["i"] == round_
                # the first time it waited for the non-reader; then no more
                if round_ == 0:
                    assert took >= STALLED_AFTER * 0.9, f"dropped after {took:.1f} s"
                else:
                    assert took < STALLED_AFTER / 2, f"the known non-reader held replies back again for {took:.1f} s"
        assert "shell: a client has not read its replies" in caplog.text
        # what the non-reader got is in order
        seen = []
        while never.poll(500):
            seen.append(session.parse(never.recv_multipart()).content["i"])
        assert seen and seen == sorted(seen) and len(seen) < 20_000
    finally:
        outbound.stop().event.wait(5)
        io.join(5)
        outbound.close()
        for s in sockets_made:
            s.close()
        hb_ctx.term()
        ctx.term()
