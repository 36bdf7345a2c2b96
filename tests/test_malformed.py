"""Malformed and unexpected input on every socket: dropped (with a rate-limited
log line) or answered with an error reply; the kernel never stops serving."""

import json

import pytest
import zmq

from kernelkit.wire import DELIMITER
from rawkernel import RawKernel, collect_until, idle_for, recv, reply_to


@pytest.fixture
def rk(tmp_path):
    k = RawKernel(tmp_path)
    try:
        k.iopub = k.start_and_wait()
        yield k
    finally:
        k.close()


def _header(rk, msg_type="kernel_info_request", **changes):
    h = rk.session.header(msg_type)
    h.update(changes)
    return h


# Each builder returns (msg_id, frames): the msg_id a reply would carry if the
# kernel (wrongly) accepted the message as a kernel_info_request.
def no_delimiter(rk):
    msg_id, frames = rk.request_frames("kernel_info_request")
    return msg_id, [f for f in frames if f != DELIMITER]


def too_few_frames(rk):
    msg_id, frames = rk.request_frames("kernel_info_request")
    return msg_id, frames[:4]  # delimiter, signature, header, parent


def bad_signature(rk):
    msg_id, frames = rk.request_frames("kernel_info_request")
    frames[1] = bytes(reversed(frames[1]))
    return msg_id, frames


def unsigned(rk):
    msg_id, frames = rk.request_frames("kernel_info_request")
    frames[1] = b""
    return msg_id, frames


def header_not_json(rk):
    return None, rk.signed(b'{"msg_id": "x", "msg_type": "kernel_info_request"')


def header_a_list(rk):
    return None, rk.signed(json.dumps(["kernel_info_request"]).encode())


def header_not_utf8(rk):
    return None, rk.signed(b'{"msg_id": "\xff\xfe", "msg_type": "kernel_info_request"}')


def missing_msg_type(rk):
    h = _header(rk)
    del h["msg_type"]
    return h["msg_id"], rk.signed(json.dumps(h).encode())


def msg_type_not_a_string(rk):
    h = _header(rk, msg_type=["kernel_info_request"])
    return h["msg_id"], rk.signed(json.dumps(h).encode())


def missing_msg_id(rk):
    h = _header(rk)
    del h["msg_id"]
    return None, rk.signed(json.dumps(h).encode())


def empty_message(rk):
    return None, [b""]


def only_delimiter(rk):
    return None, [DELIMITER]


CASES = [
    no_delimiter,
    too_few_frames,
    bad_signature,
    unsigned,
    header_not_json,
    header_a_list,
    header_not_utf8,
    missing_msg_type,
    msg_type_not_a_string,
    missing_msg_id,
    empty_message,
    only_delimiter,
]


def _assert_answers(rk, sock, stray_ids=()):
    """A good kernel_info_request on ``sock`` is answered, and nothing before
    its reply answers one of ``stray_ids`` (requests on one socket are
    answered in order, so a reply to an earlier message would come first)."""
    msg_id = rk.send(sock, "kernel_info_request")
    reply, before = reply_to(rk, sock, msg_id)
    assert reply.msg_type == "kernel_info_reply" and reply.content["status"] == "ok"
    assert not before, f"unexpected replies: {before}"
    assert not {r.parent_id for r in before} & set(stray_ids)
    return collect_until(rk, rk.iopub, idle_for(msg_id), 5)


def _hb_echoes(rk):
    hb = rk.socket(zmq.REQ, "hb")
    hb.send(b"ping")
    assert hb.poll(2000), "heartbeat did not answer"
    assert hb.recv() == b"ping"
    rk.forget(hb)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_malformed_message_is_dropped_on_every_socket(rk, case):
    shell, control, stdin = rk.dealer("shell"), rk.dealer("control"), rk.dealer("stdin")
    sent = []
    for sock in (shell, control, stdin):
        msg_id, frames = case(rk)
        sock.send_multipart(frames)
        sent.append(msg_id)
    _assert_answers(rk, shell, sent)
    _assert_answers(rk, control, sent)
    assert recv(rk, stdin, 0.1) is None
    _hb_echoes(rk)
    assert rk.proc.proc.poll() is None, rk.proc.stderr


def test_replayed_message_gets_one_reply(rk):
    shell, control = rk.dealer("shell"), rk.dealer("control")
    for sock in (shell, control):
        msg_id, frames = rk.request_frames("kernel_info_request")
        sock.send_multipart(frames)
        sock.send_multipart(frames)  # the very same signed frames again
        first, _ = reply_to(rk, sock, msg_id)
        assert first.content["status"] == "ok"
        # a later request is answered, and the replay was not (in order)
        _assert_answers(rk, sock, [msg_id])
    # replayed across sockets: shell's message sent again on control
    msg_id, frames = rk.request_frames("kernel_info_request")
    shell.send_multipart(frames)
    reply_to(rk, shell, msg_id)
    control.send_multipart(frames)
    _assert_answers(rk, control, [msg_id])


def test_a_message_replayed_beyond_the_replay_window_is_not_run_again(rk):
    """The window remembers the last REPLAY_WINDOW signatures; a message
    replayed after that many newer ones used to be run again. Its date is not
    newer than what its session sent before the window forgot it: refused."""
    from kernelkit.wire.signing import REPLAY_WINDOW

    shell = rk.dealer("shell")
    msg_id, cell = rk.request_frames("execute_request", {"code": "kernel.stream('ran\\n')"})
    shell.send_multipart(cell)
    got = collect_until(rk, rk.iopub, idle_for(msg_id), 10)
    assert [r.content["text"] for r in got if r.msg_type == "stream"] == ["ran\n"]
    reply, _ = reply_to(rk, shell, msg_id)
    assert reply.content["status"] == "ok"
    rk.forget(rk.iopub)  # (so that nobody holds the flood's output back)
    # REPLAY_WINDOW newer messages, from the same session (answered in order)
    for _ in range(REPLAY_WINDOW):
        last, frames = rk.request_frames("kernel_info_request")
        shell.send_multipart(frames)
    while True:
        assert shell.poll(30_000), "the kernel stopped answering"
        if last.encode() in shell.recv_multipart()[3]:  # (the parent header)
            break
    watch = rk.sub()
    assert recv(rk, watch, 5).msg_type == "iopub_welcome"
    shell.send_multipart(cell)
    rk.iopub = watch
    after = _assert_answers(rk, shell, [msg_id])
    assert not [r for r in after if r.parent_id == msg_id], "the replayed cell ran again"
    assert "not newer than one of its session" in rk.stderr_after_exit()


def test_a_message_dated_before_the_kernel_started_is_refused_within_the_clock_skew_allowed(rk):
    """A restart keeps the key, so a message captured before it would be new
    to the fresh window: one dated more than CLOCK_SKEW before the kernel
    started is refused; a sender whose clock is behind by less is answered."""
    from datetime import datetime, timedelta, timezone

    from kernelkit.wire.signing import CLOCK_SKEW

    shell = rk.dealer("shell")
    now = datetime.now(timezone.utc)
    old_id, old = rk.request_frames("kernel_info_request", header_extra={"date": (now - timedelta(seconds=CLOCK_SKEW + 60)).isoformat()})
    shell.send_multipart(old)
    behind_id, behind = rk.request_frames("kernel_info_request", header_extra={"date": (now - timedelta(seconds=CLOCK_SKEW - 60)).isoformat()})
    shell.send_multipart(behind)
    reply, before = reply_to(rk, shell, behind_id)
    assert reply.content["status"] == "ok"
    assert not before, f"the old message was answered: {before}"
    assert "before the kernel started" in rk.stderr_after_exit()


def _invalid_execute_requests(rk):
    """execute_requests with a readable header and unusable content."""
    out = []
    h = _header(rk, "execute_request")
    out.append(("content not JSON", h["msg_id"], rk.signed(json.dumps(h).encode(), content=b"{code: 1")))
    h = _header(rk, "execute_request")
    out.append(("content a list", h["msg_id"], rk.signed(json.dumps(h).encode(), content=b'["x = 1"]')))
    for label, content in [("no code", {"silent": False}), ("code an int", {"code": 5}), ("silent a string", {"code": "1", "silent": "no"})]:
        msg_id, frames = rk.request_frames("execute_request", content)
        out.append((label, msg_id, frames))
    h = _header(rk, "execute_request")
    out.append(("parent_header not JSON", h["msg_id"], rk.signed(json.dumps(h).encode(), content=b'{"code": "1"}', parent=b"{")))
    return out


def test_invalid_content_gets_an_error_reply_with_busy_and_idle(rk):
    shell = rk.dealer("shell")
    for label, msg_id, frames in _invalid_execute_requests(rk):
        shell.send_multipart(frames)
        reply, others = reply_to(rk, shell, msg_id)
        assert not others, (label, others)
        assert reply.msg_type == "execute_reply", label
        assert reply.content["status"] == "error", (label, reply.content)
        assert reply.content.get("ename") and "evalue" in reply.content, (label, reply.content)
        assert reply.prefix == [], "the reply went back with the request's identities"
        got = collect_until(rk, rk.iopub, idle_for(msg_id), 5)
        mine = [r.content["execution_state"] for r in got if r.msg_type == "status" and r.parent_id == msg_id]
        assert mine == ["busy", "idle"], (label, got)
        assert not [r for r in got if r.parent_id == msg_id and r.msg_type != "status"], (label, got)
    _assert_answers(rk, shell)
    # nothing was run: the execution count never moved
    msg_id = rk.send(shell, "execute_request", {"code": "1"})
    reply, _ = reply_to(rk, shell, msg_id)
    assert reply.content["status"] == "ok" and reply.content["execution_count"] == 1


def test_invalid_content_on_control_gets_an_error_reply(rk):
    """shutdown_request with a non-boolean restart: an error reply, and the
    kernel does not shut down."""
    control = rk.dealer("control")
    msg_id = rk.send(control, "shutdown_request", {"restart": "yes"})
    reply, _ = reply_to(rk, control, msg_id)
    assert reply.msg_type == "shutdown_reply" and reply.content["status"] == "error"
    collect_until(rk, rk.iopub, idle_for(msg_id), 5)
    _assert_answers(rk, control)
    assert rk.proc.proc.poll() is None


def test_unknown_message_type_is_ignored(rk):
    shell, control = rk.dealer("shell"), rk.dealer("control")
    for sock in (shell, control):
        msg_id = rk.send(sock, "frobnicate_request", {"zap": 1})
        assert recv(rk, sock, 1.0) is None, "an unknown message type was answered"
        _assert_answers(rk, sock, [msg_id])
    # an unexpected (well-formed) message on stdin: ignored as well
    stdin = rk.dealer("stdin")
    rk.send(stdin, "frobnicate_request")
    rk.send(stdin, "input_reply", {"value": "nobody asked"})
    _assert_answers(rk, shell)


def test_garbage_on_iopub_is_ignored(rk):
    """Odd subscription frames from an XSUB peer: no welcome for a topic nobody
    subscribed to, nothing for non-UTF-8 topics, and the kernel goes on."""
    # a SUB with a non-UTF-8 topic is not welcomed (and breaks nothing)
    odd = rk.sub(b"\x01\xff\xfe")
    xsub = rk.socket(zmq.XSUB, "iopub")
    for frames in (
        [b"\x01\xff\xfe"],  # subscribe to a non-UTF-8 topic
        [b"\x00"],  # unsubscribe from b''
        [b"\x00\xff"],  # unsubscribe, non-UTF-8
        [b"plain garbage"],  # not a subscription at all
        [b""],  # empty frame
        [b"garbage", b"\x01evil"],  # multipart: only a first frame can subscribe
        [b"\x02\x01", b"\x01evil", b"\x00"],
    ):
        xsub.send_multipart(frames)
    # a real subscription from the same peer (so processed after the garbage)
    xsub.send(b"\x01probe")
    got = collect_until(rk, rk.iopub, lambda r: r.msg_type == "iopub_welcome" and r.content["subscription"] == "probe", 5)
    # anything the kernel made of the garbage has left by the time a request
    # made now has been answered and its idle arrived
    got += _assert_answers(rk, rk.dealer("shell"))
    welcomes = [r.content["subscription"] for r in got if r.msg_type == "iopub_welcome"]
    assert welcomes == ["probe"], f"welcomes sent for {welcomes}"
    assert recv(rk, odd, 0.1) is None
    _hb_echoes(rk)


def test_odd_frames_on_heartbeat_are_echoed(rk):
    dealer = rk.socket(zmq.DEALER, "hb")
    for frames in ([b""], [b"a", b"", b"b\x00c"], [b"\xff" * 100_000], [b""] * 20, [DELIMITER, b"x"]):
        dealer.send_multipart(frames)
        assert dealer.poll(2000), f"no echo for {frames[:3]}"
        assert dealer.recv_multipart() == frames
    # a ROUTER peer's messages go nowhere useful, but must not break it
    router = rk.socket(zmq.ROUTER, "hb")
    router.send_multipart([b"nobody", b"x"])
    _hb_echoes(rk)


def _bad_frames(rk, i):
    builders = [no_delimiter, too_few_frames, bad_signature, unsigned, header_not_json, header_a_list, missing_msg_type, empty_message]
    return builders[i % len(builders)](rk)[1]


def test_storm_of_malformed_messages_is_survived_and_logged_sparingly(rk):
    shell, control, stdin = rk.dealer("shell"), rk.dealer("control"), rk.dealer("stdin")
    hb = rk.socket(zmq.DEALER, "hb")
    xsub = rk.socket(zmq.XSUB, "iopub")
    socks = (shell, control, stdin)
    for i in range(1000):
        socks[i % 3].send_multipart(_bad_frames(rk, i))
        if i % 10 == 0:
            xsub.send(b"\x00\xff" if i % 20 else b"\x01\xfe")
            hb.send_multipart([b"storm", str(i).encode()])
    _assert_answers(rk, shell)
    _assert_answers(rk, control)
    _hb_echoes(rk)
    echoes = 0
    while hb.poll(1000):
        hb.recv_multipart()
        echoes += 1
        if echoes == 100:
            break
    assert echoes == 100
    stderr = rk.stderr_after_exit()
    lines = stderr.splitlines()
    assert lines, "nothing was logged about 1000 malformed messages"
    assert len(lines) < 100, f"{len(lines)} log lines for 1000 bad messages:\n" + "\n".join(lines[:20])


def test_storm_of_unknown_message_types_is_logged_sparingly(rk):
    """Well-formed messages of unknown types are just as easy to flood with."""
    shell, control, stdin = rk.dealer("shell"), rk.dealer("control"), rk.dealer("stdin")
    socks = (shell, control, stdin)
    for i in range(1000):
        rk.send(socks[i % 3], "frobnicate_request", {"i": i})
    _assert_answers(rk, shell)
    _assert_answers(rk, control)
    stderr = rk.stderr_after_exit()
    lines = stderr.splitlines()
    assert lines, "nothing was logged about 1000 unknown messages"
    assert len(lines) < 100, f"{len(lines)} log lines for 1000 unknown messages:\n" + "\n".join(lines[:5])


# -- correctly signed, hostile: each of these once killed the I/O thread ------

_DEEP = b"[" * 1100 + b"]" * 1100


def _signed_request(rk, msg_type, content: bytes, parent: bytes = b"{}", metadata: bytes = b"{}", **header):
    h = _header(rk, msg_type, **header)
    return h["msg_id"], rk.signed(json.dumps(h).encode(), content=content, parent=parent, metadata=metadata)


def _answered_with_error(rk, sock, msg_id, frames, words):
    """``frames`` get an error reply (busy before, idle after) naming ``words``."""
    sock.send_multipart(frames)
    reply, others = reply_to(rk, sock, msg_id)
    assert not others, others
    assert reply.content["status"] == "error" and words in reply.content["evalue"], reply.content
    got = collect_until(rk, rk.iopub, idle_for(msg_id), 5)
    assert [r.content["execution_state"] for r in got if r.parent_id == msg_id] == ["busy", "idle"], got
    return reply


@pytest.mark.parametrize("value", [["a"], {"a": 1}, 5], ids=["list", "dict", "int"])
def test_subshell_id_of_the_wrong_type_gets_an_error_reply(rk, value):
    shell = rk.dealer("shell")
    for msg_type, content in (("execute_request", b'{"code": "1"}'), ("kernel_info_request", b"{}")):
        msg_id, frames = _signed_request(rk, msg_type, content, subshell_id=value)
        reply = _answered_with_error(rk, shell, msg_id, frames, "'subshell_id' must be a string")
        # the reply names no subshell (it has none)
        assert "subshell_id" not in reply.msg.header, reply.msg.header
    _assert_answers(rk, shell)
    _assert_answers(rk, rk.dealer("control"))


@pytest.mark.parametrize("part", ["parent", "metadata", "content"])
def test_json_nested_too_deep_gets_an_error_reply(rk, part):
    """orjson refuses more than 1024 levels; the stdlib path refuses the same
    (it used to raise RecursionError on the I/O thread)."""
    shell = rk.dealer("shell")
    parts = {"content": b'{"code": "1", "x": ' + _DEEP + b"}", "parent": b"{}", "metadata": b"{}"}
    parts[part] = b'{"code": "1", "x": ' + _DEEP + b"}"
    msg_id, frames = _signed_request(rk, "execute_request", **parts)
    _answered_with_error(rk, shell, msg_id, frames, "nested more than 1024 levels")
    _assert_answers(rk, shell)


def test_json_nested_too_deep_in_the_header_is_dropped(rk):
    shell = rk.dealer("shell")
    h = json.dumps(_header(rk, "kernel_info_request")).encode()
    shell.send_multipart(rk.signed(h[:-1] + b', "x": ' + _DEEP + b"}"))
    _assert_answers(rk, shell)
    assert "nested more than 1024 levels" in rk.stderr_after_exit()


def test_input_reply_whose_parent_msg_id_is_not_a_string_is_dropped(rk):
    # (one identity on both, as jupyter_client does: prompts go to the stdin
    # socket of the shell request's sender)
    shell = rk.socket(zmq.DEALER, "shell", routing_id=b"asker")
    stdin = rk.socket(zmq.DEALER, "stdin", routing_id=b"asker")
    h = _header(rk, "execute_request")
    shell.send_multipart(rk.signed(json.dumps(h).encode(), content=json.dumps({"code": "kernel.input('? ')", "allow_stdin": True}).encode()))
    prompt = recv(rk, stdin, 10)
    assert prompt is not None and prompt.msg_type == "input_request"
    _, bad = _signed_request(rk, "input_reply", b'{"value": "no"}', parent=json.dumps({"msg_id": [prompt.msg.msg_id]}).encode())
    stdin.send_multipart(bad)
    # the prompt still waits, and a proper answer reaches it
    _, good = _signed_request(rk, "input_reply", b'{"value": "yes"}', parent=json.dumps(prompt.msg.header).encode())
    stdin.send_multipart(good)
    got = collect_until(rk, rk.iopub, idle_for(h["msg_id"]), 10)
    assert [r.content["data"]["text/plain"] for r in got if r.msg_type == "execute_result"] == ["'yes'"]
    assert reply_to(rk, shell, h["msg_id"])[0].content["status"] == "ok"
    _assert_answers(rk, shell)


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_lone_surrogate_in_code_runs_and_fails_as_python_does(rk, busy):
    """Code with a lone surrogate (JSON "\\ud800"): its execute_input carries
    it (escaped), Python refuses to compile it, the reply says so. Announced
    by the I/O thread when the kernel is idle, by the main thread when busy."""
    shell = rk.dealer("shell")
    if busy:
        first = rk.send(shell, "execute_request", {"code": "time.sleep(0.5)"})
    msg_id, frames = _signed_request(rk, "execute_request", b'{"code": "\\ud800"}')
    shell.send_multipart(frames)
    if busy:
        assert reply_to(rk, shell, first)[0].content["status"] == "ok"
    reply, _ = reply_to(rk, shell, msg_id)
    assert reply.content["status"] == "error" and reply.content["ename"] == "UnicodeEncodeError", reply.content
    got = collect_until(rk, rk.iopub, idle_for(msg_id), 5)
    inputs = [r.content["code"] for r in got if r.msg_type == "execute_input" and r.parent_id == msg_id]
    assert inputs == ["\ud800"]
    # and output with a lone surrogate arrives as it was written
    msg_id = rk.send(shell, "execute_request", {"code": "kernel.stream('a\\ud800b')"})
    got = collect_until(rk, rk.iopub, idle_for(msg_id), 5)
    assert [r.content["text"] for r in got if r.msg_type == "stream"] == ["a\ud800b"]
    assert reply_to(rk, shell, msg_id)[0].content["status"] == "ok"
    _assert_answers(rk, shell)
    _assert_answers(rk, rk.dealer("control"))


@pytest.mark.parametrize("msg_type,content", [
    ("comm_open", {"comm_id": "c1", "target_name": "t", "data": {}}),
    ("comm_msg", {"comm_id": "c1", "data": {}}),
    ("comm_close", {"comm_id": "c1", "data": {}}),
])
def test_comm_message_for_an_unknown_subshell_runs_on_the_main_shell(rk, msg_type, content):
    """A comm is the kernel's, not a subshell's: a comm message naming no
    subshell (JupyterLab's comm_close on one it has just deleted) is handled
    by the main shell; it has no reply, not even an error one: busy, idle."""
    shell = rk.dealer("shell")
    msg_id, frames = _signed_request(rk, msg_type, json.dumps(content).encode(), subshell_id="no-such-subshell")
    shell.send_multipart(frames)
    got = collect_until(rk, rk.iopub, idle_for(msg_id), 5)
    # (the main shell handles it: a comm_open for an unknown target is closed)
    handled = ["comm_close"] if msg_type == "comm_open" else []
    assert [r.msg_type for r in got if r.parent_id == msg_id] == ["status", *handled, "status"], got
    _assert_answers(rk, shell, [msg_id])  # (fails on any reply to the comm message)
    assert "unknown subshell_id" not in rk.stderr_after_exit()
