"""The heartbeat echoes while user code holds the GIL (libzmq proxy on its own thread)."""

import ast
import json
import time

import zmq

# a cell that stays inside one C call (sum over a range) for seconds,
# never letting another Python thread run
GIL_HOG = "sum(range(3 * 10**8))"
PING_TIMEOUT_MS = 1000


def _ping(sock, payload=b"ping"):
    t0 = time.monotonic()
    sock.send(payload)
    assert sock.poll(PING_TIMEOUT_MS), f"no heartbeat echo within {PING_TIMEOUT_MS} ms"
    assert sock.recv() == payload
    return time.monotonic() - t0


def _hb_socket(ctx, tmp_path):
    info = json.loads((tmp_path / "kernel.json").read_text())
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    sock.connect(f"tcp://{info['ip']}:{info['hb_port']}")
    return sock


def test_heartbeat_echoes(kernel, tmp_path):
    proc, kc = kernel
    ctx = zmq.Context()
    try:
        sock = _hb_socket(ctx, tmp_path)
        for payload in (b"ping", b"", b"\x00\xff" * 1000):
            _ping(sock, payload)
    finally:
        ctx.destroy(linger=0)


def test_heartbeat_answers_while_a_cell_holds_the_gil(kernel, tmp_path):
    """Ping without pause from before the cell starts until its reply is in;
    the cell notes (kernel-side wall clock) when it entered and left the
    GIL-holding call. Every ping must be answered within a second, and many
    must fall entirely inside that window.

    (Waiting for the cell's busy status first does not work: the kernel's
    I/O thread needs the GIL to send it, so busy leaves only with the reply.)
    """
    proc, kc = kernel
    ctx = zmq.Context()
    try:
        sock = _hb_socket(ctx, tmp_path)
        _ping(sock)  # the heartbeat works at all
        msg_id = kc.execute(f"_t0 = time.time(); {GIL_HOG}; _t1 = time.time()")
        pings = []  # (sent, answered) wall-clock times
        reply = None
        deadline = time.monotonic() + 40
        while reply is None:
            assert time.monotonic() < deadline, "the cell never finished"
            sent = time.time()
            _ping(sock)
            pings.append((sent, time.time()))
            while kc.shell_channel.msg_ready():
                msg = kc.get_shell_msg(timeout=0)
                if msg["parent_header"].get("msg_id") == msg_id:
                    reply = msg
        assert reply["content"]["status"] == "ok", reply["content"]

        window_id = kc.execute("(_t0, _t1)")
        while True:
            msg = kc.get_iopub_msg(timeout=10)
            if msg["header"]["msg_type"] == "execute_result" and msg["parent_header"].get("msg_id") == window_id:
                t0, t1 = ast.literal_eval(msg["content"]["data"]["text/plain"])
                break
        assert t1 - t0 > 2 * PING_TIMEOUT_MS / 1000, f"the cell held the GIL only {t1 - t0:.2f}s: too short to tell"
        inside = [(a, b) for a, b in pings if t0 < a and b < t1]
        assert len(inside) >= 5, f"only {len(inside)} of {len(pings)} pings were answered while the cell ran"
        # pinged without pause: answers came at most a ping timeout apart all along
        assert inside[0][1] - t0 < PING_TIMEOUT_MS / 1000
        assert t1 - inside[-1][1] < PING_TIMEOUT_MS / 1000
    finally:
        ctx.destroy(linger=0)
