"""``kernelkit run``: the real CLI on notebooks made here. Notebooks run on the
kernel their kernelspec names (the exec test kernel, the bundled Python kernel,
ipykernel, bash_kernel); papermill's parameters are checked side by side with
papermill; bad input gets one line, exit status 2 and an untouched input."""

import json
import os
import pty
import re
import select
import shlex
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from support import EXEC_KERNEL

EXEC_CMD = shlex.join(EXEC_KERNEL) + " -f {connection_file}"
ANSI = re.compile(r"\x1b\[")
PYTHON3 = {"name": "python3", "language": "python", "display_name": "Python 3 (ipykernel)"}
BASH = {"name": "bash", "language": "bash", "display_name": "Bash"}


@pytest.fixture
def env(tmp_path):
    """Kernelspecs under tmp_path/share (plus the environment's own: ipykernel's
    python3); the exec test kernel installed as 'exec-hs', started through the
    handshake in dialect A; bash_kernel as 'bash'."""
    e = dict(os.environ, JUPYTER_PATH=str(tmp_path / "share"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    for name in ("JUPYTER_CONFIG_DIR", "NO_COLOR"):
        e.pop(name, None)
    _kernelspec(tmp_path, "exec-hs", {
        "argv": [*EXEC_KERNEL, "-f", "{connection_file}"], "display_name": "Exec (handshake)", "language": "python",
        "metadata": {"kernel_provisioner": {"provisioner_name": "kernelkit-handshake", "config": {"dialect": "A"}}},
    })
    _kernelspec(tmp_path, "bash", {"argv": [sys.executable, "-m", "bash_kernel", "-f", "{connection_file}"],
                                   "display_name": "Bash", "language": "bash"})
    return e


def _kernelspec(tmp_path, name, spec):
    d = tmp_path / "share" / "kernels" / name
    d.mkdir(parents=True)
    (d / "kernel.json").write_text(json.dumps(spec))


EXEC = {"name": "exec-hs", "language": "python", "display_name": "Exec (handshake)"}


def kernelkit_run(args, env, timeout=60, **kw):
    p = subprocess.run([sys.executable, "-m", "kernelkit.cli", "run", *args], capture_output=True, text=True, env=env,
                       timeout=timeout, **kw)
    assert "Traceback (most recent call last)" not in p.stderr, p.stderr
    return p


def notebook(path, *sources, kernelspec=EXEC, tags=None, **metadata):
    """A markdown cell, then a code cell per source; ``tags``: {source index: [tags]}."""
    cells = [new_markdown_cell("# a notebook")] + [new_code_cell(s) for s in sources]
    for i, t in (tags or {}).items():
        cells[i + 1].metadata["tags"] = t
    if kernelspec:
        metadata["kernelspec"] = kernelspec
    nbformat.write(new_notebook(cells=cells, metadata=metadata), str(path))
    return str(path)


def read(path):
    return nbformat.read(str(path), as_version=4)


def cell_id(path, index):
    return read(path).cells[index].id


def errors(p):
    """Our own lines on stderr."""
    return [line for line in p.stderr.splitlines() if line.startswith("kernelkit run: ")]


def test_runs_a_notebook_on_its_kernel_and_writes_the_result_beside_it(tmp_path, env):
    nb = notebook(tmp_path / "calc.ipynb", "x = 6", "kernel.stream('half\\n'); kernel.stream('way\\n')", "", "x * 7")
    p = kernelkit_run([nb], env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "half\nway\n42\n"
    lines = p.stderr.splitlines()
    # one numbering: the Nth code cell that runs, which is also its In [N]
    assert lines[0] == f"kernelkit run: {nb}: 3 code cells on Exec (handshake)"
    assert "[1/3] x = 6" in lines and "[3/3] x * 7" in lines
    assert any(line.startswith("[3/3] done in") for line in lines)
    assert lines[-1].startswith(f"kernelkit run: wrote {tmp_path / 'calc.out.ipynb'} (3 cells in ")
    out = read(tmp_path / "calc.out.ipynb")
    assert [o["text"] for o in out.cells[2].outputs] == ["half\n", "way\n"]
    assert out.cells[4].outputs[0]["data"]["text/plain"] == "42"
    assert out.cells[4].execution_count == 3
    # papermill's run metadata
    assert out.metadata.papermill["exception"] is None and out.metadata.papermill["input_path"] == nb
    assert [c.metadata.papermill["status"] for c in out.cells] == ["completed"] * 5
    # the input is untouched; no registration or connection file is left behind
    assert read(nb).cells[4].outputs == []
    assert os.listdir(tmp_path / "runtime") == []


def test_plurals(tmp_path, env):
    p = kernelkit_run([notebook(tmp_path / "one.ipynb", "1")], env)
    assert errors(p)[0].endswith(": 1 code cell on Exec (handshake)")
    assert "(1 cell in " in errors(p)[-1]


def test_failing_cell_names_the_cell_writes_what_ran_and_exits_1(tmp_path, env):
    nb = notebook(tmp_path / "bad.ipynb", "x = 1", "x / 0", "never = 1")
    out = tmp_path / "result.ipynb"
    p = kernelkit_run([nb, "-o", str(out)], env)
    assert p.returncode == 1
    assert errors(p)[-2:] == [f"kernelkit run: cell 2 (id {cell_id(nb, 2)}) failed: ZeroDivisionError: division by zero",
                              f"kernelkit run: wrote what ran to {out}"]
    result = read(out)
    assert result.cells[2].outputs[0]["ename"] == "ZeroDivisionError"
    assert result.cells[3].outputs == [] and result.cells[3].execution_count is None
    assert result.metadata.papermill["exception"] is True
    assert [c.metadata.papermill["status"] for c in result.cells] == ["completed", "completed", "failed", "pending"]


def test_allow_errors_goes_on(tmp_path, env):
    nb = notebook(tmp_path / "bad.ipynb", "x / 0", "kernel.stream('after')")
    p = kernelkit_run([nb, "--allow-errors"], env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith("after")
    result = read(tmp_path / "bad.out.ipynb")
    assert result.cells[1].outputs[0]["ename"] == "NameError" and result.cells[2].outputs[0]["text"] == "after"


def test_cell_timeout_is_recorded_in_the_cell(tmp_path, env):
    nb = notebook(tmp_path / "slow.ipynb", "x = 1", "time.sleep(30)", "never = 1")
    p = kernelkit_run([nb, "--timeout", "1.5"], env)
    assert p.returncode == 1
    expected = "CellTimeoutError: the cell did not finish within the 1.5 s limit (--timeout)"
    assert f"kernelkit run: cell 2 (id {cell_id(nb, 2)}) failed: {expected}" in errors(p)
    result = read(tmp_path / "slow.out.ipynb")
    err = result.cells[2].outputs[-1]
    assert (err.output_type, f"{err.ename}: {err.evalue}") == ("error", expected)
    assert result.cells[2].metadata.papermill["status"] == "failed" and result.cells[1].execution_count == 1


def test_timeout_none_means_no_limit(tmp_path, env):
    p = kernelkit_run([notebook(tmp_path / "n.ipynb", "time.sleep(0.2)"), "--timeout", "none"], env)
    assert p.returncode == 0, p.stderr


def test_kernel_dying_in_a_cell_is_recorded_in_that_cell(tmp_path, env):
    nb = notebook(tmp_path / "die.ipynb", "x = 1", "__import__('os')._exit(9)", "never = 1")
    p = kernelkit_run([nb], env)
    assert p.returncode == 1
    assert errors(p)[-2] == (f"kernelkit run: cell 2 (id {cell_id(nb, 2)}) failed: "
                             "DeadKernelError: the kernel died while running this cell")
    result = read(tmp_path / "die.out.ipynb")
    assert result.cells[1].execution_count == 1
    assert result.cells[2].outputs[-1]["ename"] == "DeadKernelError"
    assert result.cells[2].metadata.papermill["status"] == "failed"


# --- which kernel


def test_kernel_option_overrides_the_notebooks_kernel(tmp_path, env):
    nb = notebook(tmp_path / "n.ipynb", "kernel.stream(str(2 ** 10))", kernelspec={"name": "conda-env-ml-py", "language": "python", "display_name": "ml"})
    p = kernelkit_run([nb, "--kernel", "exec-hs"], env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "1024" and "on Exec (handshake)" in errors(p)[0]


def test_missing_kernel_is_one_line_listing_installed_ones(tmp_path, env):
    nb = notebook(tmp_path / "ml.ipynb", "1", kernelspec={"name": "conda-env-ml-py", "language": "python", "display_name": "ml"})
    before = open(nb, "rb").read()
    p = kernelkit_run([nb], env)
    assert p.returncode == 2 and p.stdout == ""
    [line] = p.stderr.splitlines()
    assert line.startswith(f"kernelkit run: {nb}: its kernel 'conda-env-ml-py' is not installed (installed: ")
    assert "bash, " in line and "exec-hs, kernelkit" in line
    assert line.endswith("; to run this Python notebook on the bundled kernel: --kernel kernelkit")
    assert open(nb, "rb").read() == before and not os.path.exists(tmp_path / "ml.out.ipynb")


def test_python_notebook_runs_on_the_bundled_kernel_when_asked(tmp_path, env):
    nb = notebook(tmp_path / "ml.ipynb", "import sys\nprint(sys.executable)",
                  kernelspec={"name": "conda-env-ml-py", "language": "python", "display_name": "ml"})
    p = kernelkit_run([nb, "--kernel", "kernelkit"], env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == sys.executable and "on Python 3 (kernelkit)" in errors(p)[0]


def test_notebook_without_kernelspec_runs_on_the_bundled_kernel_and_says_so(tmp_path, env):
    nb = notebook(tmp_path / "py.ipynb", "import sys\nprint(sys.executable)", kernelspec=None)
    p = kernelkit_run([nb], env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == sys.executable and "Python 3 (kernelkit)" in errors(p)[0]


def test_bash_notebook_runs_on_bash_kernel_with_parameters(tmp_path, env):
    nb = notebook(tmp_path / "b.ipynb", "greeting=hello\ncount=1", 'echo "$greeting x$count"', "no_such_command_xyz",
                  kernelspec=BASH, tags={0: ["parameters"]})
    p = kernelkit_run([nb, "-p", "greeting", "hi there", "-p", "count", "3"], env)
    assert p.returncode == 1
    assert p.stdout.startswith("hi there x3\n")
    assert errors(p)[0] == f"kernelkit run: {nb}: 4 code cells on Bash"
    result = read(tmp_path / "b.out.ipynb")
    assert result.cells[2].source == "# Parameters\ngreeting='hi there'\ncount=3\n"
    assert f"cell 4 (id {result.cells[4].id}) failed: " in errors(p)[-2]


def test_bundled_kernel_refuses_another_language(tmp_path, env):
    nb = notebook(tmp_path / "b.ipynb", "echo hi", kernelspec=BASH)
    p = kernelkit_run([nb, "--kernel", "kernelkit"], env)
    assert p.returncode == 2
    assert p.stderr.splitlines() == [f"kernelkit run: {nb}: a bash notebook; the kernelkit kernel runs Python: pass --kernel NAME"]


# --- papermill's parameters, side by side with papermill

PARAMS_CELL = "i = 0\nf = 0.0\nt = False\nn = 'set'\ns = 'default'\nr = 'default'\nl = []\nd = {}\nx = 0\nneg = 0"
SHOW = "print(repr((i, f, t, n, s, r, l, d, x, neg)))"
# every kind papermill types: int, float (also 1e3, nan), bool, None, text, raw text, YAML lists and mappings, a file
ARGS = ["-p", "i", "42", "-p", "f", "2.5", "-p", "t", "True", "-p", "n", "None", "-p", "s", "hello world",
        "-r", "r", "42", "-y", "l: [1, two, 3.0]\nd: {a: 1, b: [true, null]}", "-p", "x", "1e3", "-p", "neg", "-7"]


def _papermill(args, env):
    exe = os.path.join(os.path.dirname(sys.executable), "papermill")
    return subprocess.run([exe, "--no-progress-bar", *args], capture_output=True, text=True, env=env, timeout=120)


def test_parameters_are_typed_and_injected_as_papermill_does(tmp_path, env):
    (tmp_path / "more.yaml").write_text("s: from the file\nextra: 2023-01-02\n")
    nb = notebook(tmp_path / "p.ipynb", PARAMS_CELL, SHOW, "print(repr(extra))", kernelspec=PYTHON3, tags={0: ["parameters"]})
    args = ["-f", str(tmp_path / "more.yaml"), *ARGS]
    pm = _papermill([nb, str(tmp_path / "pm.ipynb"), *args], env)
    assert pm.returncode == 0, pm.stderr
    p = kernelkit_run([nb, "-o", str(tmp_path / "kk.ipynb"), *args], env)
    assert p.returncode == 0, p.stderr
    theirs, ours = read(tmp_path / "pm.ipynb"), read(tmp_path / "kk.ipynb")
    # the same injected cell after the parameters cell, the same values in the kernel
    assert ours.cells[2].metadata.tags == theirs.cells[2].metadata.tags == ["injected-parameters"]
    assert ours.cells[2].source == theirs.cells[2].source
    assert "i = 42\n" in ours.cells[2].source and "neg = -7\n" in ours.cells[2].source
    assert [c.outputs[0].text for c in ours.cells[3:]] == [c.outputs[0].text for c in theirs.cells[3:]]
    assert ours.cells[3].outputs[0].text == "(42, 2.5, True, None, 'hello world', '42', [1, 'two', 3.0], {'a': 1, 'b': [True, None]}, 1000.0, -7)\n"
    assert ours.cells[4].outputs[0].text == "'2023-01-02'\n"  # papermill's loader keeps dates as text
    # the metadata papermill records
    assert ours.metadata.papermill["parameters"] == theirs.metadata.papermill["parameters"]
    assert set(ours.metadata.papermill) == set(theirs.metadata.papermill)
    assert set(ours.cells[3].metadata.papermill) == set(theirs.cells[3].metadata.papermill)


def test_earlier_injected_cell_is_replaced_and_without_a_parameters_cell_it_goes_first(tmp_path, env):
    nb = notebook(tmp_path / "p.ipynb", "a = 1", "kernel.stream(repr(a))", tags={0: ["parameters"]})
    assert kernelkit_run([nb, "-o", str(tmp_path / "once.ipynb"), "-p", "a", "2"], env).returncode == 0
    p = kernelkit_run([str(tmp_path / "once.ipynb"), "-o", str(tmp_path / "twice.ipynb"), "-p", "a", "3", "-p", "typo", "1"], env)
    assert p.returncode == 0 and p.stdout == "3"
    # papermill warns about a name the parameters cell does not set: so do we
    assert errors(p)[0] == (f"kernelkit run: {tmp_path / 'once.ipynb'}: its parameters cell does not set typo "
                            "(injected all the same, as papermill does)")
    twice = read(tmp_path / "twice.ipynb")
    assert sum("injected-parameters" in c.metadata.get("tags", []) for c in twice.cells) == 1
    untagged = notebook(tmp_path / "u.ipynb", "kernel.stream(repr(a))")
    p = kernelkit_run([untagged, "-p", "a", "hi"], env)
    assert p.returncode == 0 and p.stdout == "'hi'"
    assert read(tmp_path / "u.out.ipynb").cells[0].metadata.tags == ["injected-parameters"]


# --- input(), working directory, saving, quiet


def test_input_answers_in_order(tmp_path, env):
    nb = notebook(tmp_path / "ask.ipynb", "a = input('first: ')\nb = input('second: ')\nprint(a + '|' + b)", kernelspec=None)
    p = kernelkit_run([nb, "--input", "one", "--input", "two words"], env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "first: one\nsecond: two words\none|two words\n"
    (tmp_path / "answers.txt").write_text("x\ny\n")
    p = kernelkit_run([nb, "--stdin-file", str(tmp_path / "answers.txt"), "-q"], env)
    assert p.returncode == 0 and p.stdout == "" and p.stderr == ""
    assert read(tmp_path / "ask.out.ipynb").cells[1].outputs[-1].text.endswith("x|y\n")
    p = kernelkit_run([nb, "--stdin-file", "-", "-q"], env, input="from\nstdin\n")
    assert p.returncode == 0 and read(tmp_path / "ask.out.ipynb").cells[1].outputs[-1].text.endswith("from|stdin\n")
    p = kernelkit_run([nb, "--input", "only one"], env)
    assert p.returncode == 1
    assert errors(p)[-2].endswith("failed: input() asked for more answers than given (1; prompt 'second: '): "
                                  "add --input TEXT or a line to --stdin-file")


def test_cwd_and_no_save(tmp_path, env):
    work = tmp_path / "work"
    work.mkdir()
    nb = notebook(tmp_path / "wd.ipynb", "kernel.stream(__import__('os').getcwd())")
    p = kernelkit_run([nb, "--cwd", str(work), "--no-save"], env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == str(work)
    assert "(not saved: --no-save)" in errors(p)[-1]
    assert sorted(os.listdir(tmp_path)) == ["runtime", "share", "wd.ipynb", "work"]


def test_quiet_shows_only_failures(tmp_path, env):
    ok = kernelkit_run([notebook(tmp_path / "ok.ipynb", "kernel.stream('x')"), "--quiet"], env)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
    nb = notebook(tmp_path / "bad.ipynb", "1 / 0")
    bad = kernelkit_run([nb, "-q"], env)
    assert bad.returncode == 1 and bad.stdout == ""
    assert errors(bad) == [f"kernelkit run: cell 1 (id {cell_id(nb, 1)}) failed: ZeroDivisionError: division by zero",
                           f"kernelkit run: wrote what ran to {tmp_path / 'bad.out.ipynb'}"]


# --- several notebooks


def test_several_notebooks_in_parallel_with_one_failing(tmp_path, env):
    nbs = [notebook(tmp_path / f"n{i}.ipynb", "time.sleep(0.3)", f"kernel.stream('{i}')") for i in range(3)]
    nbs.insert(1, notebook(tmp_path / "bad.ipynb", "x = 1", "x / 0"))
    report = tmp_path / "junit.xml"
    p = kernelkit_run([*nbs, "-j", "2", "--junit-xml", str(report)], env)
    assert p.returncode == 1
    assert p.stdout == ""  # cell output goes to the notebooks only
    lines = p.stderr.splitlines()
    failing = f"cell 2 (id {cell_id(nbs[1], 2)}): ZeroDivisionError: division by zero"
    # a line per notebook as it ends, then the table in the order given
    assert f"kernelkit run: failed {nbs[1]}: {failing}" in lines
    assert sum(line.startswith("kernelkit run: ok ") and "(2 cells in " in line for line in lines) == 3
    table = lines[lines.index(next(ln for ln in lines if ln.startswith("notebook "))):]
    assert [row.split()[:2] for row in table[1:5]] == [[nbs[0], "ok"], [nbs[1], "failed"], [nbs[2], "ok"], [nbs[3], "ok"]]
    assert table[2].endswith(failing)
    assert table[5].startswith("kernelkit run: 4 notebooks: 3 ok, 1 failed, in ")
    for i, path in enumerate(nbs):
        assert os.path.exists(path.replace(".ipynb", ".out.ipynb"))
    cases = ET.parse(report).getroot().find("testsuite")
    assert (cases.get("tests"), cases.get("failures"), cases.get("errors")) == ("4", "1", "0")
    [failure] = cases.iter("failure")
    assert failure.get("type") == "ZeroDivisionError" and failure.get("message") == failing


def test_several_notebooks_and_an_output_directory(tmp_path, env):
    nbs = [notebook(tmp_path / f"n{i}.ipynb", f"kernel.stream('{i}')") for i in range(2)]
    (tmp_path / "out").mkdir()
    p = kernelkit_run([*nbs, "-o", str(tmp_path / "out"), "-j", "2"], env)
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["n0.ipynb", "n1.ipynb"]
    assert read(tmp_path / "out" / "n1.ipynb").cells[1].outputs[0].text == "1"


# --- the terminal


def test_rich_outputs_and_display_updates_as_text(tmp_path, env):
    nb = notebook(tmp_path / "rich.ipynb",
                  "from IPython.display import HTML, Markdown, display\ndisplay(Markdown('**bold**'))\nHTML('<b>x</b>')",
                  "h = display(Markdown('step 0'), display_id=True)\nh.update(Markdown('step 1'))",
                  "class C:\n    def _repr_svg_(self): return '<svg/>'\nC()", kernelspec=None)
    p = kernelkit_run([nb], env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "**bold**\n[text/html]\nstep 0\nstep 1\n[image/svg+xml]\n"


def _traceback_run(tmp_path, env, args=(), tty=False):
    nb = notebook(tmp_path / "tb.ipynb", "1 / 0", kernelspec=None)
    if not tty:
        return kernelkit_run([nb, *args], env).stdout
    # on a terminal: stdout and stderr are a pty
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "kernelkit.cli", "run", nb, *args], stdout=follower, stderr=follower, env=env)
    os.close(follower)
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        assert ready, "no output for 60 s"
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process closed the pty
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=30)
    os.close(leader)
    return out.decode()


def test_colours_only_on_a_terminal_and_never_with_no_color(tmp_path, env):
    piped = _traceback_run(tmp_path, env)
    assert "ZeroDivisionError" in piped and not ANSI.search(piped)
    assert ANSI.search(_traceback_run(tmp_path, env, ["--color", "always"]))
    on_tty = _traceback_run(tmp_path, env, tty=True)
    assert "ZeroDivisionError" in on_tty and ANSI.search(on_tty)
    no_color = _traceback_run(tmp_path, dict(env, NO_COLOR="1"), tty=True)
    assert "ZeroDivisionError" in no_color and not ANSI.search(no_color)
    never = _traceback_run(tmp_path, env, ["--color", "never"], tty=True)
    assert "ZeroDivisionError" in never and not ANSI.search(never)
    # the saved notebook keeps the kernel's traceback as it was sent
    assert ANSI.search("".join(read(tmp_path / "tb.out.ipynb").cells[1].outputs[0].traceback))


# --- bad input: one line, exit 2, the input untouched


def _write(path, text):
    path.write_text(text)
    return str(path)


def _v3(tmp_path):
    return _write(tmp_path / "v3.ipynb", json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [], "cells": []}))


def _invalid(tmp_path):
    nb = json.loads(open(notebook(tmp_path / "inv.ipynb", "1")).read())
    nb["cells"][1]["outputs"] = [{"output_type": "stream", "text": "no name"}]
    return _write(tmp_path / "inv.ipynb", json.dumps(nb))


BAD = {
    "missing": (lambda t, g: [str(t / "nope.ipynb")], "nope.ipynb: no such file"),
    "directory": (lambda t, g: [str(t / "share")], "is a directory, not a notebook"),
    "not-json": (lambda t, g: [_write(t / "x.ipynb", "print('hi')")], "x.ipynb: not a Jupyter notebook (not JSON"),
    "not-a-notebook": (lambda t, g: [_write(t / "y.ipynb", '{"hello": 1}')], "y.ipynb: not a Jupyter notebook"),
    "version-3": (lambda t, g: [_v3(t)], "v3.ipynb: nbformat version 3; kernelkit run reads version 4"),
    "nbformat-invalid": (lambda t, g: [_invalid(t)], "inv.ipynb: not a valid notebook (cells/1/outputs/0: 'name' is a required property)"),
    "r-kernel-missing": (lambda t, g: [notebook(t / "r.ipynb", "1", kernelspec={"name": "ir", "language": "R", "display_name": "R"})],
                         "r.ipynb: its kernel 'ir' is not installed (installed: "),
    "unknown-kernel": (lambda t, g: [g, "--kernel", "no-such-kernel"], "--kernel no-such-kernel: no such kernel (installed: "),
    "bad-output-dir": (lambda t, g: [g, "-o", str(t / "no" / "dir.ipynb")], "no such directory"),
    "timeout-0": (lambda t, g: [g, "--timeout", "0"], "argument --timeout: '0': give a positive number of seconds or 'none'"),
    "timeout-negative": (lambda t, g: [g, "--timeout", "-1"], "argument --timeout: '-1': give a positive number of seconds"),
    "timeout-text": (lambda t, g: [g, "--timeout", "soon"], "argument --timeout: 'soon': give a positive number"),
    "parameter-without-value": (lambda t, g: [g, "-p", "a"], "argument -p/--parameters: expected 2 arguments"),
    "parameter-name": (lambda t, g: [g, "-p", "1a", "2"], "-p 1a ...: '1a' is not a valid parameter name"),
    "yaml-file-missing": (lambda t, g: [g, "-f", str(t / "p.yaml")], "p.yaml: cannot read it: No such file or directory"),
    "yaml-invalid": (lambda t, g: [g, "-y", "a: [1"], "-y: not valid YAML"),
    "yaml-not-a-mapping": (lambda t, g: [g, "-y", "[1, 2]"], "-y: parameters must be a YAML mapping (NAME: VALUE), not a list"),
    "several-outputs-to-a-file": (lambda t, g: [g, g, "-o", str(t / "o.ipynb")], "with several notebooks, -o must be an existing directory"),
    "same-notebook-twice": (lambda t, g: [g, g], "good.ipynb and "),
    "cwd-missing": (lambda t, g: [g, "--cwd", str(t / "nowhere")], "nowhere: no such directory"),
    "jobs-0": (lambda t, g: [g, "-j", "0"], "argument -j/--jobs: '0': give a positive whole number"),
    "stdin-file-missing": (lambda t, g: [g, "--stdin-file", str(t / "answers")], "answers: cannot read it"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_2_and_the_input_untouched(tmp_path, env, case):
    good = notebook(tmp_path / "good.ipynb", "1")
    make, expected = BAD[case]
    args = make(tmp_path, good)
    inputs = {a: open(a, "rb").read() for a in args if a.endswith(".ipynb") and os.path.isfile(a)}
    p = kernelkit_run(args, env)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kernelkit run: ") and expected in lines[0], p.stderr
    for path, data in inputs.items():
        assert open(path, "rb").read() == data
    assert not [f for f in os.listdir(tmp_path) if ".out." in f]


@pytest.mark.parametrize("case", ["dies", "never-registers", "no-such-program"])
def test_kernel_that_does_not_start_is_one_line(tmp_path, env, case):
    nb = notebook(tmp_path / "n.ipynb", "1")
    cmd, expected = {
        "dies": (f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(\"kernel: cannot load libfoo\")' {{connection_file}}",
                 "the kernel did not start: kernel exited with code 1 before registering: kernel: cannot load libfoo"),
        "never-registers": (f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(60)' {{connection_file}}",
                            "the kernel did not start: kernel did not register within 1 s"),
        "no-such-program": ("/nonexistent/kernel {connection_file}",
                            "the kernel did not start: cannot start the kernel '/nonexistent/kernel': No such file or directory"),
    }[case]
    p = kernelkit_run([nb, "--kernel-cmd", cmd, "--startup-timeout", "1"], env)
    assert p.returncode == 2
    assert errors(p)[-1].startswith(f"kernelkit run: {expected}"), p.stderr
    assert not os.path.exists(tmp_path / "n.out.ipynb")


def test_installed_kernel_whose_program_is_missing_is_one_line(tmp_path, env):
    _kernelspec(tmp_path, "gone", {"argv": ["/nonexistent/kernel", "-f", "{connection_file}"], "display_name": "Gone", "language": "python"})
    nb = notebook(tmp_path / "n.ipynb", "1", kernelspec={"name": "gone", "language": "python", "display_name": "Gone"})
    p = kernelkit_run([nb], env)
    assert p.returncode == 2
    assert errors(p)[-1] == "kernelkit run: the kernel did not start: cannot start /nonexistent/kernel: No such file or directory"
    assert not os.path.exists(tmp_path / "n.out.ipynb")


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_interrupts_the_cell_then_stops(tmp_path, env, presses):
    nb = notebook(tmp_path / "long.ipynb", "x = 1", "kernel.stream('running\\n'); time.sleep(60)" if presses == 1
                  # a cell that ignores the interrupt: only the second Ctrl-C ends the run
                  else "kernel.stream('running\\n')\nwhile True:\n    try:\n        time.sleep(60)\n    except KeyboardInterrupt:\n        kernel.stream('ignored\\n')",
                  "never = 1")
    p = subprocess.Popen([sys.executable, "-m", "kernelkit.cli", "run", nb],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline() == "running\n"  # the cell is running: now press Ctrl-C
        p.send_signal(signal.SIGINT)
        if presses == 2:
            assert p.stdout.readline() == "ignored\n"
            p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
        p.wait()
    assert p.returncode == 130, err
    assert "Traceback (most recent call last)" not in err
    label = f"cell 2 (id {cell_id(nb, 2)})"
    expected = f"kernelkit run: interrupted in {label}" if presses == 1 else f"kernelkit run: stopped in {label}"
    assert expected in err.splitlines()
    result = read(tmp_path / "long.out.ipynb")
    assert result.cells[1].execution_count == 1 and result.cells[3].execution_count is None
    if presses == 2:
        assert result.cells[2].outputs[-1].ename == "RunStopped"
