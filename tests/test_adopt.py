"""Kernels built on ipykernel's Kernel, run unchanged on kernelkit through
``kernelkit adopt``: a kernel written against the ipykernel API only
(tests/kernels/ipyapi), side by side on ipykernel 7.4 and on kernelkit, each
started from its kernelspec by jupyter_client."""

import json
import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

from support import HERE, answer, input_request, iopub_until, iopub_until_idle, reply_to

RUNTIMES = ["kernelkit", "ipykernel"]


def kernelkit_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "kernelkit.cli", *args], capture_output=True, text=True, env=env, timeout=120)


def install_spec(prefix: Path, name: str, argv: list, adopt: bool, **extra) -> KernelSpecManager:
    """A kernelspec as a kernel's own installer writes it, adopted or not."""
    d = prefix / "share" / "jupyter" / "kernels" / name
    d.mkdir(parents=True)
    (d / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": name, "language": "text", **extra}))
    if adopt:
        r = kernelkit_cli("adopt", "--prefix", str(prefix), name)
        assert r.returncode == 0, r.stderr
    return KernelSpecManager(kernel_dirs=[str(d.parent)])


class Kernel:
    """A started kernel and its client, with helpers to run cells."""

    def __init__(self, km, kc, runtime):
        self.km, self.kc, self.runtime = km, kc, runtime

    def run(self, code, timeout=20, **kw):
        msg_id = self.kc.execute(code, **kw)
        reply = reply_to(self.kc, msg_id, timeout)
        return reply["content"], iopub_until_idle(self.kc, msg_id, timeout)

    def out(self, code, **kw):
        content, msgs = self.run(code, **kw)
        assert content["status"] == "ok", content
        return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")


def wait_for(kc, msg_id, predicate, timeout=20):
    """Read iopub until a message of ``msg_id`` matches ``predicate``."""
    iopub_until(kc, msg_id, predicate, timeout)


def start(tmp_path, runtime, module="ipyapi", args=(), name="ipyapi", env=None):
    ksm = install_spec(tmp_path / runtime, name, [sys.executable, "-m", module, "-f", "{connection_file}", *args], runtime == "kernelkit")
    e = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE / "kernels"), os.environ.get("PYTHONPATH", "")]), **(env or {})}
    km = KernelManager(kernel_name=name, kernel_spec_manager=ksm)
    km.start_kernel(env=e)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return Kernel(km, kc, runtime)


@pytest.fixture(params=RUNTIMES)
def api(request, tmp_path):
    k = start(tmp_path, request.param, args=["--ApiKernel.greeting=hi", "file1.txt"])
    yield k
    k.kc.stop_channels()
    k.km.shutdown_kernel(now=True)


def test_adopt_rewrites_the_spec_and_undo_restores_it(tmp_path):
    install_spec(tmp_path, "k", [sys.executable, "-m", "ipyapi", "-f", "{connection_file}"], adopt=False, interrupt_mode="signal")
    path = tmp_path / "share/jupyter/kernels/k/kernel.json"
    before = path.read_text()
    r = kernelkit_cli("adopt", "--prefix", str(tmp_path), "k")
    assert r.returncode == 0, r.stderr
    spec = json.loads(path.read_text())
    assert spec["argv"] == [sys.executable, "-m", "kernelkit.adopt", "ipyapi", "-f", "{connection_file}"]
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "kernelkit-handshake"
    assert spec["interrupt_mode"] == "signal" and spec["display_name"] == "k"
    again = kernelkit_cli("adopt", "--prefix", str(tmp_path), "k")
    assert again.returncode == 1 and "adopted already" in again.stderr
    r = kernelkit_cli("adopt", "--undo", "--prefix", str(tmp_path), "k")
    assert r.returncode == 0, r.stderr
    assert path.read_text() == before
    r = kernelkit_cli("adopt", "--undo", "--prefix", str(tmp_path), "k")
    assert r.returncode == 1 and "was not adopted" in r.stderr
    r = kernelkit_cli("adopt", "--prefix", str(tmp_path), "nope")
    assert r.returncode == 1 and "no kernelspec 'nope'" in r.stderr


def test_adopt_refuses_a_kernel_not_started_as_a_module(tmp_path):
    install_spec(tmp_path, "k", ["some-binary", "{connection_file}"], adopt=False)
    r = kernelkit_cli("adopt", "--prefix", str(tmp_path), "k")
    assert r.returncode == 1 and "[PYTHON, -m, MODULE, ...]" in r.stderr


def test_kernel_info_from_class_attributes_and_properties(api):
    info = api.kc.kernel_info(reply=True, timeout=20)["content"]
    assert info["implementation"] == "ipyapi" and info["implementation_version"] == "1.0"
    assert info["banner"] == "ipyapi 0.1"  # banner and language_version are properties
    assert info["language_info"]["name"] == "ipyapi"
    # what the adopted kernel gains, and what it never offers (its backend is one thread)
    if api.runtime == "kernelkit":
        assert info["supported_features"] == ["iopub_welcome"]


def test_do_execute_gets_ipykernels_arguments(api):
    out = api.out("args", silent=False, store_history=True, user_expressions={"a": "b"}, allow_stdin=False)
    assert out == "[False, True, {'a': 'b'}, False, None, None]"
    # cell_meta and cell_id come from the request's metadata (JupyterLab's cellId)
    kc = api.kc
    msg = kc.session.msg("execute_request", {"code": "args", "silent": False, "store_history": False,
                                             "user_expressions": {}, "allow_stdin": True},
                         metadata={"cellId": "cell-7", "tag": "t"})
    kc.shell_channel.send(msg)
    reply_to(kc, msg["header"]["msg_id"], 20)
    msgs = iopub_until_idle(kc, msg["header"]["msg_id"], 20)
    text = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
    assert text == "[False, False, {}, True, 'cell-7', 't']"


def test_execution_count_and_reply(api):
    content, msgs = api.run("count")
    assert content["status"] == "ok" and content["execution_count"] == 1
    assert [m["content"]["text"] for m in msgs if m["msg_type"] == "stream"] == ["1"]
    assert [m["content"]["execution_count"] for m in msgs if m["msg_type"] == "execute_input"] == [1]
    content, _ = api.run("count")
    assert content["execution_count"] == 2


def test_print_and_stderr_reach_iopub(api):
    if api.runtime == "ipykernel":
        pytest.skip("ipykernel 7.4 sends a wrapper kernel's print() with an empty parent header: not in the cell")
    _, msgs = api.run("print hello")
    streams = [(m["content"]["name"], m["content"]["text"]) for m in msgs if m["msg_type"] == "stream"]
    assert ("".join(t for n, t in streams if n == "stdout"), "".join(t for n, t in streams if n == "stderr")) == ("hello\n", "to stderr\n")


def test_session_send_and_get_parent(api):
    msg_id = api.kc.execute("parent")
    reply_to(api.kc, msg_id, 20)
    msgs = iopub_until_idle(api.kc, msg_id, 20)
    assert [m["content"]["text"] for m in msgs if m["msg_type"] == "stream"] == [f"execute_request {msg_id}"]
    _, msgs = api.run("session shown")
    shown = [m for m in msgs if m["msg_type"] == "display_data"]
    assert [m["content"]["data"] for m in shown] == [{"text/plain": "shown"}]


def test_raw_input_and_getpass(api):
    kc = api.kc
    for code, prompt, password, expect in [("input", "say: ", False, "got yes"), ("password", "pw: ", True, "secret s3")]:
        msg_id = kc.execute(code, allow_stdin=True)
        req = input_request(kc, msg_id, 20)
        assert req["content"] == {"prompt": prompt, "password": password}
        answer(kc, req, expect.split()[1])
        assert reply_to(kc, msg_id, 20)["content"]["status"] == "ok"
        msgs = iopub_until_idle(kc, msg_id, 20)
        assert "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream") == expect
    if api.runtime == "kernelkit":  # (ipykernel 7.4 sends no reply when do_execute raises)
        content, msgs = api.run("input", allow_stdin=False)
        assert (content["status"], content["ename"]) == ("error", "StdinNotAllowed")


def test_log_goes_to_the_kernels_stderr_not_to_the_cell(api):
    out = api.out("log marker")
    assert out in ("Logger", "LoggerAdapter")


def test_keyboard_interrupt_inside_do_execute(api):
    kc = api.kc
    msg_id = kc.execute("sleep 30")
    # once it runs, interrupt as JupyterLab does (interrupt_mode signal)
    wait_for(kc, msg_id, lambda m: m["msg_type"] == "stream" and m["content"]["text"] == "sleeping")
    t0 = time.monotonic()
    api.km.interrupt_kernel()
    reply = reply_to(kc, msg_id, 20)
    assert time.monotonic() - t0 < 5
    assert reply["content"]["status"] == "abort"
    msgs = iopub_until_idle(kc, msg_id, 20)
    assert "interrupted" in "".join(m["content"].get("text", "") for m in msgs if m["msg_type"] == "stream")
    assert api.out("echo after") == "echo after"


def test_launch_instance_passes_config_and_extra_args(api):
    assert api.out("config") == "hi ['file1.txt']"


def test_complete_inspect_is_complete_history(api):
    kc = api.kc
    c = kc.complete("ap", 2, reply=True, timeout=20)["content"]
    assert (c["status"], c["matches"], c["cursor_start"], c["cursor_end"]) == ("ok", ["apple", "apricot"], 0, 2)
    i = kc.inspect("word", 2, 1, reply=True, timeout=20)["content"]
    assert i["found"] and i["data"] == {"text/plain": "word@2/1"}
    assert reply_to(kc, kc.is_complete("a \\"), 20)["content"]["status"] == "incomplete"
    assert reply_to(kc, kc.is_complete("a"), 20)["content"]["status"] == "complete"
    h = kc.history(hist_access_type="tail", n=3, reply=True, timeout=20)["content"]
    assert h["history"] == [[0, 1, "tail n=3"]]


def test_errors_from_do_execute(api):
    content, msgs = api.run("error boom")
    assert (content["status"], content["ename"], content["evalue"]) == ("error", "Oops", "boom")
    assert [m["content"]["ename"] for m in msgs if m["msg_type"] == "error"] == ["Oops"]
    assert api.out("echo still here") == "echo still here"


def test_comms_through_shell_handlers_and_the_comm_manager(api):
    kc = api.kc
    msg = kc.session.msg("comm_open", {"comm_id": "c1", "target_name": "ipyapi", "data": {"x": 1}})
    kc.shell_channel.send(msg)
    got = iopub_until_idle(kc, msg["header"]["msg_id"], 20)
    assert [m["content"]["data"] for m in got if m["msg_type"] == "comm_msg"] == [{"opened": {"x": 1}}]
    msg = kc.session.msg("comm_msg", {"comm_id": "c1", "data": {"ping": 2}})
    kc.shell_channel.send(msg)
    got = iopub_until_idle(kc, msg["header"]["msg_id"], 20)
    assert [m["content"]["data"] for m in got if m["msg_type"] == "comm_msg"] == [{"echo": {"ping": 2}}]
    info = kc.comm_info(reply=True, timeout=20)["content"] if hasattr(kc, "comm_info") else None
    if info is not None:
        assert info["comms"] == {"c1": {"target_name": "ipyapi"}}


# --------------------------------------------------------- kernelkit only
@pytest.fixture
def adopted(tmp_path):
    k = start(tmp_path, "kernelkit")
    yield k
    k.kc.stop_channels()
    k.km.shutdown_kernel(now=True)


def test_a_missing_attribute_is_named_as_not_provided(adopted):
    content, msgs = adopted.run("missing")
    assert content["status"] == "error" and content["ename"] == "NotProvided"
    assert "ApiKernel (ipykernel's Kernel).shell_streams is not provided by kernelkit's ipykernel layer" in content["evalue"]
    # the traceback is the kernel's: it ends in its do_execute, no kernelkit frame
    tb = "\n".join(content["traceback"])
    assert "ipyapi/__init__.py" in tb and "kernelkit/adopt/bridge.py" not in tb


def test_an_exception_escaping_do_execute_is_an_error_reply_with_the_kernels_frames(adopted):
    content, msgs = adopted.run("fail bad thing")
    assert (content["status"], content["ename"], content["evalue"]) == ("error", "ValueError", "bad thing")
    tb = "\n".join(content["traceback"])
    assert "ipyapi/__init__.py" in tb and "kernelkit" not in tb.replace("kernelkit/adopt/kernelbase", "")
    assert [m["content"]["ename"] for m in msgs if m["msg_type"] == "error"] == ["ValueError"]
    assert adopted.out("echo fine") == "echo fine"


def test_a_reply_that_is_not_a_dict_is_one_error_naming_the_method(adopted):
    content, _ = adopted.run("bad")
    assert content["status"] == "error"
    assert "ApiKernel.do_execute returned list, not a dict" in content["evalue"]


def test_an_interrupt_in_an_async_do_execute_is_an_error_reply(adopted):
    # (ipykernel 7.4 sends no reply at all here)
    kc = adopted.kc
    msg_id = kc.execute("asleep 30")
    wait_for(kc, msg_id, lambda m: m["msg_type"] == "stream" and m["content"]["text"] == "sleeping")
    adopted.km.interrupt_kernel()
    reply = reply_to(kc, msg_id, 20)
    assert (reply["content"]["status"], reply["content"]["ename"]) == ("error", "KeyboardInterrupt")
    assert adopted.out("echo after") == "echo after"


def test_subshells_are_refused_with_an_error_reply(adopted):
    kc = adopted.kc
    msg = kc.session.msg("create_subshell_request", {})
    kc.control_channel.send(msg)
    reply = reply_to(kc, msg["header"]["msg_id"], 20, channel="control")
    assert reply["content"]["status"] == "error"
    assert "does not support subshells" in reply["content"]["evalue"]


def test_other_ipykernel_modules_are_refused_by_name(tmp_path):
    code = ("from kernelkit.adopt.layer import install; install()\n"
            "import ipykernel.kernelbase\n"
            "try:\n    import ipykernel.zmqshell\nexcept ImportError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "ipykernel.zmqshell is not provided by kernelkit's ipykernel layer" in r.stdout


def test_the_layer_is_for_the_adopted_process_only(adopted):
    # a kernelkit kernel process does not get it (only python -m kernelkit.adopt installs it)
    r = subprocess.run([sys.executable, "-c", "import kernelkit.python.kernel, kernelkit.adopt.bridge, sys; "
                        "print('ipykernel' in sys.modules)"], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr
