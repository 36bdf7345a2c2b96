"""The bundled Python kernel, interactively: input() and getpass() through
stdin, interrupts (SIGINT and interrupt_request) of sleeping, looping and
waiting cells, restart and shutdown under jupyter_client's KernelManager, and
comms through the ``comm`` package (ipywidgets, a custom target).

Real kernel processes (``python -m kernelkit.python``), real ZeroMQ,
jupyter_client's BlockingKernelClient as the frontend. No sleeps in the test
process: every wait is on a message, with a timeout; ``time.sleep`` appears
only inside cells, to keep the kernel busy.
"""

import ast
import json
import subprocess
import sys
import time

import pytest
from support import (
    answer,
    assert_no_stdin,
    input_request,
    km_client,
    iopub_until,
    iopub_until_idle,
    reply_to,
    result_text,
    run_ok,
    start_kernel,
)

PY_KERNEL = [sys.executable, "-m", "kernelkit.python"]
# the whole interrupt round trip (send it, get the error reply) must be this quick
INTERRUPT_DEADLINE = 1.0


# ---------------------------------------------------------------- helpers
def wait_started(kc, msg_id, timeout=10.0):
    """Wait for the cell to print 'started' (so it is running, not queued)."""
    iopub_until(
        kc,
        msg_id,
        lambda m: m["msg_type"] == "stream" and "started" in m["content"]["text"],
        timeout,
        what=f"'started' from {msg_id}",
    )


def interrupt(proc, kc, mode):
    """Interrupt the kernel: SIGINT to its process group, or interrupt_request on control."""
    if mode == "signal":
        proc.interrupt()
        return None
    msg = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(msg)
    return msg["header"]["msg_id"]


def assert_interrupted(reply):
    content = reply["content"]
    assert content["status"] == "error", content
    assert content["ename"] == "KeyboardInterrupt", content


# ---------------------------------------------------------------- fixtures
class PythonKernel:
    def __init__(self, proc, kc):
        self.proc, self.kc = proc, kc


@pytest.fixture
def pykernel(tmp_path):
    """The bundled Python kernel on a connection file, with a private IPYTHONDIR."""
    ipython_dir = tmp_path / "ipython"
    ipython_dir.mkdir()
    proc, kc = start_kernel(tmp_path, PY_KERNEL, b"interactive-key", {"IPYTHONDIR": str(ipython_dir)}, ready_timeout=30)
    yield PythonKernel(proc, kc)
    kc.stop_channels()
    proc.kill()


@pytest.fixture
def jupyter_env(tmp_path, monkeypatch):
    """`kernelkit install` into a private prefix, found through JUPYTER_PATH.
    Returns a function making a spec with a given interrupt_mode (an edit of
    the installed kernel.json, as a user would do)."""
    prefix = tmp_path / "prefix"
    done = subprocess.run(
        [sys.executable, "-m", "kernelkit.cli", "install", "--prefix", str(prefix), "--name", "kk-interactive"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    kernels = prefix / "share" / "jupyter" / "kernels"
    installed = json.loads((kernels / "kk-interactive" / "kernel.json").read_text())
    assert installed["metadata"]["kernel_provisioner"]["provisioner_name"] == "kernelkit-handshake"
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    ipython_dir = tmp_path / "ipython"
    ipython_dir.mkdir()
    monkeypatch.setenv("IPYTHONDIR", str(ipython_dir))

    def spec(interrupt_mode="signal"):
        if interrupt_mode == installed["interrupt_mode"]:
            return "kk-interactive"
        name = f"kk-interactive-{interrupt_mode}"
        (kernels / name).mkdir()
        (kernels / name / "kernel.json").write_text(json.dumps({**installed, "interrupt_mode": interrupt_mode}))
        return name

    return spec


# ====================================================== input() and getpass()
def test_input_goes_through_stdin_and_returns_to_the_cell(pykernel):
    kc = pykernel.kc
    msg_id = kc.execute("name = input('Your name: ')\nprint('hello', name)\nname.upper()", allow_stdin=True)
    req = input_request(kc, msg_id)
    assert req["content"] == {"prompt": "Your name: ", "password": False}
    answer(kc, req, "Ada Lovelace")
    reply = reply_to(kc, msg_id)
    assert reply["content"]["status"] == "ok", reply["content"]
    out = iopub_until_idle(kc, msg_id)
    assert "".join(m["content"]["text"] for m in out if m["msg_type"] == "stream") == "hello Ada Lovelace\n"
    assert result_text(out) == repr("ADA LOVELACE")
    assert_no_stdin(kc)
    # the value stayed in the namespace
    _, out = run_ok(kc, "name")
    assert result_text(out) == repr("Ada Lovelace")


@pytest.mark.parametrize(
    "code, prompt",
    [("getpass.getpass('PIN: ')", "PIN: "), ("getpass.getpass()", "Password: ")],
    ids=["prompt", "default-prompt"],
)
def test_getpass_asks_with_the_password_flag(pykernel, code, prompt):
    kc = pykernel.kc
    msg_id = kc.execute(f"import getpass\n{code}", allow_stdin=True)
    req = input_request(kc, msg_id)
    assert req["content"] == {"prompt": prompt, "password": True}
    answer(kc, req, "s3cret")
    reply = reply_to(kc, msg_id)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert result_text(iopub_until_idle(kc, msg_id)) == repr("s3cret")
    assert_no_stdin(kc)


def test_input_without_allow_stdin_is_an_error_in_the_cell(pykernel):
    kc = pykernel.kc
    msg_id = kc.execute("x = input('never asked: ')", allow_stdin=False)
    reply = reply_to(kc, msg_id)
    content = reply["content"]
    assert content["status"] == "error", content
    assert content["ename"] and "stdin" in (content["ename"] + content["evalue"]).lower(), content
    errors = [m for m in iopub_until_idle(kc, msg_id) if m["msg_type"] == "error"]
    assert len(errors) == 1 and errors[0]["content"]["ename"] == content["ename"]
    assert_no_stdin(kc)  # no input_request went out
    # the kernel carries on: plain cells run, input works when allowed
    _, out = run_ok(kc, "6 * 7")
    assert result_text(out) == "42"
    msg_id = kc.execute("input('now: ')", allow_stdin=True)
    answer(kc, input_request(kc, msg_id), "allowed")
    assert reply_to(kc, msg_id)["content"]["status"] == "ok"
    assert result_text(iopub_until_idle(kc, msg_id)) == repr("allowed")


@pytest.mark.parametrize("mode", ["signal", "message"])
@pytest.mark.parametrize("func", ["input", "getpass"])
def test_interrupted_prompt_raises_keyboardinterrupt_and_a_late_answer_is_dropped(pykernel, func, mode):
    """Interrupt a cell waiting in input()/getpass(): KeyboardInterrupt in the
    cell. The user's late answer to the abandoned prompt (sent before the next
    cell, and again while the next prompt waits) never reaches the next prompt."""
    proc, kc = pykernel.proc, pykernel.kc
    call = "input" if func == "input" else "getpass.getpass"
    run_ok(kc, "import getpass")
    msg_id = kc.execute(f"old = {call}('old prompt: ')", allow_stdin=True)
    old = input_request(kc, msg_id)
    assert old["content"] == {"prompt": "old prompt: ", "password": func == "getpass"}
    t0 = time.monotonic()
    control_id = interrupt(proc, kc, mode)
    reply = reply_to(kc, msg_id, timeout=5)
    elapsed = time.monotonic() - t0
    assert_interrupted(reply)
    assert elapsed < INTERRUPT_DEADLINE, f"interrupting {func}() took {elapsed:.3f} s"
    if control_id is not None:
        assert reply_to(kc, control_id, timeout=5, channel="control")["content"]["status"] == "ok"
    errors = [m for m in iopub_until_idle(kc, msg_id) if m["msg_type"] == "error"]
    assert [e["content"]["ename"] for e in errors] == ["KeyboardInterrupt"]
    assert_no_stdin(kc)

    answer(kc, old, "LATE-1")  # the user typed it too late
    msg_id = kc.execute(f"{call}('new prompt: ')", allow_stdin=True)
    new = input_request(kc, msg_id)
    assert new["content"]["prompt"] == "new prompt: "
    answer(kc, old, "LATE-2")  # and once more, while the new prompt waits
    answer(kc, new, "fresh")
    reply = reply_to(kc, msg_id)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert result_text(iopub_until_idle(kc, msg_id)) == repr("fresh")
    assert_no_stdin(kc)
    # the interrupted assignment never happened; the kernel carries on
    _, out = run_ok(kc, "'old' in dir()")
    assert result_text(out) == "False"


# ============================================================ interrupts
BUSY_CELLS = {
    "sleep": "import time\nprint('started', flush=True)\ntime.sleep(100)",
    "loop": "print('started', flush=True)\nwhile True:\n    pass",
    "input": "input('waiting: ')",
}


@pytest.mark.parametrize("what", list(BUSY_CELLS))
@pytest.mark.parametrize("mode", ["signal", "message"])
def test_interrupt_within_a_second(pykernel, mode, what):
    proc, kc = pykernel.proc, pykernel.kc
    run_ok(kc, "counter = 1")
    msg_id = kc.execute(BUSY_CELLS[what], allow_stdin=True)
    if what == "input":
        assert input_request(kc, msg_id)["content"]["prompt"] == "waiting: "
    else:
        wait_started(kc, msg_id)
    t0 = time.monotonic()
    control_id = interrupt(proc, kc, mode)
    reply = reply_to(kc, msg_id, timeout=10)
    elapsed = time.monotonic() - t0
    assert_interrupted(reply)
    assert elapsed < INTERRUPT_DEADLINE, f"interrupting {what} by {mode} took {elapsed:.3f} s"
    if control_id is not None:
        control_reply = reply_to(kc, control_id, timeout=5, channel="control")
        assert control_reply["msg_type"] == "interrupt_reply"
        assert control_reply["content"]["status"] == "ok"
    iopub_until_idle(kc, msg_id)
    # the next cell runs normally, in the same namespace
    reply, out = run_ok(kc, "counter + 1")
    assert result_text(out) == "2"
    assert proc.proc.poll() is None


def test_sigint_landing_just_before_a_blocking_call_is_not_lost(pykernel):
    """The deterministic form of a race the tests above hit now and then (a
    lost interrupt: the cell sleeps on). CPython runs a Python signal handler
    only at its next check; a SIGINT that arrives after the last check before
    a blocking call (here: during a long C computation evaluating the argument
    of time.sleep) only trips a flag, and the call then blocks for its full
    time. A kernel that sends or receives one SIGINT and waits for the handler
    loses that interrupt. Another process sends the SIGINT, exactly as a
    launcher's interrupt does."""
    kc = pykernel.kc
    run_ok(
        kc,
        "import os, signal, subprocess, sys, time\n"
        "def sigint_soon():\n"
        "    # a process that sends SIGINT to this kernel once it has started\n"
        "    subprocess.Popen([sys.executable, '-S', '-c', f'import os; os.kill({os.getpid()}, {int(signal.SIGINT)})'])\n"
        "    return 0\n"
        "floats = [0.5] * 10_000_000\n",
    )
    # one expression: the SIGINT lands while `-1 in floats` runs (a few tenths
    # of a second of C code that never checks for signals), just before the sleep
    msg_id = kc.execute("time.sleep(100 + sigint_soon() + (-1 in floats) + (-1 in floats) + (-1 in floats))")
    reply = reply_to(kc, msg_id, timeout=5)
    assert_interrupted(reply)
    iopub_until_idle(kc, msg_id)
    _, out = run_ok(kc, "1 + 1")
    assert result_text(out) == "2"


@pytest.mark.parametrize("mode", ["signal", "message"])
def test_km_interrupt_kernel(jupyter_env, managers, mode):
    km = managers(jupyter_env(mode))
    assert km.kernel_spec.interrupt_mode == mode
    kc = km_client(km)
    try:
        msg_id = kc.execute(BUSY_CELLS["sleep"])
        wait_started(kc, msg_id, timeout=30)
        t0 = time.monotonic()
        km.interrupt_kernel()
        reply = reply_to(kc, msg_id, timeout=10)
        elapsed = time.monotonic() - t0
        assert_interrupted(reply)
        assert elapsed < INTERRUPT_DEADLINE, f"km.interrupt_kernel() ({mode}) took {elapsed:.3f} s"
        iopub_until_idle(kc, msg_id)
        _, out = run_ok(kc, "1 + 1")
        assert result_text(out) == "2"
    finally:
        kc.stop_channels()


# ====================================================== restart and shutdown
def test_km_restart_and_shutdown(jupyter_env, managers):
    km = managers(jupyter_env())
    kc = km_client(km)
    reply, _ = run_ok(kc, "secret = 41")
    old_session = reply["header"]["session"]
    old_process = km.provisioner.process
    old_ports = {k: v for k, v in km.get_connection_info().items() if k.endswith("_port")}
    _, out = run_ok(kc, "secret + 1")
    assert result_text(out) == "42"

    km.restart_kernel()
    # the old process was asked to shut down (restart) and exited by itself
    assert old_process.wait(10) == 0
    kc.stop_channels()
    # the connection file the manager rewrote matches its connection info
    with open(km.connection_file) as f:
        info = json.load(f)
    new_ports = {k: v for k, v in km.get_connection_info().items() if k.endswith("_port")}
    assert {k: v for k, v in info.items() if k.endswith("_port")} == new_ports
    assert set(new_ports) == set(old_ports)  # the ports may change; the client follows
    # reconnect as jupyter_client frontends do after a restart: a new client
    # from the manager (its current connection info, the same key)
    kc = km_client(km)
    try:
        msg_id = kc.execute("secret")
        reply = reply_to(kc, msg_id)
        new_session = reply["header"]["session"]
        assert new_session != old_session, "a restarted kernel must have a new session id"
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "NameError", reply["content"]
        iopub = iopub_until_idle(kc, msg_id)
        assert {m["header"]["session"] for m in iopub} == {new_session}
        reply, out = run_ok(kc, "secret = 'new'\nsecret")
        assert result_text(out) == repr("new")
        assert reply["header"]["session"] == new_session
    finally:
        kc.stop_channels()

    process = km.provisioner.process
    assert process is not old_process and process.poll() is None
    km.shutdown_kernel()
    assert not km.has_kernel
    assert process.wait(10) == 0, "shutdown must end the kernel with exit code 0"


# ================================================================ comms
def comm_messages(messages, msg_type):
    return [m for m in messages if m["msg_type"] == msg_type]


def send_shell(kc, msg_type, content):
    msg = kc.session.msg(msg_type, content)
    kc.shell_channel.send(msg)
    return msg["header"]["msg_id"]


def comm_info(kc, target_name=None):
    msg_id = kc.comm_info(target_name)
    reply = reply_to(kc, msg_id)
    assert reply["msg_type"] == "comm_info_reply" and reply["content"]["status"] == "ok", reply["content"]
    iopub_until_idle(kc, msg_id)
    return reply["content"]["comms"]


def test_ipywidgets_slider_round_trip(pykernel):
    kc = pykernel.kc
    reply, out = run_ok(kc, "import ipywidgets\nw = ipywidgets.IntSlider(value=3)\ndisplay(w)\nw.model_id", timeout=30)
    model_id = ast.literal_eval(result_text(out))
    opens = comm_messages(out, "comm_open")
    assert opens, f"no comm_open; got {[m['msg_type'] for m in out]}"
    assert {m["content"]["target_name"] for m in opens} == {"jupyter.widget"}
    slider = [m for m in opens if m["content"]["data"]["state"].get("_model_name") == "IntSliderModel"]
    assert len(slider) == 1, [m["content"]["data"]["state"].get("_model_name") for m in opens]
    content = slider[0]["content"]
    assert content["comm_id"] == model_id
    assert content["data"]["state"]["value"] == 3
    assert "buffer_paths" in content["data"]
    displays = comm_messages(out, "display_data")
    assert len(displays) == 1
    view = displays[0]["content"]["data"]["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == model_id

    # comm_info lists the widget comms; the target_name filter works
    every = comm_info(kc)
    assert {m["content"]["comm_id"] for m in opens} <= set(every)
    assert every[model_id] == {"target_name": "jupyter.widget"}
    assert set(comm_info(kc, "jupyter.widget")) == {m["content"]["comm_id"] for m in opens}
    assert comm_info(kc, "no.such.target") == {}

    # the frontend moves the slider
    msg_id = send_shell(
        kc, "comm_msg", {"comm_id": model_id, "data": {"method": "update", "state": {"value": 7}, "buffer_paths": []}}
    )
    iopub_until_idle(kc, msg_id)
    _, out = run_ok(kc, "w.value")
    assert result_text(out) == "7"

    # the kernel moves it
    _, out = run_ok(kc, "w.value = 9")
    updates = [
        m["content"]
        for m in comm_messages(out, "comm_msg")
        if m["content"]["comm_id"] == model_id and m["content"]["data"].get("method") == "update"
    ]
    assert len(updates) == 1, [m["content"] for m in out]
    assert updates[0]["data"]["state"] == {"value": 9}
    assert updates[0]["data"]["buffer_paths"] == []

    # closing from the kernel side: comm_close, and comm_info forgets it
    _, out = run_ok(kc, "w.close()")
    assert [m["content"]["comm_id"] for m in comm_messages(out, "comm_close")] == [model_id]
    assert model_id not in comm_info(kc)


def test_comm_open_for_an_unknown_target_is_closed(pykernel):
    kc = pykernel.kc
    msg_id = send_shell(kc, "comm_open", {"comm_id": "c-unknown", "target_name": "no.such.target", "data": {}})
    out = iopub_until_idle(kc, msg_id)
    closes = comm_messages(out, "comm_close")
    assert [m["content"]["comm_id"] for m in closes] == ["c-unknown"], [m["msg_type"] for m in out]
    assert "c-unknown" not in comm_info(kc)
    # the kernel carries on
    _, out = run_ok(kc, "1 + 1")
    assert result_text(out) == "2"


def test_custom_comm_target_registered_in_a_cell(pykernel):
    kc = pykernel.kc
    run_ok(
        kc,
        "import comm\n"
        "opened = []\n"
        "def handler(c, msg):\n"
        "    opened.append(c.comm_id)\n"
        "    c.send({'echo': msg['content']['data'], 'kernel': type(get_ipython().kernel).__name__})\n"
        "    c.on_msg(lambda m: c.send({'echo': m['content']['data']}))\n"
        "comm.get_comm_manager().register_target('echo', handler)\n",
    )
    msg_id = send_shell(kc, "comm_open", {"comm_id": "c-echo", "target_name": "echo", "data": {"x": 1}})
    out = iopub_until_idle(kc, msg_id)
    assert not comm_messages(out, "comm_close"), "a registered target must not be closed"
    sent = comm_messages(out, "comm_msg")
    assert [m["content"]["comm_id"] for m in sent] == ["c-echo"]
    assert sent[0]["content"]["data"] == {"echo": {"x": 1}, "kernel": "PythonKernel"}

    msg_id = send_shell(kc, "comm_msg", {"comm_id": "c-echo", "data": {"y": [1, 2]}})
    sent = comm_messages(iopub_until_idle(kc, msg_id), "comm_msg")
    assert [m["content"]["data"] for m in sent] == [{"echo": {"y": [1, 2]}}]

    assert comm_info(kc, "echo") == {"c-echo": {"target_name": "echo"}}
    assert "c-echo" not in comm_info(kc, "jupyter.widget")
    _, out = run_ok(kc, "opened")
    assert result_text(out) == repr(["c-echo"])

    # the frontend closes it; the kernel forgets it
    msg_id = send_shell(kc, "comm_close", {"comm_id": "c-echo", "data": {}})
    iopub_until_idle(kc, msg_id)
    assert comm_info(kc, "echo") == {}
