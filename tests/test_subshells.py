"""Kernel subshells (JEP 91), end to end.

Real kernel processes (the bundled Python kernel, ``python -m kernelkit.python``,
and the exec test kernel where that is simpler), real ZeroMQ, jupyter_client's
BlockingKernelClient as the frontend. Subshell requests carry ``subshell_id``
in the header of a shell message; subshells are created, listed and deleted
on the control channel.

No sleeps in the test process: every wait is on a message or a condition,
with a timeout (a wait for a thread count to drop is paced by control-channel
round trips). ``time.sleep`` appears only inside cells, to keep the kernel busy.
"""

import ast
import collections
import queue
import sys
import time
from pathlib import Path

import pytest
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from support import CALC_KERNEL, EXEC_KERNEL, KernelProcess, wait_until_ready

PY_KERNEL = [sys.executable, "-m", "kernelkit.python"]
# a subshell must answer this fast while the main shell is busy
PROMPT_DEADLINE = 0.5
# an interrupt round trip must be this fast
INTERRUPT_DEADLINE = 1.0


# ================================================================ the frontend
def parent_id(msg):
    return msg["parent_header"].get("msg_id")


def is_status(msg, state):
    return msg["msg_type"] == "status" and msg["content"]["execution_state"] == state


class Frontend:
    """A BlockingKernelClient that keeps every message it reads, by channel
    and by parent msg_id, with the time it was read; so waiting for one
    request's messages never loses another's."""

    CHANNELS = ("shell", "control", "iopub", "stdin")

    def __init__(self, fname):
        self.kc = BlockingKernelClient()
        self.kc.load_connection_file(fname)
        self.kc.start_channels()
        self.session = self.kc.session
        # channel -> parent msg_id -> [msg, ...]
        self.got = {c: collections.defaultdict(list) for c in self.CHANNELS}
        # channel -> every message read, in arrival order
        self.log = {c: [] for c in self.CHANNELS}
        self.sent_at = {}

    def close(self):
        self.kc.stop_channels()

    # -- sending
    def shell(self, msg_type, content, subshell_id=None):
        msg = self.session.msg(msg_type, content)
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id
        self.sent_at[msg["header"]["msg_id"]] = time.monotonic()
        self.kc.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    def execute(self, code, subshell_id=None, **extra):
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": True,
            "stop_on_error": True,
        }
        content.update(extra)
        return self.shell("execute_request", content, subshell_id)

    def control(self, msg_type, content=None):
        msg = self.session.msg(msg_type, content or {})
        self.sent_at[msg["header"]["msg_id"]] = time.monotonic()
        self.kc.control_channel.send(msg)
        return msg["header"]["msg_id"]

    def answer(self, input_request, value):
        self.kc.stdin_channel.send(self.session.msg("input_reply", {"value": value}, parent=input_request))

    # -- receiving
    def _channel(self, name):
        return getattr(self.kc, f"{name}_channel")

    def pump(self, channel, timeout):
        """Read one message from ``channel`` (waiting up to ``timeout``); False if none came."""
        try:
            msg = self._channel(channel).get_msg(timeout=max(timeout, 0.001))
        except queue.Empty:
            return False
        msg["_t"] = time.monotonic()
        self.got[channel][parent_id(msg)].append(msg)
        self.log[channel].append(msg)
        return True

    def wait(self, channel, msg_id, predicate, what, timeout=10.0):
        """Wait until ``predicate(messages on channel parented to msg_id)``; return those messages."""
        deadline = time.monotonic() + timeout
        while not predicate(self.got[channel][msg_id]):
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [(m["msg_type"], m["content"]) for m in self.got[channel][msg_id]]
                raise AssertionError(f"no {what} within {timeout} s; {channel} messages for it: {seen}")
            self.pump(channel, left)
        return self.got[channel][msg_id]

    def reply(self, msg_id, channel="shell", timeout=10.0):
        msgs = self.wait(channel, msg_id, lambda ms: len(ms) > 0, f"{channel} reply to {msg_id}", timeout)
        assert len(msgs) == 1, [m["msg_type"] for m in msgs]
        return msgs[0]

    def iopub(self, msg_id, timeout=10.0):
        """The iopub messages of a request, up to its idle."""
        return self.wait("iopub", msg_id, lambda ms: any(is_status(m, "idle") for m in ms), f"idle for {msg_id}", timeout)

    def iopub_until(self, msg_id, predicate, what, timeout=10.0):
        return self.wait("iopub", msg_id, lambda ms: any(predicate(m) for m in ms), what, timeout)

    def started(self, msg_id, timeout=10.0):
        """Wait for the cell to print 'started' (it is running, not queued)."""
        self.iopub_until(
            msg_id, lambda m: m["msg_type"] == "stream" and "started" in m["content"]["text"], f"'started' from {msg_id}", timeout
        )

    def input_request(self, msg_id, timeout=10.0):
        msgs = self.wait("stdin", msg_id, lambda ms: len(ms) > 0, f"input_request for {msg_id}", timeout)
        assert len(msgs) == 1 and msgs[0]["msg_type"] == "input_request", msgs
        return msgs[0]

    def stdin_pending(self):
        return self._channel("stdin").msg_ready()

    # -- conveniences
    def run(self, code, subshell_id=None, timeout=10.0):
        """Run a cell that must succeed; return (reply, iopub messages)."""
        msg_id = self.execute(code, subshell_id)
        reply = self.reply(msg_id, timeout=timeout)
        assert reply["content"]["status"] == "ok", reply["content"]
        return reply, self.iopub(msg_id, timeout)

    def eval(self, code, subshell_id=None, timeout=10.0):
        """The text/plain of a cell's execute_result."""
        _, out = self.run(code, subshell_id, timeout)
        return result_text(out)

    def create_subshell(self):
        msg_id = self.control("create_subshell_request")
        reply = self.reply(msg_id, "control")
        assert reply["msg_type"] == "create_subshell_reply", reply
        assert reply["content"]["status"] == "ok", reply["content"]
        return reply["content"]["subshell_id"]

    def delete_subshell(self, subshell_id):
        reply = self.reply(self.control("delete_subshell_request", {"subshell_id": subshell_id}), "control")
        assert reply["msg_type"] == "delete_subshell_reply", reply
        return reply["content"]

    def list_subshells(self):
        reply = self.reply(self.control("list_subshell_request"), "control")
        assert reply["msg_type"] == "list_subshell_reply", reply
        assert reply["content"]["status"] == "ok", reply["content"]
        return reply["content"]["subshell_id"]


def result_text(messages):
    results = [m for m in messages if m["msg_type"] == "execute_result"]
    assert len(results) == 1, [(m["msg_type"], m["content"]) for m in messages]
    return results[0]["content"]["data"]["text/plain"]


def stream_text(messages):
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")


def assert_error_reply(reply, ename):
    c = reply["content"]
    assert c["status"] == "error", c
    assert c["ename"] == ename, c
    assert isinstance(c["evalue"], str), c
    if ename != "KeyboardInterrupt":
        assert c["evalue"], c
    assert isinstance(c["traceback"], list), c


def assert_busy_idle_only(msgs):
    """A request that did not run: exactly busy then idle on iopub."""
    assert [(m["msg_type"], m["content"].get("execution_state")) for m in msgs] == [("status", "busy"), ("status", "idle")]


def assert_framed(msgs):
    """busy first, idle last, exactly one of each."""
    kinds = [(m["msg_type"], m["content"].get("execution_state")) for m in msgs]
    assert kinds[0] == ("status", "busy"), kinds
    assert kinds[-1] == ("status", "idle"), kinds
    assert kinds.count(("status", "busy")) == 1 and kinds.count(("status", "idle")) == 1, kinds


# ================================================================= fixtures
class Kernel:
    def __init__(self, proc, fe, fname):
        self.proc, self.fe, self.fname = proc, fe, fname
        self.extra = []

    @property
    def pid(self):
        return self.proc.proc.pid

    def frontend(self):
        """One more client on the same connection file (its own session id)."""
        fe = Frontend(self.fname)
        self.extra.append(fe)
        fe.kc.wait_for_ready(timeout=20)
        return fe

    def threads(self):
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        raise AssertionError("no Threads: line")


def _start(tmp_path, argv, env=None):
    fname, _ = write_connection_file(str(tmp_path / "kernel.json"), key=b"subshell-key")
    proc = KernelProcess(argv, fname, env=env)
    fe = Frontend(fname)
    wait_until_ready(fe.kc, proc, 30)  # (retries what jupyter_client takes for a death on a loaded machine)
    k = Kernel(proc, fe, fname)
    return k


@pytest.fixture
def pykernel(tmp_path):
    ipython_dir = tmp_path / "ipython"
    ipython_dir.mkdir()
    k = _start(tmp_path, PY_KERNEL, env={"IPYTHONDIR": str(ipython_dir)})
    yield k
    for fe in [k.fe, *k.extra]:
        fe.close()
    k.proc.kill()


@pytest.fixture
def execkernel(tmp_path):
    k = _start(tmp_path, EXEC_KERNEL)
    yield k
    k.fe.close()
    k.proc.kill()


# ============================================== feature, create/list/delete
def test_kernel_info_advertises_subshells_and_control_replies_have_the_documented_shape(execkernel):
    fe = execkernel.fe
    info = fe.reply(fe.control("kernel_info_request"), "control")
    assert "kernel subshells" in info["content"]["supported_features"], info["content"]
    info = fe.reply(fe.shell("kernel_info_request", {}))
    assert "kernel subshells" in info["content"]["supported_features"], info["content"]

    assert fe.list_subshells() == []
    msg_id = fe.control("create_subshell_request")
    reply = fe.reply(msg_id, "control")
    assert reply["msg_type"] == "create_subshell_reply"
    assert set(reply["content"]) == {"status", "subshell_id"}, reply["content"]
    assert reply["content"]["status"] == "ok"
    a = reply["content"]["subshell_id"]
    assert isinstance(a, str) and a
    # busy/idle on iopub for the control request too
    assert_busy_idle_only(fe.iopub(msg_id))
    b = fe.create_subshell()
    assert isinstance(b, str) and b and b != a
    listed = fe.list_subshells()
    assert isinstance(listed, list) and sorted(listed) == sorted([a, b])

    assert fe.delete_subshell(a) == {"status": "ok"}
    assert fe.list_subshells() == [b]
    # the remaining subshell still works, the deleted one does not
    assert fe.eval("6 * 7", b) == "42"
    assert_error_reply(fe.reply(fe.execute("1", a)), "UnknownSubshell")
    assert fe.delete_subshell(b) == {"status": "ok"}
    assert fe.list_subshells() == []


# ============================================================== concurrency
def test_subshell_answers_executes_and_comms_while_the_main_shell_is_busy(pykernel):
    fe = pykernel.fe
    # warm up: IPython's shell, a comm target that echoes, a comm opened to it
    fe.run(
        "import time, comm\n"
        "def _target(c, open_msg):\n"
        "    @c.on_msg\n"
        "    def _echo(msg):\n"
        "        c.send({'echo': msg['content']['data']})\n"
        "comm.get_comm_manager().register_target('echo', _target)\n"
    )
    open_id = fe.shell("comm_open", {"comm_id": "c-echo", "target_name": "echo", "data": {}})
    fe.iopub(open_id)
    sid = fe.create_subshell()
    assert fe.eval("'warm'", sid) == "'warm'"

    main_id = fe.execute("print('started', flush=True)\ntime.sleep(5)")
    fe.started(main_id)

    # an execute in the subshell
    msg_id = fe.execute("x = 6 * 7\nx", sid)
    reply = fe.reply(msg_id, timeout=5)
    elapsed = reply["_t"] - fe.sent_at[msg_id]
    assert reply["content"]["status"] == "ok", reply["content"]
    assert elapsed < PROMPT_DEADLINE, f"subshell execute took {elapsed:.3f} s while the main shell slept"
    assert result_text(fe.iopub(msg_id)) == "42"

    # comm_info_request in the subshell
    msg_id = fe.shell("comm_info_request", {"target_name": "echo"}, sid)
    reply = fe.reply(msg_id, timeout=5)
    elapsed = reply["_t"] - fe.sent_at[msg_id]
    assert reply["content"] == {"status": "ok", "comms": {"c-echo": {"target_name": "echo"}}}, reply["content"]
    assert elapsed < PROMPT_DEADLINE, f"subshell comm_info took {elapsed:.3f} s while the main shell slept"

    # a comm_msg in the subshell: the target's handler runs there, at once
    msg_id = fe.shell("comm_msg", {"comm_id": "c-echo", "data": {"n": 7}}, sid)
    out = fe.iopub(msg_id, timeout=5)
    elapsed = out[-1]["_t"] - fe.sent_at[msg_id]
    echoes = [m["content"] for m in out if m["msg_type"] == "comm_msg"]
    assert echoes == [{"comm_id": "c-echo", "data": {"echo": {"n": 7}}}], [(m["msg_type"], m["content"]) for m in out]
    assert elapsed < PROMPT_DEADLINE, f"subshell comm_msg took {elapsed:.3f} s while the main shell slept"

    # the main shell was busy all along: no reply yet; end it
    assert not fe.got["shell"][main_id], "the main cell finished early: the test proved nothing"
    int_id = fe.control("interrupt_request")
    assert fe.reply(int_id, "control")["content"]["status"] == "ok"
    reply = fe.reply(main_id, timeout=5)
    assert_error_reply(reply, "KeyboardInterrupt")
    assert fe.delete_subshell(sid) == {"status": "ok"}


def test_two_subshells_run_concurrently(pykernel):
    fe = pykernel.fe
    fe.run("import threading, time\nev_a = threading.Event()\nev_b = threading.Event()")
    a, b = fe.create_subshell(), fe.create_subshell()
    # each cell waits for the other to start: only concurrent subshells finish
    ida = fe.execute("ev_a.set()\nassert ev_b.wait(3), 'subshell B never ran while A waited'\n'A'", a)
    idb = fe.execute("ev_b.set()\nassert ev_a.wait(3), 'subshell A never ran while B waited'\n'B'", b)
    for msg_id, value in ((ida, "'A'"), (idb, "'B'")):
        reply = fe.reply(msg_id, timeout=10)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert result_text(fe.iopub(msg_id)) == value

    # and the main shell with them: three 1 s sleeps take about 1 s
    t0 = time.monotonic()
    ids = [fe.execute("time.sleep(1)", s) for s in (None, a, b)]
    for msg_id in ids:
        assert fe.reply(msg_id, timeout=10)["content"]["status"] == "ok"
    elapsed = max(fe.got["shell"][i][0]["_t"] for i in ids) - t0
    assert elapsed < 1.8, f"three 1 s sleeps (main, A, B) took {elapsed:.3f} s"


def test_results_of_concurrent_subshells_all_arrive(pykernel):
    """Two subshells each run a cell that evaluates an expression 200 times
    through IPython's displayhook at once: every value reaches its own cell
    as an execute_result, in order (the hook, the shell and its traps are
    objects the threads share)."""
    fe = pykernel.fe
    # switch threads as often as Python allows, so the two loops interleave
    fe.run("import sys, threading\nbarrier = threading.Barrier(2)\nsys.setswitchinterval(1e-6)")
    a, b = fe.create_subshell(), fe.create_subshell()
    # the loop runs in a function of its own: the subshells share one user
    # namespace, and a module-level `for i` would have each cell read the
    # other's i at times (seen in CI as ('B', 185) at index 37)
    code = (
        "def results_{name}():\n"
        "    barrier.wait(5)\n"
        "    for i in range(200):\n"
        "        get_ipython().displayhook(('{name}', i))\n"
        "results_{name}()\n"
    )
    ida, idb = fe.execute(code.format(name="A"), a), fe.execute(code.format(name="B"), b)
    for msg_id, name in ((ida, "A"), (idb, "B")):
        assert fe.reply(msg_id, timeout=30)["content"]["status"] == "ok"
        results = [m["content"]["data"]["text/plain"] for m in fe.iopub(msg_id, timeout=30) if m["msg_type"] == "execute_result"]
        assert results == [repr((name, i)) for i in range(200)], f"{name}: {len(results)} of 200 results arrived"


# ================================================================ parenting
def test_output_status_and_reply_of_a_subshell_request_are_parented_to_it(pykernel):
    fe = pykernel.fe
    fe.run("import threading, time")
    sid = fe.create_subshell()
    # the main shell prints while the subshell prints, displays and returns a value
    main_id = fe.execute(
        "print('started', flush=True)\nfor i in range(60):\n    print('M', i, flush=True)\n    time.sleep(0.01)\n'main done'"
    )
    fe.started(main_id)
    sub_code = (
        "from IPython.display import display\n"
        "for i in range(20):\n"
        "    print('S', i, flush=True)\n"
        "    time.sleep(0.005)\n"
        "display({'text/plain': 'shown'}, raw=True)\n"
        "t = threading.Thread(target=lambda: print('T from a thread', flush=True))\n"
        "t.start(); t.join()\n"
        "import sys; print('E', file=sys.stderr, flush=True)\n"
        "'sub done'"
    )
    sub_id = fe.execute(sub_code, sid)
    reply = fe.reply(sub_id)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert reply["parent_header"]["msg_id"] == sub_id
    sub = fe.iopub(sub_id)
    main = fe.iopub(main_id)
    assert fe.reply(main_id)["content"]["status"] == "ok"

    assert_framed(sub)
    types = [m["msg_type"] for m in sub]
    assert types[1] == "execute_input", types
    assert sub[1]["content"]["code"] == sub_code
    out = "".join(m["content"]["text"] for m in sub if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")
    assert out == "".join(f"S {i}\n" for i in range(20)) + "T from a thread\n", out
    err = "".join(m["content"]["text"] for m in sub if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
    assert err == "E\n"
    assert [m["content"]["data"] for m in sub if m["msg_type"] == "display_data"] == [{"text/plain": "shown"}]
    assert result_text(sub) == "'sub done'"
    assert types.index("execute_result") == len(types) - 2, types

    assert_framed(main)
    assert stream_text(main) == "started\n" + "".join(f"M {i}\n" for i in range(60)), stream_text(main)
    assert result_text(main) == "'main done'"

    # the subshell ran while main printed (else this test proved nothing)
    m_times = [m["_t"] for m in main if m["msg_type"] == "stream"]
    assert sub[0]["_t"] < m_times[-1], "the subshell cell did not overlap the main cell"

    # an error in a subshell: error output and reply, parented to it
    err_id = fe.execute("1 / 0", sid)
    reply = fe.reply(err_id)
    assert_error_reply(reply, "ZeroDivisionError")
    out = fe.iopub(err_id)
    assert_framed(out)
    assert [m["content"]["ename"] for m in out if m["msg_type"] == "error"] == ["ZeroDivisionError"]


# ================================================================= ordering
def test_requests_within_one_subshell_run_in_order(pykernel):
    fe = pykernel.fe
    fe.run("import time\norder = []")
    sid = fe.create_subshell()
    # earlier cells sleep longer: run out of order, they would finish out of order
    ids = [fe.execute(f"time.sleep({0.004 * (20 - i):.3f})\norder.append({i})", sid) for i in range(20)]
    for msg_id in ids:
        assert fe.reply(msg_id, timeout=15)["content"]["status"] == "ok"
    arrival = [parent_id(m) for m in fe.log["shell"] if parent_id(m) in ids]
    assert arrival == ids, "replies came out of order"
    assert [fe.got["shell"][i][0]["content"]["execution_count"] for i in ids] == list(range(1, 21))
    for msg_id in ids:
        fe.iopub(msg_id)
    busy_order = [parent_id(m) for m in fe.log["iopub"] if is_status(m, "busy") and parent_id(m) in ids]
    idle_order = [parent_id(m) for m in fe.log["iopub"] if is_status(m, "idle") and parent_id(m) in ids]
    assert busy_order == ids and idle_order == ids
    seq = [(parent_id(m), m["content"]["execution_state"]) for m in fe.log["iopub"] if m["msg_type"] == "status" and parent_id(m) in ids]
    assert seq == [(i, s) for i in ids for s in ("busy", "idle")], "a subshell request started before the previous one ended"
    assert fe.eval("order") == repr(list(range(20)))


# ========================================================= execution counts
def test_execution_counts_are_counted_per_subshell(pykernel):
    fe = pykernel.fe
    a, b = fe.create_subshell(), fe.create_subshell()
    plan = [(None, 1), (a, 1), (a, 2), (b, 1), (None, 2), (a, 3)]
    for n, (sid, expected) in enumerate(plan):
        msg_id = fe.execute(f"{n} + 100", sid)
        reply = fe.reply(msg_id)
        assert reply["content"]["status"] == "ok", reply["content"]
        out = fe.iopub(msg_id)
        inputs = [m["content"]["execution_count"] for m in out if m["msg_type"] == "execute_input"]
        results = [m["content"]["execution_count"] for m in out if m["msg_type"] == "execute_result"]
        got = (inputs, results, reply["content"]["execution_count"])
        assert got == ([expected], [expected], expected), f"step {n} in {'main' if sid is None else sid[:8]}: {got}"
        assert result_text(out) == str(n + 100)
    # an unstored run in a subshell reports its last count and does not advance it
    msg_id = fe.execute("'x'", a, store_history=False)
    assert fe.reply(msg_id)["content"]["execution_count"] == 3
    msg_id = fe.execute("'y'", a)
    assert fe.reply(msg_id)["content"]["execution_count"] == 4
    # main's count was not moved by the subshells
    msg_id = fe.execute("'z'")
    assert fe.reply(msg_id)["content"]["execution_count"] == 3
    # a new subshell starts at 1
    c = fe.create_subshell()
    assert fe.reply(fe.execute("1", c))["content"]["execution_count"] == 1


# ===================================================================== stdin
def test_input_in_a_subshell_goes_to_the_client_that_sent_the_request(pykernel):
    one = pykernel.fe
    two = pykernel.frontend()
    assert one.session.session != two.session.session
    sa = one.create_subshell()
    sb = one.create_subshell()

    # client one asks in subshell A; the prompt reaches client one
    ida = one.execute("answer_a = input('A? ')\nanswer_a.upper()", sa)
    req_a = one.input_request(ida)
    assert req_a["content"] == {"prompt": "A? ", "password": False}
    # client two asks in subshell B while A's prompt waits: the first thing on
    # client two's stdin is its own prompt (were A's prompt routed to it, it
    # would come first: one socket, in order)
    idb = two.execute("answer_b = input('B? ')\nanswer_b.upper()", sb)
    two.pump("stdin", 10)
    assert two.log["stdin"], "client two got no input_request"
    assert parent_id(two.log["stdin"][0]) == idb, f"client two got a prompt for another client's request: {two.log['stdin'][0]}"
    req_b = two.log["stdin"][0]
    assert req_b["content"]["prompt"] == "B? "
    # answer in the other order: each cell gets its own value
    two.answer(req_b, "bee")
    reply = two.reply(idb)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert result_text(two.iopub(idb)) == repr("BEE")
    one.answer(req_a, "ay")
    reply = one.reply(ida)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert result_text(one.iopub(ida)) == repr("AY")

    # after the idles (sent after anything on stdin for those requests):
    # each client saw exactly its own prompt
    assert [parent_id(m) for m in one.log["stdin"]] == [ida]
    assert not one.stdin_pending(), "client one got another client's prompt"
    assert [parent_id(m) for m in two.log["stdin"]] == [idb]
    assert not two.stdin_pending(), "client two got another client's prompt"

    # the main shell and a subshell prompting at once, for different clients
    idm = two.execute("input('main? ')")
    ida = one.execute("input('A again? ')", sa)
    req_m, req_a = two.input_request(idm), one.input_request(ida)
    one.answer(req_a, "1")
    two.answer(req_m, "2")
    assert result_text(one.iopub(ida)) == repr("1")
    assert result_text(two.iopub(idm)) == repr("2")
    assert not one.stdin_pending() and not two.stdin_pending()


def test_main_shell_and_subshell_flushing_output_at_once(pykernel):
    """Every display flushes the kernel's output, fd-level capture included,
    on the thread that displays: the main shell and a subshell doing it at
    the same time must both succeed (the capture's poll object is shared)."""
    fe = pykernel.fe
    sub = fe.create_subshell()
    code = "import os\nfor i in range(300):\n    os.write(1, b'.')\n    display(i)\n"
    ids = [fe.execute(code), fe.execute(code, sub)]
    for msg_id in ids:
        reply = fe.reply(msg_id, timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
        out = fe.iopub(msg_id, 60)
        assert len([m for m in out if m["msg_type"] == "display_data"]) == 300


# ================================================================ interrupts
# An input() prompt cancelled in a subshell raises KeyboardInterrupt there,
# as an interrupted prompt in the main shell does.
PROMPT_CANCELLED = ("KeyboardInterrupt",)


@pytest.mark.parametrize("main", ["main-busy", "main-idle"])
@pytest.mark.parametrize("mode", ["message", "signal"])
def test_interrupt_stops_main_cancels_subshell_prompts_and_spares_subshell_code(pykernel, mode, main):
    """interrupt_request or SIGINT: the main shell's cell gets KeyboardInterrupt;
    a subshell waiting in input() gets KeyboardInterrupt at once; a subshell
    computing is not interrupted and finishes ok."""
    fe = pykernel.fe
    fe.run("import time")
    waiting, computing = fe.create_subshell(), fe.create_subshell()
    assert fe.eval("'warm'", waiting) == "'warm'" and fe.eval("'warm'", computing) == "'warm'"

    main_id = None
    if main == "main-busy":
        main_id = fe.execute("print('started', flush=True)\ntime.sleep(30)")
        fe.started(main_id)
    ask_id = fe.execute("asked = input('in a subshell: ')", waiting)
    old_prompt = fe.input_request(ask_id)
    comp_id = fe.execute("print('started', flush=True)\ntime.sleep(1.5)\n'computed'", computing)
    fe.started(comp_id)

    t0 = time.monotonic()
    if mode == "signal":
        pykernel.proc.interrupt()
    else:
        assert fe.reply(fe.control("interrupt_request"), "control")["content"]["status"] == "ok"

    if main_id is not None:
        main_reply = fe.reply(main_id, timeout=5)
        assert_error_reply(main_reply, "KeyboardInterrupt")
        assert main_reply["_t"] - t0 < INTERRUPT_DEADLINE

    ask_reply = fe.reply(ask_id, timeout=3)
    content = ask_reply["content"]
    assert content["status"] == "error" and content["ename"] in PROMPT_CANCELLED, content
    assert isinstance(content["traceback"], list)
    assert ask_reply["_t"] - t0 < INTERRUPT_DEADLINE, f"the subshell prompt was cancelled after {ask_reply['_t'] - t0:.3f} s"
    errors = [m["content"]["ename"] for m in fe.iopub(ask_id) if m["msg_type"] == "error"]
    assert errors == [content["ename"]]

    # the computing subshell was not interrupted: it finishes, ok
    comp_reply = fe.reply(comp_id, timeout=5)
    assert comp_reply["content"]["status"] == "ok", comp_reply["content"]
    assert result_text(fe.iopub(comp_id)) == "'computed'"
    assert comp_reply["_t"] > ask_reply["_t"]
    assert not fe.stdin_pending()

    # a late answer to the cancelled prompt is dropped; the subshell still asks and gets answers
    fe.answer(old_prompt, "LATE")
    msg_id = fe.execute("input('again: ')", waiting)
    new_prompt = fe.input_request(msg_id)
    fe.answer(new_prompt, "fresh")
    assert result_text(fe.iopub(msg_id)) == repr("fresh")
    # the cancelled assignment never happened; no stale interrupt hits the next main cell
    assert fe.eval("time.sleep(0.2)\n'asked' in dir()") == "False"


# ========================================================= unknown, deleted
def test_unknown_subshell_id_is_an_error_reply_even_while_the_main_shell_is_busy(execkernel):
    fe = execkernel.fe
    main_id = fe.execute("kernel.stream('started')\ntime.sleep(20)")
    fe.started(main_id)
    for msg_type, content in (
        ("execute_request", {"code": "1", "silent": False, "allow_stdin": False}),
        ("kernel_info_request", {}),
        ("comm_info_request", {}),
    ):
        msg_id = fe.shell(msg_type, content, "no-such-subshell")
        reply = fe.reply(msg_id, timeout=5)
        assert reply["msg_type"] == msg_type.replace("_request", "_reply")
        assert_error_reply(reply, "UnknownSubshell")
        assert "no-such-subshell" in reply["content"]["evalue"]
        assert reply["_t"] - fe.sent_at[msg_id] < PROMPT_DEADLINE, "an unknown subshell's error waited for the main shell"
        assert_busy_idle_only(fe.iopub(msg_id))
    assert not fe.got["shell"][main_id]
    # deleting an unknown id: the same error on control
    msg_id = fe.control("delete_subshell_request", {"subshell_id": "no-such-subshell"})
    reply = fe.reply(msg_id, "control")
    assert reply["msg_type"] == "delete_subshell_reply"
    assert_error_reply(reply, "UnknownSubshell")
    assert "no-such-subshell" in reply["content"]["evalue"]
    assert_busy_idle_only(fe.iopub(msg_id))
    # all of that while the main shell was still busy
    assert not fe.got["shell"][main_id]
    assert fe.reply(fe.control("interrupt_request"), "control")["content"]["status"] == "ok"
    assert_error_reply(fe.reply(main_id, timeout=5), "KeyboardInterrupt")


COMM_PROBE = """\
import threading, time, comm
state, go = [], []
def _target(c, open_msg):
    @c.on_msg
    def _record(msg):
        state.append(('comm', threading.current_thread() is threading.main_thread()))
comm.get_comm_manager().register_target('probe', _target)
def wait_for(condition, timeout=10):
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        time.sleep(0.005)
"""


def test_comms_on_a_subshell_take_their_turn_on_the_main_shell_unless_a_cell_runs_alone(pykernel):
    # JupyterLab sends every comm message on a subshell: a widget callback must
    # not run beside cells queued by a run-all (pyplot, widget state), and must
    # still answer during one long cell
    fe = pykernel.fe
    fe.run(COMM_PROBE)
    fe.iopub(fe.shell("comm_open", {"comm_id": "c-probe", "target_name": "probe", "data": {}}))
    sid, other = fe.create_subshell(), fe.create_subshell()

    def comm_msg():
        return fe.shell("comm_msg", {"comm_id": "c-probe", "data": {}}, sid)

    # main shell idle: on the main thread
    fe.iopub(comm_msg())
    assert fe.eval("state") == "[('comm', True)]"

    # a cell running with another queued behind it: after both, on the main thread
    first = fe.execute("state.clear()\nprint('started', flush=True)\nwait_for(lambda: go)\nstate.append('first')")
    fe.started(first)
    second = fe.execute("state.append('second')")
    msg_id = comm_msg()
    fe.run("go.append(1)", other)  # (a subshell's execute runs at once)
    for m in (first, second, msg_id):
        fe.iopub(m)
    assert fe.eval("state") == "['first', 'second', ('comm', True)]"

    # one cell running alone: beside it, on the subshell, at once
    alone = fe.execute("state.clear()\nprint('started', flush=True)\nwait_for(lambda: state)\nprint(state)")
    fe.started(alone)
    fe.iopub(comm_msg())
    assert stream_text(fe.iopub(alone)) == "started\n[('comm', False)]\n"

    # ... but not inside a cell that holds comm_lock: no interleaving
    locked = fe.execute(
        "state.clear(); go.clear()\nwith get_ipython().kernel.comm_lock:\n    state.append('cell 1')\n"
        "    print('started', flush=True)\n    wait_for(lambda: go)\n    state.append('cell 2')\n"
    )
    fe.started(locked)
    msg_id = comm_msg()
    # its busy: the subshell's thread is about to run it (and waits for the lock)
    fe.iopub_until(msg_id, lambda m: is_status(m, "busy"), "the comm message's busy")
    fe.run("go.append(1)", other)
    fe.iopub(locked)
    fe.iopub(msg_id)
    assert fe.eval("state") == "['cell 1', 'cell 2', ('comm', False)]"


def test_a_slider_moves_its_label_while_a_cell_runs(pykernel):
    # what JupyterLab sends when the slider is dragged: an update on the slider's
    # comm, on a subshell; the label's update comes while the cell still runs
    fe = pykernel.fe
    fe.run(
        "from ipywidgets import IntSlider, Label\nslider, label = IntSlider(), Label('0')\n"
        "slider.observe(lambda change: setattr(label, 'value', str(change['new'])), 'value')\ndisplay(slider, label)"
    )
    slider_id, label_id = ast.literal_eval(fe.eval("slider.comm.comm_id, label.comm.comm_id"))
    sid = fe.create_subshell()
    main_id = fe.execute("import time\nprint('started', flush=True)\ntime.sleep(10)")
    fe.started(main_id)
    msg_id = fe.shell("comm_msg", {"comm_id": slider_id, "data": {"method": "update", "state": {"value": 7}, "buffer_paths": []}}, sid)
    updates = [m["content"] for m in fe.iopub(msg_id, timeout=5) if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == label_id]
    assert [u["data"]["state"] for u in updates] == [{"value": "7"}], updates
    assert not fe.got["shell"][main_id], "the cell ended first: the test proved nothing"
    assert fe.reply(fe.control("interrupt_request"), "control")["content"]["status"] == "ok"
    assert_error_reply(fe.reply(main_id, timeout=5), "KeyboardInterrupt")


def test_a_comm_message_for_a_deleted_subshell_is_applied(pykernel):
    # JupyterLab sends comm messages on a subshell (commsOverSubshells) and a
    # comm's comm_close on the subshell it has just deleted: the comm is the
    # kernel's, and closes
    fe = pykernel.fe
    fe.run("import comm\nclosed = []\nc = comm.create_comm(target_name='t')\nc.on_close(lambda msg: closed.append(1))")
    comm_id = ast.literal_eval(fe.eval("c.comm_id"))
    sid = fe.create_subshell()
    assert fe.delete_subshell(sid) == {"status": "ok"}
    msg_id = fe.shell("comm_close", {"comm_id": comm_id, "data": {}}, sid)
    assert_busy_idle_only(fe.iopub(msg_id))
    assert fe.eval("closed, c.comm_id in get_ipython().kernel.comm_manager.comms") == "([1], False)"


def test_a_comm_close_queued_on_a_subshell_when_it_is_deleted_is_applied(pykernel):
    # the comm_close waits on the subshell (busy) while a cell runs alone on the
    # main shell (so the comm rule leaves it there); the subshell is deleted
    # before it runs: the comm still closes, on that subshell's thread
    fe = pykernel.fe
    fe.run("import comm, threading\nclosed = []\ngo = threading.Event()\nc = comm.create_comm(target_name='t')\nc.on_close(lambda msg: closed.append(threading.current_thread().name))")
    comm_id = ast.literal_eval(fe.eval("c.comm_id"))
    sid, other = fe.create_subshell(), fe.create_subshell()
    main_id = fe.execute("print('started', flush=True)\nassert go.wait(20)")
    fe.started(main_id)
    sub_id = fe.execute("print('started', flush=True)\nassert go.wait(20)", sid)
    fe.started(sub_id)
    msg_id = fe.shell("comm_close", {"comm_id": comm_id, "data": {}}, sid)
    fe.run("'sync'", other)  # (same socket: the comm_close has arrived, and waits)
    assert fe.delete_subshell(sid) == {"status": "ok"}
    fe.run("go.set()", other)
    assert fe.reply(sub_id, timeout=10)["content"]["status"] == "ok"
    assert_busy_idle_only(fe.iopub(msg_id))
    assert fe.reply(main_id, timeout=10)["content"]["status"] == "ok"
    fe.iopub(main_id)
    closed, still_open = ast.literal_eval(fe.eval("closed, c.comm_id in get_ipython().kernel.comm_manager.comms"))
    assert len(closed) == 1 and closed[0] != "MainThread" and not still_open, (closed, still_open)
    assert "ignored comm_close" not in pykernel.proc.stderr


def test_deleting_a_busy_subshell(pykernel):
    fe = pykernel.fe
    fe.run("import threading\ngo = threading.Event()\nran = []")
    baseline = pykernel.threads()
    sid = fe.create_subshell()
    assert pykernel.threads() == baseline + 1
    running = fe.execute("print('started', flush=True)\nassert go.wait(20)\nran.append('running')", sid)
    fe.started(running)
    queued = [fe.execute(f"ran.append({i})", sid) for i in range(3)]
    queued.append(fe.shell("kernel_info_request", {}, sid))
    # the queued requests have arrived at the kernel before the delete is sent
    # (one client, but shell and control are different sockets): wait for a
    # shell round trip through the main shell
    fe.run("'sync'")

    assert fe.delete_subshell(sid) == {"status": "ok"}
    # queued, never started: SubshellDeleted, with busy/idle
    for msg_id in queued:
        reply = fe.reply(msg_id, timeout=5)
        assert_error_reply(reply, "SubshellDeleted")
        assert_busy_idle_only(fe.iopub(msg_id))
    # routing stopped at once: UnknownSubshell, with busy/idle
    msg_id = fe.execute("ran.append('late')", sid)
    assert_error_reply(fe.reply(msg_id, timeout=5), "UnknownSubshell")
    assert_busy_idle_only(fe.iopub(msg_id))
    assert fe.list_subshells() == []
    # the running request is still running
    assert not fe.got["shell"][running]
    assert pykernel.threads() == baseline + 1

    fe.run("go.set()")
    reply = fe.reply(running, timeout=5)
    assert reply["content"]["status"] == "ok", reply["content"]
    out = fe.iopub(running)
    assert_framed(out)
    assert fe.eval("ran") == repr(["running"])
    # then its thread ends
    wait_for_threads(pykernel, baseline)


# ============================================================== thread leaks
def wait_for_threads(kernel, expected, timeout=10.0):
    """Poll the kernel's thread count, paced by control round trips."""
    fe = kernel.fe
    deadline = time.monotonic() + timeout
    while True:
        n = kernel.threads()
        if n == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the kernel has {n} threads, expected {expected}")
        fe.reply(fe.control("kernel_info_request"), "control")


def test_creating_and_deleting_subshells_leaks_no_threads(pykernel):
    fe = pykernel.fe
    fe.run("n = 0")
    baseline = pykernel.threads()
    for i in range(20):
        sid = fe.create_subshell()
        fe.run("global n\nn += 1", sid)
        assert fe.delete_subshell(sid) == {"status": "ok"}
    wait_for_threads(pykernel, baseline)
    assert fe.list_subshells() == []
    # and many at once
    sids = [fe.create_subshell() for _ in range(20)]
    assert pykernel.threads() == baseline + 20
    assert sorted(fe.list_subshells()) == sorted(sids)
    for sid in sids:
        fe.run("n += 1", sid)
    for sid in sids:
        assert fe.delete_subshell(sid) == {"status": "ok"}
    wait_for_threads(pykernel, baseline)
    assert fe.list_subshells() == []
    assert fe.eval("n") == "40"


# ============================================ a kernel that does not offer them
@pytest.fixture
def calckernel(tmp_path):
    k = _start(tmp_path, CALC_KERNEL)  # (declares no "kernel subshells")
    yield k
    k.fe.close()
    k.proc.kill()


def test_a_kernel_that_does_not_declare_subshells_refuses_them(calckernel):
    fe = calckernel.fe
    info = fe.reply(fe.control("kernel_info_request"), "control")
    assert "kernel subshells" not in info["content"]["supported_features"], info["content"]
    for msg_type, content in [("create_subshell_request", {}), ("list_subshell_request", {}),
                              ("delete_subshell_request", {"subshell_id": "x"})]:
        reply = fe.reply(fe.control(msg_type, content), "control")
        assert reply["content"]["status"] == "error", reply["content"]
        assert reply["content"]["ename"] == "SubshellsNotSupported"
        assert "does not support subshells" in reply["content"]["evalue"]
    # a request naming a subshell is refused too, and the main shell goes on
    assert_error_reply(fe.reply(fe.execute("1", "made-up")), "UnknownSubshell")
    assert fe.eval("6 * 7") == "42"
