"""bash_kernel, echo_kernel and calysto_scheme (metakernel), as installed from
PyPI by their own installers, adopted with ``kernelkit adopt``, side by side
with the same kernels on ipykernel 7.4 (``NAME-ipykernel``: the spec as the
installer wrote it). Driven through jupyter_client and jupyter_kernel_test."""

import os
import queue
import shutil
import subprocess
import sys
import time
import unittest
from pathlib import Path

import jupyter_kernel_test as jkt
import pytest
import zmq
from jupyter_client import BlockingKernelClient, KernelManager
from jupyter_client.connect import write_connection_file

from kernelkit.wire import Session
from support import KernelProcess, iopub_until_idle, reply_to

pytest.importorskip("bash_kernel")
pytest.importorskip("echo_kernel")
pytest.importorskip("calysto_scheme")

INSTALLERS = {
    "bash": [sys.executable, "-m", "bash_kernel.install", "--prefix"],
    "echo": [sys.executable, "-m", "echo_kernel.install", "--prefix"],
    "calysto_scheme": [sys.executable, "-m", "calysto_scheme", "install", "--prefix"],
}
PREFIX = None


def setUpModule():
    """The three kernelspecs under one prefix, found first by jupyter_client."""
    global PREFIX, _saved
    import tempfile

    PREFIX = Path(tempfile.mkdtemp(prefix="kernelkit-adopt-"))
    # calysto_scheme's spec says "python3": the one with kernelkit and the kernels
    _saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "PATH")}
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    os.environ["JUPYTER_PATH"] = str(PREFIX / "share" / "jupyter")
    kernels = PREFIX / "share" / "jupyter" / "kernels"
    for name, installer in INSTALLERS.items():
        r = subprocess.run([*installer, str(PREFIX)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        shutil.copytree(kernels / name, kernels / f"{name}-ipykernel")
        r = subprocess.run([sys.executable, "-m", "kernelkit.cli", "adopt", "--prefix", str(PREFIX), name],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr


def tearDownModule():
    for k, v in _saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    shutil.rmtree(PREFIX, ignore_errors=True)


# pytest runs setUpModule for unittest classes only; the plain tests share it
@pytest.fixture(scope="module", autouse=True)
def _specs():
    setUpModule()
    yield
    tearDownModule()


def start(name):
    km = KernelManager(kernel_name=name)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


@pytest.fixture
def kernels():
    started = []

    def make(name):
        km, kc = start(name)
        started.append((km, kc))
        return km, kc

    yield make
    for km, kc in started:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc, code, timeout=30, **kw):
    msg_id = kc.execute(code, **kw)
    reply = reply_to(kc, msg_id, timeout)["content"]
    msgs = iopub_until_idle(kc, msg_id, timeout)
    return reply, msgs


def outputs(msgs):
    """What a notebook would show: stream text by name, results, errors."""
    shown = []
    for m in msgs:
        t, c = m["msg_type"], m["content"]
        if t == "stream":
            if shown and shown[-1][0] == c["name"]:
                shown[-1] = (c["name"], shown[-1][1] + c["text"])
            else:
                shown.append((c["name"], c["text"]))
        elif t in ("execute_result", "display_data"):
            shown.append((t, c["data"].get("text/plain")))
        elif t == "error":
            shown.append(("error", c["ename"]))
    return [(k, v) for k, v in shown if v != ""]


# ------------------------------------------------- the same cells, both runtimes
CELLS = {
    "bash": ["echo hello", "echo err >&2", "x=5; echo $((x * 2))", "ls /no/such/dir", "printf 'a\\nb\\nc\\n'"],
    "echo": ["hello", "two\nlines"],
    "calysto_scheme": ['(display "hi")', "(+ 1 2)", "(define (sq x) (* x x))", "(sq 12)", "(car 1)", "%lsmagic"],
}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_the_same_cells_show_the_same_output(kernels, name):
    _, adopted = kernels(name)
    _, original = kernels(f"{name}-ipykernel")
    for code in CELLS[name]:
        a_reply, a_msgs = run(adopted, code)
        o_reply, o_msgs = run(original, code)
        assert (a_reply["status"], a_reply["execution_count"]) == (o_reply["status"], o_reply["execution_count"]), code
        assert a_reply.get("ename") == o_reply.get("ename"), code
        assert outputs(a_msgs) == outputs(o_msgs), code


def _running(command_line: str) -> bool:
    """Whether a process with this command line exists (what pgrep -f does)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().replace(b"\0", b" ").strip() == command_line.encode():
                return True
        except OSError:
            pass
    return False


def wait_running(command_line: str, timeout=20.0) -> None:
    """Until the command runs: an interrupt that reaches bash between commands is lost (on both runtimes)."""
    deadline = time.monotonic() + timeout
    while not _running(command_line):
        assert time.monotonic() < deadline, f"{command_line!r} never started"
        time.sleep(0.05)


@pytest.mark.parametrize("name", ["bash", "bash-ipykernel"])
def test_bash_interrupt_stops_the_command_and_the_kernel_goes_on(kernels, name):
    km, kc = kernels(name)
    nap = f"sleep {30 + os.getpid() % 1000 / 1000:.3f}"  # (a command line of its own, to find it)
    msg_id = kc.execute(f"{nap}; echo never")
    wait_running(nap)
    t0 = time.monotonic()
    km.interrupt_kernel()
    reply = reply_to(kc, msg_id, 20)["content"]
    assert time.monotonic() - t0 < 10 and reply["status"] == "abort"
    assert outputs(run(kc, "echo after")[1]) == [("stdout", "after\n")]


@pytest.mark.parametrize("name", ["bash", "bash-ipykernel", "calysto_scheme", "calysto_scheme-ipykernel"])
def test_completion_and_inspection(kernels, name):
    _, kc = kernels(name)
    code = "ech" if name.startswith("bash") else "(defi"
    c = kc.complete(code, len(code), reply=True, timeout=30)["content"]
    assert c["status"] == "ok" and ("echo" if name.startswith("bash") else "define") in c["matches"]


# ---------------------------------------------------------- what they gain
def test_adopted_kernels_start_through_the_handshake(kernels):
    for name in INSTALLERS:
        km, _ = kernels(name)
        assert type(km.provisioner).__name__ == "HandshakeProvisioner"
        km, _ = kernels(f"{name}-ipykernel")
        assert type(km.provisioner).__name__ == "LocalProvisioner"


def _subscribe(ctx, km):
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(f"tcp://{km.ip}:{km.iopub_port}")
    return s


def test_every_iopub_subscriber_is_welcomed(kernels):
    km, _ = kernels("echo")
    session = Session(km.session.key)
    ctx = zmq.Context()
    try:
        subs = [_subscribe(ctx, km) for _ in range(3)]
        for s in subs:
            assert s.poll(10_000), "a subscriber got no iopub_welcome"
            assert session.parse(s.recv_multipart(), check_replay=False).msg_type == "iopub_welcome"  # (a welcome reaches every subscriber of its topic)
    finally:
        ctx.destroy(linger=0)


def test_bash_seq_with_a_slow_subscriber_loses_no_line(kernels):
    """A client that reads slowly at first (as a busy browser tab): every one
    of 100,000 lines arrives, in order (on ipykernel 7.4 about a fifth are
    dropped even for a client that keeps up: README's table)."""
    n = 100_000
    _, kc = kernels("bash")
    msg_id = kc.execute(f"seq 1 {n}")
    text, streams = [], 0
    while True:
        m = kc.get_iopub_msg(timeout=60)
        if m["parent_header"].get("msg_id") != msg_id:
            continue
        if m["msg_type"] == "stream":
            streams += 1
            text.append(m["content"]["text"])
            if streams <= 10:
                time.sleep(0.3)  # slow at first: output piles up in the kernel meanwhile
        elif m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
            break
    assert "".join(text).split() == [str(i) for i in range(1, n + 1)]


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE support")
def test_an_adopted_kernel_encrypts_with_curve(tmp_path):
    pub, sec = zmq.curve_keypair()
    fname, info = write_connection_file(str(tmp_path / "k.json"), ip="127.0.0.1", key=b"k", curve_publickey=pub, curve_secretkey=sec)
    proc = KernelProcess([sys.executable, "-m", "kernelkit.adopt", "echo_kernel"], fname)
    kc = BlockingKernelClient()
    kc.load_connection_file(fname)
    kc.start_channels()
    ctx = zmq.Context()
    try:
        kc.wait_for_ready(timeout=30)
        reply, msgs = run(kc, "secret")
        assert outputs(msgs) == [("stdout", "secret")]
        # a client without the server key gets nothing (its request does not even leave:
        # the CURVE handshake never completes)
        plain = ctx.socket(zmq.DEALER)
        plain.setsockopt(zmq.LINGER, 0)
        plain.connect(f"tcp://127.0.0.1:{info['shell_port']}")
        try:
            plain.send_multipart(Session(b"k").frames("kernel_info_request", {}), zmq.NOBLOCK)
        except zmq.Again:
            pass
        assert not plain.poll(2000)
    finally:
        kc.stop_channels()
        ctx.destroy(linger=0)
        proc.kill()


# ----------------------------------------------- jupyter_kernel_test, both runtimes
class _Bash:
    language_name = "bash"
    file_extension = ".sh"
    code_hello_world = "echo 'hello, world'"
    completion_samples = [{"text": "ech", "matches": {"echo"}}]


class TestBashAdopted(_Bash, jkt.KernelTests):
    kernel_name = "bash"


class TestBashOnIpykernel(_Bash, jkt.KernelTests):
    kernel_name = "bash-ipykernel"


class _Echo:
    language_name = "Any text"
    code_hello_world = "hello, world"


class TestEchoAdopted(_Echo, jkt.KernelTests):
    kernel_name = "echo"


class TestEchoOnIpykernel(_Echo, jkt.KernelTests):
    kernel_name = "echo-ipykernel"


class _Scheme:
    language_name = "scheme"
    code_hello_world = '(display "hello, world")'
    code_execute_result = [{"code": "(+ 1 2)", "result": "3"}]


class TestSchemeAdopted(_Scheme, jkt.KernelTests):
    kernel_name = "calysto_scheme"


class TestSchemeOnIpykernel(_Scheme, jkt.KernelTests):
    kernel_name = "calysto_scheme-ipykernel"


# ------------------------------------------------------- jupyter console, in tmux
class Tmux:
    """A terminal of its own (a tmux server on a private socket) running a command."""

    def __init__(self, command: str, env: dict):
        self.sock = f"kernelkit-test-{os.getpid()}"
        self.cmd = ["tmux", "-L", self.sock]
        subprocess.run([*self.cmd, "new-session", "-d", "-s", "t", "-x", "120", "-y", "40", command],
                       env=env, check=True, timeout=30)

    def screen(self) -> str:
        return subprocess.run([*self.cmd, "capture-pane", "-p", "-t", "t", "-S", "-200"],
                              capture_output=True, text=True, timeout=30).stdout

    def keys(self, *keys) -> None:
        subprocess.run([*self.cmd, "send-keys", "-t", "t", *keys], check=True, timeout=30)

    def wait_for(self, text: str, timeout=30.0) -> str:
        """The screen once ``text`` shows on it."""
        deadline = time.monotonic() + timeout
        while text not in (screen := self.screen()):
            assert time.monotonic() < deadline, f"{text!r} never showed; the screen:\n{screen}"
            time.sleep(0.1)
        return screen

    def close(self) -> None:
        subprocess.run([*self.cmd, "kill-server"], capture_output=True, timeout=30)


def test_jupyter_console_on_the_adopted_bash_kernel():
    from support import ensure_debian

    pytest.importorskip("jupyter_console")
    ensure_debian(["/usr/bin/tmux"], ["tmux"], "tmux")
    console = str(Path(sys.executable).parent / "jupyter-console")
    t = Tmux(f"{console} --kernel bash", env=dict(os.environ))
    try:
        t.wait_for("In [1]:", timeout=60)
        t.keys("echo hello from $((6*7))", "Enter")
        t.wait_for("hello from 42")
        t.keys("for i in 1 2 3; do echo line $i; done", "Enter")
        t.wait_for("line 3")
        nap = f"sleep {30 + os.getpid() % 1000 / 1000:.3f}"
        t.keys(nap, "Enter")
        wait_running(nap)
        t.keys("C-c")  # the console sends an interrupt_request: back to a prompt at once
        t.wait_for("In [4]:", timeout=10)
        t.keys("ech", "Tab")
        t.wait_for("In [4]: echo", timeout=10)  # (completed by the kernel)
        t.keys("C-u")
        t.keys("exit", "Enter")
    finally:
        t.close()
