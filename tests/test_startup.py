"""Process-level startup tests: registration (both dialects), receipt problems,
classic connection files, and broken files. Real kernel processes, real ZeroMQ."""

import json
import socket
import subprocess
import sys
import time
import uuid
from queue import Empty

import pytest
import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from support import EXEC_KERNEL, KernelProcess, Registrar, write_json

KEY = "startup-test-key"
CHANNELS = ("shell", "iopub", "stdin", "control", "hb")


# -- helpers ------------------------------------------------------------------


@pytest.fixture
def spawn():
    """Start kernel processes; every one is killed at teardown."""
    procs = []

    def _spawn(file, *extra):
        p = KernelProcess(EXEC_KERNEL, file, [str(a) for a in extra])
        procs.append(p)
        return p

    yield _spawn
    for p in procs:
        p.kill()


@pytest.fixture
def registrar():
    """Make bare registrars; every one is closed at teardown."""
    regs = []

    def _make(**kw):
        r = Registrar(key=KEY, **kw)
        regs.append(r)
        return r

    yield _make
    for r in regs:
        r.close()


def wait_exit(proc: KernelProcess, timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"kernel still running after {timeout} s; stderr so far:\n{proc.stderr}") from None


def one_line(stderr: str) -> str:
    """The single non-empty line of stderr (asserts there is exactly one, no traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one non-empty stderr line, got {len(lines)}:\n{stderr}"
    return lines[0]


def registered(reg: Registrar, proc: KernelProcess, timeout: float = 15) -> None:
    if not reg.done.wait(timeout):
        raise AssertionError(f"the kernel never registered; stderr:\n{proc.stderr}")
    assert reg.request is not None, f"registrar saw no valid request; stderr:\n{proc.stderr}"


def iopub_until_idle(kc: BlockingKernelClient, msg_id: str, timeout: float = 10) -> list:
    """IOPub messages parented to msg_id, up to and including its status: idle."""
    out = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no idle for {msg_id}; got {[m['msg_type'] for m in out]}"
        msg = kc.get_iopub_msg(timeout=left)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        out.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return out


def execute_result(kc: BlockingKernelClient, code: str, stdin_answer: str | None = None, parented=True, timeout=10) -> str:
    """Execute ``code``; answer one input_request with ``stdin_answer`` (with the
    input_request as parent, as JupyterLab does, or with ``kc.input()``, which
    sends no parent, as jupyter_console does); return the execute_result text."""
    msg_id = kc.execute(code, allow_stdin=stdin_answer is not None)
    if stdin_answer is not None:
        req = kc.get_stdin_msg(timeout=timeout)
        assert req["msg_type"] == "input_request"
        assert req["parent_header"]["msg_id"] == msg_id
        if parented:
            kc.stdin_channel.send(kc.session.msg("input_reply", {"value": stdin_answer}, parent=req["header"]))
        else:
            kc.input(stdin_answer)
    try:
        reply = kc.get_shell_msg(timeout=timeout)
    except Empty:
        raise AssertionError(f"no execute_reply within {timeout} s for {code!r}") from None
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "ok", reply["content"]
    results = [m for m in iopub_until_idle(kc, msg_id) if m["msg_type"] == "execute_result"]
    assert len(results) == 1, results
    return results[0]["content"]["data"]["text/plain"]


def hb_echo(ip: str, port: int, timeout_ms: int = 5000) -> bool:
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.linger = 0
    try:
        s.connect(f"tcp://{ip}:{port}")
        s.send(b"ping-startup")
        if not s.poll(timeout_ms):
            return False
        return s.recv() == b"ping-startup"
    finally:
        s.close()


def wait_welcome(kc: BlockingKernelClient, timeout: float = 15) -> None:
    """Wait for our iopub subscription to be live: the kernel's iopub_welcome (JEP 65).
    Requests sent before it may have their iopub output missed (slow joiner)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no iopub_welcome"
        try:
            msg = kc.get_iopub_msg(timeout=left)
        except Empty:
            raise AssertionError(f"no iopub_welcome within {timeout} s") from None
        if msg["msg_type"] == "iopub_welcome":
            return


def connect_client(info: dict) -> BlockingKernelClient:
    kc = BlockingKernelClient()
    kc.load_connection_info(info)
    kc.start_channels()
    wait_welcome(kc)
    return kc


def exercise_all_channels(info: dict, kc: BlockingKernelClient | None = None) -> BlockingKernelClient:
    """Prove that a kernel answers on every one of the five ports in ``info``."""
    ports = [info[f"{c}_port"] for c in CHANNELS]
    assert all(isinstance(p, int) and 0 < p < 65536 for p in ports), ports
    assert len(set(ports)) == 5, f"ports not distinct: {ports}"
    if kc is None:
        kc = connect_client(info)
    # shell: kernel_info
    msg_id = kc.kernel_info()
    reply = kc.get_shell_msg(timeout=15)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["msg_type"] == "kernel_info_reply"
    assert reply["content"]["status"] == "ok"
    # shell + iopub: 1+1
    assert execute_result(kc, "1+1") == "2"
    # stdin
    assert execute_result(kc, "kernel.input('who? ')", stdin_answer="me") == "'me'"
    # control
    req = kc.session.msg("kernel_info_request")
    kc.control_channel.send(req)
    reply = kc.get_control_msg(timeout=10)
    assert reply["parent_header"]["msg_id"] == req["header"]["msg_id"]
    assert reply["msg_type"] == "kernel_info_reply"
    # heartbeat
    assert hb_echo(info["ip"], info["hb_port"]), "no heartbeat echo"
    return kc


def shutdown_exits_zero(kc: BlockingKernelClient, proc: KernelProcess) -> None:
    msg_id = kc.shutdown()
    reply = kc.get_control_msg(timeout=10)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["msg_type"] == "shutdown_reply"
    kc.stop_channels()
    assert wait_exit(proc, 15) == 0, proc.stderr


def free_tcp_ports(n: int) -> list:
    """n distinct ports that were free a moment ago (held together while picked)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def can_bind(ip: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((ip, 0))
        return True
    except OSError:
        return False


# -- registration: both dialects, both port spellings -------------------------


@pytest.mark.parametrize("port_as", ["int", "str"])
def test_dialect_a_registers_and_serves(tmp_path, spawn, registrar, port_as):
    reg = registrar(dialect="A")
    data = reg.registration(port_as=port_as)
    assert isinstance(data["registration_port"], int if port_as == "int" else str)
    proc = spawn(write_json(tmp_path / "reg-a.json", data))
    registered(reg, proc)

    # a full signed Jupyter message (the Registrar verified the signature)
    msg = reg.request
    assert msg.header["msg_type"] == "handshake_request"
    for field in ("msg_id", "session", "date", "version", "username"):
        assert msg.header.get(field), f"header lacks {field}: {msg.header}"
    assert msg.parent_header == {}
    for c in CHANNELS:
        v = msg.content[f"{c}_port"]
        assert type(v) is int, f"{c}_port is {v!r}, not a JSON int"

    kc = exercise_all_channels(reg.connection_info())
    shutdown_exits_zero(kc, proc)


@pytest.mark.parametrize("port_as", ["int", "str"])
def test_dialect_b_registers_and_serves_ip_absent(tmp_path, spawn, registrar, port_as):
    """Without ``ip`` the kernel binds on registration_ip."""
    kernel_id = f"kid-{uuid.uuid4().hex[:8]}"
    reg = registrar(dialect="B", kernel_id=kernel_id)
    data = reg.registration(port_as=port_as)
    assert "ip" not in data
    proc = spawn(write_json(tmp_path / "reg-b.json", data))
    registered(reg, proc)

    content = reg.request
    assert content["kernel_id"] == kernel_id
    for c in CHANNELS:
        v = content[f"{c}_port"]
        assert isinstance(v, str) and v.isdigit(), f"{c}_port is {v!r}, not a string of digits"

    kc = exercise_all_channels(reg.connection_info())  # 127.0.0.1 == registration_ip
    shutdown_exits_zero(kc, proc)


def test_dialect_b_binds_on_ip_when_present(tmp_path, spawn, registrar):
    """With ``ip`` the kernel binds there, and registers at registration_ip."""
    if not can_bind("127.0.0.2"):
        pytest.skip("127.0.0.2 is not a local address here")
    reg = registrar(dialect="B", kernel_id="kid-ip")
    data = reg.registration(port_as="str", ip="127.0.0.2")
    assert data["registration_ip"] == "127.0.0.1"
    proc = spawn(write_json(tmp_path / "reg-b-ip.json", data))
    registered(reg, proc)
    assert reg.request["kernel_id"] == "kid-ip"
    assert all(isinstance(reg.request[f"{c}_port"], str) for c in CHANNELS), reg.request

    info = reg.connection_info()
    info["ip"] = "127.0.0.2"
    kc = exercise_all_channels(info)
    # bound on 127.0.0.2 only, not on registration_ip nor on every interface
    for c in CHANNELS:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", info[f"{c}_port"]), timeout=5).close()
    shutdown_exits_zero(kc, proc)


# -- receipt problems ---------------------------------------------------------


@pytest.mark.parametrize("dialect", ["A", "B"])
def test_no_receipt_times_out(tmp_path, spawn, registrar, dialect):
    timeout = 1.0
    reg = registrar(dialect=dialect, answer="none")
    proc = spawn(write_json(tmp_path / "reg.json", reg.registration()), "--registration-timeout", timeout)
    registered(reg, proc)
    t0 = time.monotonic()
    rc = wait_exit(proc, timeout + 1.0)
    elapsed = time.monotonic() - t0
    assert rc != 0
    # it waited for the receipt (rather than giving up at once)
    assert elapsed >= timeout / 2, f"exited {elapsed:.2f} s after registering, before the {timeout} s timeout"
    line = one_line(proc.stderr)
    assert "registration" in line.lower() or "receipt" in line.lower(), line
    assert str(reg.port) in line, f"the line does not say which launcher was silent: {line}"


@pytest.mark.parametrize("dialect", ["A", "B"])
@pytest.mark.parametrize("answer,why", [("error", ("refus", "error")), ("badsig", ("signature",))])
def test_bad_receipt_exits_quickly(tmp_path, spawn, registrar, dialect, answer, why):
    reg = registrar(dialect=dialect, answer=answer)
    # a long timeout, so that "quickly" means the kernel acted on the receipt
    proc = spawn(write_json(tmp_path / "reg.json", reg.registration()), "--registration-timeout", 30)
    registered(reg, proc)
    rc = wait_exit(proc, 3)
    assert rc != 0
    line = one_line(proc.stderr)
    assert any(w in line.lower() for w in why), f"line does not say why ({why}): {line}"


# -- classic connection file ------------------------------------------------


def test_classic_connection_file(kernel):
    proc, kc = kernel
    exercise_all_channels(kc.get_connection_info(), kc)
    shutdown_exits_zero(kc, proc)


def test_classic_connection_file_other_scheme(tmp_path):
    from support import start_kernel

    proc, kc = start_kernel(tmp_path, signature_scheme="hmac-sha512")
    try:
        assert kc.session.signature_scheme == "hmac-sha512"
        assert execute_result(kc, "1+1") == "2"
        shutdown_exits_zero(kc, proc)
    finally:
        kc.stop_channels()
        proc.kill()


def test_input_reply_from_jupyter_client_input(kernel):
    """``BlockingKernelClient.input()`` (jupyter_client 8.10, used by jupyter_console)
    sends its input_reply with an EMPTY parent_header. The kernel must still hand
    the answer to the prompt that is waiting (ipykernel does), not hang."""
    proc, kc = kernel
    assert execute_result(kc, "kernel.input('who? ')", stdin_answer="me", parented=False, timeout=5) == "'me'"


# -- broken files -------------------------------------------------------------


def classic(**over) -> dict:
    d = {
        "transport": "tcp",
        "ip": "127.0.0.1",
        "key": KEY,
        "signature_scheme": "hmac-sha256",
        **{f"{c}_port": p for c, p in zip(CHANNELS, free_tcp_ports(5))},
    }
    d.update(over)
    return d


def _four_ports():
    d = classic()
    del d["hb_port"]
    return d


BROKEN = {
    "missing-file": None,
    "invalid-json": '{"transport": "tcp", "ip": ',
    "four-ports": _four_ports,
    "unknown-transport": lambda: classic(transport="udp"),
    "unknown-scheme": lambda: classic(signature_scheme="hmac-nosuchhash"),
    "scheme-not-hmac": lambda: classic(signature_scheme="sha256"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_file(tmp_path, spawn, case):
    path = tmp_path / f"broken-{case}.json"
    content = BROKEN[case]
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_text(json.dumps(content()))
    proc = spawn(path)
    assert wait_exit(proc, 15) == 1
    line = one_line(proc.stderr)
    assert str(path) in line, f"line does not name the file: {line}"


@pytest.mark.parametrize("channel", ["shell", "control", "hb"])
def test_port_in_use(tmp_path, spawn, channel):
    busy = socket.socket()
    try:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        data = classic(**{f"{channel}_port": port})
        path = write_json(tmp_path / f"busy-{channel}.json", data)
        proc = spawn(path)
        assert wait_exit(proc, 15) == 1
        line = one_line(proc.stderr)
        assert path in line, f"line does not name the file: {line}"
        assert str(port) in line, f"line does not name the busy port: {line}"
    finally:
        busy.close()


@pytest.mark.parametrize(
    "dialect,answer,why",
    [
        ("A", "deep", "nested more than 1024"),
        ("A", "not_utf8", "not valid json"),
        ("A", "other_parent", "not ours"),
        ("A", "other_type", "expected a handshake_reply"),
        ("B", "deep", "nested more than 1024"),
        ("B", "not_utf8", "not utf-8"),
        ("B", "other_kernel", "someone-else"),
    ],
)
def test_hostile_receipt_ends_startup_with_one_line(tmp_path, spawn, registrar, dialect, answer, why):
    """A signed receipt that is not a proper answer to this kernel's
    registration: exit 1 at once, one line saying why."""
    reg = registrar(dialect=dialect, answer=answer)
    proc = spawn(write_json(tmp_path / "reg.json", reg.registration()), "--registration-timeout", 30)
    registered(reg, proc)
    assert wait_exit(proc, 3) == 1
    line = one_line(proc.stderr)
    assert "receipt rejected" in line and why in line.lower(), line


# -- preferred_ports: a restart keeping its ports ---------------------------------


@pytest.mark.parametrize("dialect", ["A", "B"])
def test_preferred_ports_are_bound_and_one_taken_is_replaced(tmp_path, spawn, registrar, dialect):
    wanted = dict(zip((f"{c}_port" for c in CHANNELS), free_tcp_ports(5)))
    busy = socket.socket()
    try:
        busy.bind(("127.0.0.1", wanted["stdin_port"]))
        busy.listen()
        reg = registrar(dialect=dialect, kernel_id="kid-pref")
        proc = spawn(write_json(tmp_path / "reg.json", reg.registration(preferred_ports=wanted)))
        registered(reg, proc)
        got = {k: int(v) for k, v in reg.connection_info().items() if k.endswith("_port")}
        assert got["stdin_port"] != wanted["stdin_port"]
        assert {k: v for k, v in got.items() if k != "stdin_port"} == {k: v for k, v in wanted.items() if k != "stdin_port"}
        kc = exercise_all_channels(reg.connection_info())
        shutdown_exits_zero(kc, proc)
    finally:
        busy.close()


@pytest.mark.parametrize("bad", [{"shell_port": 0}, {"shell_port": 70000}, {"shell_port": "50001"}, {"ports": 1}, [50001]],
                         ids=["zero", "too-big", "string", "unknown-key", "not-an-object"])
def test_invalid_preferred_ports_are_one_startup_line(tmp_path, spawn, registrar, bad):
    reg = registrar(dialect="B", kernel_id="kid-bad")
    path = write_json(tmp_path / "reg-bad.json", reg.registration(preferred_ports=bad))
    proc = spawn(path)
    assert wait_exit(proc, 15) == 1
    line = one_line(proc.stderr)
    assert path in line and "preferred_ports" in line, line
    assert reg.request is None, "a kernel with a bad file must not register"


def test_iopub_tcp_timeout_must_be_a_number(tmp_path, spawn):
    """--iopub-tcp-timeout (and $KERNELKIT_IOPUB_TCP_TIMEOUT, its default) is
    checked like any argument: a word is a usage error (exit code 2) that
    names the option."""
    fname, _ = write_connection_file(str(tmp_path / "kernel.json"), key=b"k", ip="127.0.0.1")
    proc = spawn(fname, "--iopub-tcp-timeout", "soon")
    assert wait_exit(proc, 20) == 2
    assert "argument --iopub-tcp-timeout: invalid float value: 'soon'" in proc.stderr


def test_iopub_sockets_get_the_tcp_timeout_and_ipc_ones_none(tmp_path):
    """The iopub socket's TCP_MAXRT is the timeout in ms (what libzmq gives
    each new connection as TCP_USER_TIMEOUT); 0 leaves it unset."""
    from kernelkit.io.flow import IOPUB_TCP_TIMEOUT, socket_options
    from kernelkit.startup.bind import bind_sockets
    from kernelkit.startup.files import ConnectionInfo

    ctx, hb_ctx = zmq.Context(), zmq.Context()
    try:
        for timeout, want in ((IOPUB_TCP_TIMEOUT, int(IOPUB_TCP_TIMEOUT * 1000)), (2.5, 2500), (0, 0)):
            sockets, _ = bind_sockets(ctx, hb_ctx, ConnectionInfo(ip="127.0.0.1"), options=socket_options("tcp", timeout))
            try:
                assert sockets["iopub"].getsockopt(zmq.TCP_MAXRT) == want
                assert sockets["shell"].getsockopt(zmq.TCP_MAXRT) == 0
            finally:
                for s in sockets.values():
                    s.close(linger=0)
        ipc = ConnectionInfo(ip=str(tmp_path / "k"), transport="ipc")
        sockets, _ = bind_sockets(ctx, hb_ctx, ipc, options=socket_options("ipc", 5))
        for s in sockets.values():
            assert s.getsockopt(zmq.TCP_MAXRT) == 0
            s.close(linger=0)
    finally:
        ctx.term()
        hb_ctx.term()


def test_the_kernels_modules_leave_socket_and_asyncio_to_first_use():
    """What a launch imports stays what the first reply needs (bench/README.md,
    "Launch and memory"): the interrupt watcher wakes on a pipe, not a
    socketpair, and asyncio is loaded when something first imports it."""
    code = "import sys, kernelkit.kernel.app, kernelkit.python.kernel; print(sorted(m for m in ('socket', 'asyncio') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"
