"""Control channel, interrupts, shutdown, errors, stop_on_error, busy/idle.

Every test drives a real exec test kernel with jupyter_client's
BlockingKernelClient. ``time.sleep`` appears only inside cells, to keep the
kernel busy.
"""

import time

import pytest
import zmq
from support import QueuedBehind, answer, input_request, iopub_until, iopub_until_idle, reply_to, result_text, run_ok, start_kernel


def kind(msg):
    return msg["content"]["execution_state"] if msg["msg_type"] == "status" else msg["msg_type"]


def control(kc, msg_type, content=None):
    msg = kc.session.msg(msg_type, content or {})
    kc.control_channel.send(msg)
    return msg["header"]["msg_id"]


def shell(kc, msg_type, content=None):
    msg = kc.session.msg(msg_type, content or {})
    kc.shell_channel.send(msg)
    return msg["header"]["msg_id"]


def started(kc, msg_id, timeout=10.0):
    """Wait until the cell ``msg_id`` is running (its execute_input arrived)."""
    iopub_until(kc, msg_id, lambda m: m["msg_type"] == "execute_input", timeout)


def assert_alive(proc, kc):
    assert proc.proc.poll() is None, f"the kernel exited ({proc.proc.returncode}); stderr:\n{proc.stderr}"
    _, out = run_ok(kc, "6 * 7")
    assert result_text(out) == "42"


# ------------------------------------------------------------------ control
def test_kernel_info_on_control_while_the_main_thread_is_busy(kernel):
    _, kc = kernel
    cell = kc.execute("time.sleep(3)")
    started(kc, cell)
    t0 = time.monotonic()
    info_id = control(kc, "kernel_info_request")
    reply = reply_to(kc, info_id, timeout=1.0, channel="control")
    assert time.monotonic() - t0 < 1.0
    assert reply["msg_type"] == "kernel_info_reply"
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["implementation"] == "exec-test"
    assert not kc.shell_channel.msg_ready(), "the cell finished first: nothing was shown to run concurrently"
    kinds = [kind(m) for m in iopub_until_idle(kc, info_id, timeout=1.0)]
    assert kinds == ["busy", "idle"]
    assert reply_to(kc, cell, timeout=10)["content"]["status"] == "ok"


@pytest.mark.parametrize("how", ["interrupt_request", "SIGINT"])
def test_interrupt_stops_a_long_cell_and_the_next_cell_runs(kernel, how):
    proc, kc = kernel
    cell = kc.execute("time.sleep(30)")
    started(kc, cell)
    t0 = time.monotonic()
    if how == "SIGINT":
        proc.interrupt()
    else:
        ir = control(kc, "interrupt_request")
        ir_reply = reply_to(kc, ir, timeout=2, channel="control")
        assert ir_reply["msg_type"] == "interrupt_reply" and ir_reply["content"]["status"] == "ok"
    reply = reply_to(kc, cell, timeout=2)
    assert time.monotonic() - t0 < 2
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    messages = iopub_until_idle(kc, cell)
    assert [m["content"]["ename"] for m in messages if m["msg_type"] == "error"] == ["KeyboardInterrupt"]
    assert_alive(proc, kc)


def test_sigint_while_idle_is_harmless(tmp_path):
    """SIGINT between requests interrupts nothing: the kernel stays up, and
    the next cell (which sleeps a little) is not interrupted by it. (Each
    SIGINT is seen to be handled before the next is sent: one sent just
    before a request arrives may be taken as meant for it.)"""
    proc, kc = start_kernel(tmp_path, env={"KERNELKIT_LOG_LEVEL": "INFO"})
    try:
        _sigint_while_idle_is_harmless(proc, kc)
    finally:
        kc.stop_channels()
        proc.kill()


def _sigint_while_idle_is_harmless(proc, kc):
    for n in range(1, 4):
        proc.interrupt()
        deadline = time.monotonic() + 10
        while proc.stderr.count("while idle: nothing to interrupt") < n:
            assert time.monotonic() < deadline, f"SIGINT {n} was not handled; stderr:\n{proc.stderr}"
            time.sleep(0.01)  # polling the kernel's stderr for the event
    reply, out = run_ok(kc, "time.sleep(0.3) or 'still here'")
    assert result_text(out) == repr("still here")
    info_id = control(kc, "kernel_info_request")
    assert reply_to(kc, info_id, timeout=2, channel="control")["content"]["status"] == "ok"
    assert_alive(proc, kc)


def test_interrupt_request_while_idle_is_answered_and_harmless(kernel):
    proc, kc = kernel
    ir = control(kc, "interrupt_request")
    reply = reply_to(kc, ir, timeout=2, channel="control")
    assert reply["content"]["status"] == "ok"
    run_ok(kc, "time.sleep(0.3)")
    assert_alive(proc, kc)


# A cell that writes output in a loop and survives interrupts, saying so
# each time: every interrupt must be answered by "caught" (or by the end of
# the cell). The loop spends most of its time inside the kernel's own send
# path, which is where an interrupt is most likely to land.
OUTPUT_LOOP = """
n = 0
while True:
    try:
        while True:
            kernel.stream('.')
            time.sleep(0)
    except KeyboardInterrupt:
        n += 1
        kernel.stream('caught %d' % n)
"""


def _scan_iopub(kc, cell_id, timeout):
    """Read iopub raw (far faster than parsing the flood of '.') until a
    'caught' stream or the idle of ``cell_id``; return which, or None."""
    sock = kc.iopub_channel.socket
    parent = f'"{cell_id}"'.encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sock.poll(50):
            continue
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if parent not in frames[-3]:  # parent_header
                continue
            if b'"caught ' in frames[-1]:
                return "caught"
            if b'"idle"' in frames[-1]:
                return "idle"
    return None


@pytest.mark.parametrize("how", ["SIGINT", "interrupt_request"])
def test_interrupting_output_in_a_loop_never_wedges_the_kernel(kernel, how):
    """1000 interrupts of a cell writing output: each is answered within 5 s.
    Found: an interrupt landing inside the kernel's send path (queue.Queue.put,
    Outbound._wake) can leave the FIFO's lock held, a wake-up or a 'not full'
    notification lost, after which nothing the kernel sends leaves again."""
    proc, kc = kernel
    total = 1000
    sent = 0
    while sent < total:
        cell = kc.execute(OUTPUT_LOOP, stop_on_error=False)
        started(kc, cell)
        iopub_until(kc, cell, lambda m: m["msg_type"] == "stream")
        while sent < total:
            if how == "SIGINT":
                proc.interrupt()
            else:
                control(kc, "interrupt_request")
            sent += 1
            seen = _scan_iopub(kc, cell, timeout=5)
            assert seen is not None, f"the kernel stopped responding after {sent} interrupts of a cell writing output"
            if seen == "idle":  # the interrupt landed outside the try: a new cell
                break
    info = control(kc, "kernel_info_request")
    assert reply_to(kc, info, timeout=5, channel="control")["content"]["status"] == "ok"


# --------------------------------------------------------- kernel_info on shell
# When nothing runs or waits in the main shell, the I/O thread answers a shell
# kernel_info_request itself (the base class's reply is plain attributes).
# These tests pin down what must not change because of that.


def test_shell_kernel_info_keeps_its_place_behind_a_running_cell(kernel):
    """Asked on shell while a cell waits for input, kernel_info is answered
    after that cell: its reply after the cell's reply, its busy after the
    cell's idle (only control jumps the queue)."""
    _, kc = kernel
    cell = kc.execute("kernel.input('go? ')", allow_stdin=True)
    prompt = input_request(kc, cell)
    info_id = kc.kernel_info()
    # the cell cannot end before we answer it; a kernel_info answered out of
    # turn would arrive meanwhile
    assert kc.shell_channel.socket.poll(1000) == 0, f"answered while the cell ran: {kc.get_shell_msg(timeout=1)}"
    answer(kc, prompt, "yes")
    first, second = kc.get_shell_msg(timeout=10), kc.get_shell_msg(timeout=10)
    assert [first["parent_header"]["msg_id"], second["parent_header"]["msg_id"]] == [cell, info_id]
    assert second["content"]["status"] == "ok" and second["content"]["implementation"] == "exec-test"
    order = []
    while not (order and order[-1] == (info_id, "idle")):
        msg = kc.get_iopub_msg(timeout=10)
        if msg["parent_header"].get("msg_id") in (cell, info_id) and msg["msg_type"] == "status":
            order.append((msg["parent_header"]["msg_id"], kind(msg)))
    assert order == [(cell, "busy"), (cell, "idle"), (info_id, "busy"), (info_id, "idle")]


def test_an_overridden_kernel_info_runs_on_the_main_thread(kernel):
    """A kernel that computes its kernel_info gets it called where every
    handler runs, on the main thread, even when the kernel is idle."""
    _, kc = kernel
    run_ok(kc, (
        "import threading, types\n"
        "kernel.kernel_info = types.MethodType(\n"
        "    lambda self: dict(type(self).kernel_info(self), banner=threading.current_thread().name), kernel)"
    ))
    reply = reply_to(kc, kc.kernel_info())
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["banner"] == "MainThread"
    assert reply["content"]["implementation"] == "exec-test"


def test_kernel_info_that_fails_gets_an_error_reply(kernel):
    """Attributes kernel_info cannot use (language_info not a dict): an
    error reply naming the error, busy and idle, and the kernel goes on."""
    proc, kc = kernel
    run_ok(kc, "kernel.language_info = None")
    info_id = kc.kernel_info()
    reply = reply_to(kc, info_id)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "TypeError"
    assert [kind(m) for m in iopub_until_idle(kc, info_id)] == ["busy", "idle"]
    assert_alive(proc, kc)


# ------------------------------------------------------------------ shutdown
@pytest.mark.parametrize("restart", [False, True])
def test_shutdown_replies_with_restart_and_exits_0(kernel, restart):
    proc, kc = kernel
    sd = control(kc, "shutdown_request", {"restart": restart})
    reply = reply_to(kc, sd, timeout=5, channel="control")
    assert reply["msg_type"] == "shutdown_reply"
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["restart"] is restart
    assert [kind(m) for m in iopub_until_idle(kc, sd, timeout=5)] == ["busy", "idle"]
    assert proc.wait(10) == 0, proc.stderr


def test_shutdown_while_a_cell_is_busy_exits_0_promptly(kernel):
    proc, kc = kernel
    cell = kc.execute("time.sleep(30)")
    started(kc, cell)
    t0 = time.monotonic()
    sd = control(kc, "shutdown_request", {"restart": False})
    assert reply_to(kc, sd, timeout=5, channel="control")["content"]["restart"] is False
    assert proc.wait(10) == 0, proc.stderr
    assert time.monotonic() - t0 < 4, "a cell in time.sleep should be interrupted at shutdown"


def test_shutdown_while_a_cell_ignores_interrupts_still_exits_0(kernel):
    """A cell that swallows KeyboardInterrupt cannot keep the process alive."""
    proc, kc = kernel
    cell = kc.execute("while True:\n    try:\n        time.sleep(30)\n    except KeyboardInterrupt:\n        pass")
    started(kc, cell)
    t0 = time.monotonic()
    sd = control(kc, "shutdown_request", {"restart": False})
    assert reply_to(kc, sd, timeout=5, channel="control")["content"]["status"] == "ok"
    assert proc.wait(15) == 0, proc.stderr
    assert time.monotonic() - t0 < 10


# --------------------------------------------------------------------- errors
@pytest.mark.parametrize("channel", ["shell", "control"])
def test_an_interrupt_that_fails_is_an_error_reply_with_one_busy(kernel, channel):
    """The kernel's interrupt() raises: the interrupt_request gets an error
    reply naming the error and exactly one busy and one idle (on shell the
    I/O thread has already announced it), and the kernel goes on."""
    proc, kc = kernel
    run_ok(kc, "def _fail():\n    raise RuntimeError('cannot interrupt')\nkernel.interrupt = _fail")
    msg_id = (shell if channel == "shell" else control)(kc, "interrupt_request")
    reply = reply_to(kc, msg_id, channel=channel)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "RuntimeError" and reply["content"]["evalue"] == "cannot interrupt"
    assert [kind(m) for m in iopub_until_idle(kc, msg_id)] == ["busy", "idle"]
    assert_alive(proc, kc)


def test_exception_in_a_cell_is_an_error_reply_and_the_kernel_goes_on(kernel):
    proc, kc = kernel
    cell = kc.execute("raise ValueError('boom')")
    reply = reply_to(kc, cell)
    c = reply["content"]
    assert c["status"] == "error"
    assert c["ename"] == "ValueError" and c["evalue"] == "boom"
    assert isinstance(c["traceback"], list) and c["traceback"] and all(isinstance(line, str) for line in c["traceback"])
    assert any("boom" in line for line in c["traceback"])
    messages = iopub_until_idle(kc, cell)
    kinds = [kind(m) for m in messages]
    assert kinds == ["busy", "execute_input", "error", "idle"]
    err = messages[2]["content"]
    assert (err["ename"], err["evalue"]) == ("ValueError", "boom") and err["traceback"]
    assert_alive(proc, kc)


def test_exception_in_another_handler_is_an_error_reply(kernel):
    """An exception in a non-execute handler (here complete) becomes an error
    reply, with busy and idle, and the kernel goes on."""
    proc, kc = kernel
    run_ok(kc, "kernel.complete = lambda code, pos, request: 1 / 0")
    req = shell(kc, "complete_request", {"code": "x", "cursor_pos": 1})
    reply = reply_to(kc, req)
    assert reply["msg_type"] == "complete_reply"
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "ZeroDivisionError"
    assert [kind(m) for m in iopub_until_idle(kc, req)] == ["busy", "idle"]
    assert_alive(proc, kc)


@pytest.mark.parametrize("stop_on_error", [True, False])
def test_stop_on_error(kernel, stop_on_error):
    proc, kc = kernel
    # the first cell waits (in the kernel) until the two executes sent after
    # it are queued behind it, so that "queued behind" does not depend on timing
    behind = QueuedBehind(kc)
    first = kc.execute(behind.WAIT + "raise ValueError('first fails')", stop_on_error=stop_on_error)
    second = kc.execute("kernel.stream('second ran')")
    third = kc.execute("kernel.stream('third ran')")
    behind.release()
    r1 = reply_to(kc, first)
    assert r1["content"]["status"] == "error" and r1["content"]["ename"] == "ValueError"
    r2, r3 = reply_to(kc, second), reply_to(kc, third)
    out2, out3 = iopub_until_idle(kc, second), iopub_until_idle(kc, third)
    streams = [m["content"]["text"] for m in out2 + out3 if m["msg_type"] == "stream"]
    if stop_on_error:
        assert r2["content"]["status"] == "aborted", r2["content"]
        assert r3["content"]["status"] == "aborted", r3["content"]
        assert streams == []
        assert [kind(m) for m in out2] == ["busy", "idle"] and [kind(m) for m in out3] == ["busy", "idle"]
    else:
        assert r2["content"]["status"] == "ok" and r3["content"]["status"] == "ok"
        assert streams == ["second ran", "third ran"]
    behind.close()
    # only the executes queued at the time were aborted
    assert_alive(proc, kc)


# ------------------------------------------------------------- busy and idle
REQUESTS = [
    ("shell", "execute_request", {"code": "1 + 1", "silent": False}),
    ("shell", "execute_request", {"code": "x = 1", "silent": True}),
    ("shell", "kernel_info_request", {}),
    ("control", "kernel_info_request", {}),
    ("shell", "complete_request", {"code": "ker", "cursor_pos": 3}),
    ("shell", "inspect_request", {"code": "kernel", "cursor_pos": 6, "detail_level": 0}),
    ("shell", "is_complete_request", {"code": "x = "}),
    ("shell", "history_request", {"output": False, "raw": True, "hist_access_type": "tail", "n": 3}),
    ("shell", "comm_info_request", {}),
    ("control", "interrupt_request", {}),
]


@pytest.mark.parametrize("channel,msg_type,content", REQUESTS, ids=[f"{c}-{t}" for c, t, _ in REQUESTS])
def test_busy_before_and_idle_after_every_request(kernel, channel, msg_type, content):
    _, kc = kernel
    if msg_type == "execute_request":
        content = {"store_history": True, "user_expressions": {}, "allow_stdin": False, "stop_on_error": True, **content}
    req = (control if channel == "control" else shell)(kc, msg_type, content)
    reply = reply_to(kc, req, channel=channel)
    assert reply["msg_type"] == msg_type.replace("_request", "_reply")
    assert reply["parent_header"]["msg_id"] == req
    assert reply["parent_header"]["msg_type"] == msg_type
    # is_complete_reply's status is the verdict on the code, not ok/error
    expected = ("complete", "incomplete", "invalid", "unknown") if msg_type == "is_complete_request" else ("ok",)
    assert reply["content"]["status"] in expected, reply["content"]
    kinds = [kind(m) for m in iopub_until_idle(kc, req)]
    assert kinds[0] == "busy" and kinds[-1] == "idle", kinds
    assert kinds.count("busy") == 1 and kinds.count("idle") == 1, kinds


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["interrupt_request", "SIGINT"])
def test_an_interrupt_right_after_execute_input_is_not_lost(kernel, how):
    """A client interrupts as soon as it sees the cell's execute_input. The
    I/O thread announces a cell that finds the kernel idle before the main
    thread has begun running it; an interrupt that lands in between is for
    that cell and must stop it (a thread hogging the GIL with a long switch
    interval widens the window in which the main thread wakes up)."""
    proc, kc = kernel
    run_ok(
        kc,
        "import sys, threading\n"
        "sys.setswitchinterval(0.02)\n"
        "def _hog():\n"
        "    while True:\n"
        "        pass\n"
        "threading.Thread(target=_hog, daemon=True).start()",
    )
    for _ in range(10):
        cell = kc.execute("time.sleep(30)")
        started(kc, cell)
        if how == "SIGINT":
            proc.interrupt()
        else:
            control(kc, "interrupt_request")
        reply = reply_to(kc, cell, timeout=10)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        iopub_until_idle(kc, cell, timeout=10)
    assert proc.proc.poll() is None
