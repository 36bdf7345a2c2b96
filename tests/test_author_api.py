"""The author's API explains itself: exports, request properties, an
exception's traceback in the author's frames, a wrong return type named,
subshells only when declared, and ``kernelkit install --kernel MODULE:CLASS``."""

import json
import os
import subprocess
import sys
import textwrap

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

import kernelkit
from support import HERE, iopub_until_idle, reply_to, start_kernel

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
