"""examples/bash_kernel.py: a wrapper kernel on the native API (state across
cells, streaming output, input through ``ask``, interrupts, completion)."""

import sys
import time

import pytest

from support import ROOT, answer, input_request, iopub_until_idle, reply_to, start_kernel

BASH_KERNEL = [sys.executable, str(ROOT / "examples" / "bash_kernel.py")]


@pytest.fixture
def bash(tmp_path):
    proc, kc = start_kernel(tmp_path, BASH_KERNEL)
    yield proc, kc
    kc.stop_channels()
    proc.kill()


def run(kc, code, **kw):
    msg_id = kc.execute(code, **kw)
    reply = reply_to(kc, msg_id, 30)["content"]
    msgs = iopub_until_idle(kc, msg_id, 30)
    return reply, "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream"), msgs


def test_cells_share_state_and_errors_are_reported(bash):
    _, kc = bash
    assert run(kc, "x=21; cd /tmp")[0]["status"] == "ok"
    reply, text, _ = run(kc, "echo $((x * 2)) $(pwd); echo oops >&2")
    assert reply["status"] == "ok" and text == "42 /tmp\noops\n"
    reply, text, msgs = run(kc, "ls /no/such/dir")
    assert (reply["status"], reply["ename"], reply["evalue"]) == ("error", "BashError", "exit status 2")
    assert "No such file or directory" in text and [m["msg_type"] for m in msgs].count("error") == 1


def test_output_streams_while_the_cell_runs(bash):
    _, kc = bash
    msg_id = kc.execute("echo first; sleep 1.5; echo second")
    t0 = time.monotonic()
    while True:
        m = kc.get_iopub_msg(timeout=10)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream":
            assert m["content"]["text"] == "first\n"
            assert time.monotonic() - t0 < 1.2  # before the cell ends
            break
    reply_to(kc, msg_id, 10)


def test_ask_is_an_input_request(bash):
    _, kc = bash
    msg_id = kc.execute('name=$(ask "who? "); echo "hi $name"', allow_stdin=True)
    req = input_request(kc, msg_id, 20)
    assert req["content"]["prompt"] == "who? "
    answer(kc, req, "ada")
    assert reply_to(kc, msg_id, 20)["content"]["status"] == "ok"
    assert "".join(m["content"]["text"] for m in iopub_until_idle(kc, msg_id, 20) if m["msg_type"] == "stream") == "hi ada\n"


def test_interrupt_stops_the_command_and_bash_lives_on(bash):
    _, kc = bash
    msg_id = kc.execute("y=7; echo go; sleep 30")
    while True:
        m = kc.get_iopub_msg(timeout=10)
        if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream":
            break
    t0 = time.monotonic()
    kc.control_channel.send(kc.session.msg("interrupt_request", {}))
    reply = reply_to(kc, msg_id, 10)["content"]
    assert (reply["status"], reply["ename"]) == ("error", "KeyboardInterrupt") and time.monotonic() - t0 < 5
    assert run(kc, "echo $y")[1] == "7\n"


def test_completion(bash):
    _, kc = bash
    c = kc.complete("ech", 3, reply=True, timeout=20)["content"]
    assert "echo" in c["matches"] and (c["cursor_start"], c["cursor_end"]) == (0, 3)
    c = kc.complete("ls /us", 6, reply=True, timeout=20)["content"]
    assert "/usr" in c["matches"] and c["cursor_start"] == 3
