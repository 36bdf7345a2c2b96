"""The author's API explains itself: exports, request properties, an
exception's traceback in the author's frames, a wrong return type named,
subshells only when declared, and ``kernelkit install --kernel MODULE:CLASS``."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from jupyter_client import KernelManager
from jupyter_client.connect import write_connection_file
from jupyter_client.kernelspec import KernelSpecManager

import kernelkit
from support import HERE, iopub_until, iopub_until_idle, is_idle, reply_to, start_kernel

AUTHOR_KERNEL = '''
from kernelkit import Kernel, ExecutionError, StdinNotAllowed


class AuthorKernel(Kernel):
    implementation = "author"
    language_info = {"name": "author-lang", "mimetype": "text/plain", "file_extension": ".txt"}

    def execute(self, code, request):
        if code == "list":
            return ["not", "a", "dict"]
        if code == "props":
            self.stream(repr([request.silent, request.store_history, request.user_expressions,
                              request.stop_on_error, request.cell_id]))
            return None
        if code == "fail":
            return helper()
        self.stream(code)

    def complete(self, code, cursor_pos, request):
        return "oops"


def helper():
    raise ValueError("from the author's helper")
'''


def _author(tmp_path):
    (tmp_path / "author_kernel.py").write_text(textwrap.dedent(AUTHOR_KERNEL))
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    return start_kernel(tmp_path, [sys.executable, "-m", "kernelkit.kernel", "author_kernel:AuthorKernel"], env=env)


def run(kc, code, **kw):
    msg_id = kc.execute(code, **kw)
    reply = reply_to(kc, msg_id, 20)["content"]
    return reply, iopub_until_idle(kc, msg_id, 20)


def test_errors_are_exported():
    assert kernelkit.ExecutionError is kernelkit.kernel.base.ExecutionError
    assert kernelkit.StdinNotAllowed is kernelkit.kernel.base.StdinNotAllowed


def test_request_properties_wrong_return_types_and_the_authors_traceback(tmp_path):
    proc, kc = _author(tmp_path)
    try:
        msg = kc.session.msg("execute_request", {"code": "props", "silent": False, "store_history": False,
                                                 "user_expressions": {"a": "1"}, "allow_stdin": False,
                                                 "stop_on_error": False}, metadata={"cellId": "c-1"})
        kc.shell_channel.send(msg)
        reply_to(kc, msg["header"]["msg_id"], 20)
        msgs = iopub_until_idle(kc, msg["header"]["msg_id"], 20)
        assert [m["content"]["text"] for m in msgs if m["msg_type"] == "stream"] == ["[False, False, {'a': '1'}, False, 'c-1']"]

        reply, msgs = run(kc, "list")
        assert (reply["status"], reply["ename"]) == ("error", "TypeError")
        assert reply["evalue"] == "AuthorKernel.execute returned list, not a dict of reply content (or None)"
        c = kc.complete("x", 1, reply=True, timeout=20)["content"]
        assert c["status"] == "error" and c["evalue"].startswith("AuthorKernel.complete returned str")

        reply, msgs = run(kc, "fail")
        tb = "\n".join(reply["traceback"])
        assert "author_kernel.py" in tb and "in helper" in tb
        assert f"kernelkit{os.sep}kernel{os.sep}" not in tb, tb  # no frame of kernelkit's dispatch
        assert reply["traceback"][0].startswith("Traceback") and len(reply["traceback"]) <= 6, tb
        assert run(kc, "still here")[0]["status"] == "ok"
    finally:
        kc.stop_channels()
        proc.kill()


def test_install_kernel_writes_a_handshake_spec_that_starts(tmp_path):
    (tmp_path / "author_kernel.py").write_text(textwrap.dedent(AUTHOR_KERNEL))
    logo = tmp_path / "logo-64x64.png"
    logo.write_bytes(b"\x89PNG fake")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "kernelkit.cli", "install", "--prefix", str(tmp_path / "p"),
                        "--kernel", "author_kernel:AuthorKernel", "--name", "author", "--logo", str(logo)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    d = tmp_path / "p" / "share" / "jupyter" / "kernels" / "author"
    spec = json.loads((d / "kernel.json").read_text())
    assert spec["argv"][1:4] == ["-m", "kernelkit.kernel", "author_kernel:AuthorKernel"]
    assert spec["language"] == "author-lang" and spec["interrupt_mode"] == "signal"
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "kernelkit-handshake"
    assert (d / "logo-64x64.png").read_bytes() == b"\x89PNG fake"
    km = KernelManager(kernel_name="author", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(d.parent)]))
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        assert type(km.provisioner).__name__ == "HandshakeProvisioner"
        assert kc.kernel_info(reply=True, timeout=20)["content"]["implementation"] == "author"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    # a class that is not there: one clear line
    r = subprocess.run([sys.executable, "-m", "kernelkit.cli", "install", "--prefix", str(tmp_path / "p"),
                        "--kernel", "author_kernel:Nope", "--name", "x"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and "author_kernel:Nope is not a kernelkit.Kernel subclass" in r.stderr


# print() in a handler: the request's stream (capture_output), and a start()
# that raises ends the kernel before it registers
PRINT_KERNEL = '''
import os
import sys
import threading

from kernelkit import Kernel


class PrintKernel(Kernel):
    implementation = "print"
    supported_features = ("iopub_welcome", "kernel subshells")
    language_info = {"name": "print-lang", "mimetype": "text/plain", "file_extension": ".txt"}

    def __init__(self):
        super().__init__()
        self.released = threading.Event()

    def start(self):
        if os.environ.get("PRINT_KERNEL_BACKEND") == "missing":
            raise RuntimeError("no backend")

    def execute(self, code, request):
        if code == "mixed":
            print("a")
            sys.stderr.write("e\\n")
            self.stream("b")  # after what was printed before it
            print("c")
            t = threading.Thread(target=print, args=("t",))
            t.start()
            t.join()
        elif code == "hold":
            print("holding", flush=True)
            if not self.released.wait(20):
                raise TimeoutError("not released")
            print("released")
        elif code == "release":
            print("from the subshell")
            self.released.set()
        elif code == "streams":
            self.stream(type(sys.stdout).__name__ + " " + type(sys.stderr).__name__)
        elif code == "fork":
            # a forked child has no flusher: its print() writes to fd 1 at once
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                print("child")
                os.write(w, type(sys.stdout).__name__.encode())
                os._exit(0)
            os.close(w)
            _, status = os.waitpid(pid, 0)
            self.stream(os.read(r, 100).decode() + f" exit {os.waitstatus_to_exitcode(status)}")
            os.close(r)


class QuietKernel(PrintKernel):
    capture_output = False
'''


def _print_kernel(tmp_path, name="PrintKernel"):
    (tmp_path / "print_kernel.py").write_text(textwrap.dedent(PRINT_KERNEL))
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    return start_kernel(tmp_path, [sys.executable, "-m", "kernelkit.kernel", f"print_kernel:{name}"], env=env)


def _streams(msgs, name="stdout"):
    return [m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == name]


def test_print_in_a_handler_is_output_of_its_request(tmp_path):
    proc, kc = _print_kernel(tmp_path)
    try:
        reply, msgs = run(kc, "mixed")
        assert reply["status"] == "ok"
        # in order with the stream helper's output; a thread the handler started: the same cell
        assert "".join(_streams(msgs)) == "a\nbc\nt\n" and _streams(msgs, "stderr") == ["e\n"]
        assert _streams(run(kc, "streams")[1]) == ["OutStream OutStream"]
        assert _streams(run(kc, "fork")[1]) == ["TextIOWrapper exit 0"]

        # a handler on a subshell's thread: that subshell request's output,
        # while the main shell's runs and prints
        sub = kc.session.msg("create_subshell_request", {})
        kc.control_channel.send(sub)
        subshell_id = reply_to(kc, sub["header"]["msg_id"], 20, "control")["content"]["subshell_id"]
        main_id = kc.execute("hold")
        iopub_until(kc, main_id, lambda m: m["msg_type"] == "stream", 20, "'holding'")
        msg = kc.session.msg("execute_request", {"code": "release", "silent": False, "store_history": True,
                                                 "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
        msg["header"]["subshell_id"] = subshell_id
        kc.shell_channel.send(msg)
        by_parent = {}
        while not all(any(is_idle(m) for m in by_parent.get(i, [])) for i in (main_id, msg["header"]["msg_id"])):
            m = kc.get_iopub_msg(timeout=20)
            by_parent.setdefault(m["parent_header"].get("msg_id"), []).append(m)
        assert _streams(by_parent[msg["header"]["msg_id"]]) == ["from the subshell\n"]
        assert _streams(by_parent[main_id]) == ["released\n"]
    finally:
        kc.stop_channels()
        proc.kill()


def test_a_kernel_can_leave_print_alone(tmp_path):
    proc, kc = _print_kernel(tmp_path, "QuietKernel")
    try:
        reply, msgs = run(kc, "mixed")
        assert reply["status"] == "ok" and _streams(msgs) == ["b"] and _streams(msgs, "stderr") == []
        assert _streams(run(kc, "streams")[1]) == ["TextIOWrapper TextIOWrapper"]
    finally:
        kc.stop_channels()
        proc.kill()


def test_a_start_that_raises_is_reported_by_the_launcher(tmp_path):
    (tmp_path / "print_kernel.py").write_text(textwrap.dedent(PRINT_KERNEL))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
           "PRINT_KERNEL_BACKEND": "missing"}
    argv = [sys.executable, "-m", "kernelkit.kernel", "print_kernel:PrintKernel"]
    # run by hand: exit 1, one line on stderr
    fname, _ = write_connection_file(str(tmp_path / "conn.json"))
    r = subprocess.run([*argv, "-f", fname], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "kernel did not start: PrintKernel could not start: RuntimeError: no backend (print_kernel.py, line 20)"]
    # through jupyter_client and the handshake provisioner: the error names it
    d = tmp_path / "kernels" / "print"
    d.mkdir(parents=True)
    (d / "kernel.json").write_text(json.dumps({
        "argv": [*argv, "-f", "{connection_file}"], "display_name": "print", "language": "print-lang",
        "metadata": {"kernel_provisioner": {"provisioner_name": "kernelkit-handshake"}}}))
    km = KernelManager(kernel_name="print", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(d.parent)]))
    with pytest.raises(Exception) as failed:
        km.start_kernel(env=env)
    assert "before registering: kernel did not start: PrintKernel could not start: RuntimeError: no backend" in str(failed.value)
    assert not km.has_kernel
