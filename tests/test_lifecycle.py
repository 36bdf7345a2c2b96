"""How a kernel ends when nobody asks it nicely: SIGTERM, and its parent's death.

SIGTERM ends the kernel promptly without interrupting the running cell (no
KeyboardInterrupt, no error reply); the process that started the kernel dying
ends the kernel within 2 s on every start path, subshells running or not.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from jupyter_client import BlockingKernelClient

from support import EXEC_KERNEL, HERE, start_kernel

PYTHON_KERNEL = [sys.executable, "-m", "kernelkit.python"]
PARENT = [sys.executable, str(HERE / "kernels" / "parent.py")]


def state(pid):
    """The process's state letter from /proc (Z: exited, not yet reaped), or None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def wait_ended(pid, timeout):
    """Seconds until ``pid`` has exited (gone or a zombie); fails after ``timeout``."""
    start = time.monotonic()
    while state(pid) not in (None, "Z"):
        if time.monotonic() - start > timeout:
            pytest.fail(f"process {pid} still running {timeout} s later")
        time.sleep(0.02)
    return time.monotonic() - start


def wait_for_stream(kc, msg_id, text, timeout=20):
    """Every iopub message of ``msg_id`` up to the stream that prints ``text``."""
    seen = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(msg)
        if msg["msg_type"] == "stream" and text in msg["content"]["text"]:
            return seen


def drain(channel, seconds=1.0):
    msgs = []
    try:
        while True:
            msgs.append(channel.get_msg(timeout=seconds))
    except Exception:  # queue.Empty
        return msgs


@pytest.mark.parametrize("argv", [PYTHON_KERNEL, EXEC_KERNEL], ids=["python", "exec"])
def test_sigterm_ends_promptly_without_interrupting_the_cell(tmp_path, argv):
    proc, kc = start_kernel(tmp_path, argv=argv, ready_timeout=30)
    try:
        emit = "print('started', flush=True)" if argv is PYTHON_KERNEL else "kernel.stream('started\\n')"
        msg_id = kc.execute(f"{emit}\nimport time\ntime.sleep(30)")
        wait_for_stream(kc, msg_id, "started")
        proc.proc.send_signal(signal.SIGTERM)
        assert wait_ended(proc.proc.pid, 2.0) < 2.0
        assert proc.proc.wait(5) == 128 + signal.SIGTERM
        # the running cell was not interrupted: no reply, no error, no traceback
        replies = drain(kc.shell_channel)
        assert not [m for m in replies if m["parent_header"].get("msg_id") == msg_id], replies
        later = [m for m in drain(kc.iopub_channel) if m["parent_header"].get("msg_id") == msg_id]
        assert not [m for m in later if m["msg_type"] == "error"], later
        assert "Traceback" not in json.dumps(later)
        assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr, proc.stderr
    finally:
        kc.stop_channels()
        proc.kill()


def test_sigterm_while_idle(tmp_path):
    proc, kc = start_kernel(tmp_path)
    try:
        proc.proc.send_signal(signal.SIGTERM)
        assert wait_ended(proc.proc.pid, 2.0) < 2.0
        assert proc.proc.wait(5) == 128 + signal.SIGTERM
        assert "Traceback" not in proc.stderr, proc.stderr
    finally:
        kc.stop_channels()
        proc.kill()


@contextlib.contextmanager
def through_parent(mode, argv):
    """A parent process that starts the kernel; yields (orphan, client), where
    ``orphan()`` kills the parent and returns how long the kernel outlived it."""
    parent = subprocess.Popen([*PARENT, mode, *argv, "-f", "{connection_file}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = parent.stdout.readline()
    if not line:
        parent.kill()
        pytest.fail(f"the parent process did not start the kernel (exit code {parent.wait(10)})")
    started = json.loads(line)
    pid = started["pid"]

    def orphan():
        parent.kill()
        parent.wait(10)
        return wait_ended(pid, 2.0)

    kc = BlockingKernelClient()
    kc.load_connection_info(started["connection_info"])
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=30)
        yield orphan, kc
    finally:
        kc.stop_channels()
        parent.kill()
        if state(pid) not in (None, "Z"):
            os.kill(pid, signal.SIGKILL)


def create_subshell(kc):
    msg = kc.session.msg("create_subshell_request", {})
    kc.control_channel.send(msg)
    while True:
        reply = kc.get_control_msg(timeout=10)
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return reply["content"]["subshell_id"]


def execute_in(kc, code, subshell_id):
    msg = kc.session.msg("execute_request", {"code": code, "silent": False, "store_history": True,
                                             "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
    msg["header"]["subshell_id"] = subshell_id
    kc.shell_channel.send(msg)
    return msg["header"]["msg_id"]


@pytest.mark.parametrize("mode", ["classic", "A", "B"])
def test_kernel_exits_when_its_parent_dies(mode):
    with through_parent(mode, PYTHON_KERNEL) as (orphan, kc):
        assert kc.execute_interactive("1 + 1", timeout=30)["content"]["status"] == "ok"
        assert orphan() < 2.0


def test_kernel_exits_when_its_parent_dies_with_subshells_running():
    with through_parent("B", EXEC_KERNEL) as (orphan, kc):
        sub = create_subshell(kc)
        waiting = {execute_in(kc, "kernel.stream('started\\n'); time.sleep(30)", sid) for sid in (None, sub)}
        while waiting:  # both started, in whichever order their output comes
            msg = kc.get_iopub_msg(timeout=20)
            if msg["msg_type"] == "stream" and "started" in msg["content"]["text"]:
                waiting.discard(msg["parent_header"].get("msg_id"))
        assert orphan() < 2.0
