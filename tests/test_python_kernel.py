"""The bundled Python kernel (``python -m kernelkit.python``) as a notebook user sees it.

One real kernel process per module, spoken to over real ZeroMQ with
jupyter_client's BlockingKernelClient. Tests that share it only rely on what
they set up themselves (their own names, counts taken relative to a first
execution), so they pass in any order.

No sleeps in the client: every wait is a wait for a message, with a timeout.
Where "A left before B" crosses sockets (a stream on iopub before an
input_request on stdin or a reply on shell), arrival order between two TCP
connections is not exact, so the check is on production order: the header
``date`` the kernel stamps when it makes each message. Output that the
kernel forgot to flush is sent by its batching timer later, with a later
date, and fails the check.
"""

import base64
import queue
import re
import sys
import time
from datetime import datetime

import pytest
from support import QueuedBehind, start_kernel

import kernelkit
from kernelkit.wire import PROTOCOL_VERSION

PYTHON_KERNEL = [sys.executable, "-m", "kernelkit.python"]
TIMEOUT = 30
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain(text: str) -> str:
    return ANSI.sub("", text)


# --------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def kc(tmp_path_factory):
    """One Python kernel for the module; IPython's files in a private IPYTHONDIR."""
    tmp = tmp_path_factory.mktemp("python-kernel")
    ipython_dir = tmp / "ipython"
    ipython_dir.mkdir()
    proc, client = start_kernel(tmp, PYTHON_KERNEL, b"python-kernel-key", {"IPYTHONDIR": str(ipython_dir)}, ready_timeout=TIMEOUT)
    client.kernel_process = proc
    yield client
    client.stop_channels()
    proc.kill()


def parent_id(msg):
    return (msg.get("parent_header") or {}).get("msg_id")


def is_idle(msg, msg_id) -> bool:
    return msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle" and parent_id(msg) == msg_id


def date_of(msg) -> datetime:
    d = msg["header"]["date"]
    return d if isinstance(d, datetime) else datetime.fromisoformat(d)


def get_reply(kc, msg_id, channel="shell", timeout=TIMEOUT):
    """The reply to msg_id on shell (or control); replies to other requests are skipped."""
    get = kc.get_shell_msg if channel == "shell" else kc.get_control_msg
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {channel} reply to {msg_id} within {timeout}s")
        try:
            msg = get(timeout=left)
        except queue.Empty:
            continue
        if parent_id(msg) == msg_id:
            return msg


def iopub_until_idle(kc, msg_id, timeout=TIMEOUT):
    """Every iopub message (of any parent) up to and including msg_id's idle."""
    deadline = time.monotonic() + timeout
    msgs = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no idle for {msg_id} within {timeout}s; got {[m['msg_type'] for m in msgs]}")
        try:
            msg = kc.get_iopub_msg(timeout=left)
        except queue.Empty:
            continue
        msgs.append(msg)
        if is_idle(msg, msg_id):
            return msgs


def of(msgs, msg_id, msg_type=None):
    return [m for m in msgs if parent_id(m) == msg_id and (msg_type is None or m["msg_type"] == msg_type)]


class Run:
    def __init__(self, msg_id, reply, iopub):
        self.msg_id = msg_id
        self.reply = reply
        self.all_iopub = iopub
        self.iopub = of(iopub, msg_id)

    @property
    def content(self):
        return self.reply["content"]

    def types(self):
        return [m["msg_type"] for m in self.iopub]

    def msgs(self, msg_type):
        return [m for m in self.iopub if m["msg_type"] == msg_type]

    def stream(self, name="stdout") -> str:
        return "".join(m["content"]["text"] for m in self.msgs("stream") if m["content"]["name"] == name)


def run(kc, code, timeout=TIMEOUT, **kw) -> Run:
    msg_id = kc.execute(code, **kw)
    reply = get_reply(kc, msg_id, timeout=timeout)
    return Run(msg_id, reply, iopub_until_idle(kc, msg_id, timeout=timeout))


def ok(kc, code, **kw) -> Run:
    r = run(kc, code, **kw)
    assert r.content["status"] == "ok", (code, r.content)
    return r


def request(kc, method, *args, **kw) -> dict:
    """A non-execute shell request; its reply content (its iopub drained to idle)."""
    msg_id = getattr(kc, method)(*args, **kw)
    reply = get_reply(kc, msg_id)
    iopub_until_idle(kc, msg_id)
    return reply["content"]


def expr(kc, expression):
    """Evaluate an expression through user_expressions of a silent execute."""
    r = ok(kc, "", silent=True, user_expressions={"v": expression})
    return r.content["user_expressions"]["v"]


def stored_count(kc) -> int:
    """The execution count a stored execution gets now (runs one)."""
    return ok(kc, "pass").content["execution_count"]


# ------------------------------------------------------------- kernel_info
def test_kernel_info(kc):
    msg_id = kc.kernel_info()
    reply = get_reply(kc, msg_id)
    c = reply["content"]
    assert c["status"] == "ok"
    assert c["protocol_version"] == PROTOCOL_VERSION
    major, minor = (int(p) for p in c["protocol_version"].split(".")[:2])
    assert (major, minor) >= (5, 3)
    assert c["implementation"] == "kernelkit"
    assert c["implementation_version"] == kernelkit.__version__
    li = c["language_info"]
    assert li["name"] == "python"
    assert li["version"] == ".".join(str(p) for p in sys.version_info[:3])
    assert li["mimetype"] == "text/x-python"
    assert li["file_extension"] == ".py"
    assert li["pygments_lexer"] == f"ipython{sys.version_info[0]}"
    assert li["codemirror_mode"] == {"name": "ipython", "version": sys.version_info[0]}
    assert li["nbconvert_exporter"] == "python"
    assert isinstance(c["banner"], str) and "Python" in c["banner"]
    assert c["help_links"] and all(set(link) >= {"text", "url"} for link in c["help_links"])
    assert "iopub_welcome" in c["supported_features"]
    iopub_until_idle(kc, msg_id)


# --------------------------------------------------------- execution basics
def test_execute_input_and_counts_increment(kc):
    first = ok(kc, "a_count_1 = 1")
    n = first.content["execution_count"]
    second = ok(kc, "a_count_2 = 2")
    assert second.content["execution_count"] == n + 1
    for r, code in ((first, "a_count_1 = 1"), (second, "a_count_2 = 2")):
        (inp,) = r.msgs("execute_input")
        assert inp["content"] == {"code": code, "execution_count": r.content["execution_count"]}
        assert r.types()[:2] == ["status", "execute_input"]
        assert r.types()[-1] == "status"


def test_execute_result_of_last_expression(kc):
    r = ok(kc, "x_er = 6\nx_er * 7")
    n = r.content["execution_count"]
    (res,) = r.msgs("execute_result")
    assert res["content"]["data"]["text/plain"] == "42"
    assert res["content"]["execution_count"] == n
    assert r.msgs("execute_input")[0]["content"]["execution_count"] == n
    # an expression statement that is not last gives no result; a trailing ';' hides it
    r = ok(kc, "1 + 1\nNone")
    assert r.msgs("execute_result") == []
    r = ok(kc, "3 + 3;")
    assert r.msgs("execute_result") == []


def test_top_level_await(kc):
    r = ok(kc, "import asyncio\nawait asyncio.sleep(0)\nasync def f_aw():\n    return 42\nawait f_aw()")
    (res,) = r.msgs("execute_result")
    assert res["content"]["data"]["text/plain"] == "42"
    # an async for in a cell also runs (the cheap 'no await here' check must not skip it)
    r = ok(kc, "async def gen_aw():\n    yield 1\n    yield 2\nsum_aw = 0\nasync for v in gen_aw():\n    sum_aw += v\nsum_aw")
    (res,) = r.msgs("execute_result")
    assert res["content"]["data"]["text/plain"] == "3"


def test_silent_execution(kc):
    before = stored_count(kc)
    r = ok(kc, "silent_marker_q7 = 17\nsilent_marker_q7", silent=True)
    assert "execute_input" not in r.types()
    assert "execute_result" not in r.types()
    assert r.types() == ["status", "status"]
    assert r.content["execution_count"] == before
    # it ran
    assert expr(kc, "silent_marker_q7")["data"]["text/plain"] == "17"
    # count unchanged
    assert stored_count(kc) == before + 1
    # not in history
    hist = request(kc, "history", hist_access_type="search", pattern="*silent_marker_q7*", output=False, raw=True)
    assert hist["history"] == []


def test_store_history_false(kc):
    before = stored_count(kc)
    r = ok(kc, "nostore_marker_z3 = 5\nnostore_marker_z3 * 2", store_history=False)
    assert r.content["execution_count"] == before
    assert [m["content"]["data"]["text/plain"] for m in r.msgs("execute_result")] == ["10"]
    assert stored_count(kc) == before + 1
    hist = request(kc, "history", hist_access_type="search", pattern="*nostore_marker_z3*", output=False, raw=True)
    assert hist["history"] == []


def test_user_expressions(kc):
    ok(kc, "ue_value = 21")
    r = ok(kc, "pass", user_expressions={"good": "ue_value * 2", "bad": "1 / 0", "missing": "ue_undefined_name"})
    ue = r.content["user_expressions"]
    assert ue["good"]["status"] == "ok"
    assert ue["good"]["data"]["text/plain"] == "42"
    assert ue["bad"]["status"] == "error"
    assert ue["bad"]["ename"] == "ZeroDivisionError"
    assert ue["missing"]["status"] == "error"
    assert ue["missing"]["ename"] == "NameError"


def test_ipython_traceback_in_error(kc):
    code = "def tb_helper_fn():\n    return 1 / 0\n\ntb_helper_fn()"
    r = run(kc, code)
    n = r.content["execution_count"]
    assert r.content["status"] == "error"
    assert r.content["ename"] == "ZeroDivisionError"
    assert r.content["evalue"] == "division by zero"
    (err,) = r.msgs("error")
    c = err["content"]
    assert c["ename"] == "ZeroDivisionError"
    assert c["evalue"] == "division by zero"
    assert isinstance(c["traceback"], list) and len(c["traceback"]) > 1
    text = plain("\n".join(c["traceback"]))
    # IPython's format: the cell by its number, the arrow on the failing line
    assert f"In[{n}]" in text
    assert "----> 4 tb_helper_fn()" in text
    assert "----> 2     return 1 / 0" in text
    assert "ZeroDivisionError: division by zero" in text
    assert r.content["traceback"] == c["traceback"]
    # the error precedes idle, and nothing after it
    assert r.types()[-2:] == ["error", "status"]


def test_syntax_error(kc):
    r = run(kc, "def broken(:\n    pass")
    assert r.content["status"] == "error"
    assert r.content["ename"] == "SyntaxError"
    (err,) = r.msgs("error")
    assert "SyntaxError" in plain("\n".join(err["content"]["traceback"]))


# ------------------------------------------------------------------ magics
def test_timeit_magic(kc):
    r = ok(kc, "%timeit -n1 -r1 sum(range(10))")
    out = r.stream()
    assert "per loop" in out and "1 loop each" in out, out


def test_capture_cell_magic(kc):
    r = ok(kc, "%%capture captured_out\nprint('captured-text-91')")
    assert "captured-text-91" not in r.stream()
    assert expr(kc, "captured_out.stdout")["data"]["text/plain"] == repr("captured-text-91\n")


def test_who_magic(kc):
    ok(kc, "who_marker_var_x4 = 1")
    r = ok(kc, "%who")
    assert "who_marker_var_x4" in r.stream()


def test_unknown_magic_is_an_error(kc):
    r = run(kc, "%no_such_magic_kk")
    assert r.content["status"] == "error"
    assert r.content["ename"] == "UsageError"


# ------------------------------------------------------------------ payloads
def test_question_mark_pages(kc):
    r = ok(kc, "print?")
    (page,) = [p for p in r.content["payload"] if p["source"] == "page"]
    text = plain(page["data"]["text/plain"])
    assert "Docstring" in text and "print" in text
    assert r.msgs("stream") == []  # paged, not printed


def test_set_next_input_payload(kc):
    r = ok(kc, "get_ipython().set_next_input('next_cell_text')")
    payload = [p for p in r.content["payload"] if p["source"] == "set_next_input"]
    assert len(payload) == 1
    assert payload[0]["text"] == "next_cell_text"
    # payloads belong to one reply only
    assert ok(kc, "pass").content["payload"] == []


# ------------------------------------------------------------ stop_on_error
def _three_back_to_back(kc, stop_on_error, marker):
    # the failing cell waits (bounded) until the two executes sent behind it
    # are queued in the kernel, so "arrived before the error" holds deterministically
    behind = QueuedBehind(kc)
    ids = [
        kc.execute(behind.WAIT + "raise ValueError('first fails')\n", stop_on_error=stop_on_error),
        kc.execute(f"{marker}_a = 1"),
        kc.execute(f"{marker}_b = 2"),
    ]
    behind.release()
    replies = [get_reply(kc, i)["content"] for i in ids]
    msgs = iopub_until_idle(kc, ids[-1])
    behind.close()
    return ids, replies, msgs


def test_stop_on_error_aborts_queued(kc):
    ids, replies, msgs = _three_back_to_back(kc, True, "aborted_mark")
    assert [r["status"] for r in replies] == ["error", "aborted", "aborted"]
    assert replies[0]["ename"] == "ValueError"
    # aborted cells did not run, did not count, published no execute_input
    assert expr(kc, "aborted_mark_a")["ename"] == "NameError"
    assert expr(kc, "aborted_mark_b")["ename"] == "NameError"
    assert of(msgs, ids[1], "execute_input") == [] and of(msgs, ids[2], "execute_input") == []
    assert stored_count(kc) == replies[0]["execution_count"] + 1
    # the kernel goes on: a request sent after the error reply runs
    assert expr(kc, "1 + 1")["data"]["text/plain"] == "2"


def test_stop_on_error_false_runs_queued(kc):
    ids, replies, _ = _three_back_to_back(kc, False, "notaborted_mark")
    assert [r["status"] for r in replies] == ["error", "ok", "ok"]
    n = replies[0]["execution_count"]
    assert [r["execution_count"] for r in replies[1:]] == [n + 1, n + 2]
    assert expr(kc, "(notaborted_mark_a, notaborted_mark_b)")["data"]["text/plain"] == "(1, 2)"


# -------------------------------------------------------------------- output
def test_stdout_and_stderr_streams(kc):
    r = ok(kc, "import sys\nprint('to-out')\nprint('to-err', file=sys.stderr)")
    assert r.stream("stdout") == "to-out\n"
    assert r.stream("stderr") == "to-err\n"


def test_print_loop_is_batched_complete_and_in_order(kc):
    n = 100_000
    r = ok(kc, f"for i in range({n}):\n    print(i)", timeout=60)
    streams = r.msgs("stream")
    assert all(m["content"]["name"] == "stdout" for m in streams)
    text = "".join(m["content"]["text"] for m in streams)
    assert text == "".join(f"{i}\n" for i in range(n))
    assert len(streams) < 1000, f"{len(streams)} stream messages for {n} lines"
    # all of it before idle (idle is the last message of the request)
    assert r.types()[-1] == "status" and r.iopub[-1]["content"]["execution_state"] == "idle"


def test_output_flushed_before_input_request(kc):
    msg_id = kc.execute("print('before-the-prompt')\nanswer_in = input('name? ')\nprint('got', answer_in)", allow_stdin=True)
    req = kc.get_stdin_msg(timeout=TIMEOUT)
    assert req["msg_type"] == "input_request"
    assert req["content"]["prompt"] == "name? "
    assert parent_id(req) == msg_id
    # the kernel waits for us now; the stream must already be on its way
    # (made before the prompt: production order, see the module docstring)
    seen = []
    deadline = time.monotonic() + 10
    while not any(m["msg_type"] == "stream" for m in seen) and time.monotonic() < deadline:
        try:
            m = kc.get_iopub_msg(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            continue
        if parent_id(m) == msg_id:
            seen.append(m)
    # answer before asserting, so a failure leaves the shared kernel usable
    kc.input("kernelkit")
    streams = [m for m in seen if m["msg_type"] == "stream"]
    assert streams, "the stream never arrived while the prompt waited"
    (stream,) = streams
    assert stream["content"]["text"] == "before-the-prompt\n"
    assert date_of(stream) <= date_of(req), "stream was made after the input_request: output not flushed before the prompt"
    reply = get_reply(kc, msg_id)
    assert reply["content"]["status"] == "ok"
    rest = of(iopub_until_idle(kc, msg_id), msg_id)
    assert "".join(m["content"]["text"] for m in rest if m["msg_type"] == "stream") == "got kernelkit\n"


def test_output_flushed_before_display_data(kc):
    r = ok(kc, "from IPython.display import display\nprint('p-one')\ndisplay('d-one')\nprint('p-two')")
    kinds = [(m["msg_type"], m["content"].get("text") or m["content"].get("data", {}).get("text/plain")) for m in r.iopub if m["msg_type"] in ("stream", "display_data")]
    assert kinds == [("stream", "p-one\n"), ("display_data", "'d-one'"), ("stream", "p-two\n")]


def test_a_running_cell_s_messages_leave_while_it_runs(kc, tmp_path):
    """The main shell queues its messages without waking the I/O thread while
    a request runs (lazy sending); they must still leave while the cell runs,
    not when it ends. The cell runs until the test creates a file."""
    go = tmp_path / "go"
    msg_id = kc.execute(
        "import os, time\n"
        "display('early')\n"
        f"while not os.path.exists({str(go)!r}):\n"
        "    time.sleep(0.01)\n"
    )
    seen = []
    try:
        while not any(m["msg_type"] == "display_data" for m in seen):
            msg = kc.get_iopub_msg(timeout=10)
            if parent_id(msg) == msg_id:
                seen.append(msg)
        assert [m["msg_type"] for m in seen] == ["status", "execute_input", "display_data"]
        assert not kc.shell_channel.msg_ready(), "the cell ended before the test let it"
    finally:
        go.touch()
    assert get_reply(kc, msg_id)["content"]["status"] == "ok"
    iopub_until_idle(kc, msg_id)


def test_output_flushed_before_reply_and_idle(kc):
    r = ok(kc, "import sys\nprint('last-out')\nsys.stderr.write('last-err\\n')")
    streams = r.msgs("stream")
    assert {(m["content"]["name"], m["content"]["text"]) for m in streams} == {("stdout", "last-out\n"), ("stderr", "last-err\n")}
    idle_at = r.types().index("status", 1)
    assert idle_at == len(r.iopub) - 1
    assert all(r.iopub.index(m) < idle_at for m in streams)
    assert all(date_of(m) <= date_of(r.reply) for m in streams), "stream made after the reply"


def test_thread_output_goes_to_the_cell_that_started_it(kc):
    first = ok(
        kc,
        "import threading\n"
        "go_thread_ev = threading.Event()\n"
        "thread_done_ev = threading.Event()\n"
        "def _thread_body():\n"
        "    go_thread_ev.wait(30)\n"
        "    print('from-the-thread')\n"
        "    thread_done_ev.set()\n"
        "threading.Thread(target=_thread_body, daemon=True).start()\n"
        "print('cell-one')",
    )
    assert first.stream() == "cell-one\n"
    second = run(kc, "print('cell-two-start')\ngo_thread_ev.set()\nassert thread_done_ev.wait(30)\nprint('cell-two-end')")
    assert second.content["status"] == "ok"
    # the line goes to the cell that started the thread, and a copy to the
    # running cell, for clients that listen to that one only (the rule is
    # tested in test_python_compat.py)
    assert second.stream() == "cell-two-start\nfrom-the-thread\ncell-two-end\n"
    from_thread = [m for m in second.all_iopub if m["msg_type"] == "stream" and "from-the-thread" in m["content"]["text"]]
    assert [(parent_id(m), m["content"]["text"]) for m in from_thread] == [(first.msg_id, "from-the-thread\n"), (second.msg_id, "from-the-thread\n")]


def test_fd_level_output_reaches_the_notebook(kc):
    r = ok(
        kc,
        "import os, subprocess\n"
        "os.system('echo hi')\n"
        "os.write(1, b'raw\\n')\n"
        "subprocess.run(['echo', 'sub'])\n"
        "os.write(2, b'raw-err\\n')\n"
        "None",
    )
    assert r.stream("stdout") == "hi\nraw\nsub\n"
    assert r.stream("stderr") == "raw-err\n"
    idle_at = len(r.iopub) - 1
    assert all(r.iopub.index(m) < idle_at for m in r.msgs("stream"))
    assert all(date_of(m) <= date_of(r.reply) for m in r.msgs("stream")), "fd output made after the reply"


# ------------------------------------------------------------------ displays
# PNG signature plus bytes that are not valid UTF-8
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
RICH_CLASS = (
    "class RichThing:\n"
    "    def _repr_html_(self):\n"
    "        return '<b>rich</b>'\n"
    "    def _repr_png_(self):\n"
    f"        return {PNG_BYTES!r}\n"
)


def test_display_of_rich_reprs(kc):
    r = ok(kc, RICH_CLASS + "from IPython.display import display\ndisplay(RichThing())")
    (d,) = r.msgs("display_data")
    data = d["content"]["data"]
    assert data["text/html"] == "<b>rich</b>"
    assert "RichThing" in data["text/plain"]
    assert data["image/png"] == base64.b64encode(PNG_BYTES).decode("ascii"), "image/png must be base64 of the PNG bytes"


def test_execute_result_of_rich_repr_png_is_base64(kc):
    r = ok(kc, RICH_CLASS + "RichThing()")
    (res,) = r.msgs("execute_result")
    data = res["content"]["data"]
    assert data["text/html"] == "<b>rich</b>"
    assert data["image/png"] == base64.b64encode(PNG_BYTES).decode("ascii"), "image/png must be base64 of the PNG bytes"


def test_matplotlib_inline_plot(kc):
    pytest.importorskip("matplotlib")
    r = ok(
        kc,
        "%matplotlib inline\nimport matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 3, 2])\nNone",
        timeout=60,
    )
    images = [m for m in r.msgs("display_data") if "image/png" in m["content"]["data"]]
    assert len(images) == 1
    png = base64.b64decode(images[0]["content"]["data"]["image/png"], validate=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "Figure" in images[0]["content"]["data"]["text/plain"]


def test_update_display_data(kc):
    r = ok(
        kc,
        "from IPython.display import display\n"
        "handle = display('first-version', display_id=True)\n"
        "handle.update('second-version')\n"
        "display('named', display_id='my-display-id')",
    )
    first, named = r.msgs("display_data")
    (update,) = r.msgs("update_display_data")
    did = first["content"]["transient"]["display_id"]
    assert isinstance(did, str) and did
    assert first["content"]["data"]["text/plain"] == "'first-version'"
    assert update["content"]["transient"]["display_id"] == did
    assert update["content"]["data"]["text/plain"] == "'second-version'"
    assert named["content"]["transient"]["display_id"] == "my-display-id"
    assert r.types().index("update_display_data") > r.iopub.index(first)


def test_clear_output(kc):
    r = ok(kc, "from IPython.display import clear_output\nclear_output(wait=True)\nclear_output()")
    assert [m["content"] for m in r.msgs("clear_output")] == [{"wait": True}, {"wait": False}]


# ------------------------------------------------------------ other requests
def test_complete_basic(kc):
    ok(kc, "complete_me_long_name = 1")
    c = request(kc, "complete", "complete_me_lo")
    assert c["status"] == "ok"
    assert "complete_me_long_name" in c["matches"]
    assert (c["cursor_start"], c["cursor_end"]) == (0, len("complete_me_lo"))


@pytest.mark.parametrize(
    "code, prefix",
    [
        ("é_var = 1\né_v", "é_v"),
        ("ñame_var = 1; ñam", "ñam"),
        # astral characters: one code point, two UTF-16 units, four UTF-8 bytes
        ('s = "😀😀"; ñame_var; ñame_v', "ñame_v"),
    ],
    ids=["e-acute-second-line", "n-tilde-same-line", "after-astral-chars"],
)
def test_complete_cursor_in_code_points(kc, code, prefix):
    ok(kc, "é_var = 1\nñame_var = 2")
    c = request(kc, "complete", code, len(code))
    assert c["status"] == "ok"
    assert any(m.startswith(prefix) for m in c["matches"]), c["matches"]
    assert (c["cursor_start"], c["cursor_end"]) == (len(code) - len(prefix), len(code))


def test_complete_cursor_in_the_middle(kc):
    ok(kc, "ñame_var = 2")
    code = "ñam + 1"
    c = request(kc, "complete", code, 3)
    assert "ñame_var" in c["matches"]
    assert (c["cursor_start"], c["cursor_end"]) == (0, 3)


def test_inspect_detail_levels(kc):
    ok(kc, "def inspect_me_fn(a, b=2):\n    'Adds two numbers.'\n    return a + b  # source-marker-xyz")
    c0 = request(kc, "inspect", "inspect_me_fn", len("inspect_me_fn"), 0)
    assert c0["status"] == "ok" and c0["found"] is True
    t0 = plain(c0["data"]["text/plain"])
    assert "inspect_me_fn(a, b=2)" in t0
    assert "Adds two numbers." in t0
    assert "source-marker-xyz" not in t0
    c1 = request(kc, "inspect", "inspect_me_fn", len("inspect_me_fn"), 1)
    assert c1["found"] is True
    t1 = plain(c1["data"]["text/plain"])
    assert "return a + b  # source-marker-xyz" in t1
    # cursor inside a call's arguments inspects the callee
    c = request(kc, "inspect", "inspect_me_fn(1, ", len("inspect_me_fn(1, "), 0)
    assert c["found"] is True and "Adds two numbers." in plain(c["data"]["text/plain"])
    c = request(kc, "inspect", "no_such_name_anywhere", 5, 0)
    assert c["status"] == "ok" and c["found"] is False


@pytest.mark.parametrize(
    "code, status, indent",
    [
        ("for i in range(3):", "incomplete", "    "),
        ("def f():\n    if True:", "incomplete", "        "),
        ("x = (1,", "incomplete", None),
        ("x = 1", "complete", None),
        ("import = 7q", "invalid", None),
    ],
    ids=["for-loop", "nested-block", "open-paren", "complete", "invalid"],
)
def test_is_complete(kc, code, status, indent):
    c = request(kc, "is_complete", code)
    assert c["status"] == status
    if status == "incomplete":
        assert "indent" in c
        if indent is not None:
            assert c["indent"] == indent
    else:
        assert "indent" not in c


def test_history_tail_range_search(kc):
    cells = ["hist_mark_k9 = 1", "hist_mark_k9 = 2", "hist_mark_k9 = 1"]
    counts = [ok(kc, code).content["execution_count"] for code in cells]
    tail = request(kc, "history", hist_access_type="tail", n=3, output=False, raw=True)["history"]
    assert [(line, src) for _, line, src in tail] == list(zip(counts, cells))
    sessions = {s for s, _, _ in tail}
    assert len(sessions) == 1
    (session,) = sessions
    assert isinstance(session, int) and session > 0

    # the same lines by range, current session (0) and by its number
    for asked in (0, session):
        rng = request(kc, "history", hist_access_type="range", session=asked, start=counts[0], stop=counts[-1] + 1, output=False, raw=True)[
            "history"
        ]
        assert [tuple(row) for row in rng] == [tuple(row) for row in tail], f"range(session={asked}) != tail"

    found = request(kc, "history", hist_access_type="search", pattern="hist_mark_k9*", output=False, raw=True)["history"]
    assert [src for _, _, src in found] == cells
    unique = request(kc, "history", hist_access_type="search", pattern="hist_mark_k9*", unique=True, output=False, raw=True)["history"]
    assert sorted(src for _, _, src in unique) == sorted(set(cells))
    assert len(unique) == 2
    last = request(kc, "history", hist_access_type="search", pattern="hist_mark_k9*", n=1, output=False, raw=True)["history"]
    assert [(s, line, src) for s, line, src in last] == [(session, counts[-1], cells[-1])]


def test_comm_info(kc):
    c = request(kc, "comm_info", target_name="kk_test_target_none")
    assert c["status"] == "ok" and c["comms"] == {}
    r = ok(kc, "from comm import create_comm\ntest_comm = create_comm(target_name='kk_test_target', data={'x': 1})\ntest_comm.comm_id")
    (opened,) = r.msgs("comm_open")
    comm_id = opened["content"]["comm_id"]
    assert opened["content"]["target_name"] == "kk_test_target"
    assert opened["content"]["data"] == {"x": 1}
    assert r.msgs("execute_result")[0]["content"]["data"]["text/plain"] == repr(comm_id)
    c = request(kc, "comm_info", target_name="kk_test_target")
    assert c["comms"] == {comm_id: {"target_name": "kk_test_target"}}
    assert comm_id in request(kc, "comm_info")["comms"]
    assert comm_id not in request(kc, "comm_info", target_name="another_target")["comms"]
    r = ok(kc, "test_comm.close()")
    assert [m["content"]["comm_id"] for m in r.msgs("comm_close")] == [comm_id]
    assert comm_id not in request(kc, "comm_info")["comms"]


def test_a_start_probed_as_jupyter_server_does_logs_no_warning(tmp_path):
    """jupyter_server's nudge, at every kernel start: kernel_info_request on
    shell and on control, both sockets closed at the first reply. The other
    reply then finds its client gone: that is logged at INFO, and a normal
    start and cell log nothing at WARNING or above."""
    import zmq

    proc, kc = start_kernel(tmp_path, PYTHON_KERNEL, extra_args=["--log-level", "INFO"], ready_timeout=TIMEOUT)
    try:
        dropped = "[kernelkit.io INFO] control: dropped a reply for a client that has gone"
        deadline = time.monotonic() + TIMEOUT
        while dropped not in proc.stderr:  # (the probe's socket must close before the reply leaves)
            assert time.monotonic() < deadline, proc.stderr
            shell, control = kc.connect_shell(), kc.connect_control()
            kc.session.send(shell, "kernel_info_request")
            kc.session.send(control, "kernel_info_request")
            poller = zmq.Poller()
            poller.register(shell, zmq.POLLIN)
            poller.register(control, zmq.POLLIN)
            assert poller.poll(TIMEOUT * 1000), "no kernel_info_reply"
            shell.close(linger=0)
            control.close(linger=0)
        msg_id = kc.execute("print('ran')")
        assert get_reply(kc, msg_id)["content"]["status"] == "ok"
        lines = [line for line in proc.stderr.splitlines() if line.startswith("[kernelkit")]
        assert not [line for line in lines if re.match(r"\[kernelkit\S* (WARNING|ERROR|CRITICAL)\]", line)], lines
    finally:
        kc.stop_channels()
        proc.kill()
