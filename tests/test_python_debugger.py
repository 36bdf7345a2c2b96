"""The Python kernel's visual debugger, driven as JupyterLab drives it.

Real kernel processes, real ZeroMQ, jupyter_client as the frontend sending
the Debug Adapter Protocol requests JupyterLab sends (debugInfo,
initialize, attach, debugInfo, dumpCell + setBreakpoints per cell,
configurationDone; on a stop stackTrace, scopes, variables; the variable
explorer's inspectVariables and richInspectVariables). Every wait is on a
message, with a timeout.
"""

import json
import os
import queue
import re
import sys
import time

import pytest
import zmq
from jupyter_client import BlockingKernelClient
from support import iopub_until_idle, km_client, reply_to, run_ok, start_kernel

from kernelkit.python import install
from kernelkit.python.cellfiles import HASH_SEED, murmur2

pytest.importorskip("debugpy", reason="the debugger tests need debugpy (the 'debugger' extra)")

PY_KERNEL = [sys.executable, "-m", "kernelkit.python"]
# JupyterLab's initialize arguments (its debugger session.ts)
INITIALIZE = {
    "clientID": "jupyterlab",
    "clientName": "JupyterLab",
    "adapterID": "python",
    "pathFormat": "path",
    "linesStartAt1": True,
    "columnsStartAt1": True,
    "supportsVariableType": True,
    "supportsVariablePaging": True,
    "supportsRunInTerminalRequest": True,
    "locale": "en",
}
CELL = "def double(x):\n    y = x * 2\n    return y\n\nprint('result', double(21))\n"

pytestmark = pytest.mark.timeout(90)


class Frontend:
    """One client speaking the debugger protocol: debug_request on control,
    debug_event (and the rest of iopub) read as it comes."""

    def __init__(self, kc):
        self.kc = kc
        self.seq = 0
        self.iopub: list = []  # every iopub message read so far, in order
        self._looked = 0  # debug_events before this index were waited for already

    def request(self, command, arguments=None, timeout=30.0, **extra):
        self.seq += 1
        content = {"type": "request", "seq": self.seq, "command": command, **extra}
        if arguments is not None:
            content["arguments"] = arguments
        msg = self.kc.session.msg("debug_request", content)
        self.kc.control_channel.send(msg)
        reply = reply_to(self.kc, msg["header"]["msg_id"], timeout, channel="control")
        assert reply["msg_type"] == "debug_reply"
        body = reply["content"]
        assert body["request_seq"] == self.seq and body["command"] == command, body
        return body

    def ok(self, command, arguments=None, **kw):
        body = self.request(command, arguments, **kw)
        assert body["success"], body
        return body.get("body", {})

    def _read(self, timeout):
        try:
            msg = self.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return None
        self.iopub.append(msg)
        return msg

    def event(self, name, timeout=20.0):
        """The next debug_event ``name`` not waited for before."""
        deadline = time.monotonic() + timeout
        i = self._looked
        while True:
            while i < len(self.iopub):
                msg = self.iopub[i]
                i += 1
                if msg["msg_type"] == "debug_event" and msg["content"]["event"] == name:
                    self._looked = i
                    return msg["content"]
            left = deadline - time.monotonic()
            assert left > 0, f"no {name!r} debug_event within {timeout} s; events: {self.events()}"
            self._read(min(left, 0.5))

    def events(self):
        return [m["content"]["event"] for m in self.iopub if m["msg_type"] == "debug_event"]

    def output(self, msg_id, timeout=20.0):
        """The stdout text of request ``msg_id``, once it is idle."""
        deadline = time.monotonic() + timeout
        while not any(m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "status" and m["content"]["execution_state"] == "idle" for m in self.iopub):
            assert time.monotonic() < deadline, f"{msg_id} not idle within {timeout} s"
            self._read(0.5)
        return "".join(
            m["content"]["text"] for m in self.iopub if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream"
        )

    def start(self):
        """JupyterLab's start: debugInfo (on connect), initialize, attach, debugInfo."""
        info = self.ok("debugInfo")
        assert info["isStarted"] is False
        caps = self.ok("initialize", INITIALIZE)
        self.ok("attach", {})
        info = self.ok("debugInfo")
        assert info["isStarted"] is True
        return caps, info

    def break_in_cell(self, code, lines, info):
        """dumpCell and setBreakpoints, as JupyterLab does for a cell with breakpoints."""
        path = self.ok("dumpCell", {"code": code})["sourcePath"]
        # the frontend computes the same name from debugInfo
        assert path == f"{info['tmpFilePrefix']}{murmur2(code.encode(), info['hashSeed'])}{info['tmpFileSuffix']}"
        bps = self.ok("setBreakpoints", {"source": {"path": path}, "breakpoints": [{"line": n} for n in lines], "sourceModified": False})
        assert [b["verified"] for b in bps["breakpoints"]] == [True] * len(lines), bps
        return path

    def run_to_breakpoint(self, code, lines, info):
        """Break at ``lines`` of cell ``code`` and run it: (execute msg_id, stopped thread)."""
        self.break_in_cell(code, lines, info)
        self.ok("configurationDone")
        msg_id = self.kc.execute(code)
        return msg_id, self.stopped("breakpoint")

    def stopped(self, reason):
        ev = self.event("stopped")
        assert ev["body"]["reason"] == reason, ev
        return ev["body"]["threadId"]

    def top_frame(self, thread_id):
        frames = self.ok("stackTrace", {"threadId": thread_id})["stackFrames"]
        return frames[0], frames

    def locals_of(self, frame_id):
        scopes = self.ok("scopes", {"frameId": frame_id})["scopes"]
        local = next(s for s in scopes if s["name"] == "Locals")
        return {v["name"]: v["value"] for v in self.ok("variables", {"variablesReference": local["variablesReference"]})["variables"]}


@pytest.fixture
def debug_kernel(tmp_path):
    proc, kc = start_kernel(tmp_path, argv=PY_KERNEL)
    yield proc, kc, Frontend(kc)
    kc.stop_channels()
    proc.kill()


def second_client(tmp_path):
    kc = BlockingKernelClient()
    kc.load_connection_file(str(tmp_path / "kernel.json"))
    kc.start_channels()
    kc.wait_for_ready(timeout=20)
    return kc


def control_kernel_info(kc, timeout=5.0):
    msg = kc.session.msg("kernel_info_request", {})
    kc.control_channel.send(msg)
    return reply_to(kc, msg["header"]["msg_id"], timeout, channel="control")["content"]


# ----------------------------------------------------------------- announcing
def test_kernel_announces_the_debugger_and_imports_debugpy_only_when_asked(debug_kernel):
    proc, kc, fe = debug_kernel
    kc.kernel_info()
    info = kc.get_shell_msg(timeout=10)["content"]
    assert "debugger" in info["supported_features"]
    assert info["debugger"] is True
    assert install.kernelspec()["metadata"]["debugger"] is True

    def imported():
        _, msgs = run_ok(kc, "import sys; print(sorted(m for m in ('debugpy', 'pydevd') if m in sys.modules))")
        return "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream").strip()

    assert imported() == "[]"
    fe.ok("debugInfo")  # JupyterLab sends it on connecting: still nothing imported
    assert imported() == "[]"
    fe.ok("initialize", INITIALIZE)
    assert imported() == "['debugpy', 'pydevd']"


def test_without_debugpy_no_debugger_is_announced_and_initialize_says_why(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['debugpy'] = None  # as if not installed\n")
    proc, kc = start_kernel(tmp_path, argv=PY_KERNEL, env={"PYTHONPATH": str(site)})
    try:
        kc.kernel_info()
        info = kc.get_shell_msg(timeout=10)["content"]
        assert "debugger" not in info["supported_features"] and "debugger" not in info
        refused = Frontend(kc).request("initialize", INITIALIZE)
        assert refused["success"] is False and "pip install 'kernelkit[debugger]'" in refused["message"], refused
        run_ok(kc, "pass")
    finally:
        kc.stop_channels()
        proc.kill()


def test_cells_are_compiled_under_their_file_name(debug_kernel):
    """Without any debugger: the file name JupyterLab would compute, in
    co_filename, inspect.getsource and warnings; tracebacks still say Cell In[N]."""
    proc, kc, fe = debug_kernel
    info = fe.ok("debugInfo")
    assert info["hashMethod"] == "Murmur2" and info["hashSeed"] == HASH_SEED and info["tmpFileSuffix"] == ".py"
    code = "def f(x):\n    y = x * 2\n    return y\n"
    run_ok(kc, code)
    _, msgs = run_ok(kc, "import inspect, warnings\nprint(f.__code__.co_filename)\nprint(inspect.getsource(f), end='')")
    out = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream").splitlines()
    # MurmurHash2 of the cell's UTF-8 text, as JupyterLab's debugger computes it
    assert out[0] == f"{info['tmpFilePrefix']}2460433529.py"
    assert "\n".join(out[1:]) + "\n" == code
    msg_id = kc.execute("import warnings\nwarnings.warn('careful')")
    reply_to(kc, msg_id)
    err = "".join(m["content"]["text"] for m in iopub_until_idle(kc, msg_id) if m["msg_type"] == "stream")
    assert info["tmpFilePrefix"] in err and "careful" in err
    msg_id = kc.execute("1/0")
    reply = reply_to(kc, msg_id)
    assert reply["content"]["ename"] == "ZeroDivisionError"
    plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(reply["content"]["traceback"]))
    assert "Cell In[" in plain, plain


def test_cell_hash_matches_the_frontends():
    # computed with JupyterLab's MurmurHash2 (ipykernel's implementation agrees)
    vectors = {
        "": 112259386,
        "a": 3430966101,
        "print(1)\n": 2583493115,
        "def f(x):\n    y = x * 2\n    return y\n": 2460433529,
        "ünïcødé 🐍 = 1\n": 293569862,
    }
    assert {s: murmur2(s.encode(), HASH_SEED) for s in vectors} == vectors
    assert murmur2(b"print(1)\n", 0xC70F6907) == 3089598676  # ipykernel's seed


# ------------------------------------------------------------ stopping in cells
def test_breakpoint_in_a_cell_function_stack_locals_step_continue(debug_kernel):
    proc, kc, fe = debug_kernel
    caps, info = fe.start()
    assert {f["filter"] for f in caps["exceptionBreakpointFilters"]} >= {"raised", "uncaught"}
    msg_id, tid = fe.run_to_breakpoint(CELL, [2], info)
    top, frames = fe.top_frame(tid)
    assert (top["name"], top["line"], top["source"]["path"]) == ("double", 2, fe.ok("dumpCell", {"code": CELL})["sourcePath"])
    # the kernel's own frames (IPython, kernelkit) are not the user's
    assert [f["name"] for f in frames] == ["double", "<module>"], frames
    assert fe.locals_of(top["id"]) == {"x": "21"}
    assert fe.ok("debugInfo")["stoppedThreads"] == [tid]
    assert fe.ok("threads")["threads"][0]["name"] == "MainThread"
    assert all(not t["name"].startswith("kernelkit-") for t in fe.ok("threads")["threads"])
    assert fe.ok("evaluate", {"expression": "x + 1", "frameId": top["id"], "context": "repl"})["result"] == "22"

    fe.ok("next", {"threadId": tid})
    assert fe.stopped("step") == tid
    top, _ = fe.top_frame(tid)
    assert top["line"] == 3
    assert fe.locals_of(top["id"]) == {"x": "21", "y": "42"}
    fe.ok("stepOut", {"threadId": tid})
    fe.stopped("step")
    top, _ = fe.top_frame(tid)
    assert (top["name"], top["line"]) == ("<module>", 5)

    fe.ok("continue", {"threadId": tid})
    assert reply_to(kc, msg_id, 20)["content"]["status"] == "ok"
    assert fe.output(msg_id) == "result 42\n"
    assert fe.ok("debugInfo")["stoppedThreads"] == []
    # source of a cell run but never dumped comes from IPython's cache
    other = "z = 5\n"
    run_ok(kc, other)
    src = fe.ok("source", {"source": {"path": f"{info['tmpFilePrefix']}{murmur2(other.encode(), info['hashSeed'])}.py"}})
    assert src["content"] == other


def test_step_in_and_pause(debug_kernel):
    proc, kc, fe = debug_kernel
    _, info = fe.start()
    code = "def inner(a):\n    return a + 1\n\ndef outer():\n    b = inner(1)\n    return b\n\nouter()\n"
    msg_id, tid = fe.run_to_breakpoint(code, [5], info)
    fe.ok("stepIn", {"threadId": tid})
    fe.stopped("step")
    top, _ = fe.top_frame(tid)
    assert (top["name"], top["line"]) == ("inner", 2)
    fe.ok("continue", {"threadId": tid})
    reply_to(kc, msg_id, 20)
    # pause a running loop
    msg_id = kc.execute("import time\nfor i in range(600):\n    time.sleep(0.05)\n")
    fe.ok("pause", {"threadId": 1})
    tid = fe.stopped("pause")
    assert fe.top_frame(tid)[0]["source"]["path"].startswith(info["tmpFilePrefix"])
    fe.ok("continue", {"threadId": tid})
    interrupt = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(interrupt)
    assert reply_to(kc, msg_id, 20)["content"]["ename"] == "KeyboardInterrupt"


def test_exception_breakpoints(debug_kernel):
    proc, kc, fe = debug_kernel
    fe.start()
    fe.ok("setExceptionBreakpoints", {"filters": ["raised"]})
    fe.ok("configurationDone")
    msg_id = kc.execute("def g():\n    raise ValueError('boom')\n\ng()\n")
    tid = fe.stopped("exception")
    info = fe.ok("exceptionInfo", {"threadId": tid})
    assert "ValueError" in info["exceptionId"] and "boom" in info["description"], info
    top, _ = fe.top_frame(tid)
    assert (top["name"], top["line"]) == ("g", 2)
    fe.ok("setExceptionBreakpoints", {"filters": []})
    fe.ok("continue", {"threadId": tid})
    reply = reply_to(kc, msg_id, 20)["content"]
    assert (reply["status"], reply["ename"]) == ("error", "ValueError")
    run_ok(kc, "try:\n    int('x')\nexcept ValueError:\n    pass\n")  # no longer stops
    # "user-uncaught": what the cell does not catch (IPython catches everything,
    # so debugpy's plain "uncaught" never fires in a notebook)
    fe.ok("setExceptionBreakpoints", {"filters": ["userUnhandled"]})
    run_ok(kc, "def h():\n    try:\n        int('x')\n    except ValueError:\n        return 1\n\nh()\n")
    msg_id = kc.execute("def g():\n    raise KeyError('lost')\n\ng()\n")
    tid = fe.stopped("exception")
    assert fe.top_frame(tid)[0]["name"] == "g"
    fe.ok("continue", {"threadId": tid})
    assert reply_to(kc, msg_id, 20)["content"]["ename"] == "KeyError"


def test_breakpoint_in_an_imported_module(debug_kernel, tmp_path):
    proc, kc, fe = debug_kernel
    mod = tmp_path / "mymod.py"
    mod.write_text("def work(n):\n    total = n * 3\n    return total\n")
    fe.start()
    fe.ok("setBreakpoints", {"source": {"path": str(mod)}, "breakpoints": [{"line": 2}]})
    fe.ok("configurationDone")
    msg_id = kc.execute(f"import sys; sys.path.insert(0, {str(tmp_path)!r})\nimport mymod\nprint(mymod.work(5))")
    tid = fe.stopped("breakpoint")
    top, _ = fe.top_frame(tid)
    assert (top["name"], top["source"]["path"]) == ("work", str(mod))
    assert fe.locals_of(top["id"]) == {"n": "5"}
    mods = fe.ok("modules", {})
    assert any(m["name"] == "mymod" and m["path"] == str(mod) for m in mods["modules"])
    fe.ok("continue", {"threadId": tid})
    reply_to(kc, msg_id, 20)
    assert fe.output(msg_id) == "15\n"


def test_builtin_breakpoint_visual_when_attached_pdb_otherwise(debug_kernel):
    proc, kc, fe = debug_kernel
    # no debugger: (IPython's) pdb over stdin
    msg_id = kc.execute("a = 1\nbreakpoint()\nprint('after', a)\n", allow_stdin=True)
    req = kc.get_stdin_msg(timeout=20)
    assert req["msg_type"] == "input_request" and "ipdb>" in req["content"]["prompt"], req
    kc.input("p a + 100")
    req = kc.get_stdin_msg(timeout=20)
    kc.input("c")
    assert reply_to(kc, msg_id, 20)["content"]["status"] == "ok"
    out = fe.output(msg_id)
    assert "101" in out and "after 1" in out, out
    # attached: the visual debugger stops at the line after breakpoint()
    fe.start()
    fe.ok("configurationDone")
    msg_id = kc.execute("def h():\n    v = 7\n    breakpoint()\n    return v\n\nh()\n", allow_stdin=True)
    tid = fe.stopped("breakpoint")
    top, _ = fe.top_frame(tid)
    assert (top["name"], top["line"]) == ("h", 4), top
    assert fe.locals_of(top["id"]) == {"v": "7"}
    fe.ok("continue", {"threadId": tid})
    assert reply_to(kc, msg_id, 20)["content"]["status"] == "ok"
    assert not kc.stdin_channel.msg_ready()
    # disconnected again (debugpy loaded, nobody attached): pdb again, in the
    # cell's frame (not one of the kernel's between breakpoint() and pdb)
    fe.ok("disconnect", {"restart": False, "terminateDebuggee": False})
    msg_id = kc.execute("b = 2\nbreakpoint()\nprint('after', b)\n", allow_stdin=True)
    assert "ipdb>" in kc.get_stdin_msg(timeout=20)["content"]["prompt"]
    kc.input("p b + 100")
    kc.get_stdin_msg(timeout=20)
    kc.input("c")
    assert reply_to(kc, msg_id, 20)["content"]["status"] == "ok"
    out = fe.output(msg_id)
    assert "102" in out and "after 2" in out and "_breakpointhook" not in out, out


# ------------------------------------------------------------- variables panel
RICH = (
    "class Table:\n"
    "    def __init__(self, rows):\n"
    "        self.rows = rows\n"
    "    def _repr_html_(self):\n"
    "        return '<table>' + ''.join(f'<tr><td>{r}</td></tr>' for r in self.rows) + '</table>'\n"
    "    def __repr__(self):\n"
    "        return f'Table({self.rows})'\n"
)


def test_inspect_and_rich_inspect_variables(debug_kernel):
    proc, kc, fe = debug_kernel
    # (many expandable values: their references must not be taken for pydevd's)
    run_ok(kc, RICH + "df = Table([1, 2])\nnumbers = {'a': [1, 2, 3]}\nfor i in range(40):\n    globals()[f'd{i}'] = {i: i}\n")
    # the variable explorer works before any debugger is attached
    variables = {v["name"]: v for v in fe.ok("inspectVariables")["variables"]}
    assert variables["df"]["value"] == "Table([1, 2])" and variables["df"]["type"] == "Table"
    assert not {"In", "Out", "get_ipython", "exit", "open", "_i1", "_"} & set(variables)
    children = fe.ok("variables", {"variablesReference": variables["numbers"]["variablesReference"]})["variables"]
    assert [(c["name"], c["value"]) for c in children] == [("'a'", "[1, 2, 3]")]
    rich = fe.ok("richInspectVariables", {"variableName": "df"})
    assert rich["data"]["text/html"] == "<table><tr><td>1</td></tr><tr><td>2</td></tr></table>"
    assert rich["data"]["text/plain"] == "Table([1, 2])"
    _, info = fe.start()
    # while stopped: the frame's own variable
    code = "def show():\n    local_df = Table([3])\n    return local_df\n\nshow()\n"
    msg_id, tid = fe.run_to_breakpoint(code, [3], info)
    top, _ = fe.top_frame(tid)
    assert fe.locals_of(top["id"]) == {"local_df": "Table([3])"}
    rich = fe.ok("richInspectVariables", {"variableName": "local_df", "frameId": top["id"]})
    assert rich["data"]["text/html"] == "<table><tr><td>3</td></tr></table>"
    # copyToGlobals puts the frame's variable in the notebook's namespace
    fe.ok("copyToGlobals", {"srcVariableName": "local_df", "dstVariableName": "copied", "srcFrameId": top["id"]})
    fe.ok("continue", {"threadId": tid})
    reply_to(kc, msg_id, 20)
    _, msgs = run_ok(kc, "print(copied)")
    assert "Table([3])" in "".join(m["content"].get("text", "") for m in msgs)


# ----------------------------------------------- the kernel while it is stopped
def stop_in_cell(fe):
    """Attach and stop in a cell: (execute msg_id, stopped thread)."""
    _, info = fe.start()
    return fe.run_to_breakpoint(CELL, [2], info)


def run_in_subshell(kc, code):
    """Create a subshell and send it an execute_request; returns its msg_id."""
    create = kc.session.msg("create_subshell_request", {})
    kc.control_channel.send(create)
    sid = reply_to(kc, create["header"]["msg_id"], 10, channel="control")["content"]["subshell_id"]
    msg = kc.session.msg("execute_request", {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False})
    msg["header"]["subshell_id"] = sid
    kc.shell_channel.send(msg)
    return msg["header"]["msg_id"]


def test_control_heartbeat_and_subshells_answer_while_stopped(debug_kernel, tmp_path):
    proc, kc, fe = debug_kernel
    msg_id, tid = stop_in_cell(fe)
    assert control_kernel_info(kc)["status"] == "ok"
    assert fe.ok("debugInfo")["stoppedThreads"] == [tid]
    info = json.loads((tmp_path / "kernel.json").read_text())
    ctx = zmq.Context()
    hb = ctx.socket(zmq.REQ)
    hb.linger = 0
    hb.connect(f"tcp://{info['ip']}:{info['hb_port']}")
    hb.send(b"ping")
    assert hb.poll(5000) and hb.recv() == b"ping"
    hb.close()
    ctx.term()
    # a subshell keeps running while the main shell is stopped
    sub = run_in_subshell(kc, "print('from the subshell')")
    assert reply_to(kc, sub, 20)["content"]["status"] == "ok"
    assert fe.output(sub) == "from the subshell\n"
    # the main shell's requests queue behind the stopped cell
    queued = kc.execute("print('queued ran')")
    fe.ok("continue", {"threadId": tid})
    assert reply_to(kc, msg_id, 20)["content"]["status"] == "ok"
    assert reply_to(kc, queued, 20)["content"]["status"] == "ok"
    assert fe.output(queued) == "queued ran\n"


def test_a_subshell_stops_at_a_breakpoint_too(debug_kernel):
    proc, kc, fe = debug_kernel
    _, info = fe.start()
    code = "def sub_work():\n    w = 'sub'\n    return w\n"
    run_ok(kc, code)
    fe.break_in_cell(code, [3], info)
    fe.ok("configurationDone")
    sub = run_in_subshell(kc, "sub_work()")
    tid = fe.stopped("breakpoint")
    names = {t["id"]: t["name"] for t in fe.ok("threads")["threads"]}
    assert names[tid].startswith("kernelkit-subshell-"), names
    # the main shell keeps running meanwhile
    run_ok(kc, "print('main runs')")
    assert fe.locals_of(fe.top_frame(tid)[0]["id"]) == {"w": "'sub'"}
    fe.ok("continue", {"threadId": tid})
    assert reply_to(kc, sub, 20)["content"]["status"] == "ok"


def test_interrupt_while_stopped(debug_kernel):
    """The stopped thread is resumed, then interrupted; breakpoints still hit after."""
    proc, kc, fe = debug_kernel
    _, info = fe.start()
    code = "import time\ndef nap():\n    n = 0\n    time.sleep(30)\n    return n\n\nnap()\n"
    msg_id, _ = fe.run_to_breakpoint(code, [3], info)
    interrupt = kc.session.msg("interrupt_request", {})
    kc.control_channel.send(interrupt)
    assert reply_to(kc, interrupt["header"]["msg_id"], 10, channel="control")["content"]["status"] == "ok"
    reply = reply_to(kc, msg_id, 20)["content"]
    assert (reply["status"], reply["ename"]) == ("error", "KeyboardInterrupt")
    assert fe.ok("debugInfo")["stoppedThreads"] == []
    _, msgs = run_ok(kc, "print(6 * 7)")
    assert any(m["msg_type"] == "stream" and m["content"]["text"] == "42\n" for m in msgs)
    msg_id, tid = fe.run_to_breakpoint(CELL, [2], info)
    fe.ok("continue", {"threadId": tid})
    assert reply_to(kc, msg_id, 20)["content"]["status"] == "ok"


def test_shutdown_while_stopped(debug_kernel):
    proc, kc, fe = debug_kernel
    msg_id, tid = stop_in_cell(fe)
    cells = fe.ok("debugInfo")["tmpFilePrefix"]
    assert os.path.isdir(cells)
    msg = kc.session.msg("shutdown_request", {"restart": False})
    kc.control_channel.send(msg)
    reply = reply_to(kc, msg["header"]["msg_id"], 10, channel="control")["content"]
    assert reply == {"status": "ok", "restart": False}
    assert proc.wait(10) == 0, proc.stderr
    assert not os.path.exists(cells), "the cell files dumpCell wrote outlive the kernel"


def test_restart_while_stopped_under_a_kernel_manager(tmp_path, monkeypatch, managers):
    prefix = tmp_path / "prefix"
    assert install.main(["--prefix", str(prefix), "--name", "kk-debug"]) == 0
    spec = json.loads((prefix / "share" / "jupyter" / "kernels" / "kk-debug" / "kernel.json").read_text())
    assert spec["metadata"]["debugger"] is True
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    km = managers("kk-debug")
    # (a clean exit is asserted, not its speed: under a loaded machine the
    # exit may take longer than jupyter_client's 5 s before its SIGTERM)
    km.shutdown_wait_time = 20
    kc = km_client(km)
    try:
        stop_in_cell(Frontend(kc))
        old = km.provisioner.process
        km.restart_kernel()
        assert old.wait(10) == 0
    finally:
        kc.stop_channels()
    kc = km_client(km)
    try:
        fe = Frontend(kc)
        msg_id, tid = stop_in_cell(fe)  # a new kernel, a new debugger
        fe.ok("continue", {"threadId": tid})
        assert reply_to(kc, msg_id, 20)["content"]["status"] == "ok"
    finally:
        kc.stop_channels()


def test_disconnect_reattach_and_a_second_client(debug_kernel, tmp_path):
    proc, kc, fe = debug_kernel
    _, info = fe.start()
    other = second_client(tmp_path)
    try:
        fe2 = Frontend(other)
        refused = fe2.request("initialize", INITIALIZE)
        assert refused["success"] is False and "in use by another client" in refused["message"], refused
        assert fe2.ok("debugInfo")["isStarted"] is True  # it may look
        fe.ok("disconnect", {"restart": False, "terminateDebuggee": False})
        assert fe2.ok("debugInfo")["isStarted"] is False
        # the other client now attaches and stops in a cell
        _, info = fe2.start()
        msg_id, tid = fe2.run_to_breakpoint(CELL, [2], info)
        assert fe2.top_frame(tid)[0]["name"] == "double"
        fe2.ok("disconnect", {"restart": False, "terminateDebuggee": False})  # lets the cell go
        assert reply_to(other, msg_id, 20)["content"]["status"] == "ok"
        # and the first client attaches again
        fe.start()
        fe.ok("disconnect", {})
    finally:
        other.stop_channels()
    run_ok(kc, "pass")


def test_bad_debug_requests_get_a_clear_refusal(debug_kernel):
    proc, kc, fe = debug_kernel
    before = fe.request("stackTrace", {"threadId": 1})
    assert before["success"] is False and "not started" in before["message"], before
    assert fe.request("noSuchCommand", {})["success"] is False
    assert "arguments" in fe.request("dumpCell", "not an object")["message"]
    assert "code" in fe.request("dumpCell", {"code": 5})["message"]
    assert fe.request("richInspectVariables", {"variableName": "1 + 1"})["success"] is False
    assert fe.request("richInspectVariables", {"variableName": "undefined_name"})["success"] is False
    assert fe.request("source", {"source": {"path": "/no/such/file.py"}})["success"] is False
    fe.start()
    assert fe.request("noSuchCommand", {})["success"] is False
    assert fe.request("stackTrace", {"threadId": "x"})["success"] is False
    refused = fe.request("attach", {})
    assert refused["success"] is False and "already attached" in refused["message"]
    assert fe.request("copyToGlobals", {"srcVariableName": "a", "dstVariableName": "b-c", "srcFrameId": 1})["success"] is False
    # a debug_request with no command at all
    msg = kc.session.msg("debug_request", {"type": "request", "seq": 99})
    kc.control_channel.send(msg)
    reply = reply_to(kc, msg["header"]["msg_id"], 10, channel="control")["content"]
    assert reply["success"] is False and "command" in reply["message"]
    assert control_kernel_info(kc)["status"] == "ok"
    run_ok(kc, "pass")
    assert proc.proc.poll() is None
