"""Where a launch of the Python kernel goes, stage by stage.

    python3 bench/launch_stages.py [--launches N] [--src SRC] [--handshake]

Each launch starts the kernel through a wrapper that imports the kernel's
dependencies one group at a time (logging, pyzmq, kernelkit.wire, the Python
kernel's modules, kernel.app) and writes the wall-clock time at each stage, and
at binding, registering, ``start()``'s end and the first request's arrival on
the I/O thread; the client's side is bench_kernel.py's (connection file, the
client retrying every 10 ms) or, with --handshake, kernelkit's launcher
(``launch_kernel``: a registration file, the client connects once the kernel
has registered). Prints each stage's median time since the stage before (and
the quartiles) over the launches, in order. The groups are imported in this
order, not the kernel's own, so a module both need counts in the first: the
total is the same modules. --src runs another source tree (e.g. main's).
Run it under the shared lock, as any benchmark.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_kernel as bk  # noqa: E402

WRAPPER = r'''
import os, sys, time
_marks = open(os.environ["KERNELKIT_STAGES_FILE"], "a")
def mark(stage):
    _marks.write(f"{stage} {time.monotonic()}\n")  # (one clock for every process)
    _marks.flush()
mark("interpreter, site")
import runpy, importlib.util; mark("runpy (python -m)")
import logging; mark("logging (traceback, re, string)")
import zmq; mark("pyzmq, libzmq")
import kernelkit.wire; mark("kernelkit.wire (orjson, hmac, dataclasses, datetime, uuid)")
import kernelkit.python.kernel; mark("the Python kernel's modules, kernel.base")
from kernelkit.kernel import app, lifecycle; mark("kernel.app (io, startup, lifecycle, argparse)")
def around(owner, name, before, after=None):
    original = getattr(owner, name)
    def wrapped(*args, **kwargs):
        if before: mark(before)
        result = original(*args, **kwargs)
        if after: mark(after)
        return result
    setattr(owner, name, wrapped)
around(app, "read_info", "arguments parsed, log configured")
around(app, "bind_sockets", "connection file read, contexts made", "sockets bound")
around(app, "register", "threads, the kernel made and started", "registered (the launcher's receipt)")
around(app.KernelApp, "start", None, "start() returned (threads, the kernel made)")
arrived = []
def arrive(self, *args, **kwargs):
    if not arrived:
        arrived.append(mark("first request read (client connected)"))
    return first(self, *args, **kwargs)
first, lifecycle.Lifecycle.arrive = lifecycle.Lifecycle.arrive, arrive
runpy.run_module("kernelkit.python", run_name="__main__", alter_sys=True)
'''


def classic(tmp):
    """bench_kernel.py's start(), timed on the monotonic clock the wrapper marks with."""
    fname, _ = write_connection_file(str(Path(tmp) / f"k{time.monotonic_ns()}.json"), key=b"bench")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", WRAPPER, "-f", fname], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kc = BlockingKernelClient(context=zmq.Context.instance())  # (bench_kernel's 10 ms retries)
    kc.load_connection_file(fname)
    kc.start_channels()
    kc.kernel_info()
    kc.get_shell_msg(timeout=60)
    replied = time.monotonic()
    bk.stop(proc, kc)
    return t0, {"first kernel_info reply (client)": replied}


def handshake(tmp):
    from kernelkit.launcher import launch_kernel

    t0 = time.monotonic()
    kernel = launch_kernel([sys.executable, "-c", WRAPPER, "-f", "{connection_file}"], runtime_dir=tmp)
    registered = time.monotonic()
    kc = BlockingKernelClient()
    kc.load_connection_info(kernel.connection_info)
    kc.start_channels()
    kc.kernel_info()
    kc.get_shell_msg(timeout=60)
    replied = time.monotonic()
    bk.stop(kernel.process, kc)
    return t0, {"launcher has the ports": registered, "first kernel_info reply (client)": replied}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--launches", type=int, default=20)
    p.add_argument("--src", help="a kernelkit source tree (its src/ folder) to run instead of the installed one")
    p.add_argument("--handshake", action="store_true", help="launch through kernelkit's launcher (registration) instead of a connection file")
    args = p.parse_args()
    bk.add_baselines([f"src={args.src}"] if args.src else [])  # (byte-compiles the trees, as bench_kernel does)
    if args.src:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(args.src).resolve()), os.environ.get("PYTHONPATH")]))
    launches = []  # per launch: {stage: ms since the process started}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.launches):
            marks_file = Path(tmp) / f"stages{i}"
            os.environ["KERNELKIT_STAGES_FILE"] = str(marks_file)
            t0, client_marks = (handshake if args.handshake else classic)(tmp)
            marks = [line.rsplit(" ", 1) for line in marks_file.read_text().splitlines()]
            marks = {stage: float(t) for stage, t in marks} | client_marks
            launches.append({stage: (t - t0) * 1000 for stage, t in marks.items()})
    # stages in the order of their median time; (threads run at once, so two
    # stages may swap in a single launch: the difference is then negative)
    order = sorted(launches[0], key=lambda stage: statistics.median(run[stage] for run in launches))
    width = max(len(s) for s in order) + 2
    print(f"{'stage':<{width}}{'at (median ms)':>16}{'since the one before':>22}{'quartiles':>14}")
    previous = None
    for stage in order:
        at = statistics.median(run[stage] for run in launches)
        steps = [run[stage] - (run[previous] if previous else 0.0) for run in launches]
        q = statistics.quantiles(steps, n=4) if len(steps) > 1 else steps * 3
        print(f"{stage:<{width}}{at:>16.1f}{statistics.median(steps):>22.1f}{f'{q[0]:.1f}-{q[2]:.1f}':>14}")
        previous = stage


if __name__ == "__main__":
    main()
