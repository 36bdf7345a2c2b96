"""``kernelkit run``: executes notebooks through the handshake; bad input gets one
line and a non-zero exit, never a traceback."""

import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from support import EXEC_KERNEL

EXEC_CMD = shlex.join(EXEC_KERNEL) + " -f {connection_file}"


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ, JUPYTER_PATH=str(tmp_path / "share"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    e.pop("JUPYTER_CONFIG_DIR", None)
    return e


def kernelkit_run(args, env, timeout=50):
    p = subprocess.run([sys.executable, "-m", "kernelkit.cli", "run", *args], capture_output=True, text=True, env=env, timeout=timeout)
    assert "Traceback (most recent call last)" not in p.stderr, p.stderr
    return p


def notebook(path, *sources, **metadata):
    cells = [new_markdown_cell("# a notebook")] + [new_code_cell(s) for s in sources]
    nbformat.write(new_notebook(cells=cells, metadata=metadata), str(path))
    return str(path)


def errors(p):
    """Our own lines on stderr (progress lines start with '[' )."""
    return [line for line in p.stderr.splitlines() if line.startswith("kernelkit run: ")]


def test_runs_a_notebook_and_writes_the_result_beside_it(tmp_path, env):
    nb = notebook(tmp_path / "calc.ipynb", "x = 6", "kernel.stream('half\\n'); kernel.stream('way\\n')", "", "x * 7")
    p = kernelkit_run([nb, "--kernel-cmd", EXEC_CMD], env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "half\nway\n42\n"
    assert "[1/3] cell 2: x = 6" in p.stderr and "[3/3] cell 5: x * 7" in p.stderr
    assert "[3/3] done in" in p.stderr
    out = nbformat.read(str(tmp_path / "calc.out.ipynb"), as_version=4)
    assert [o["text"] for o in out.cells[2].outputs] == ["half\n", "way\n"]
    assert out.cells[4].outputs[0]["data"]["text/plain"] == "42"
    assert out.cells[4].execution_count == 3
    # the input is untouched; no registration or connection file is left behind
    assert nbformat.read(nb, as_version=4).cells[4].outputs == []
    assert os.listdir(tmp_path / "runtime") == []


def test_failing_cell_names_the_cell_writes_what_ran_and_exits_1(tmp_path, env):
    nb = notebook(tmp_path / "bad.ipynb", "x = 1", "x / 0", "never = 1")
    out = tmp_path / "result.ipynb"
    p = kernelkit_run([nb, "-o", str(out), "--kernel-cmd", EXEC_CMD], env)
    assert p.returncode == 1
    assert errors(p)[-2:] == ["kernelkit run: cell 3 failed: ZeroDivisionError: division by zero",
                              f"kernelkit run: wrote what ran to {out}"]
    result = nbformat.read(str(out), as_version=4)
    assert result.cells[2].outputs[0]["ename"] == "ZeroDivisionError"
    assert result.cells[3].outputs == [] and result.cells[3].execution_count is None


def test_cell_timeout(tmp_path, env):
    nb = notebook(tmp_path / "slow.ipynb", "time.sleep(30)")
    p = kernelkit_run([nb, "--timeout", "1", "--kernel-cmd", EXEC_CMD], env)
    assert p.returncode == 1
    assert "kernelkit run: cell 2 timed out after 1 s" in errors(p)


def test_installed_kernelspec_by_name_and_dialect_a(tmp_path, env):
    spec_dir = tmp_path / "share" / "kernels" / "exec-hs"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [*EXEC_KERNEL, "-f", "{connection_file}"], "display_name": "Exec (handshake)", "language": "python",
        "metadata": {"kernel_provisioner": {"provisioner_name": "kernelkit-handshake", "config": {"dialect": "A"}}},
    }))
    nb = notebook(tmp_path / "n.ipynb", "kernel.stream(str(2 ** 10))")
    p = kernelkit_run([nb, "--kernel", "exec-hs"], env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "1024" and "on Exec (handshake)" in p.stderr


@pytest.mark.skipif(importlib.util.find_spec("kernelkit.python") is None, reason="the bundled kernel kernelkit.python is not there yet")
def test_default_kernel_is_the_bundled_python_kernel(tmp_path, env):
    nb = notebook(tmp_path / "py.ipynb", "import sys\nprint(sys.executable)")
    p = kernelkit_run([nb], env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == sys.executable and "Python 3 (kernelkit)" in p.stderr


@pytest.mark.parametrize("case", ["missing", "directory", "not-json", "not-a-notebook", "other-language", "unknown-kernel", "bad-output-dir"])
def test_bad_input_is_one_line(tmp_path, env, case):
    good = notebook(tmp_path / "good.ipynb", "1")
    args, expected = {
        "missing": ([str(tmp_path / "nope.ipynb")], "nope.ipynb: no such file"),
        "directory": ([str(tmp_path)], "is a directory, not a notebook"),
        "not-json": ([_write(tmp_path / "x.ipynb", "print('hi')")], "x.ipynb: not a Jupyter notebook"),
        "not-a-notebook": ([_write(tmp_path / "y.ipynb", '{"hello": 1}')], "y.ipynb: not a Jupyter notebook"),
        "other-language": ([notebook(tmp_path / "r.ipynb", "1", kernelspec={"name": "ir", "language": "R", "display_name": "R"})],
                           "is a R notebook; the default kernel runs Python: pass --kernel NAME"),
        "unknown-kernel": ([good, "--kernel", "no-such-kernel"], "unknown kernel 'no-such-kernel'"),
        "bad-output-dir": ([good, "-o", str(tmp_path / "no" / "dir.ipynb")], "no such directory"),
    }[case]
    p = kernelkit_run(args, env)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kernelkit run: ") and expected in lines[0], p.stderr


def _write(path, text):
    path.write_text(text)
    return str(path)


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


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_interrupts_the_cell_then_stops(tmp_path, env, presses):
    nb = notebook(tmp_path / "long.ipynb", "x = 1", "kernel.stream('running\\n'); time.sleep(60)" if presses == 1
                  # a cell that ignores the interrupt: only the second Ctrl-C ends the run
                  else "kernel.stream('running\\n')\nwhile True:\n    try:\n        time.sleep(60)\n    except KeyboardInterrupt:\n        kernel.stream('ignored\\n')",
                  "never = 1")
    p = subprocess.Popen([sys.executable, "-m", "kernelkit.cli", "run", nb, "--kernel-cmd", EXEC_CMD],
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
    expected = "kernelkit run: interrupted in cell 3" if presses == 1 else "kernelkit run: stopped in cell 3"
    assert expected in err.splitlines()
    result = nbformat.read(str(tmp_path / "long.out.ipynb"), as_version=4)
    assert result.cells[1].execution_count == 1 and result.cells[3].execution_count is None


def test_kernel_dying_in_a_cell(tmp_path, env):
    nb = notebook(tmp_path / "die.ipynb", "x = 1", "__import__('os')._exit(9)", "never = 1")
    p = kernelkit_run([nb, "--kernel-cmd", EXEC_CMD], env)
    assert p.returncode == 1
    assert errors(p)[-2] == "kernelkit run: the kernel died while running cell 3"
    assert nbformat.read(str(tmp_path / "die.out.ipynb"), as_version=4).cells[1].execution_count == 1
