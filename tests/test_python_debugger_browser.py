"""JupyterLab's debugger panel on the Python kernel, in a real browser.

JupyterLab (its own server, on a free port) with the kernelkit kernelspec,
headless Chromium driven by Selenium: enable the debugger on a notebook,
click the gutter of a cell line to set a breakpoint, run the cell, see the
variables and call stack panels, continue, see the cell's output. Every wait
is on something the page shows, with a timeout.

Needs Debian's ``chromium`` and ``chromium-driver`` (installed here with
apt-get when missing, as root) and the ``jupyterlab`` and ``selenium``
packages of the ``test`` extra.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("debugpy", reason="the debugger needs debugpy (the 'debugger' extra)")
pytest.importorskip("jupyterlab", reason="the browser test needs jupyterlab (the 'test' extra)")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (the 'test' extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from kernelkit.python import install  # noqa: E402

pytestmark = pytest.mark.timeout(300)

CELL = "def double(x):\n    y = x * 2\n    return y\n\nprint('result', double(21))"
TOKEN = "kernelkit-debugger-test"


def wait_for(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)  # polling a server's files / a page: no event to wait on


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server whose only kernelspec is kernelkit's, with one notebook."""
    prefix, root, runtime = tmp_path / "prefix", tmp_path / "root", tmp_path / "runtime"
    root.mkdir()
    assert install.main(["--prefix", str(prefix), "--name", "kernelkit-debug", "--display-name", "kernelkit debug"]) == 0
    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {}, "outputs": [], "source": CELL}],
        "metadata": {"kernelspec": {"name": "kernelkit-debug", "display_name": "kernelkit debug", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / "debug.ipynb").write_text(json.dumps(notebook))
    env = dict(
        os.environ,
        JUPYTER_PATH=str(prefix / "share" / "jupyter"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_RUNTIME_DIR=str(runtime),
        IPYTHONDIR=str(tmp_path / "ipython"),
    )
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser",
            "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0", f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--KernelSpecManager.allowed_kernelspecs=kernelkit-debug",
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        # the server writes its port to the runtime dir once it listens
        info = wait_for("the JupyterLab server's runtime file", lambda: next(iter(runtime.glob("jpserver-*.json")), None), 60)
        url = json.loads(Path(info).read_text())["url"]
        urllib.request.urlopen(f"{url}api/status?token={TOKEN}", timeout=30).read()
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        log.close()


def test_jupyterlab_debugger_panel_stops_at_a_gutter_breakpoint(lab, browser, tmp_path):
    d = browser
    wait = WebDriverWait(d, 60, poll_frequency=0.2)
    d.get(f"{lab}lab/tree/debug.ipynb?token={TOKEN}")
    status = lambda: " ".join(e.text for e in d.find_elements(By.CSS_SELECTOR, ".jp-StatusBar-TextItem"))  # noqa: E731
    try:
        wait.until(lambda _: "kernelkit debug | Idle" in status())
        # the debugger button is enabled for this kernel (kernel_info says so)
        bug = wait.until(lambda _: d.find_element(By.CSS_SELECTOR, ".jp-DebuggerBugButton"))
        assert bug.get_attribute("disabled") is None
        bug.click()
        wait.until(lambda _: d.find_element(By.CSS_SELECTOR, ".jp-DebuggerBugButton").get_attribute("aria-pressed") == "true")
        # the breakpoint gutter: a hidden spacer, then one element per line
        gutter = wait.until(lambda _: d.find_elements(By.CSS_SELECTOR, ".cm-breakpoint-gutter .cm-gutterElement")[1:] or None)
        assert len(gutter) == len(CELL.splitlines())
        gutter[1].click()  # line 2: y = x * 2
        wait.until(lambda _: d.find_elements(By.CSS_SELECTOR, ".cm-breakpoint-gutter .cm-gutterElement")[2].find_elements(By.CSS_SELECTOR, ".cm-breakpoint-icon"))
        d.find_element(By.CSS_SELECTOR, "[data-command='notebook:run-cell-and-select-next']").click()
        # stopped: the variables panel shows the frame's locals, the call stack the cell's frames
        variables = wait.until(lambda _: [e for e in d.find_elements(By.CSS_SELECTOR, ".jp-DebuggerVariables") if "21" in e.text] or None)
        assert variables[0].text.split() == ["x", "21"] or "x: 21" in variables[0].text, variables[0].text
        frames = [e.text.split("\n") for e in d.find_elements(By.CSS_SELECTOR, ".jp-DebuggerCallstackFrame")]
        assert [f[0] for f in frames] == ["double", "<module>"], frames
        assert frames[0][1] == "Cell [*]:2", frames  # (named as on ipykernel: cellfiles.prefix)
        # the stopped line is highlighted in the cell
        assert "y = x * 2" in wait.until(lambda _: d.find_element(By.CSS_SELECTOR, ".jp-DebuggerEditor-highlight")).text
        wait.until(lambda _: d.find_element(By.CSS_SELECTOR, "[data-command='debugger:continue']")).click()
        output = wait.until(lambda _: [e for e in d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output") if e.text] or None)
        assert output[0].text == "result 42"
        wait.until(lambda _: "kernelkit debug | Idle" in status())
    except Exception:
        d.save_screenshot(str(tmp_path / "failure.png"))
        raise
