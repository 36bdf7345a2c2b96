"""The bundled Python kernel as a drop-in for ipykernel: what libraries, tools
and people rely on (README's compatibility table names each test here).

Real kernel processes (``python -m kernelkit.python``), real ZeroMQ,
jupyter_client's BlockingKernelClient and nbclient as the frontends. Waits
are for messages, with timeouts; ``time.sleep`` appears only inside cells.
"""

import ast
import importlib.util
import os
import re
import subprocess
import sys
import time

import nbformat
import pytest
from nbclient import NotebookClient
from support import answer, input_request, iopub_until, iopub_until_idle, reply_to, result_text, run_ok, start_kernel

# every test runs on both kernels, side by side (README's table): where
# ipykernel 7.4 differs, the test asserts what it does there.
# KERNELKIT_COMPAT_KERNEL=kernelkit (or ipykernel) runs one kernel only.
KERNELS = {"kernelkit": [sys.executable, "-m", "kernelkit.python"], "ipykernel": [sys.executable, "-m", "ipykernel_launcher"]}
ONLY = os.environ.get("KERNELKIT_COMPAT_KERNEL")
PY_KERNEL = KERNELS["kernelkit"]
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TIMEOUT = 30


def start_python(tmp_path, extra_args=(), env=None, argv=PY_KERNEL):
    ipython_dir = tmp_path / "ipython"
    ipython_dir.mkdir(exist_ok=True)
    return start_kernel(
        tmp_path, argv, b"compat-key", {"IPYTHONDIR": str(ipython_dir), **(env or {})}, ready_timeout=TIMEOUT, extra_args=extra_args
    )


@pytest.fixture(scope="module", params=[name for name in KERNELS if ONLY in (None, name)])
def flavour(request):
    """The kernel under test: "kernelkit" or "ipykernel" (a test about
    kernelkit alone parametrizes it to "kernelkit")."""
    return request.param


@pytest.fixture(scope="module")
def kc(tmp_path_factory, flavour):
    """One Python kernel for the module's tests that leave it running."""
    proc, client = start_python(tmp_path_factory.mktemp("compat"), argv=KERNELS[flavour])
    client.kernel_process = proc
    client.flavour = flavour
    yield client
    client.stop_channels()
    proc.kill()


@pytest.fixture
def own_kernel(tmp_path, flavour):
    """A Python kernel of the test's own (for ones that end it or configure it)."""
    started = []

    def start(extra_args=(), env=None, argv=KERNELS[flavour]):
        proc, client = start_python(tmp_path, extra_args, env, argv)
        started.append((proc, client))
        return proc, client

    yield start
    for proc, client in started:
        client.stop_channels()
        proc.kill()


def value_of(kc, expression):
    """The value of a Python literal expression evaluated in the kernel."""
    _, out = run_ok(kc, expression, timeout=TIMEOUT)
    return ast.literal_eval(result_text(out))


def of_type(messages, msg_type):
    return [m for m in messages if m["msg_type"] == msg_type]


def stream_text(messages):
    return "".join(m["content"]["text"] for m in of_type(messages, "stream"))


def error_of(kc, code, **kw):
    """Run a failing cell: its error reply content and iopub error message."""
    msg_id = kc.execute(code, **kw)
    reply = reply_to(kc, msg_id, TIMEOUT)["content"]
    assert reply["status"] == "error", reply
    errors = of_type(iopub_until_idle(kc, msg_id, TIMEOUT), "error")
    assert len(errors) == 1
    return reply, ANSI.sub("", "\n".join(errors[0]["content"]["traceback"]))


# ============================================================ configuration
def test_ipython_options_on_the_command_line_apply(own_kernel):
    # what nbclient adds for a kernelspec named python3, and a shell option
    _, kc = own_kernel(["--HistoryManager.hist_file=:memory:", "--InteractiveShell.autocall=1"])
    assert value_of(kc, "get_ipython().history_manager.hist_file") == ":memory:"
    assert value_of(kc, "get_ipython().autocall") == 1


def test_profile_config_files_apply_and_the_command_line_wins(own_kernel, tmp_path):
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_config.py").write_text("c.InteractiveShell.autocall = 2\n")
    (profile / "ipython_kernel_config.py").write_text(
        "c.IPKernelApp.exec_lines = ['configured = 6 * 7']\nc.InteractiveShell.banner2 = 'from the profile'\nc.InteractiveShell.autocall = 1\n"
    )
    (profile / "startup").mkdir()
    (profile / "startup" / "00-first.py").write_text("started_up = True\n")
    _, kc = own_kernel(["--InteractiveShell.autocall=0"])
    assert value_of(kc, "configured, started_up, get_ipython().autocall") == (42, True, 0)
    # IPython's banner, with what the profile added, in kernel_info
    msg_id = kc.kernel_info()
    banner = reply_to(kc, msg_id)["content"]["banner"]
    assert banner.startswith("Python ") and "IPython" in banner and "from the profile" in banner


def test_a_named_profile_is_used(own_kernel, tmp_path):
    profile = tmp_path / "ipython" / "profile_other"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text("c.IPKernelApp.exec_lines = ['from_other = True']\n")
    _, kc = own_kernel(["--profile=other"])
    assert value_of(kc, "from_other, get_ipython().profile") == (True, "other")


@pytest.mark.parametrize(
    "args, said",
    [
        (["--no-such-option"], "--no-such-option"),
        (["--matplotlib=not-a-backend"], "not-a-backend"),
        (["--InteractiveShell.autocall=many"], "autocall"),
    ],
)
def test_a_bad_option_is_one_warning_line_and_the_kernel_runs_with_defaults(own_kernel, flavour, tmp_path, args, said):
    if flavour == "ipykernel":  # refuses to start: its usage text, or a CRITICAL line
        done = subprocess.run([*KERNELS[flavour], "-f", str(tmp_path / "k.json"), *args], capture_output=True, text=True, timeout=TIMEOUT,
                              env={**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")})
        assert done.returncode in (1, 2) and said in done.stderr.splitlines()[-1], done.stderr
        return
    proc, kc = own_kernel(args)
    assert value_of(kc, "6 * 7") == 42
    assert value_of(kc, "get_ipython().autocall") == 0  # the default
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and said in warnings[0], proc.stderr


def test_a_malformed_config_file_is_one_warning_line(own_kernel, flavour, tmp_path):
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text("c.InteractiveShell.autocall = (\n")
    proc, kc = own_kernel()
    assert value_of(kc, "6 * 7") == 42
    warnings = [line for line in proc.stderr.splitlines() if line.strip() and "without encryption" not in line]
    if flavour == "ipykernel":  # an ERROR line and the whole traceback
        assert len(warnings) > 5 and "ERROR | Exception while loading config file" in warnings[0] and "SyntaxError" in proc.stderr, proc.stderr
        return
    assert len(warnings) == 1 and "ipython_kernel_config.py" in warnings[0] and "SyntaxError" in warnings[0], proc.stderr


def test_kernel_core_still_refuses_unknown_arguments_for_other_kernels(tmp_path):  # (kernelkit's alone)
    from support import EXEC_KERNEL

    done = subprocess.run([*EXEC_KERNEL, "-f", str(tmp_path / "k.json"), "--Foo.bar=1"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "unrecognized arguments: --Foo.bar=1" in done.stderr


# ==================================================== get_ipython().kernel
def test_kernel_object_has_what_libraries_use(kc):
    on_ipykernel = kc.flavour == "ipykernel"
    # ipykernel 7.4 has no get_parent_header(); its kernel.execution_count is
    # the running cell's during the cell (kernelkit's: the last ended cell's);
    # its log is IPKernelApp's
    parent_header = "hasattr(k, 'get_parent_header')" if on_ipykernel else "k.get_parent_header()['msg_type']"
    count = "get_ipython().execution_count" if on_ipykernel else "get_ipython().execution_count - 1"
    msg_id = kc.execute(
        "k = get_ipython().kernel\n"
        f"print(k.get_parent()['header']['msg_id'], {parent_header}, k.shell is get_ipython(),\n"
        f"      k.execution_count == {count}, k.comm_manager is __import__('comm').get_comm_manager(),\n"
        "      bool(k.session.session), k.log.name)\n"
        "k.session.send(k.iopub_socket, 'display_data', {'data': {'text/plain': 'sent by a library'}, 'metadata': {}}, parent=k.get_parent())\n"
        # (as nbclient's update-display-id notebook does it)
        "k.session.send(k.iopub_socket, 'display_data', {'data': {'text/plain': 'and another'}, 'metadata': {}}, parent=get_ipython().parent_header)"
    )
    assert reply_to(kc, msg_id, TIMEOUT)["content"]["status"] == "ok"
    out = iopub_until_idle(kc, msg_id, TIMEOUT)
    expected = [msg_id, "False", "True", "True", "True", "True", "IPKernelApp"] if on_ipykernel else [msg_id, "execute_request", "True", "True", "True", "True", "kernelkit.python"]
    assert stream_text(out).split() == expected
    displays = of_type(out, "display_data")
    assert [d["content"]["data"]["text/plain"] for d in displays] == ["sent by a library", "and another"]


def test_get_parent_in_a_thread_and_in_a_subshell(kc):
    # a thread user code starts works for the cell that started it
    parent = value_of(
        kc,
        "import threading\nseen = []\nt = threading.Thread(target=lambda: seen.append(get_ipython().kernel.get_parent()['header']['msg_id']))\n"
        "t.start(); t.join()\n(seen[0], get_ipython().kernel.get_parent()['header']['msg_id'])",
    )
    assert parent[0] == parent[1]
    # a subshell's cell sees its own request
    msg = kc.session.msg("create_subshell_request", {})
    kc.control_channel.send(msg)
    subshell_id = reply_to(kc, msg["header"]["msg_id"], channel="control")["content"]["subshell_id"]
    msg = kc.session.msg("execute_request", {"code": "get_ipython().kernel.get_parent()['header']['msg_id']", "silent": False,
                                             "store_history": False, "user_expressions": {}, "allow_stdin": False})
    msg["header"]["subshell_id"] = subshell_id
    kc.shell_channel.send(msg)
    msg_id = msg["header"]["msg_id"]
    assert reply_to(kc, msg_id, TIMEOUT)["content"]["status"] == "ok"
    assert ast.literal_eval(result_text(iopub_until_idle(kc, msg_id, TIMEOUT))) == msg_id


def test_ipywidgets_output_widget_routes_the_cells_output(kc):
    msg_id = kc.execute("import ipywidgets as w\nout = w.Output()\ndisplay(out)\nwith out:\n    print('inside')\nprint('outside')")
    assert reply_to(kc, msg_id, TIMEOUT)["content"]["status"] == "ok"
    out = iopub_until_idle(kc, msg_id, TIMEOUT)
    # the frontend puts output parented to the widget's msg_id into the widget:
    # the kernel sets it to this cell while inside, and back to '' after
    updates = [m["content"]["data"]["state"]["msg_id"] for m in of_type(out, "comm_msg") if "msg_id" in m["content"]["data"].get("state", {})]
    assert updates == [msg_id, ""]
    assert stream_text(out) == "inside\noutside\n"


def test_ipywidgets_interact_prints_into_its_output_widget(kc):
    msg_id = kc.execute("from ipywidgets import interact\ninteract(lambda x: print('x is', x), x=3);")
    assert reply_to(kc, msg_id, TIMEOUT)["content"]["status"] == "ok"
    out = iopub_until_idle(kc, msg_id, TIMEOUT)
    updates = [m["content"]["data"]["state"]["msg_id"] for m in of_type(out, "comm_msg") if "msg_id" in m["content"]["data"].get("state", {})]
    assert msg_id in updates
    assert "x is 3" in stream_text(out)


def test_widget_control_comm_answers_before_ipywidgets_is_imported(own_kernel, flavour):
    _, kc = own_kernel()
    assert value_of(kc, "'ipywidgets' in __import__('sys').modules") is False
    # JupyterLab's widget manager opens it as it connects, then asks for the states
    opened = kc.session.msg("comm_open", {"comm_id": "control-1", "target_name": "jupyter.widget.control", "data": {}})
    opened["metadata"] = {"version": "1.0.0"}  # (ipywidgets 8 speaks control protocol 1)
    kc.shell_channel.send(opened)
    closed = of_type(iopub_until_idle(kc, opened["header"]["msg_id"], TIMEOUT), "comm_close")
    if flavour == "ipykernel":  # no such target yet: the comm is closed at once
        assert [m["content"]["comm_id"] for m in closed] == ["control-1"]
        return
    assert not closed
    ask = kc.session.msg("comm_msg", {"comm_id": "control-1", "data": {"method": "request_states"}})
    kc.shell_channel.send(ask)
    states = of_type(iopub_until_idle(kc, ask["header"]["msg_id"], TIMEOUT), "comm_msg")
    assert [m["content"]["data"]["method"] for m in states] == ["update_states"]


def test_libraries_that_look_for_ipykernel_see_a_notebook(kc):
    found = value_of(
        kc,
        "from tqdm.auto import tqdm\nfrom rich.console import Console\nimport plotly.io as pio, matplotlib\n"
        "(tqdm.__module__, 'tqdm.notebook' in [c.__module__ for c in tqdm.__mro__], Console().is_jupyter,\n"
        " pio.renderers.default, matplotlib.get_backend(), type(get_ipython()).__name__, 'IPKernelApp' in get_ipython().config)",
    )
    assert found == ("tqdm.auto", True, True, "plotly_mimetype", "module://matplotlib_inline.backend_inline", "ZMQInteractiveShell", True)


@pytest.mark.parametrize("flavour", ["kernelkit"])  # (ipykernel cannot run without itself)
def test_tqdm_sees_a_notebook_without_ipykernel_installed(own_kernel):
    # ipykernel hidden from the kernel process: the shell's own module stands in
    hide = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] == 'ipykernel':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from kernelkit.python.kernel import PythonKernel\n"
        "PythonKernel.main()\n"
    )
    hidden = [sys.executable, "-c", hide]
    _, kc = own_kernel(argv=hidden)
    assert value_of(kc, "from tqdm.auto import tqdm\n'tqdm.notebook' in [c.__module__ for c in tqdm.__mro__]") is True


@pytest.mark.skipif(importlib.util.find_spec("ipykernel") is None, reason="needs ipykernel installed (the [test] extra has it)")
def test_ipykernel_comm_class_sends_through_this_kernel(kc):
    msg_id = kc.execute("import warnings\nwarnings.simplefilter('ignore')\nfrom ipykernel.comm import Comm\nc = Comm(target_name='old-style', data={'a': 1})\nc.send({'b': 2})")
    assert reply_to(kc, msg_id, TIMEOUT)["content"]["status"] == "ok"
    out = iopub_until_idle(kc, msg_id, TIMEOUT)
    opens, msgs = of_type(out, "comm_open"), of_type(out, "comm_msg")
    assert [m["content"]["target_name"] for m in opens] == ["old-style"]
    assert [m["content"]["data"] for m in msgs] == [{"b": 2}]
    # and comm.create_comm still gives this kernel's comms afterwards; other
    # singletons are untouched (ipykernel's Kernel is the bridge, nothing else;
    # on ipykernel both are ipykernel's own)
    on_ipykernel = kc.flavour == "ipykernel"
    assert value_of(kc, "import comm\ntype(comm.create_comm()).__module__") == ("ipykernel.comm.comm" if on_ipykernel else "kernelkit.python.comms")
    assert value_of(kc, "from traitlets.config import Application\nApplication.initialized()") is on_ipykernel


# ================================================================= display
def test_rich_display_of_pandas_and_javascript(kc):
    _, out = run_ok(kc, "import pandas as pd\npd.DataFrame({'a': [1, 2]})", timeout=TIMEOUT)
    (result,) = of_type(out, "execute_result")
    assert "<table" in result["content"]["data"]["text/html"]
    _, out = run_ok(kc, "%%javascript\nconsole.log('hi')")
    assert [d["content"]["data"]["application/javascript"] for d in of_type(out, "display_data")] == ["console.log('hi')\n"]
    _, out = run_ok(kc, "from IPython.display import Javascript\nJavascript('1 + 1')")
    assert of_type(out, "execute_result")[0]["content"]["data"]["application/javascript"] == "1 + 1"


def test_pandas_display_options_and_plotly_figures(kc):
    # pandas' display options reach the HTML, and table_schema adds the data resource
    _, out = run_ok(kc, "import pandas as pd\npd.set_option('display.max_rows', 4)\npd.DataFrame({'a': range(10)})", timeout=TIMEOUT)
    html = of_type(out, "execute_result")[0]["content"]["data"]["text/html"]
    assert html.count("<tr>") == 5 and "..." in html  # the header, two rows, "...", two rows
    _, out = run_ok(kc, "pd.set_option('display.html.table_schema', True)\npd.DataFrame({'a': [7]})", timeout=TIMEOUT)
    resource = of_type(out, "execute_result")[0]["content"]["data"]["application/vnd.dataresource+json"]
    assert resource["data"] == [{"index": 0, "a": 7}]
    run_ok(kc, "pd.reset_option('display.max_rows')\npd.reset_option('display.html.table_schema')")
    # a plotly figure, shown or as a cell's value: plotly's own mimetype
    for code in ("fig.show()", "fig"):
        _, out = run_ok(kc, f"import plotly.graph_objects as go\nfig = go.Figure(go.Scatter(x=[1], y=[2]))\n{code}", timeout=TIMEOUT)
        (shown,) = of_type(out, "display_data")
        assert shown["content"]["data"]["application/vnd.plotly.v1+json"]["data"][0]["type"] == "scatter"


def test_bokeh_output_notebook_and_show(kc):
    _, out = run_ok(kc, "from bokeh.io import output_notebook, show\nfrom bokeh.plotting import figure\noutput_notebook(hide_banner=True)", timeout=TIMEOUT)
    (load,) = of_type(out, "display_data")  # BokehJS, loaded into the page
    assert {"application/javascript", "application/vnd.bokehjs_load.v0+json"} <= set(load["content"]["data"])
    _, out = run_ok(kc, "p = figure()\np.line([1, 2], [3, 4])\nshow(p)", timeout=TIMEOUT)
    plot_id = value_of(kc, "p.id")
    html, script = of_type(out, "display_data")  # the plot's element, then the script that fills it
    assert plot_id in html["content"]["data"]["text/html"]
    assert "application/vnd.bokehjs_exec.v0+json" in script["content"]["data"]
    assert script["content"]["metadata"]["application/vnd.bokehjs_exec.v0+json"]["id"] == plot_id


def test_altair_chart_display(kc):
    code = "import altair as alt, pandas as pd\nchart = alt.Chart(pd.DataFrame({'a': [1, 2]})).mark_point().encode(x='a')\nchart"
    _, out = run_ok(kc, code, timeout=TIMEOUT)
    # altair 6's default renderer is HTML with vega-embed, in every frontend
    assert "vegaEmbed" in of_type(out, "execute_result")[0]["content"]["data"]["text/html"]
    # the mimetype renderer (JupyterLab and nteract render it natively): the spec itself
    _, out = run_ok(kc, "alt.renderers.enable('mimetype')\nchart", timeout=TIMEOUT)
    data = of_type(out, "execute_result")[0]["content"]["data"]
    (vega,) = [mime for mime in data if re.fullmatch(r"application/vnd\.vegalite\.v\d+[.+]json", mime)]
    assert data[vega]["mark"]["type"] == "point" and data[vega]["encoding"]["x"]["field"] == "a"
    run_ok(kc, "alt.renderers.enable('default')")


def test_matplotlib_widget_backend(own_kernel):
    # ipympl: the figure is a widget (its own kernel: the backend stays switched)
    _, kc = own_kernel()
    _, out = run_ok(kc, "%matplotlib widget\nimport matplotlib.pyplot as plt\nfig = plt.figure()\nplt.plot([1, 2])\nplt.show()", timeout=TIMEOUT)
    (canvas,) = [m["content"]["comm_id"] for m in of_type(out, "comm_open") if m["content"]["data"]["state"]["_model_name"] == "MPLCanvasModel"]
    views = [d["content"]["data"].get("application/vnd.jupyter.widget-view+json", {}).get("model_id") for d in of_type(out, "display_data")]
    assert canvas in views
    # the canvas view asks for a drawing, as the browser does: the figure's
    # pixels (RGBA) come back over the comm, with the plot drawn on white
    ask = kc.session.msg("comm_msg", {"comm_id": canvas, "data": {"method": "custom", "content": {"type": "draw"}}})
    kc.shell_channel.send(ask)
    images = [m for m in of_type(iopub_until_idle(kc, ask["header"]["msg_id"], TIMEOUT), "comm_msg") if m["buffers"]]
    width, height = value_of(kc, "fig.canvas.get_width_height()")
    assert len(images) == 1
    pixels = bytes(images[0]["buffers"][0])
    assert len(pixels) == width * height * 4 and set(pixels) != {0xFF}


def test_debug_magic_over_stdin(kc):
    error_of(kc, "def broken():\n    secret = 41\n    1 / 0\nbroken()")
    msg_id = kc.execute("%debug", allow_stdin=True)
    answer(kc, input_request(kc, msg_id, TIMEOUT), "p secret + 1")
    answer(kc, input_request(kc, msg_id, TIMEOUT), "q")
    assert reply_to(kc, msg_id, TIMEOUT)["content"]["status"] == "ok"
    assert "42" in stream_text(iopub_until_idle(kc, msg_id, TIMEOUT))


def test_an_interrupt_at_a_pdb_prompt_leaves_the_debugger(kc):
    # pdb is IPython's interruptible one (ipdb prompts): the cell goes on
    msg_id = kc.execute("import pdb\npdb.set_trace()\nafter_pdb = 1\nprint('after')", allow_stdin=True)
    assert input_request(kc, msg_id, TIMEOUT)["content"]["prompt"] == "ipdb> "
    kc.kernel_process.interrupt()
    assert reply_to(kc, msg_id, TIMEOUT)["content"]["status"] == "ok"
    assert stream_text(iopub_until_idle(kc, msg_id, TIMEOUT)).endswith("after\n")
    assert not kc.stdin_channel.msg_ready()  # (not asked again)
    assert value_of(kc, "after_pdb") == 1


# ============================================================ what a user sees
def test_an_interrupt_traceback_shows_the_users_frames_only(kc):
    _, tb = error_of(kc, "import os, signal, time\ndef wait():\n    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(5)\nwait()")
    assert "KeyboardInterrupt" in tb and "time.sleep(5)" in tb
    assert "kernelkit" not in tb and "_on_sigint" not in tb, tb


def test_input_without_stdin_raises_ipythons_error_and_reset_works(kc):
    reply, tb = error_of(kc, "input('never asked')", allow_stdin=False)
    assert reply["ename"] == "StdinNotImplementedError"
    assert reply["evalue"] == "raw_input was called, but this frontend does not support input requests."  # (ipykernel's)
    assert "kernelkit" not in tb, tb
    # %reset asks for confirmation; without stdin it goes ahead, as in ipykernel
    run_ok(kc, "doomed = 1")
    msg_id = kc.execute("%reset", allow_stdin=False)
    assert reply_to(kc, msg_id, TIMEOUT)["content"]["status"] == "ok"
    iopub_until_idle(kc, msg_id, TIMEOUT)
    assert value_of(kc, "'doomed' in globals()") is False


def test_ipykernel_cell_name_names_every_cell(own_kernel):
    # what nbclient's suite sets so that tracebacks are the same on every run:
    # one name for every cell, with no file behind it
    _, kc = own_kernel(env={"IPYKERNEL_CELL_NAME": "<IPY-INPUT>"})
    run_ok(kc, "def f():\n    pass")
    assert value_of(kc, "f.__code__.co_filename") == "<IPY-INPUT>"
    _, tb = error_of(kc, "a = 1\nb = 2\nc = 3\nd = 4\nraise Exception('message')")
    # IPython cannot read the cell back from a file: it shows the line and two before
    assert "Cell In[3], line 5" in tb and "c = 3" in tb and "b = 2" not in tb, tb


def test_exit_keep_kernel_keeps_it_and_exit_ends_it(own_kernel):
    proc, kc = own_kernel()
    reply, _ = run_ok(kc, "exit(keep_kernel=True)")
    assert reply["content"]["payload"] == [{"source": "ask_exit", "keepkernel": True}]
    assert value_of(kc, "6 * 7") == 42
    reply, _ = run_ok(kc, "quit()")
    assert reply["content"]["payload"] == [{"source": "ask_exit", "keepkernel": False}]
    assert proc.wait(10) == 0


def test_output_of_forked_children_reaches_the_cell(kc):
    _, out = run_ok(
        kc,
        "import os\npid = os.fork()\nif pid == 0:\n    print('from the child')\n    os._exit(0)\nos.waitpid(pid, 0)\nprint('from the parent')",
    )
    # both (the child's goes through the fd 1 pipe, which the kernel reads on
    # a thread of its own: it may land anywhere in the parent's own output)
    text = stream_text(out)
    assert "from the child\n" in text and "from the parent" in text and len(text) == len("from the child\nfrom the parent\n")
    _, out = run_ok(kc, "import multiprocessing\nwith multiprocessing.get_context('fork').Pool(2) as pool:\n    pool.map(print, ['w1', 'w2'])", timeout=TIMEOUT)
    text = stream_text(out)
    if kc.flavour == "ipykernel":  # all of it, but lines of children writing at once can mix ("w2w1\n\n")
        assert sorted(re.findall("w[12]", text)) == ["w1", "w2"] and text.count("\n") == 2 and len(text) == 6, text
    else:
        assert sorted(text.split("\n")) == ["", "w1", "w2"], text


def test_thread_output_after_its_cell_ended(kc):
    first = kc.execute(
        "import threading, comm\n"
        "go, went, go_idle = threading.Event(), threading.Event(), threading.Event()\n"
        "def later():\n"
        "    go.wait(20); print('late line'); print('second late line'); went.set()\n"
        "    go_idle.wait(20); print('idle line')\n"
        "threading.Thread(target=later).start()\n"
        "comm.get_comm_manager().register_target('go-idle', lambda c, m: go_idle.set())"
    )
    first_reply = reply_to(kc, first, TIMEOUT)["content"]
    assert first_reply["status"] == "ok"
    iopub_until_idle(kc, first, TIMEOUT)
    # the thread writes while a later cell runs: the output goes to the cell
    # that started it (JupyterLab shows it there) and to the running cell
    # (nbclient and papermill listen to that one only), with nothing of the
    # kernel's in the text: whose it is is in the message's metadata, which
    # no saved notebook keeps
    second = kc.execute("go.set(); went.wait(20)")
    assert reply_to(kc, second, TIMEOUT)["content"]["status"] == "ok"
    messages = []
    while not any(m["msg_type"] == "status" and m["content"]["execution_state"] == "idle" and m["parent_header"].get("msg_id") == second for m in messages):
        messages.append(kc.get_iopub_msg(timeout=TIMEOUT))
    streams = [(m["parent_header"]["msg_id"], m["content"]["name"], m["content"]["text"], m["metadata"]) for m in messages if m["msg_type"] == "stream"]
    on_ipykernel = kc.flavour == "ipykernel"
    # (ipykernel 7.4: to the last shell request only, here the running cell)
    to_first = "" if on_ipykernel else "late line\nsecond late line\n"
    assert "".join(text for parent, _, text, _ in streams if parent == first) == to_first
    copy = [(name, text, metadata) for parent, name, text, metadata in streams if parent == second]
    assert {name for name, _, _ in copy} == {"stdout"} and "".join(text for _, text, _ in copy) == "late line\nsecond late line\n"
    if on_ipykernel:
        assert all(metadata == {} for _, _, metadata in copy), copy
    else:
        copied_from = {"msg_id": first, "execution_count": first_reply["execution_count"]}
        assert all(metadata == {"copied_from": copied_from} for _, _, metadata in copy), copy
        # and the kernel's log says so, for a person watching it (its stderr
        # is a pipe of its own, read by a thread here: the line may come after)
        said = f"output of a thread started by cell [{first_reply['execution_count']}], which has ended, is also sent to the running cell"
        deadline = time.monotonic() + TIMEOUT
        while said not in kc.kernel_process.stderr:
            assert time.monotonic() < deadline, kc.kernel_process.stderr
            time.sleep(0.05)
    # with no cell running (a comm message wakes the thread), it goes there
    # too (ipykernel: to the comm message, its last shell request)
    wake = kc.session.msg("comm_open", {"comm_id": "go-idle-1", "target_name": "go-idle", "data": {}})
    kc.shell_channel.send(wake)
    late = []  # (ipykernel may send the line and its newline apart)

    def whole_line(msg):
        late.extend([msg["content"]["text"]] if msg["msg_type"] == "stream" else [])
        return "".join(late).endswith("\n")

    iopub_until(kc, wake["header"]["msg_id"] if on_ipykernel else first, whole_line, TIMEOUT, what="the thread's output")
    assert "".join(late) == "idle line\n"


def test_kernel_info_has_ipythons_banner_and_ipykernels_help_links(own_kernel):
    _, kc = own_kernel()
    msg_id = kc.kernel_info()  # before any cell: the shell is not made yet
    content = reply_to(kc, msg_id)["content"]
    import IPython

    assert content["banner"].startswith(f"Python {sys.version.splitlines()[0]}")
    assert f"IPython {IPython.__version__} -- An enhanced Interactive Python." in content["banner"]
    texts = [link["text"] for link in content["help_links"]]
    for name in ("Python", "IPython", "NumPy", "SciPy", "Matplotlib", "SymPy", "pandas"):
        assert f"{name} Reference" in texts


# =============================================== nbclient, kernelspec python3
@pytest.fixture
def installed_as_python3(tmp_path, monkeypatch, flavour):
    """The kernel under test installed as the kernelspec ``python3`` (what
    nbclient and papermill pick), and the only one found; its implementation name."""
    prefix = tmp_path / "prefix"
    on_ipykernel = flavour == "ipykernel"
    installer = ["ipykernel"] if on_ipykernel else ["kernelkit.cli"]
    done = subprocess.run([sys.executable, "-m", *installer, "install", "--prefix", str(prefix), "--name", "python3"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    return "ipython" if on_ipykernel else "kernelkit"


def test_nbclient_runs_a_notebook_on_the_kernel_installed_as_python3(installed_as_python3):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print(get_ipython().kernel.implementation, get_ipython().history_manager.hist_file)"),
        nbformat.v4.new_code_cell("x = 1\n%reset\nprint('x' in globals())"),
    ])
    NotebookClient(nb, kernel_name="python3", timeout=TIMEOUT, startup_timeout=TIMEOUT).execute()
    assert [c.outputs[0]["text"] for c in nb.cells] == [f"{installed_as_python3} :memory:\n", "False\n"]


def test_nbclient_saves_a_threads_output_written_after_its_cell_ended(installed_as_python3):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(
            "import threading\ngo, went = threading.Event(), threading.Event()\n"
            "def later():\n    go.wait(20)\n    print('late line')\n    went.set()\n"
            "threading.Thread(target=later).start()\nprint('first cell')"
        ),
        # the thread writes while this cell runs, and this cell prints after it
        nbformat.v4.new_code_cell("go.set()\nwent.wait(20)\nprint('second cell')"),
    ])
    NotebookClient(nb, kernel_name="python3", timeout=TIMEOUT, startup_timeout=TIMEOUT).execute()
    first, second = ([(o["name"], o["text"]) for o in c.outputs] for c in nb.cells)
    assert first == [("stdout", "first cell\n")]
    # the saved notebook has the thread's line in the cell that was running
    assert "".join(text for name, text in second if name == "stdout") == "late line\nsecond cell\n", second


# ============================================================ everyday details (issue 25)


def streams_of(messages):
    """[(name, text)], consecutive stream messages of one name joined (how
    output is cut into messages is timing)."""
    joined = []
    for m in of_type(messages, "stream"):
        name, text = m["content"]["name"], m["content"]["text"]
        if joined and joined[-1][0] == name:
            joined[-1] = (name, joined[-1][1] + text)
        else:
            joined.append((name, text))
    return joined


def test_user_logging_shows_in_the_cell_as_on_ipykernel(own_kernel, flavour):
    # the root logger is user code's: logging.warning and library loggers
    # show in the cell (logging's own basicConfig, made on first use), and a
    # user's basicConfig takes effect when nothing configured root before
    proc, kc = own_kernel(["--log-level=INFO"])
    assert value_of(kc, "import logging; logging.getLogger().handlers") == []
    _, out = run_ok(kc, "logging.warning('w')\nlogging.getLogger('some.library').error('e')\nlogging.info('not shown')", timeout=TIMEOUT)
    assert streams_of(out) == [("stderr", "WARNING:root:w\nERROR:some.library:e\n")]
    _, out = run_ok(kc, "logging.basicConfig(level=logging.INFO, force=True)\nlogging.info('i')", timeout=TIMEOUT)
    assert streams_of(out) == [("stderr", "INFO:root:i\n")]
    if flavour == "ipykernel":
        return
    # the kernel's own log (here an interrupt while idle, at INFO) goes to
    # its stderr, never to a cell through the handler user code put on root
    kc.kernel_process = proc
    proc.interrupt()
    deadline = time.monotonic() + TIMEOUT
    while "[kernelkit.kernel INFO] interrupt of the main shell while idle" not in proc.stderr:
        assert time.monotonic() < deadline, proc.stderr
        time.sleep(0.05)
    _, out = run_ok(kc, "print('b')", timeout=TIMEOUT)
    assert streams_of(out) == [("stdout", "b\n")]


@pytest.mark.parametrize("call", ["breakpoint()", "import pdb; pdb.set_trace()"])
def test_a_breakpoint_without_stdin_is_skipped(kc, call):
    # nbclient and papermill send allow_stdin=False: a leftover breakpoint
    # must not fail the notebook (ipykernel: breakpoint() does nothing, says nothing)
    msg_id = kc.execute(f"{call}\nprint('after')", allow_stdin=False)
    reply = reply_to(kc, msg_id, TIMEOUT)["content"]
    out = streams_of(iopub_until_idle(kc, msg_id, TIMEOUT))
    assert not kc.stdin_channel.msg_ready()
    if kc.flavour == "ipykernel" and "pdb" in call:  # the cell fails: pdb asked for input
        assert reply["status"] == "error" and reply["ename"] == "StdinNotImplementedError", reply
        assert "after\n" not in "".join(text for _, text in out)  # (ipdb's listing shows print('after'))
        return
    assert reply["status"] == "ok"
    skipped = [] if kc.flavour == "ipykernel" else [("stderr", "breakpoint skipped: this frontend does not allow input (pdb needs it)\n")]
    assert out == [*skipped, ("stdout", "after\n")]


def interrupted_sleep(kc):
    """Run a cell that sleeps, interrupt it once it runs: its error name."""
    msg_id = kc.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(30)", allow_stdin=True)
    iopub_until(kc, msg_id, lambda m: m["msg_type"] == "stream", TIMEOUT, what="the cell's first line")
    kc.kernel_process.interrupt()
    reply = reply_to(kc, msg_id, TIMEOUT)["content"]
    iopub_until_idle(kc, msg_id, TIMEOUT)
    assert not kc.stdin_channel.msg_ready()  # (no pdb prompt)
    return reply.get("ename")


@pytest.mark.parametrize("command", ["c", "q"])
def test_interrupts_are_keyboardinterrupt_again_after_a_pdb_session(kc, command):
    # pdb's continue installs its own SIGINT handler (the next interrupt
    # would stop in pdb, in whatever cell runs then)
    msg_id = kc.execute("import pdb\npdb.set_trace()\nx = 1", allow_stdin=True)
    answer(kc, input_request(kc, msg_id, TIMEOUT), command)
    assert reply_to(kc, msg_id, TIMEOUT)["content"]["status"] in ("ok", "error")
    iopub_until_idle(kc, msg_id, TIMEOUT)
    assert interrupted_sleep(kc) == "KeyboardInterrupt"


def test_a_sigint_handler_set_by_a_cell_lasts_for_that_cell_only(kc):
    # while the cell runs its handler has the signal; the next cell's
    # interrupt is the kernel's again (both as under ipykernel)
    msg_id = kc.execute(
        "import signal, time\ncaught = []\nsignal.signal(signal.SIGINT, lambda *a: caught.append(1))\n"
        "print('waiting', flush=True)\nwhile not caught:\n    time.sleep(0.01)\nprint('caught')"
    )
    # (a line may come in two stream messages: print writes the text and the
    # newline apart, and a flush may fall between them; a frontend joins them)
    started = iopub_until(kc, msg_id, lambda m: m["msg_type"] == "stream", TIMEOUT, what="the cell's first line")
    kc.kernel_process.interrupt()
    assert reply_to(kc, msg_id, TIMEOUT)["content"]["status"] == "ok"
    assert stream_text(started + iopub_until_idle(kc, msg_id, TIMEOUT)) == "waiting\ncaught\n"
    assert interrupted_sleep(kc) == "KeyboardInterrupt"


def test_the_sigint_handler_is_default_int_handler_during_a_cell(kc):
    # (asyncio.run and trio install their Ctrl-C handling only when it is;
    # asyncio.run puts signal.default_int_handler back after)
    code = (
        "import signal, threading\nseen = []\n"
        "t = threading.Thread(target=lambda: seen.append(signal.getsignal(signal.SIGINT) is signal.default_int_handler))\n"
        "t.start(); t.join()\n[signal.getsignal(signal.SIGINT) is signal.default_int_handler, *seen]"
    )
    assert value_of(kc, code) == [True, True]
    # a cell that sets a handler and puts signal.default_int_handler back, as
    # asyncio.run does: interrupts are KeyboardInterrupt in that cell and after
    msg_id = kc.execute(
        "import signal, time\nsignal.signal(signal.SIGINT, lambda *a: None)\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "print('sleeping', flush=True)\ntime.sleep(30)"
    )
    iopub_until(kc, msg_id, lambda m: m["msg_type"] == "stream", TIMEOUT, what="the cell's first line")
    kc.kernel_process.interrupt()
    assert reply_to(kc, msg_id, TIMEOUT)["content"].get("ename") == "KeyboardInterrupt"
    iopub_until_idle(kc, msg_id, TIMEOUT)
    assert interrupted_sleep(kc) == "KeyboardInterrupt"


def test_colour_and_stream_settings_as_on_ipykernel(kc):
    # ipykernel's ZMQInteractiveShell.init_environment sets these for the
    # kernel and so for its subprocesses (ls, pytest, rich print in colour);
    # its streams say UTF-8 with errors None
    _, out = run_ok(kc, "import subprocess\nprint(subprocess.run(['sh', '-c', 'echo $TERM $CLICOLOR $FORCE_COLOR $CLICOLOR_FORCE $PAGER $GIT_PAGER'], capture_output=True, text=True).stdout, end='')", timeout=TIMEOUT)
    assert stream_text(out) == "xterm-color 1 1 1 cat cat\n"
    assert value_of(kc, "import sys; [(s.encoding, s.errors) for s in (sys.stdout, sys.stderr)]") == [("UTF-8", None)] * 2
