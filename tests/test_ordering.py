"""The three ordering guarantees, checked on what one client receives.

kernelkit hands everything it sends to ZeroMQ through one FIFO, so

(a) output written before an input prompt leaves before the input_request;
(b) all output of a request leaves before the request's reply;
(c) busy leaves before the reply, and the reply before the request's idle.

Messages on one socket arrive in order, and the tests check that exactly.
Across sockets (different TCP connections) arrival order is not exact, even
for messages handed to ZeroMQ in order: libzmq writes and reads each
connection in batches, and under load a reply can overtake the last iopub
messages before it by a millisecond or so (seen here: up to ~5 ms). So "A
left before B" is checked three ways:

1. Production order, exactly: the kernel stamps every header with its
   creation ``date``, on the thread that sends it; A's date must not be
   later than B's. Catches a kernel that makes messages in the wrong order.
2. Arrival: one client thread polls all four sockets and takes everything
   each holds whenever anything arrives. A must arrive no later than GRACE
   after B. (How many arrive a pass later than B is recorded, not asserted:
   under load it ran from 0 to over 20% with a correct kernel.) Output
   written before input() must arrive while the prompt waits. Catches output held back (buffered, flushed on a timer
   or at the end of the request, never sent).
3. Under backpressure, exactly: when a subscriber stops reading, iopub
   output is held in the kernel; nothing handed over after it (the
   input_request, the reply) may arrive until the subscriber reads again.
   Catches a kernel that lets later messages bypass held ones.

Each was checked against kernels with a deliberate ordering bug (idle before
the reply, busy after it, output made or handed over after the reply,
replies jumping the FIFO, iopub held on the side): every one fails here.

No sleeps in the client. Messages are parsed with jupyter_client's Session,
not kernelkit's, so a bug in kernelkit's wire code cannot hide itself.
"""

import json
import time
import uuid
from pathlib import Path

import pytest
import zmq
from jupyter_client.connect import write_connection_file
from jupyter_client.session import Session
from support import EXEC_KERNEL, KernelProcess

KERNEL_ARGV = EXEC_KERNEL
KEY = b"ordering-key"
CHANNELS = ("iopub", "shell", "control", "stdin")
# an earlier message may arrive at most this much after a later one (s)
GRACE = 0.25


def parent_id(msg) -> str | None:
    return (msg.get("parent_header") or {}).get("msg_id")


def kind(msg) -> str:
    """msg_type, or the execution_state for status messages."""
    t = msg["header"]["msg_type"]
    return msg["content"].get("execution_state", t) if t == "status" else t


class RawClient:
    """One client on raw sockets: shell and stdin DEALERs sharing one routing
    id (the kernel routes input_request by the shell request's identity), a
    control DEALER, and an iopub SUB that never drops (RCVHWM 0)."""

    def __init__(self, conn: dict, iopub_rcvhwm: int = 0, iopub_rcvbuf: int = -1):
        self.session = Session(key=conn["key"].encode(), signature_scheme=conn["signature_scheme"])
        self.ctx = zmq.Context()
        ident = uuid.uuid4().hex.encode()

        def url(ch):
            return f"tcp://{conn['ip']}:{conn[ch + '_port']}"

        self.sockets = {}
        sub = self.ctx.socket(zmq.SUB)
        sub.linger = 0
        sub.rcvhwm = iopub_rcvhwm
        sub.setsockopt(zmq.RCVBUF, iopub_rcvbuf)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(url("iopub"))
        self.sockets["iopub"] = sub
        for ch, routing_id in (("shell", ident), ("control", uuid.uuid4().hex.encode()), ("stdin", ident)):
            s = self.ctx.socket(zmq.DEALER)
            s.linger = 0
            s.setsockopt(zmq.IDENTITY, routing_id)
            s.connect(url(ch))
            self.sockets[ch] = s

    def send(self, channel: str, msg_type: str, content: dict, parent=None) -> dict:
        msg = self.session.msg(msg_type, content, parent=parent)
        self.sockets[channel].send_multipart(self.session.serialize(msg))
        return msg

    def execute(self, code: str, **fields) -> dict:
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": True, "stop_on_error": True}
        content.update(fields)
        return self.send("shell", "execute_request", content)

    def parse(self, frames) -> dict:
        _, msg_list = self.session.feed_identities(frames)
        return self.session.deserialize(msg_list)

    def drain_raw(self, channel: str) -> list:
        """Every message this socket already holds; never waits."""
        out = []
        sock = self.sockets[channel]
        while True:
            try:
                out.append(sock.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return out

    def close(self) -> None:
        for s in self.sockets.values():
            s.close(linger=0)
        self.ctx.term()


class Arrival:
    __slots__ = ("channel", "msg", "pass_no", "t")

    def __init__(self, channel, msg, pass_no, t):
        self.channel, self.msg, self.pass_no, self.t = channel, msg, pass_no, t

    @property
    def kind(self):
        return kind(self.msg) if self.channel == "iopub" else self.msg["header"]["msg_type"]

    @property
    def date(self):
        return self.msg["header"]["date"]

    def __repr__(self):
        return f"<{self.channel} {self.kind} pass {self.pass_no}>"


class Recorder:
    """Receives on all four sockets in one thread. Whenever something is
    ready it makes passes over all sockets, each pass taking everything each
    socket holds (raw, parsing afterwards), until a pass finds nothing. Every
    message is stamped with its pass number and the time it was taken."""

    def __init__(self, rc: RawClient):
        self.rc = rc
        self.pass_no = 0
        self.by_parent: dict = {}
        self.poller = zmq.Poller()
        for ch in CHANNELS:
            self.poller.register(rc.sockets[ch], zmq.POLLIN)

    def pump(self, until, timeout: float = 30.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {what or until}"
            if not self.poller.poll(int(left * 1000) + 1):
                continue
            while True:
                self.pass_no += 1
                taken = [(ch, f, time.perf_counter()) for ch in CHANNELS for f in self.rc.drain_raw(ch)]
                if not taken:
                    break
                for ch, frames, t in taken:
                    msg = self.rc.parse(frames)
                    self.by_parent.setdefault(parent_id(msg), []).append(Arrival(ch, msg, self.pass_no, t))

    def of(self, rid: str, channel: str | None = None, kind_: str | None = None) -> list:
        return [a for a in self.by_parent.get(rid, []) if (channel is None or a.channel == channel) and (kind_ is None or a.kind == kind_)]

    def one(self, rid, channel, kind_=None):
        found = self.of(rid, channel, kind_)
        return found[0] if found else None

    def replied(self, rid) -> bool:
        return any(a.channel in ("shell", "control") for a in self.by_parent.get(rid, []))

    def idle(self, rid) -> bool:
        return bool(self.of(rid, "iopub", "idle"))

    def finished(self, *rids) -> bool:
        return all(self.replied(r) and self.idle(r) for r in rids)


class OrderCheck:
    """Collects "A before B" checks (see the module docstring, 1 and 2)."""

    def __init__(self):
        self.pairs = 0
        self.errors: list = []
        self.later: list = []  # pairs where A was taken in a later pass than B

    def before(self, a: Arrival, b: Arrival, label: str) -> None:
        self.pairs += 1
        if a is None or b is None:
            self.errors.append(f"{label}: missing ({a!r}, {b!r})")
            return
        if a.date > b.date:
            self.errors.append(f"{label}: made after it (dates {a.date.isoformat()} > {b.date.isoformat()})")
        if a.t - b.t > GRACE:
            self.errors.append(f"{label}: arrived {a.t - b.t:.3f} s after it")
        if a.pass_no > b.pass_no:
            self.later.append(f"{label}: arrived {1e3 * (a.t - b.t):.2f} ms after it")

    def verify(self) -> None:
        """No errors. Pairs taken in the wrong pass (cross-socket jitter in
        libzmq, milliseconds) are only reported."""
        if self.later:
            print(f"{len(self.later)} of {self.pairs} taken a pass after what they must precede (jitter)")
        assert not self.errors, f"{len(self.errors)} of {self.pairs} ordering checks failed:\n" + "\n".join(self.errors[:20])


def _start(tmp_path, **client_options):
    fname, _ = write_connection_file(str(tmp_path / "kernel.json"), key=KEY)
    conn = json.loads(Path(fname).read_text())
    proc = KernelProcess(KERNEL_ARGV, fname)
    rc = RawClient(conn, **client_options)
    try:
        rec = Recorder(rc)
        rec.pump(lambda: None in rec.by_parent and any(a.kind == "iopub_welcome" for a in rec.by_parent[None]), 20, "iopub_welcome")
        rid = rc.send("shell", "kernel_info_request", {})["header"]["msg_id"]
        rec.pump(lambda: rec.finished(rid), 20, "the first kernel_info")
    except BaseException as e:
        rc.close()
        proc.kill()
        raise AssertionError(f"kernel not ready ({e}); stderr:\n{proc.stderr}") from None
    return proc, rc


@pytest.fixture
def raw(tmp_path):
    proc, rc = _start(tmp_path)
    yield proc, rc
    rc.close()
    proc.kill()


@pytest.fixture
def raw_slow(tmp_path):
    """A client whose iopub socket buffers as little as ZeroMQ and TCP allow,
    so that when it stops reading, the kernel has to hold its output."""
    proc, rc = _start(tmp_path, iopub_rcvhwm=1, iopub_rcvbuf=64 * 1024)
    yield proc, rc
    rc.close()
    proc.kill()


# ---------------------------------------------------------------- (a) input
def test_output_before_input_leaves_before_input_request(raw):
    """Stream, display and stderr output written before ``input()`` leaves
    before the input_request; 20 rounds."""
    _, rc = raw
    rec = Recorder(rc)
    check = OrderCheck()
    for i in range(20):
        code = (
            f"kernel.stream('before {i}')\n"
            f"kernel.display_data({{'text/plain': 'shown {i}'}})\n"
            f"kernel.stream('err {i}', 'stderr')\n"
            f"v = kernel.input('prompt {i}')\n"
            "kernel.stream('after ' + v)\n"
        )
        rid = rc.execute(code)["header"]["msg_id"]
        rec.pump(lambda: rec.one(rid, "stdin") is not None, 10, "the input_request")
        ir = rec.one(rid, "stdin")
        assert ir.kind == "input_request" and ir.msg["content"]["prompt"] == f"prompt {i}"
        # the prompt is pending: what was written before it must reach the user now
        rec.pump(lambda: len(rec.of(rid, "iopub")) >= 5, 2, f"round {i}: the output written before input()")
        rc.send("stdin", "input_reply", {"value": f"v{i}"}, parent=ir.msg)
        rec.pump(lambda: rec.finished(rid), 10, "reply and idle")
        assert rec.one(rid, "shell").msg["content"]["status"] == "ok"
        out = [a for a in rec.of(rid, "iopub") if a.kind in ("stream", "display_data")]
        texts = [a.msg["content"].get("text") or a.msg["content"]["data"]["text/plain"] for a in out]
        assert texts == [f"before {i}", f"shown {i}", f"err {i}", f"after v{i}"]
        for a in out[:3]:
            check.before(a, ir, f"round {i}: {texts[out.index(a)]!r} before the input_request")
        check.before(ir, out[3], f"round {i}: the input_request before 'after'")
    check.verify()


def test_backlog_of_output_before_input_leaves_before_input_request(raw):
    """The same with 1000 stream messages queued ahead of the prompt."""
    _, rc = raw
    rec = Recorder(rc)
    check = OrderCheck()
    n = 1000
    for i in range(3):
        rid = rc.execute(f"for j in range({n}): kernel.stream(f'{{j}}\\n')\nkernel.input('go?')")["header"]["msg_id"]
        rec.pump(lambda: rec.one(rid, "stdin") is not None, 20, "the input_request")
        ir = rec.one(rid, "stdin")
        rec.pump(lambda: len(rec.of(rid, "iopub", "stream")) >= n, 5, f"round {i}: the {n} streams written before input()")
        rc.send("stdin", "input_reply", {"value": ""}, parent=ir.msg)
        rec.pump(lambda: rec.finished(rid), 10, "reply and idle")
        streams = rec.of(rid, "iopub", "stream")
        assert [a.msg["content"]["text"] for a in streams] == [f"{j}\n" for j in range(n)]
        for j, a in enumerate(streams):
            check.before(a, ir, f"round {i}: stream {j} before the input_request")
    check.verify()


# ----------------------------------------------------------- (b) output/reply
@pytest.mark.parametrize("raises", [False, True], ids=["ok", "error"])
def test_all_output_leaves_before_reply(raw, raises):
    """A cell writes 2000 stream messages (then, in one case, raises): all of
    them, and the error message, leave before the execute_reply; on iopub
    they all come after busy and execute_input and before the idle."""
    _, rc = raw
    rec = Recorder(rc)
    check = OrderCheck()
    n = 2000
    code = f"for i in range({n}): kernel.stream(f'{{i}}\\n')"
    if raises:
        code += "\nraise ValueError('after output')"
    for _ in range(3):
        rid = rc.execute(code)["header"]["msg_id"]
        rec.pump(lambda: rec.finished(rid), 30, "reply and idle")
        reply = rec.one(rid, "shell")
        assert reply.msg["content"]["status"] == ("error" if raises else "ok")
        iopub = rec.of(rid, "iopub")
        kinds = [a.kind for a in iopub]
        assert kinds == ["busy", "execute_input"] + ["stream"] * n + (["error"] if raises else []) + ["idle"]
        assert [a.msg["content"]["text"] for a in iopub if a.kind == "stream"] == [f"{i}\n" for i in range(n)]
        for a in iopub[:-1]:
            check.before(a, reply, f"{a.kind} before the execute_reply")
        check.before(reply, iopub[-1], "the execute_reply before idle")
    check.verify()


# ----------------------------------------------------- (c) busy/reply/idle
def _mixed_requests(rc: RawClient, i: int) -> list:
    """One of each kind of request, on shell and control: [(channel, request)]."""
    return [
        ("shell", rc.execute(f"{i} + 1")),
        ("shell", rc.execute(f"kernel.stream('s{i}')")),
        ("shell", rc.execute("raise ValueError('boom')", stop_on_error=False)),
        ("shell", rc.send("shell", "kernel_info_request", {})),
        ("control", rc.send("control", "kernel_info_request", {})),
        ("shell", rc.send("shell", "is_complete_request", {"code": "x = 1"})),
        ("shell", rc.send("shell", "complete_request", {"code": "ker", "cursor_pos": 3})),
        ("shell", rc.send("shell", "inspect_request", {"code": "kernel", "cursor_pos": 6, "detail_level": 0})),
        ("shell", rc.send("shell", "history_request", {"output": False, "raw": True, "hist_access_type": "tail", "n": 5})),
        ("shell", rc.send("shell", "comm_info_request", {})),
    ]


def _ids(reqs):
    return [req["header"]["msg_id"] for _, req in reqs]


def _check_requests(rec: Recorder, reqs: list, check: OrderCheck) -> None:
    for channel, req in reqs:
        rid = req["header"]["msg_id"]
        label = f"{req['header']['msg_type']} {rid}"
        replies = [a for a in rec.by_parent[rid] if a.channel in ("shell", "control")]
        assert len(replies) == 1, f"{label}: {replies}"
        reply = replies[0]
        assert reply.channel == channel and reply.kind == req["header"]["msg_type"].replace("_request", "_reply"), f"{label}: {reply!r}"
        iopub = rec.of(rid, "iopub")
        kinds = [a.kind for a in iopub]
        # one socket: the order is exact
        assert kinds[0] == "busy" and kinds[-1] == "idle" and kinds.count("busy") == kinds.count("idle") == 1, f"{label}: {kinds}"
        for a in iopub[:-1]:
            check.before(a, reply, f"{label}: {a.kind} before the reply")
        check.before(reply, iopub[-1], f"{label}: the reply before idle")


def test_busy_reply_idle_order_one_batch_at_a_time(raw):
    _, rc = raw
    rec = Recorder(rc)
    check = OrderCheck()
    for i in range(15):
        reqs = _mixed_requests(rc, i)
        rec.pump(lambda: rec.finished(*_ids(reqs)), 30, "replies and idles")
        _check_requests(rec, reqs, check)
    check.verify()


def test_busy_reply_idle_order_pipelined(raw):
    """150 requests sent without waiting, shell and control interleaved."""
    _, rc = raw
    rec = Recorder(rc)
    check = OrderCheck()
    reqs = [r for i in range(15) for r in _mixed_requests(rc, i)]
    rec.pump(lambda: rec.finished(*_ids(reqs)), 60, "replies and idles")
    _check_requests(rec, reqs, check)
    check.verify()


# ------------------------------------------------- 3. under backpressure
# How many messages ZeroMQ and TCP can buffer for a subscriber that does not
# read: the iopub HWM, plus the kernel's TCP send buffer (at most tcp_wmem's
# maximum), plus the small receive side of ``raw_slow``. A cell that writes a
# little more than that, but less than that plus the kernel's FIFO, ends with
# output still held in the kernel's FIFO and is not itself blocked.
STREAM_SIZE = 4096


def _held_output_count() -> int:
    from kernelkit.io.flow import IOPUB_HWM, OUTBOUND_MAXSIZE

    try:
        wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        wmem_max = 4 * 1024 * 1024
    buffered = IOPUB_HWM + wmem_max // STREAM_SIZE + 2 * 64 * 1024 // STREAM_SIZE + 50
    n = buffered + 1000
    if n - IOPUB_HWM > OUTBOUND_MAXSIZE - 500:
        pytest.skip(f"TCP send buffers here (tcp_wmem max {wmem_max}) are too large to fill")
    return n


HOLD_CELL = """
import socket
for i in range({n}):
    kernel.stream('x' * {size})
with socket.create_connection(('127.0.0.1', {port})) as c:
    c.sendall(b'written')
"""


@pytest.mark.parametrize("ending", ["input_request", "execute_reply"])
def test_held_output_holds_what_follows(raw_slow, ending):
    """The client does not read iopub; the cell writes more stream output
    than can be buffered outside the kernel, tells the test so over a side
    channel, then asks for input (or ends). Neither the
    input_request nor the reply may arrive while that output is held; once
    the client reads iopub again, everything arrives, in order."""
    import socket

    _, rc = raw_slow
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(60)
        n = _held_output_count()
        code = HOLD_CELL.format(n=n, size=STREAM_SIZE, port=server.getsockname()[1])
        if ending == "input_request":
            code += "kernel.input('after the held output')\n"
        rid = rc.execute(code)["header"]["msg_id"]
        conn, _ = server.accept()
        with conn:
            conn.settimeout(30)
            assert conn.recv(64) == b"written"
    # the cell is past its output now; what follows it must wait for iopub
    early = []
    poller = zmq.Poller()
    for ch in ("shell", "stdin"):
        poller.register(rc.sockets[ch], zmq.POLLIN)
    for sock, _ in poller.poll(500):
        early.append(rc.parse(sock.recv_multipart())["header"]["msg_type"])
    assert not early, f"{early} arrived while {n} stream messages before it were held"

    rec = Recorder(rc)
    rec.pump(lambda: rec.one(rid, "stdin") is not None or rec.replied(rid), 60, ending)
    if ending == "input_request":
        ir = rec.one(rid, "stdin")
        assert ir.kind == "input_request"
        rc.send("stdin", "input_reply", {"value": ""}, parent=ir.msg)
    rec.pump(lambda: rec.finished(rid), 60, "reply and idle")
    later = rec.one(rid, "stdin") if ending == "input_request" else rec.one(rid, "shell")
    assert rec.one(rid, "shell").msg["content"]["status"] == "ok"
    iopub = rec.of(rid, "iopub")
    kinds = [a.kind for a in iopub]
    assert kinds == ["busy", "execute_input"] + ["stream"] * n + ["idle"], f"{len(kinds)} iopub messages, {kinds.count('stream')} streams of {n}"
    made_later = [a for a in iopub[:-1] if a.date > later.date]
    assert not made_later, f"{len(made_later)} messages were made after the {ending}"


FULL_FIFO_CELL = """
import socket, threading
out = kernel._services._lifecycle.outbound
side = socket.create_connection(('127.0.0.1', {port}))

def write():
    side.recv(2)  # go: the cell's reply and idle have been read
    threading.Thread(target=tell_when_full, daemon=True).start()
    for i in range({n}):
        kernel.stream('x' * {size})

def tell_when_full():
    # full (the writer waits for room) and held (iopub refused the head
    # message): from then on nothing leaves until the client reads
    io = next(t for t in threading.enumerate() if t.name == "kernelkit-io")
    while not (out._waiting_for_room and io._iopub._hold.holding):
        time.sleep(0.005)
    side.sendall(b'full')
    side.close()

threading.Thread(target=write, daemon=True).start()
"""


def test_request_arriving_while_the_fifo_is_full(raw_slow):
    """The main shell is idle (the cell has ended), but a thread it started
    has filled the FIFO while the client does not read iopub. A request that
    arrives now is announced (its busy queued) by the I/O thread, which must
    not wait for room: only it makes room. Once the client reads iopub
    again, every message arrives, the request's busy before its reply and
    the reply before its idle."""
    import socket

    from kernelkit.io.flow import OUTBOUND_MAXSIZE

    _, rc = raw_slow
    rec = Recorder(rc)
    n = _held_output_count() + OUTBOUND_MAXSIZE + 500
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(60)
        cell = rc.execute(FULL_FIFO_CELL.format(n=n, size=STREAM_SIZE, port=server.getsockname()[1]))["header"]["msg_id"]
        conn, _ = server.accept()
        with conn:
            conn.settimeout(60)
            rec.pump(lambda: rec.finished(cell), 30, "the cell's reply and idle")
            conn.sendall(b"go")
            assert conn.recv(64) == b"full"
    rid = rc.send("shell", "kernel_info_request", {})["header"]["msg_id"]
    assert not rc.sockets["shell"].poll(500), "the reply arrived while the output queued before it was held"
    rec.pump(lambda: rec.finished(rid), 90, "the reply and idle")
    rec.pump(lambda: sum(len(rec.of(p, "iopub", "stream")) for p in list(rec.by_parent)) == n, 60, f"all {n} stream messages")
    statuses = [a.kind for a in rec.of(rid, "iopub") if a.kind in ("busy", "idle")]
    assert statuses == ["busy", "idle"], statuses
    reply = rec.one(rid, "shell")
    assert reply.msg["content"]["status"] == "ok"
    busy, idle = rec.one(rid, "iopub", "busy"), rec.one(rid, "iopub", "idle")
    assert busy.date <= reply.date <= idle.date
