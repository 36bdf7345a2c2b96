"""The public way to extend a kernel: ``@handler`` declarations and the
start/stop hooks, on a real kernel process (tests/kernels/handler_kernel.py)."""

import os
import sys
from pathlib import Path

import pytest
from support import iopub_until_idle, reply_to, start_kernel

from kernelkit import Kernel, handler

HANDLER_KERNEL = [sys.executable, str(Path(__file__).parent / "kernels" / "handler_kernel.py")]


def send(kc, channel, msg_type, content):
    msg = kc.session.msg(msg_type, content)
    getattr(kc, f"{channel}_channel").send(msg)
    return msg["header"]["msg_id"]


def kinds(msgs):
    return [m["content"]["execution_state"] if m["msg_type"] == "status" else m["msg_type"] for m in msgs]


@pytest.fixture
def handler_kernel(tmp_path, request):
    env = dict(os.environ, HANDLER_KERNEL_STOP_FILE=str(tmp_path / "stopped"))
    if getattr(request, "param", None) == "louder":
        env["HANDLER_KERNEL_LOUDER"] = "1"
    proc, kc = start_kernel(tmp_path, argv=HANDLER_KERNEL, env=env)
    yield proc, kc, tmp_path
    kc.stop_channels()
    proc.kill()


@pytest.mark.parametrize("channel, thread", [("shell", "MainThread"), ("control", "kernelkit-control")])
def test_a_declared_handler_answers_on_its_channels_thread(handler_kernel, channel, thread):
    _, kc, _ = handler_kernel
    msg_id = send(kc, channel, "echo_request", {"x": 1})
    reply = reply_to(kc, msg_id, timeout=10, channel=channel)
    assert reply["msg_type"] == "echo_reply"
    assert reply["content"] == {"status": "ok", "echo": {"x": 1}, "thread": thread, "started_on": "MainThread"}
    out = iopub_until_idle(kc, msg_id, timeout=10)
    assert kinds(out) == ["busy", "stream", "idle"]
    assert out[1]["content"]["text"] == "echoing\n"


def test_a_failing_handler_gets_an_error_reply_and_the_kernel_goes_on(handler_kernel):
    _, kc, _ = handler_kernel
    msg_id = send(kc, "shell", "echo_request", {"fail": True})
    reply = reply_to(kc, msg_id, timeout=10)
    assert reply["content"]["status"] == "error"
    assert (reply["content"]["ename"], reply["content"]["evalue"]) == ("ValueError", "asked to fail")
    assert kinds(iopub_until_idle(kc, msg_id, timeout=10)) == ["busy", "idle"]
    again = send(kc, "shell", "echo_request", {"x": 2})
    assert reply_to(kc, again, timeout=10)["content"]["echo"] == {"x": 2}


def test_a_handler_that_returns_nothing_sends_no_reply(handler_kernel):
    _, kc, _ = handler_kernel
    msg_id = send(kc, "shell", "note", {"text": "this"})
    out = iopub_until_idle(kc, msg_id, timeout=10)
    assert kinds(out) == ["busy", "stream", "idle"]
    assert out[1]["content"]["text"] == "noted this\n"
    # the next reply on shell is the next request's: none was sent for the note
    ping = send(kc, "shell", "echo_request", {})
    assert reply_to(kc, ping, timeout=10)["parent_header"]["msg_id"] == ping
    assert not kc.shell_channel.msg_ready()


@pytest.mark.parametrize("handler_kernel", ["louder"], indirect=True)
def test_a_subclass_overrides_a_handler_by_name_or_by_declaring_the_type_again(handler_kernel):
    _, kc, _ = handler_kernel
    echo = send(kc, "shell", "echo_request", {"x": 1})
    assert reply_to(kc, echo, timeout=10)["content"] == {"status": "ok", "echo": "LOUDER"}
    note = send(kc, "shell", "note", {"text": "x"})
    assert reply_to(kc, note, timeout=10)["content"] == {"status": "ok", "noted": True}


def test_stop_runs_after_the_last_reply(handler_kernel):
    proc, kc, tmp_path = handler_kernel
    msg_id = kc.shutdown()
    assert reply_to(kc, msg_id, timeout=10, channel="control")["msg_type"] == "shutdown_reply"
    assert proc.proc.wait(10) == 0
    assert (tmp_path / "stopped").read_text() == "stopped on MainThread"


def test_the_table_is_inherited_and_lifecycle_types_cannot_be_taken_over():
    sys.path.insert(0, str(Path(__file__).parent / "kernels"))
    try:
        from handler_kernel import HandlerKernel, LouderKernel
    finally:
        sys.path.pop(0)

    assert Kernel.message_handlers["complete_request"] == "_complete_request"
    assert HandlerKernel.message_handlers["echo_request"] == "echo"
    assert LouderKernel.message_handlers["note"] == "other_note"
    assert "echo_request" not in Kernel.message_handlers
    with pytest.raises(TypeError, match="execute_request is served by kernelkit"):
        handler("execute_request")
