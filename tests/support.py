"""Helpers for tests: start real kernel processes, play the launcher's part."""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from kernelkit.wire import DELIMITER, Session, jsonutil

HERE = Path(__file__).parent
ROOT = HERE.parent
EXEC_KERNEL = [sys.executable, str(HERE / "kernels" / "exec_kernel.py")]
CALC_KERNEL = [sys.executable, str(ROOT / "examples" / "calc_kernel.py")]


class KernelProcess:
    """A kernel subprocess with its stderr captured."""

    def __init__(self, argv, file, extra_args=(), env=None):
        self.file = str(file)
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(
            [*argv, "-f", self.file, *extra_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=e,
            start_new_session=True,
        )
        self._stderr = []
        self._stdout = []
        self._readers = [
            threading.Thread(target=self._drain, args=(self.proc.stderr, self._stderr), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stdout, self._stdout), daemon=True),
        ]
        for t in self._readers:
            t.start()

    @staticmethod
    def _drain(stream, sink):
        for line in iter(stream.readline, b""):
            sink.append(line.decode("utf-8", "replace"))

    @property
    def stderr(self) -> str:
        for t in self._readers:
            if self.proc.poll() is not None:
                t.join(2)
        return "".join(self._stderr)

    def wait(self, timeout):
        return self.proc.wait(timeout)

    def interrupt(self):
        os.killpg(self.proc.pid, signal.SIGINT)

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)


def write_json(path, data) -> str:
    Path(path).write_text(json.dumps(data))
    os.chmod(path, 0o600)
    return str(path)


class Registrar:
    """The launcher's side of the handshake, bare, so tests can misbehave.

    dialect "A": REP... served by a ROUTER (a REQ peer puts an empty frame
    after its identity); dialect "B": ROUTER for DEALER peers.
    ``answer``: "ok", "error", "badsig" or "none", or a hostile receipt:
    "deep" (JSON nested 1,100 levels), "not_utf8", "other_parent" and
    "other_type" (dialect A), "other_kernel" (dialect B).
    """

    def __init__(self, dialect="A", key="secret", answer="ok", kernel_id="k-1", scheme="hmac-sha256"):
        self.dialect = dialect
        self.key = key
        self.answer = answer
        self.kernel_id = kernel_id
        self.session = Session(key, scheme)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.ports = None
        self.request = None
        self.done = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def registration(self, port_as="int", **extra) -> dict:
        port = self.port if port_as == "int" else str(self.port)
        if self.dialect == "A":
            d = {"transport": "tcp", "ip": "127.0.0.1", "signature_scheme": "hmac-sha256", "key": self.key, "registration_port": port}
        else:
            d = {
                "kernel_id": self.kernel_id,
                "transport": "tcp",
                "registration_ip": "127.0.0.1",
                "registration_port": port,
                "signature_scheme": "hmac-sha256",
                "key": self.key,
            }
        d.update(extra)
        return d

    def _serve(self):
        # poll in slices so close() can stop us before closing the socket
        for _ in range(300):
            if self._closing.is_set():
                self.done.set()
                return
            if self.sock.poll(100):
                break
        else:
            self.done.set()
            return
        frames = self.sock.recv_multipart()
        ident = frames[0]
        if self.dialect == "A":
            msg = self.session.parse(frames[frames.index(b"") + 1 :] if frames[1] == b"" else frames[1:])
            self.request = msg
            self.ports = {k[:-5]: v for k, v in msg.content.items() if k.endswith("_port")}
        else:
            body = frames[frames.index(DELIMITER) + 2]
            self.session.signer.verify(frames[frames.index(DELIMITER) + 1], [body])
            content = jsonutil.loads(body)
            self.request = content
            self.ports = {k[:-5]: int(v) for k, v in content.items() if k.endswith("_port")}
        if self.answer != "none":
            self.sock.send_multipart([ident] + ([b""] if self.dialect == "A" else []) + self._receipt())
        self.done.set()

    def _receipt(self):
        if self.answer in _HOSTILE[self.dialect]:
            return _HOSTILE[self.dialect][self.answer](self)
        if self.dialect == "A":
            status = "error" if self.answer == "error" else "ok"
            frames = self.session.frames("handshake_reply", {"status": status}, parent=self.request)
        else:
            body = b'{"status": "error"}' if self.answer == "error" else b"ACK"
            frames = [DELIMITER, self.session.signer.sign([body]), body]
        if self.answer == "badsig":
            i = frames.index(DELIMITER) + 1
            frames[i] = b"0" * len(frames[i])
        return frames

    def connection_info(self) -> dict:
        """What a client needs, once the kernel registered."""
        assert self.done.wait(30), "kernel never registered"
        d = {"transport": "tcp", "ip": "127.0.0.1", "key": self.key, "signature_scheme": "hmac-sha256"}
        d.update({f"{c}_port": p for c, p in self.ports.items()})
        return d

    def close(self):
        self._closing.set()
        self._thread.join(5)
        self.sock.close()
        self.ctx.term()


def _signed_a(reg, header: dict, content: bytes, parent: bytes | None = None) -> list:
    parts = [jsonutil.dumps(header), parent if parent is not None else reg.request.raw_header, b"{}", content]
    return [DELIMITER, reg.session.signer.sign(parts), *parts]


def _signed_b(reg, body: bytes) -> list:
    return [DELIMITER, reg.session.signer.sign([body]), body]


_DEEP = b'{"status": "ok", "x": ' + b"[" * 1100 + b"]" * 1100 + b"}"
_HOSTILE = {
    "A": {
        "deep": lambda r: _signed_a(r, r.session.header("handshake_reply"), _DEEP),
        "not_utf8": lambda r: _signed_a(r, r.session.header("handshake_reply"), b'{"status": "ok", "x": "\xff"}'),
        "other_parent": lambda r: _signed_a(r, r.session.header("handshake_reply"), b'{"status": "ok"}', jsonutil.dumps(r.session.header("handshake_request"))),
        "other_type": lambda r: _signed_a(r, r.session.header("kernel_info_reply"), b'{"status": "ok"}'),
    },
    "B": {
        "deep": lambda r: _signed_b(r, _DEEP),
        "not_utf8": lambda r: _signed_b(r, b"\xffACK"),
        "other_kernel": lambda r: _signed_b(r, b'{"kernel_id": "someone-else", "status": "ok"}'),
    },
}


def reply_to(kc, msg_id, timeout=10.0, channel="shell"):
    """The reply to ``msg_id`` on shell (or control); other replies are skipped."""
    get = kc.get_shell_msg if channel == "shell" else kc.get_control_msg
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no reply to {msg_id} on {channel} within {timeout} s"
        try:
            msg = get(timeout=left)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


def is_idle(msg) -> bool:
    return msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"


def iopub_until(kc, msg_id, predicate, timeout=10.0, what=None):
    """iopub messages parented to ``msg_id``, up to the first matching ``predicate``
    (``what`` names it in the failure message)."""
    deadline = time.monotonic() + timeout
    mine = []
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {what or 'match'} on iopub for {msg_id} within {timeout} s; got {[m['msg_type'] for m in mine]}"
        try:
            msg = kc.get_iopub_msg(timeout=left)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            mine.append(msg)
            if predicate(msg):
                return mine


def iopub_until_idle(kc, msg_id, timeout=10.0):
    """iopub messages parented to ``msg_id``, up to and including its idle."""
    return iopub_until(kc, msg_id, is_idle, timeout)


def file_ports(km) -> dict:
    """The five ports in the connection file a KernelManager wrote."""
    with open(km.connection_file) as f:
        info = json.load(f)
    return {k: v for k, v in info.items() if k.endswith("_port")}


def nudge(kc, timeout=30):
    """Wait until a client made before a restart hears the new kernel on iopub,
    as jupyter_server and JupyterLab do: kernel_info until its busy arrives
    (output sent before the client's iopub socket reconnected is not seen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg_id = kc.kernel_info()
        try:
            while True:
                msg = kc.get_iopub_msg(timeout=0.5)
                if (msg["parent_header"] or {}).get("msg_id") == msg_id:  # xeus may send null
                    iopub_until_idle(kc, msg_id)
                    return
        except queue.Empty:
            continue
    raise AssertionError("the client never heard the restarted kernel on iopub")


def result_text(messages):
    """The text/plain of the one execute_result among ``messages``."""
    results = [m for m in messages if m["msg_type"] == "execute_result"]
    assert len(results) == 1, [m["msg_type"] for m in messages]
    return results[0]["content"]["data"]["text/plain"]


def run_ok(kc, code, timeout=10.0):
    """Run a cell that needs no input and must succeed; return (reply, its iopub messages)."""
    msg_id = kc.execute(code)
    reply = reply_to(kc, msg_id, timeout)
    assert reply["content"]["status"] == "ok", reply["content"]
    return reply, iopub_until_idle(kc, msg_id, timeout)


def input_request(kc, msg_id, timeout=10.0):
    """The next message on stdin, which must be an input_request for ``msg_id``."""
    msg = kc.get_stdin_msg(timeout=timeout)
    assert msg["msg_type"] == "input_request", msg
    assert msg["parent_header"].get("msg_id") == msg_id, "the input_request is not parented to the execute_request"
    return msg


def answer(kc, request, value):
    """An input_reply parented to ``request`` (the input_request), as JupyterLab sends it."""
    kc.stdin_channel.send(kc.session.msg("input_reply", {"value": value}, parent=request))


def assert_no_stdin(kc):
    """Nothing (more) on stdin. Called after the request's idle, which the
    kernel sends after anything it sent on stdin for that request."""
    assert not kc.stdin_channel.msg_ready(), f"unexpected stdin message: {kc.get_stdin_msg(timeout=0.1)}"


def start_kernel(tmp_path, argv=EXEC_KERNEL, key=b"test-key", env=None, ready_timeout=20, extra_args=(), **conn):
    """Start a kernel on a classic connection file in ``tmp_path`` (with
    ``extra_args`` after ``-f FILE``); return (process, client) once it
    answers kernel_info."""
    fname, info = write_connection_file(str(tmp_path / "kernel.json"), key=key, **conn)
    proc = KernelProcess(argv, fname, extra_args, env=env)
    kc = BlockingKernelClient()
    kc.load_connection_file(fname)
    kc.start_channels()
    wait_until_ready(kc, proc, ready_timeout)
    return proc, kc


def wait_until_ready(kc, proc, ready_timeout):
    """Wait until the kernel answers kernel_info (else stop the client, kill
    the process and fail, with its stderr)."""
    deadline = time.monotonic() + ready_timeout
    while True:
        try:
            kc.wait_for_ready(timeout=max(0.1, deadline - time.monotonic()))
            return
        except RuntimeError:
            # jupyter_client says "died" when the heartbeat has not answered
            # within a second, as on a loaded machine while the process still
            # starts: ask again while it lives and time is left
            try:
                alive = proc.wait(0.2) is None
            except subprocess.TimeoutExpired:
                alive = True
            if not alive or time.monotonic() >= deadline:
                kc.stop_channels()
                proc.kill()
                raise AssertionError(f"kernel did not become ready; stderr:\n{proc.stderr}")


def km_client(km, timeout=30):
    """A started, ready BlockingKernelClient for a KernelManager's kernel."""
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=timeout)
    return kc


def is_served(info, timeout=2.0) -> bool:
    """Whether a jupyter_client client with this connection info gets a
    kernel_info_reply within ``timeout`` (False for a client the kernel's CURVE
    keys shut out: its request cannot even be sent, or gets no answer)."""
    kc = BlockingKernelClient()
    kc.load_connection_info(info)
    kc.start_channels()
    try:
        # a DEALER whose every connection fails its handshake blocks on send
        kc.shell_channel.socket.sndtimeo = int(timeout * 1000)
        kc.kernel_info()
        kc.get_shell_msg(timeout=timeout)
        return True
    except (queue.Empty, zmq.Again):
        return False
    finally:
        kc.stop_channels()


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def ensure_debian(paths, packages, what: str) -> None:
    """Debian ``packages`` installed with apt-get if one of ``paths`` is missing
    (the test is skipped, saying why, when that cannot be done)."""
    if all(os.path.exists(p) for p in paths):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"needs Debian's {what} (not installed; installing it needs root and apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"could not install Debian's {what}: {' '.join(cmd)}: {done.stderr.strip()[-500:]}")


def ensure_chromium() -> None:
    """Debian's chromium and chromium-driver, installed with apt-get if missing."""
    ensure_debian([CHROMIUM, CHROMEDRIVER], ["chromium", "chromium-driver"], "chromium and chromium-driver")


class QueuedBehind:
    """Makes "requests queued behind a cell" independent of timing, through
    the protocol alone: the cell begins with ``WAIT``, which waits until the
    request ``release()`` sends runs on a subshell. That request goes last on
    the same shell socket, which delivers in order, so when it runs the
    requests sent before it have been routed to the main shell's queue."""

    WAIT = (
        "import threading as _threading\n"
        "_threading_release = globals().setdefault('_kk_release', _threading.Event())\n"
        "_threading_release.wait(10)\n"
        "globals().pop('_kk_release', None)\n"
    )
    _RELEASE = "import threading as _threading\nglobals().setdefault('_kk_release', _threading.Event()).set()"

    def __init__(self, kc):
        self.kc = kc
        msg = kc.session.msg("create_subshell_request", {})
        kc.control_channel.send(msg)
        self.subshell_id = reply_to(kc, msg["header"]["msg_id"], channel="control")["content"]["subshell_id"]

    def release(self) -> None:
        content = {"code": self._RELEASE, "silent": True, "store_history": False, "user_expressions": {}, "allow_stdin": False, "stop_on_error": False}
        msg = self.kc.session.msg("execute_request", content)
        msg["header"]["subshell_id"] = self.subshell_id
        self.kc.shell_channel.send(msg)

    def close(self) -> None:
        # (the release has run: the cell it held has ended; its reply may have
        # been skipped already by a reply_to for another request)
        msg = self.kc.session.msg("delete_subshell_request", {"subshell_id": self.subshell_id})
        self.kc.control_channel.send(msg)
        reply_to(self.kc, msg["header"]["msg_id"], channel="control")
