"""20 small notebooks: ``kernelkit run -j 4`` against papermill run 20 times, side by side.

    python3 bench/bench_run.py [--notebooks 20] [--rounds 3]

Each notebook has three code cells (an import, a computation, a print) and a
``parameters`` cell; every run passes one parameter. The ways of running them take
turns, round by round, so the machine's drift does not favour one; the table has
the median wall time of the whole batch (the command's start to its exit, imports
included) and per notebook. Kernels: ipykernel (``python3``, what papermill uses by
default) and the bundled kernelkit kernel (installed for the benchmark under a
temporary prefix, so papermill can start it too).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

BIN = os.path.dirname(sys.executable)


def make_notebooks(folder, n, kernel):
    paths = []
    spec = {"name": kernel, "language": "python", "display_name": kernel}
    for i in range(n):
        params = new_code_cell("seed = 0")
        params.metadata["tags"] = ["parameters"]
        cells = [params, new_code_cell("import math, json"),
                 new_code_cell(f"values = [math.sqrt(k + seed) for k in range({1000 * (i + 1)})]"),
                 new_code_cell("print(json.dumps({'n': len(values), 'sum': round(sum(values), 3)}))")]
        path = os.path.join(folder, f"nb{i:02d}.ipynb")
        nbformat.write(new_notebook(cells=cells, metadata={"kernelspec": spec}), path)
        paths.append(path)
    return paths


def papermill_each(paths, out, env):
    for path in paths:
        subprocess.run([os.path.join(BIN, "papermill"), "--no-progress-bar", "-p", "seed", "1", path,
                        os.path.join(out, os.path.basename(path))], check=True, capture_output=True, env=env)


def kernelkit_run(paths, out, env, jobs):
    subprocess.run([os.path.join(BIN, "kernelkit"), "run", *paths, "-j", str(jobs), "-o", out, "-q", "-p", "seed", "1"],
                   check=True, capture_output=True, env=env)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--notebooks", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-run-")
    try:
        prefix = os.path.join(tmp, "prefix")
        subprocess.run([os.path.join(BIN, "kernelkit"), "install", "--prefix", prefix], check=True, capture_output=True)
        env = dict(os.environ, JUPYTER_PATH=os.path.join(prefix, "share", "jupyter"))
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        sets = {}
        for kernel in ("python3", "kernelkit"):
            folder = os.path.join(tmp, kernel)
            os.mkdir(folder)
            sets[kernel] = make_notebooks(folder, args.notebooks, kernel)
        ways = {
            "papermill, one after another (ipykernel)": lambda: papermill_each(sets["python3"], out, env),
            "papermill, one after another (kernelkit kernel)": lambda: papermill_each(sets["kernelkit"], out, env),
            "kernelkit run -j 1 (kernelkit kernel)": lambda: kernelkit_run(sets["kernelkit"], out, env, 1),
            "kernelkit run -j 4 (ipykernel)": lambda: kernelkit_run(sets["python3"], out, env, 4),
            "kernelkit run -j 4 (kernelkit kernel)": lambda: kernelkit_run(sets["kernelkit"], out, env, 4),
        }
        times = {name: [] for name in ways}
        for r in range(args.rounds):
            for name, run in ways.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{t[-1]:.1f} s" for t in times.values()), file=sys.stderr)
        base = statistics.median(times["papermill, one after another (ipykernel)"])
        print(f"\n{args.notebooks} notebooks, median of {args.rounds} rounds, {os.cpu_count()} cores\n")
        print("| how | batch | per notebook | vs papermill (ipykernel) |")
        print("|---|---|---|---|")
        for name, t in times.items():
            m = statistics.median(t)
            print(f"| {name} | {m:.1f} s | {m / args.notebooks:.2f} s | {base / m:.1f}x faster |"
                  if m < base else f"| {name} | {m:.1f} s | {m / args.notebooks:.2f} s | 1.0x |")
        # what a process pays before any notebook runs: part of papermill's figure is the
        # grammar jsonschema builds when rfc3987_syntax is installed, which kernelkit run skips
        for label, code in (("import papermill", "import papermill"),
                            ("import papermill, without rfc3987_syntax",
                             "import sys; sys.modules['rfc3987_syntax'] = None; import papermill")):
            spent = []
            for _ in range(3):
                start = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True)
                spent.append(time.perf_counter() - start)
            print(f"\n{label}: {statistics.median(spent):.2f} s (median of 3 processes)", end="")
        print()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
