"""Input through the stdin channel: the round trip, allow_stdin, and interrupts.

Every test drives a real exec test kernel with jupyter_client's
BlockingKernelClient. Answers are sent as a well-behaved frontend does, with
the input_request as their parent, except where a test says otherwise.
"""

import time

import pytest
from support import answer, assert_no_stdin, input_request, iopub_until_idle, reply_to, result_text, run_ok


# --------------------------------------------------------------- round trip
def test_input_round_trip(kernel):
    _, kc = kernel
    msg_id = kc.execute("kernel.input('Name: ')", allow_stdin=True)
    req = input_request(kc, msg_id)
    assert req["content"] == {"prompt": "Name: ", "password": False}
    answer(kc, req, "Ada Lovelace")
    reply = reply_to(kc, msg_id)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert result_text(iopub_until_idle(kc, msg_id)) == repr("Ada Lovelace")
    assert_no_stdin(kc)


def test_password_flag_reaches_the_frontend(kernel):
    _, kc = kernel
    msg_id = kc.execute("kernel.input('Password: ', password=True)", allow_stdin=True)
    req = input_request(kc, msg_id)
    assert req["content"] == {"prompt": "Password: ", "password": True}
    answer(kc, req, "s3cret")
    assert reply_to(kc, msg_id)["content"]["status"] == "ok"
    assert result_text(iopub_until_idle(kc, msg_id)) == repr("s3cret")


def test_several_prompts_in_one_cell(kernel):
    _, kc = kernel
    msg_id = kc.execute("a = kernel.input('first: ')\nb = kernel.input('second: ')\nkernel.stream(a + '|' + b)", allow_stdin=True)
    first = input_request(kc, msg_id)
    assert first["content"]["prompt"] == "first: "
    answer(kc, first, "one")
    second = input_request(kc, msg_id)
    assert second["content"]["prompt"] == "second: "
    assert second["header"]["msg_id"] != first["header"]["msg_id"]
    answer(kc, second, "two")
    assert reply_to(kc, msg_id)["content"]["status"] == "ok"
    streams = [m["content"]["text"] for m in iopub_until_idle(kc, msg_id) if m["msg_type"] == "stream"]
    assert streams == ["one|two"]


def test_answer_from_jupyter_client_input(kernel):
    """``KernelClient.input(value)`` (jupyter_client 8.10, used by
    jupyter_console and other jupyter_client-based frontends) sends an
    input_reply with an EMPTY parent_header. ipykernel takes the next reply
    on stdin as the answer; a kernel must accept this one too."""
    _, kc = kernel
    msg_id = kc.execute("kernel.input('Name: ')", allow_stdin=True)
    input_request(kc, msg_id)
    kc.input("Grace Hopper")
    reply = reply_to(kc, msg_id, timeout=5)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert result_text(iopub_until_idle(kc, msg_id)) == repr("Grace Hopper")


# --------------------------------------------------------------- allow_stdin
def test_input_without_allow_stdin_is_an_error_and_the_kernel_goes_on(kernel):
    _, kc = kernel
    msg_id = kc.execute("kernel.input('never asked: ')", allow_stdin=False)
    reply = reply_to(kc, msg_id)
    content = reply["content"]
    assert content["status"] == "error"
    assert content["ename"] == "StdinNotAllowed"
    assert "stdin" in content["evalue"].lower()
    messages = iopub_until_idle(kc, msg_id)
    errors = [m for m in messages if m["msg_type"] == "error"]
    assert len(errors) == 1 and errors[0]["content"]["ename"] == "StdinNotAllowed"
    assert_no_stdin(kc)
    # the kernel goes on, and input works again when allowed
    _, out = run_ok(kc, "6 * 7")
    assert result_text(out) == "42"
    msg_id = kc.execute("kernel.input('now: ')", allow_stdin=True)
    answer(kc, input_request(kc, msg_id), "allowed")
    assert reply_to(kc, msg_id)["content"]["status"] == "ok"
    assert result_text(iopub_until_idle(kc, msg_id)) == repr("allowed")


# ------------------------------------------------------ interrupt during input
def _interrupt(proc, kc, how):
    if how == "signal":
        proc.interrupt()
        return
    msg = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(msg)
    reply = reply_to(kc, msg["header"]["msg_id"], timeout=5, channel="control")
    assert reply["msg_type"] == "interrupt_reply"
    assert reply["content"]["status"] == "ok"


@pytest.mark.parametrize("how", ["control", "signal"])
def test_interrupt_abandons_the_prompt_and_a_late_answer_is_dropped(kernel, how):
    """Interrupt a cell waiting for input; its reply is an interrupt error.
    The late answer to the abandoned prompt (sent once before the next cell,
    and again while the next cell's prompt waits) must never reach the next
    prompt: it gets the new answer. Then a plain cell runs. Twice over."""
    proc, kc = kernel
    for round_ in range(2):
        msg_id = kc.execute(f"kernel.input('old prompt {round_}: ')", allow_stdin=True)
        old = input_request(kc, msg_id)
        _interrupt(proc, kc, how)
        t0 = time.monotonic()
        reply = reply_to(kc, msg_id, timeout=5)
        assert time.monotonic() - t0 < 2, "the interrupt took too long"
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt", reply["content"]
        iopub_until_idle(kc, msg_id)
        assert_no_stdin(kc)

        answer(kc, old, f"LATE-{round_}-a")  # the user typed it too late
        msg_id = kc.execute(f"kernel.input('new prompt {round_}: ')", allow_stdin=True)
        new = input_request(kc, msg_id)
        assert new["content"]["prompt"] == f"new prompt {round_}: "
        answer(kc, old, f"LATE-{round_}-b")  # and once more, while the new prompt waits
        answer(kc, new, f"new-{round_}")
        reply = reply_to(kc, msg_id)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert result_text(iopub_until_idle(kc, msg_id)) == repr(f"new-{round_}")
        assert_no_stdin(kc)

        _, out = run_ok(kc, f"{round_} + 40")
        assert result_text(out) == str(round_ + 40)


def test_input_request_waits_for_a_stdin_socket_that_connects_late(tmp_path):
    """A client's stdin socket may connect after its shell socket: the
    input_request is held for it (ROUTER_MANDATORY + retry), not dropped."""
    import json
    import uuid

    import zmq
    from jupyter_client.connect import write_connection_file
    from support import EXEC_KERNEL, KernelProcess

    from kernelkit.wire import Session

    fname, _ = write_connection_file(str(tmp_path / "kernel.json"), key=b"late-stdin")
    conn = json.loads(open(fname).read())
    proc = KernelProcess(EXEC_KERNEL, fname)
    session = Session(b"late-stdin")
    ctx = zmq.Context()
    ident = uuid.uuid4().hex.encode()
    url = lambda ch: f"tcp://127.0.0.1:{conn[ch + '_port']}"  # noqa: E731
    try:
        shell = ctx.socket(zmq.DEALER)
        shell.setsockopt(zmq.IDENTITY, ident)
        shell.connect(url("shell"))
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(url("iopub"))
        assert sub.poll(20_000), "no iopub_welcome"
        sub.recv_multipart()
        content = {"code": "kernel.stream('asking')\nv = kernel.input('late?')\nkernel.stream('got ' + v)",
                   "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": True, "stop_on_error": True}
        request = session.message("execute_request", content)
        shell.send_multipart(session.serialize(request, []))
        # 'asking' is flushed before the input_request is handed over: once we
        # see it, the kernel has tried to send the prompt to a stdin we lack
        deadline = time.monotonic() + 20
        while True:
            assert sub.poll(max(1, int(1000 * (deadline - time.monotonic())))), "no 'asking' output"
            msg = session.parse(sub.recv_multipart(), check_replay=False)
            if msg.msg_type == "stream" and msg.content["text"] == "asking":
                break
        stdin = ctx.socket(zmq.DEALER)
        stdin.setsockopt(zmq.IDENTITY, ident)
        stdin.connect(url("stdin"))
        assert stdin.poll(5_000), "the input_request was lost"
        prompt = session.parse(stdin.recv_multipart())
        assert prompt.msg_type == "input_request" and prompt.content["prompt"] == "late?"
        stdin.send_multipart(session.serialize(session.message("input_reply", {"value": "yes"}, parent=prompt), []))
        assert shell.poll(10_000), "no execute_reply"
        reply = session.parse(shell.recv_multipart())
        assert reply.content["status"] == "ok"
    finally:
        ctx.destroy(linger=0)
        proc.kill()
