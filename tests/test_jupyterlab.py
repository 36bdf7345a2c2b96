"""JupyterLab in headless Chromium, on the Python kernel through kernelkit-handshake:
a notebook whose kernel crashes (``os._exit(1)``) 20 times in a row runs the next
cell every time (jupyter_server's autorestarter brings the kernel back on its ports);
a thread's output after its cell ended shows in that cell (and, while another cell
runs, also there); widgets over subshells (JupyterLab's default) draw the same picture in
a run-all, and a slider moves its label while a 10 s cell runs. Without a browser, on jupyter_server:
a websocket reconnecting at `restarting` (as JupyterLab does) hears the kernel after a
crash during which another process took the kernel's iopub port.

Needs Debian's ``chromium`` and ``chromium-driver`` (the debugger's browser test's
``browser`` fixture installs them with apt-get when missing, or skips saying so),
Selenium and JupyterLab (the ``[test]`` extra).
"""

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from tornado.websocket import websocket_connect

# 20 in CI; KERNELKIT_LAB_CRASHES=200 for a long run, KERNELKIT_LAB_TRACE=<file> to keep
# each crash's status sequence (JSON lines) for diagnosis
CRASHES = int(os.environ.get("KERNELKIT_LAB_CRASHES", "20"))
TRACE = os.environ.get("KERNELKIT_LAB_TRACE")

# Runs ``code`` in a new cell at the end of the open notebook, through JupyterLab's
# own commands, then waits for what ``until`` says: "output" (the cell's outputs) or
# "restart" (the kernel went through a restart and is idle again, as a user waits
# after a crash: JupyterLab cancels cells queued while the kernel restarts).
RUN_CELL = """
const [code, until, timeoutMs, done] = arguments;
(async () => {
  const app = window.jupyterapp;
  const panel = window.kkPanel || (window.kkPanel = app.shell.currentWidget);
  await panel.context.ready;
  await panel.sessionContext.ready;
  const statuses = [], events = [], t0 = Date.now();
  const onStatus = (_, status) => { statuses.push(status); events.push([Date.now() - t0, status]); };
  const onConnection = (_, status) => events.push([Date.now() - t0, 'ws:' + status]);
  const kernel = panel.sessionContext.session?.kernel;
  panel.sessionContext.statusChanged.connect(onStatus);
  kernel?.connectionStatusChanged.connect(onConnection);
  const nb = panel.content;
  nb.activeCellIndex = nb.widgets.length - 1;
  await app.commands.execute('notebook:insert-cell-below');
  const cell = nb.activeCell;
  cell.model.sharedModel.setSource(code);
  app.commands.execute('notebook:run-cell');
  const restarted = () => {
    const i = statuses.findIndex(s => s === 'autorestarting' || s === 'restarting');
    return i >= 0 && statuses.slice(i + 1).includes('idle') && panel.sessionContext.session?.kernel?.status === 'idle';
  };
  const start = Date.now();
  while (!(until === 'output' ? cell.model.outputs.length > 0 : restarted()) && Date.now() - start < timeoutMs) {
    // the "kernel restarting" dialog is information only: dismiss it
    document.querySelectorAll('.jp-Dialog .jp-mod-accept').forEach(b => b.click());
    await new Promise(r => setTimeout(r, 100));
  }
  panel.sessionContext.statusChanged.disconnect(onStatus);
  kernel?.connectionStatusChanged.disconnect(onConnection);
  done({outputs: cell.model.outputs.toJSON(), statuses, events, restarted: restarted(),
        kernel: panel.sessionContext.session?.kernel?.status});
})().catch(e => done({error: String(e)}));
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(tmp_path, module, *options):
    """``python -m <module>`` (jupyterlab, jupyter_server) serving a notebook on the
    kernelkit Python kernel (kernelspec ``kk``, handshake provisioner); yields its
    base URL, token and log file."""
    spec_dir = tmp_path / "share" / "kernels" / "kk"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "kernelkit.python", "-f", "{connection_file}"], "display_name": "kernelkit",
            "language": "python", "metadata": {"kernel_provisioner": {"provisioner_name": "kernelkit-handshake",
                                                                      "config": {"preferred_ports": True}}}}
    if os.environ.get("KERNELKIT_LAB_KERNEL") == "ipykernel":  # (to measure the peer: ipykernel 7)
        spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "ipykernel", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "kk", "display_name": "kernelkit", "language": "python"}})
    nb.cells.append(nbformat.v4.new_code_cell("1 + 1"))
    nbformat.write(nb, root / "crash.ipynb")
    port, token = free_port(), "kernelkit-test"
    env = dict(os.environ, JUPYTER_PATH=str(tmp_path / "share"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_DATA_DIR=str(tmp_path / "data"))
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", module, "--no-browser", "--allow-root", f"--ServerApp.root_dir={root}",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}",
         # every crash here comes within stable_start_time (10 s) of the last one, when the
         # restarter counts towards restart_limit (5) and asks for new ports (which the
         # provisioner does not take: the kernel comes back on its ports)
         "--KernelRestarter.restart_limit=1000", *options],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"{module} did not start:\n{(tmp_path / 'server.log').read_text()}")
            time.sleep(0.2)
    try:
        yield base, token, tmp_path / "server.log"
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server with a notebook on the kernelkit Python kernel (handshake provisioner)."""
    with serving(tmp_path, "jupyterlab", "--LabApp.expose_app_in_browser=True") as (base, token, log):
        yield f"{base}/lab/tree/crash.ipynb?token={token}", log


def text_of(outputs) -> str:
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out["text"] if isinstance(out["text"], str) else "".join(out["text"]))
        elif "data" in out:
            parts.append(str(out["data"].get("text/plain", "")))
        elif out.get("output_type") == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
    return "".join(parts)


def open_notebook(driver, url) -> None:
    """Open the notebook and wait until it has a kernel."""
    driver.set_script_timeout(120)
    driver.get(url)
    deadline = time.monotonic() + 60
    while not driver.execute_script(
        "const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        "return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel);"
    ):
        assert time.monotonic() < deadline, "JupyterLab did not open the notebook with a kernel"
        time.sleep(0.2)


@pytest.mark.timeout(max(900, CRASHES * 15))
def test_notebook_runs_the_next_cell_after_each_of_20_crashes(lab, browser):
    url, server_log = lab
    driver = browser
    open_notebook(driver, url)
    first = driver.execute_async_script(RUN_CELL, "import os; os.getpid()", "output", 60_000)
    assert "error" not in first and text_of(first["outputs"]).isdigit(), first
    pids = [int(text_of(first["outputs"]))]
    trace = open(TRACE, "a") if TRACE else None
    for crash in range(CRASHES):
        crashed = driver.execute_async_script(RUN_CELL, "import os; os._exit(1)", "restart", 60_000)
        if trace:
            print(json.dumps({"crash": crash + 1, "time": time.time(), "events": crashed.get("events"),
                              "kernel": crashed.get("kernel"), "restarted": crashed.get("restarted")}), file=trace, flush=True)
        assert crashed.get("restarted"), f"crash {crash + 1}: no restart seen: {crashed}\nserver log:\n{server_log.read_text()[-3000:]}"
        after = driver.execute_async_script(RUN_CELL, f"import os; print(os.getpid(), {crash} * 7)", "output", 60_000)
        if trace:
            print(json.dumps({"after": crash + 1, "time": time.time(), "events": after.get("events"),
                              "outputs": after.get("outputs")}), file=trace, flush=True)
        text = text_of(after["outputs"])
        assert "error" not in after and text.endswith(f" {crash * 7}\n"), (
            f"crash {crash + 1}: the next cell did not run: {after}\nserver log:\n{server_log.read_text()[-3000:]}")
        pid = int(text.split()[0])
        assert pid != pids[-1], f"crash {crash + 1}: the cell ran on the old kernel"
        pids.append(pid)
    assert len(set(pids)) == CRASHES + 1


# the outputs of every cell of the open notebook, as JupyterLab holds them
CELL_OUTPUTS = "return window.kkPanel.content.widgets.map(c => c.model.outputs ? c.model.outputs.toJSON() : []);"


def test_thread_output_after_its_cell_ended_shows_in_that_cell(lab, browser):
    url, _ = lab
    open_notebook(browser, url)
    started = browser.execute_async_script(RUN_CELL, (
        "import threading\ngo, went = threading.Event(), threading.Event()\n"
        "def later():\n    go.wait(60)\n    print('late line')\n    went.set()\n"
        "threading.Thread(target=later).start()\nprint('first cell')"), "output", 60_000)
    assert text_of(started["outputs"]) == "first cell\n", started
    browser.execute_async_script(RUN_CELL, "go.set()\nwent.wait(60)\nprint('second cell')", "output", 60_000)
    deadline = time.monotonic() + 30
    while True:
        *_, first, second = (text_of(outputs) for outputs in browser.execute_script(CELL_OUTPUTS))
        if first == "first cell\nlate line\n" and second.endswith("second cell\n"):
            break
        assert time.monotonic() < deadline, f"first cell: {first!r}, second cell: {second!r}"
        time.sleep(0.1)
    # the running cell has it too, with no text of the kernel's around it
    assert second == "late line\nsecond cell\n", second


# -- comms over subshells (JupyterLab's default commsOverSubshells: perCommTarget) -----
# A small Lorenz picture behind ipywidgets' ``interactive``, as in JupyterLab's docs
# notebook: pyplot's current figure is process-wide, so a widget callback drawing
# beside a cell that draws (or the reverse) mixes their pictures.
LORENZ = """\
%matplotlib inline
import numpy as np
import matplotlib.pyplot as plt
from ipywidgets import interactive, IntSlider, Label

def solve_lorenz(sigma=10.0, rho=28.0, beta=8 / 3, steps=1200, dt=0.01):
    fig = plt.figure(figsize=(3, 2.5), dpi=50)
    ax = fig.add_axes([0, 0, 1, 1], projection='3d')
    ax.axis('off')
    ax.set_xlim(-20, 20), ax.set_ylim(-30, 30), ax.set_zlim(5, 55)
    for start in np.random.default_rng(1).uniform(-15, 15, (6, 3)):
        path = np.empty((steps, 3))
        path[0] = start
        for i in range(1, steps):
            x, y, z = path[i - 1]
            path[i] = path[i - 1] + dt * np.array([sigma * (y - x), x * (rho - z) - y, x * y - beta * z])
        ax.plot(*path.T, lw=0.8)
    plt.show()
"""
RENDERS = 12
SLIDER = """\
slider, label = IntSlider(), Label('0')
label.add_class('kk-label')
slider.observe(lambda change: setattr(label, 'value', str(change['new'])), 'value')
display(slider, label)
"""
RUN_ALL = """
const done = arguments[arguments.length - 1];
(async () => {
  const app = window.jupyterapp;
  const panel = window.kkPanel = app.shell.currentWidget;
  await panel.context.ready;
  await panel.sessionContext.ready;
  app.commands.execute('notebook:run-all-cells');  // (not awaited: it ends with the last cell)
  done('ok');
})().catch(e => done(String(e)));
"""
# per cell: the pictures in its outputs (widget views included), and its text
# (the slider and the sleeping cell at the end: comm messages beside a cell running alone)
CELL_VIEWS = """
return window.kkPanel.content.widgets.map(c => ({
  images: Array.from(c.node.querySelectorAll('.jp-OutputArea-output img')).map(i => i.src),
  text: c.node.querySelector('.jp-Cell-outputArea') ? c.node.querySelector('.jp-Cell-outputArea').innerText : ''}));
"""


@pytest.mark.timeout(180)
def test_widgets_over_subshells_draw_the_same_picture_in_a_run_all(lab, browser, tmp_path):
    url, server_log = lab
    root = server_log.parent / "root"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "kk", "display_name": "kernelkit", "language": "python"}})
    nb.cells.append(nbformat.v4.new_code_cell(LORENZ))
    for _ in range(RENDERS):
        nb.cells.append(nbformat.v4.new_code_cell("interactive(solve_lorenz, sigma=(0.0, 50.0), rho=(0.0, 50.0))"))
    nb.cells.append(nbformat.v4.new_code_cell(SLIDER))
    nb.cells.append(nbformat.v4.new_code_cell("import time\nprint('sleeping', flush=True)\ntime.sleep(10)\nprint('slept')"))
    nbformat.write(nb, root / "lorenz.ipynb")
    open_notebook(browser, url.replace("crash.ipynb", "lorenz.ipynb"))
    assert browser.execute_async_script(RUN_ALL) == "ok"
    renders = slice(1, 1 + RENDERS)
    deadline = time.monotonic() + 45
    while True:
        views = browser.execute_script(CELL_VIEWS)
        if all(v["images"] for v in views[renders]) and "sleeping" in views[-1]["text"]:
            break
        assert time.monotonic() < deadline, [(len(v["images"]), v["text"][:200]) for v in views]
        time.sleep(0.2)
    pictures = [v["images"] for v in views[renders]]
    assert all(len(p) == 1 for p in pictures), [len(p) for p in pictures]
    assert len({p[0] for p in pictures}) == 1, f"{len({p[0] for p in pictures})} different pictures in {RENDERS} renders"
    assert "kernelkit WARNING" not in server_log.read_text()


# -- widgets on the kernel's asyncio loop (issue #23): ipywidgets' docs pattern
# "asynchronous widgets", a coroutine awaiting futures a widget observer resolves.
# The slider sends its value when the mouse lets go of the handle (continuous_update
# off), so each drag is one change.
ASYNC_WIDGETS = """\
import asyncio
from ipywidgets import IntSlider

def wait_for_change(widget, value):
    future = asyncio.Future()
    def getvalue(change):
        future.set_result(change.new)
        widget.unobserve(getvalue, value)
    widget.observe(getvalue, value)
    return future

slider = IntSlider(continuous_update=False)

async def f():
    for i in range(3):
        x = await wait_for_change(slider, 'value')
        print('awaited', x)

asyncio.ensure_future(f())
slider
"""
# the slider's handle and readout in the last cell, and that cell's printed text
LAST_SLIDER = """
const cell = window.kkPanel.content.widgets[window.kkPanel.content.widgets.length - 1];
const text = cell.model.outputs.toJSON().filter(o => o.output_type === 'stream')
  .map(o => Array.isArray(o.text) ? o.text.join('') : o.text).join('');
return {handle: cell.node.querySelector('.noUi-handle'), readout: cell.node.querySelector('.widget-readout')?.innerText, text};
"""

# what the notebook's kernel connection sends and receives, kept in the page:
# [time, direction, channel, msg_type, subshell_id, parent's msg_type]
RECORD_MESSAGES = """
const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
window.kkMessages = [];
k.anyMessage.connect((_, a) => window.kkMessages.push([Date.now(), a.direction, a.msg.channel, a.msg.header.msg_type,
  a.msg.header.subshell_id || null, (a.msg.parent_header && a.msg.parent_header.msg_type) || null]));
"""
SLIDER_VIEW = """
const out = window.kkPanel.content.widgets[0].node;
const label = out.querySelector('.kk-label'), readout = out.querySelector('.widget-readout');
return {label: label ? label.innerText : null, readout: readout ? readout.innerText : null,
        last: window.kkPanel.content.widgets[1].node.querySelector('.jp-Cell-outputArea').innerText,
        messages: window.kkMessages};
"""


@pytest.mark.timeout(120)
def test_async_widgets_print_each_awaited_value_as_the_slider_moves(lab, browser):
    from selenium.webdriver.common.action_chains import ActionChains

    url, server_log = lab
    open_notebook(browser, url)
    shown = browser.execute_async_script(RUN_CELL, ASYNC_WIDGETS, "output", 60_000)
    assert "error" not in shown, shown
    deadline = time.monotonic() + 30
    while not (state := browser.execute_script(LAST_SLIDER))["handle"]:
        assert time.monotonic() < deadline, f"no slider shown: {shown}"
        time.sleep(0.1)
    printed = ""
    for move in range(3):
        # a user's drag of the handle to the right; no cell runs from here on
        ActionChains(browser).click_and_hold(state["handle"]).move_by_offset(60, 0).release().perform()
        state = browser.execute_script(LAST_SLIDER)
        printed += f"awaited {state['readout']}\n"
        deadline = time.monotonic() + 15
        while (state := browser.execute_script(LAST_SLIDER))["text"] != printed:
            assert time.monotonic() < deadline, f"move {move + 1}: printed {state['text']!r}, expected {printed!r}"
            time.sleep(0.1)
    values = [int(line.split()[1]) for line in printed.splitlines()]
    assert values == sorted(set(values)) and values[0] > 0, printed
    assert "kernelkit WARNING" not in server_log.read_text()


@pytest.mark.timeout(120)
def test_a_slider_moves_its_label_while_a_10_s_cell_runs(lab, browser):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, server_log = lab
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "kk", "display_name": "kernelkit", "language": "python"}})
    nb.cells.append(nbformat.v4.new_code_cell("from ipywidgets import IntSlider, Label\n" + SLIDER))
    nb.cells.append(nbformat.v4.new_code_cell("import time\nprint('sleeping', flush=True)\ntime.sleep(10)\nprint('slept')"))
    nbformat.write(nb, server_log.parent / "root" / "slider.ipynb")
    open_notebook(browser, url.replace("crash.ipynb", "slider.ipynb"))
    browser.execute_script(RECORD_MESSAGES)
    assert browser.execute_async_script(RUN_ALL) == "ok"

    def wait_for(what, until, seconds=8):
        deadline = time.monotonic() + seconds
        while not until(view := browser.execute_script(SLIDER_VIEW)):
            assert time.monotonic() < deadline, f"{what}: {view}"
            time.sleep(0.05)
        return view

    # the slider is drawn, the 10 s cell runs, and JupyterLab has the widgets' subshell
    # (a person takes longer than that to reach for the mouse)
    wait_for("slider drawn, cell running, subshell made", lambda v: v["readout"] == "0" and "sleeping" in v["last"] and any(
        m[3] == "create_subshell_reply" for m in v["messages"]))
    handle = browser.find_element(By.CSS_SELECTOR, ".noUi-handle")
    ActionChains(browser).click_and_hold(handle).move_by_offset(60, 0).release().perform()
    dragged = wait_for("the label follows a mouse drag", lambda v: v["readout"] not in ("0", None) and v["label"] == v["readout"])
    handle.send_keys(Keys.ARROW_RIGHT)  # (the handle has the focus: the keyboard moves it by one step)
    moved = wait_for("the label follows a key press", lambda v: v["label"] == str(int(dragged["readout"]) + 1) == v["readout"])
    assert "slept" not in moved["last"], moved["last"]
    sent = [m for m in moved["messages"] if m[1] == "send" and m[3] == "comm_msg"]
    # both moves went to the kernel on the widgets' subshell (JupyterLab's default), and
    # the label's updates came back before the cell's reply
    assert sent and all(m[4] for m in sent), sent
    assert [m[3] for m in moved["messages"] if m[1] == "recv" and m[2] == "shell"].count("execute_reply") == 1  # (the slider's cell's)
    wait_for("the cell ends", lambda v: "slept" in v["last"], 15)
    log = server_log.read_text()
    assert "kernelkit WARNING" not in log and "Got events for closed stream" not in log, log[-3000:]


# loops until it can take a port (the crashed kernel's), then holds it: another
# process, as a server started meanwhile would be
SQUATTER = """
import socket, sys, time
print("waiting", flush=True)
while True:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the dead kernel's connections may linger in TIME_WAIT
    try:
        s.bind(("127.0.0.1", int(sys.argv[1])))
        s.listen()
        break
    except OSError:
        s.close()
        time.sleep(0.001)
print("bound", flush=True)
sys.stdin.read()
"""


def test_a_websocket_reconnecting_at_restarting_hears_the_kernel_when_a_port_was_taken(tmp_path):
    """jupyter_server, no browser: a websocket client that reconnects when the
    kernel says `restarting` (as JupyterLab does) while another process takes the
    crashed kernel's iopub port. The new kernel binds a fresh one; the reconnected
    websocket must hear it (before, it was connected to the taken port for good:
    the shell reply came, never a status or output: JupyterLab's `unknown`)."""
    # plain jupyter_server (quicker to start than JupyterLab), its restarter polling every 0.2 s
    with serving(tmp_path, "jupyter_server", "--KernelRestarter.time_to_dead=0.2") as (base, token, server_log):
        asyncio.run(reconnect_after_a_crash_with_a_port_taken(base, token, server_log))


async def reconnect_after_a_crash_with_a_port_taken(base, token, server_log):
    request = urllib.request.Request(f"{base}/api/kernels?token={token}", data=json.dumps({"name": "kk"}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    kernel_id = json.load(urllib.request.urlopen(request, timeout=60))["id"]
    connection_file = server_log.parent / "runtime" / f"kernel-{kernel_id}.json"
    session = Session()
    ws_url = f"ws{base[len('http'):]}/api/kernels/{kernel_id}/channels?session_id={session.session}&token={token}"

    def send(ws, msg_type, content, channel="shell"):
        msg = session.msg(msg_type, content)
        ws.write_message(json.dumps({**msg, "channel": channel}, default=json_default))
        return msg["header"]["msg_id"]

    async def until(ws, predicate, what):
        seen = []
        while True:
            try:
                text = await asyncio.wait_for(ws.read_message(), 20)
            except asyncio.TimeoutError:
                raise AssertionError(f"no {what} in 20 s; the websocket got {seen}\nserver log:\n{server_log.read_text()[-3000:]}") from None
            assert text is not None, f"the websocket closed before {what}"
            msg = json.loads(text)
            seen.append(f"{msg['channel']}:{msg['msg_type']}")
            if predicate(msg):
                return msg

    ws = await websocket_connect(ws_url)
    send(ws, "kernel_info_request", {})
    await until(ws, lambda m: m["msg_type"] == "kernel_info_reply", "kernel_info_reply")
    before = json.loads(connection_file.read_text())
    squatter = subprocess.Popen([sys.executable, "-c", SQUATTER, str(before["iopub_port"])],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout.readline() == "waiting\n"
        send(ws, "execute_request", {"code": "import os; os._exit(1)", "silent": False})
        await until(ws, lambda m: m["msg_type"] == "status" and m["content"]["execution_state"] == "restarting", "restarting")
        ws.close()  # JupyterLab reconnects at once, with the same session
        ws = await websocket_connect(ws_url)
        msg_id = send(ws, "execute_request", {"code": "6 * 7", "silent": False})
        result = await until(ws, lambda m: m["msg_type"] == "execute_result" and m["parent_header"].get("msg_id") == msg_id,
                             "execute_result on iopub")
        assert result["content"]["data"]["text/plain"] == "42"
        assert squatter.stdout.readline() == "bound\n"
        after = json.loads(connection_file.read_text())
        assert after["iopub_port"] != before["iopub_port"], "the kernel could not have bound the taken port"
        ws.close()
    finally:
        squatter.kill()
        squatter.wait()
