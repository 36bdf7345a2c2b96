"""Benchmark kernels through jupyter_client: launch-to-ready, round trips, stream throughput.

    python3 bench/bench_kernel.py [--rounds N] [--lines N] [--launches N] [--kernel NAME ...]
                                  [--baseline [NAME=]SRC ...] [--with-task] [--with-tk]

Kernels: calc and exec-test (kernelkit examples), python (the bundled kernel),
and, when installed, ipykernel and xeus-python for comparison
(pip install ipykernel xeus-python), and echo_kernel (built on ipykernel's
Kernel) adopted by kernelkit and on ipykernel (pip install echo_kernel). Each kernel is started on a classic
connection file. launch->ready: process start to the first kernel_info
reply (client sockets retry every 10 ms: the client is made on the shared
zmq context, which has that setting; on a context of its own, jupyter_client
8's default, they retried every 100 ms and every kernel's figure was rounded
up to the next retry), median of --launches starts. kernelkit's source trees
(the installed one and each --baseline) are byte-compiled first, as pip
does at install: a source tree that has never been imported with bytecode
writing on (PYTHONDONTWRITEBYTECODE) would compile every module at every
launch, about 40 ms here that no installed kernel pays.
Round trips: request to idle, median and 99th percentile (kernel_info,
execute of a trivial cell and, for the Python kernels, of a 50-line cell).
Stream: lines per second of a print loop, best of three. Idle RSS: the kernel
process's resident memory, idle after its first cell (Linux).

The kernels are compared side by side, not one after another: a shared
machine speeds up and slows down over minutes, which would favour whichever
kernel ran in a fast spell. So all kernels run at once and take turns request
by request (in a shuffled order each round), and launches alternate too. Each
kernel then sits idle while the others answer, as a kernel between a user's
cells does. Beside each median the table gives the ratio to the first kernel
and, in brackets, the lowest and highest ratio over ten blocks of rounds: if
that range does not include 1.00, the difference is not the machine's noise.
Run it before and after any change to the message path.

--with-task adds python+task and ipykernel+task: the same kernels with an
asyncio task ticking every 50 ms between cells (made by a first cell), so
the cost of running the event loop between requests shows side by side;
--with-tk adds python+tk and ipykernel+tk, after ``%gui tk`` (under Xvfb).
"""

import argparse
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from queue import Empty

import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

# clients connect before the kernel binds; retry often so the figure is the kernel's
zmq.Context.instance().setsockopt(zmq.RECONNECT_IVL, 10)

ROOT = Path(__file__).resolve().parent.parent
# round trips are compared over this many blocks of consecutive rounds
BLOCKS = 10

def _print_loop(n):
    return f"for i in range({n}): print(i)"


# A notebook-sized Python cell (a 50-line function and a call): what a kernel
# does per cell beyond the bare round trip (input transformations, compiling)
# shows here and not in `pass`.
PYTHON_CELL = """
import collections


def summarize(rows, key="group", value="value", top=3):
    \"\"\"Per-group count, total, mean, min and max, and the largest groups.\"\"\"
    groups = collections.defaultdict(list)
    skipped = 0
    for row in rows:
        if key not in row or value not in row:
            skipped += 1
            continue
        try:
            number = float(row[value])
        except (TypeError, ValueError):
            skipped += 1
            continue
        groups[row[key]].append(number)
    stats = {}
    for name, numbers in groups.items():
        total = sum(numbers)
        stats[name] = {
            "count": len(numbers),
            "total": total,
            "mean": total / len(numbers),
            "min": min(numbers),
            "max": max(numbers),
        }
    largest = sorted(stats, key=lambda name: stats[name]["total"], reverse=True)[:top]
    return {
        "groups": stats,
        "largest": largest,
        "skipped": skipped,
    }


def describe(summary):
    lines = []
    for name in summary["largest"]:
        s = summary["groups"][name]
        lines.append(f"{name}: n={s['count']} mean={s['mean']:.2f} range=({s['min']}, {s['max']})")
    if summary["skipped"]:
        lines.append(f"skipped {summary['skipped']} rows")
    return "\\n".join(lines)


rows = [{"group": "abc"[i % 3], "value": i} for i in range(30)]
result = describe(summarize(rows))
"""


KERNELS = {
    # name: (argv, code that prints n lines, code for the execute round trip[, a notebook-sized cell])
    "calc": ([sys.executable, str(ROOT / "examples" / "calc_kernel.py")], lambda n: "\n".join(["print(1)"] * n), "1"),
    "exec-test": (
        [sys.executable, str(ROOT / "tests" / "kernels" / "exec_kernel.py")],
        lambda n: f"for i in range({n}): kernel.stream(f'{{i}}\\n')",
        "1",
    ),
    "python": ([sys.executable, "-m", "kernelkit.python"], _print_loop, "pass", PYTHON_CELL),
    # a yardstick: messages only, nothing run (bench/floor_kernel.py; no stream)
    "floor": ([sys.executable, str(ROOT / "bench" / "floor_kernel.py")], None, "pass"),
    # below the floor: pre-built messages, no work per request (floor_kernel.py --zero)
    "zero": ([sys.executable, str(ROOT / "bench" / "floor_kernel.py"), "--zero"], None, "pass"),
}
if importlib.util.find_spec("ipykernel"):
    KERNELS["ipykernel"] = ([sys.executable, "-m", "ipykernel_launcher"], _print_loop, "pass", PYTHON_CELL)
if importlib.util.find_spec("echo_kernel"):
    # a kernel built on ipykernel's Kernel, on kernelkit (kernelkit adopt) and on ipykernel
    # (it echoes the cell: n lines of code are n lines of output)
    _echo = (lambda n: "\n".join(["x"] * n) + "\n", "hi")
    KERNELS["echo-adopted"] = ([sys.executable, "-m", "kernelkit.adopt", "echo_kernel"], *_echo)
    KERNELS["echo-ipykernel"] = ([sys.executable, "-m", "echo_kernel"], *_echo)
if importlib.util.find_spec("xpython_launcher"):
    KERNELS["xeus-python"] = ([sys.executable, "-m", "xpython_launcher"], _print_loop, "pass", PYTHON_CELL)


def idle_rss_mb(pid):
    """Resident memory of a process in MB (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# a background task on the kernel's asyncio loop: a tick every 50 ms
BACKGROUND_TASK = """
import asyncio
async def _bench_ticker():
    while True:
        await asyncio.sleep(0.05)
_bench_task = asyncio.get_event_loop().create_task(_bench_ticker())
"""
# name: a first cell run once the kernel is up (its state for the whole run)
SETUP = {}


def with_setup(name, suffix, cell):
    """``name``+``suffix``: the same kernel, after a first ``cell``."""
    KERNELS[f"{name}+{suffix}"] = KERNELS[name]
    SETUP[f"{name}+{suffix}"] = cell
    return f"{name}+{suffix}"


def start_xvfb():
    """A display for %gui tk when there is none: (DISPLAY value, process)."""
    r, w = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-nolisten", "tcp"], pass_fds=[w], stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        return f":{f.readline().strip()}", xvfb


def baseline_argv(src):
    """The bundled Python kernel imported from another source tree: put first
    on sys.path, it wins over the installed kernelkit."""
    src = str(Path(src).resolve())
    if not (Path(src) / "kernelkit" / "python" / "__main__.py").is_file():
        raise SystemExit(f"--baseline {src}: no kernelkit/python/__main__.py there (give the src/ folder)")
    code = f"import runpy, sys; sys.path.insert(0, {src!r}); runpy.run_module('kernelkit.python', run_name='__main__', alter_sys=True)"
    return [sys.executable, "-c", code]


def add_baselines(specs):
    """KERNELS gains one Python kernel per ``[NAME=]SRC`` (--baseline); every
    kernelkit tree launched is byte-compiled (see the docstring)."""
    import compileall

    installed = importlib.util.find_spec("kernelkit")
    trees = [Path(installed.submodule_search_locations[0])] if installed else []
    for spec in specs or ():
        name, _, src = spec.rpartition("=")
        KERNELS[name or "baseline"] = (baseline_argv(src), *KERNELS["python"][1:])
        trees.append(Path(src) / "kernelkit")
    for tree in trees:
        compileall.compile_dir(tree, quiet=1)


def start(argv, tmp):
    fname, _ = write_connection_file(str(Path(tmp) / f"k{time.monotonic_ns()}.json"), key=b"bench")
    t0 = time.perf_counter()
    proc = subprocess.Popen([*argv, "-f", fname], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if not os.environ.get("BENCH_STDERR") else None)
    # (on the shared context, whose sockets retry every 10 ms: a client's own
    # context, jupyter_client's default, retries every 100 ms, and the
    # figure would be the kernel's time rounded up to the next retry)
    kc = BlockingKernelClient(context=zmq.Context.instance())
    kc.load_connection_file(fname)
    kc.start_channels()
    # ready = the first kernel_info reply (wait_for_ready adds a fixed 0.2 s
    # iopub drain); then wait until iopub delivers, so no output is missed
    kc.kernel_info()
    kc.get_shell_msg(timeout=60)
    ready = time.perf_counter() - t0
    while True:
        msg_id = kc.kernel_info()
        kc.get_shell_msg(timeout=60)
        try:
            wait_idle(kc, msg_id, timeout=0.5)
            break
        except Empty:
            continue
    return proc, kc, ready


def stop(proc, kc):
    kc.shutdown()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    kc.stop_channels()


def wait_idle(kc, msg_id, count_lines=False, timeout=60):
    lines = 0
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=timeout)
        except Empty:
            if count_lines:  # a lossy peer dropped the idle: count what came
                return lines
            raise
        if (msg["parent_header"] or {}).get("msg_id") != msg_id:
            continue
        if count_lines and msg["msg_type"] == "stream":
            lines += msg["content"]["text"].count("\n")
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return lines


def round_trip(kc, send):
    t = time.perf_counter()
    msg_id = send()
    kc.get_shell_msg(timeout=30)
    wait_idle(kc, msg_id)
    return time.perf_counter() - t


class Running:
    """A started kernel, its client, and the requests the benchmark sends it."""

    def __init__(self, name, tmp):
        argv, self.stream_code, exec_code, *cell = KERNELS[name]
        self.proc, self.kc, _ = start(argv, tmp)
        kc = self.kc
        self.requests = {
            "kernel_info": kc.kernel_info,
            "execute": lambda: kc.execute(exec_code, store_history=False),
        }
        if cell:
            self.requests["cell"] = lambda: kc.execute(cell[0], store_history=False)
        if name in SETUP:
            msg_id = kc.execute(SETUP[name])
            wait_idle(kc, msg_id)
            kc.get_shell_msg(timeout=60)

    #: what the kernel stopped answering (it is measured no more), or None
    deaf = None

    def unless_deaf(self, what, measure, *args):
        """measure(*args), or None once the kernel has stopped answering."""
        if self.deaf:
            return None
        try:
            return measure(*args)
        except Empty:
            self.deaf = f"stopped answering ({what}: no reply in time)"
            return None

    def first_cell(self):
        """Run one cell, let the kernel settle, and return its idle RSS (MB)."""
        round_trip(self.kc, self.requests["execute"])
        time.sleep(1.0)
        return idle_rss_mb(self.proc.pid)

    def stream(self, lines):
        """(seconds, lines that did not arrive) for one print loop."""
        t = time.perf_counter()
        msg_id = self.kc.execute(self.stream_code(lines), store_history=False)
        # read iopub first: kernelkit holds output for a slow reader rather
        # than dropping it, so the reply waits for us
        got = wait_idle(self.kc, msg_id, count_lines=True, timeout=5)
        dt = time.perf_counter() - t
        self.kc.get_shell_msg(timeout=120)
        return dt, lines - got


def take_turns(items, rounds, measure, rng):
    """Measure every item once per round, in a new shuffled order each round;
    returns each item's list of results, in round order."""
    results = {item: [] for item in items}
    order = list(items)
    for _ in range(rounds):
        rng.shuffle(order)
        for item in order:
            results[item].append(measure(item))
    return results


def compare(times, base):
    """times' median over base's, and the lowest and highest such ratio over
    BLOCKS runs of consecutive rounds (the rounds are paired by index)."""
    n = min(len(times), len(base))
    size = max(1, n // BLOCKS)
    ratios = [
        statistics.median(times[i : i + size]) / statistics.median(base[i : i + size])
        for i in range(0, n - size + 1, size)
    ]
    return statistics.median(times) / statistics.median(base), min(ratios), max(ratios)


def bench(names, rounds, lines, launches, seed=0):
    """Per kernel: {measure: list of results}; the kernels measured side by side."""
    rng = random.Random(seed)
    out = {name: {} for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        def launch(name):
            proc, kc, t = start(KERNELS[name][0], tmp)
            stop(proc, kc)
            return t

        for name, starts in take_turns(names, launches, launch, rng).items():
            out[name]["launch_to_ready"] = starts
        running = {}
        try:
            for name in names:
                running[name] = Running(name, tmp)
            for name in names:
                rss = running[name].unless_deaf("first cell", running[name].first_cell)
                if rss is not None:
                    out[name]["idle_rss"] = [rss]
            for what in ("kernel_info", "execute", "cell"):
                having = [name for name in names if what in running[name].requests]

                def measure(name):
                    return running[name].unless_deaf(what, round_trip, running[name].kc, running[name].requests[what])

                take_turns(having, max(20, rounds // 20), measure, rng)  # warm up
                for name, times in take_turns(having, rounds, measure, rng).items():
                    if not running[name].deaf:
                        out[name][what] = times
            streaming = [name for name in names if running[name].stream_code is not None]
            for name, tries in take_turns(streaming, 3, lambda name: running[name].unless_deaf("stream", running[name].stream, lines), rng).items():
                if not running[name].deaf:
                    out[name]["stream"] = [lines / dt for dt, _ in tries]
                    out[name]["lines_lost"] = [lost for _, lost in tries]
            for name in names:
                if running[name].deaf:
                    out[name]["deaf"] = running[name].deaf
        finally:
            for r in running.values():
                stop(r.proc, r.kc)
    return out


COLUMNS = [
    # (key, heading, unit scale, format)
    ("launch_to_ready", "launch->ready ms", 1000, "{:.1f}"),
    ("kernel_info", "kernel_info ms", 1000, "{:.3f}"),
    ("execute", "execute ms", 1000, "{:.3f}"),
    ("cell", "50-line cell ms", 1000, "{:.3f}"),
    ("stream", "stream lines/s", 1, "{:.0f}"),
    ("idle_rss", "idle RSS MB", 1, "{:.1f}"),
]
# the round trips' 99th percentiles get a table of their own
ROUND_TRIPS = ("kernel_info", "execute", "cell")


def percentile(values, q):
    """The q-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1000, help="round trips per kernel and request type")
    p.add_argument("--lines", type=int, default=20000)
    p.add_argument("--launches", type=int, default=20)
    p.add_argument("--kernel", action="append", help=f"one of {', '.join(sorted(KERNELS))} (the first is the one the others are compared with)")
    p.add_argument(
        "--baseline",
        metavar="[NAME=]SRC",
        action="append",
        help="also run the Python kernel from another kernelkit source tree (e.g. a worktree of the commit before a change, its src/ folder) as NAME (default 'baseline'); may be repeated",
    )
    p.add_argument("--with-task", action="store_true", help="add python+task and ipykernel+task: a background asyncio task ticks between cells")
    p.add_argument("--with-tk", action="store_true", help="add python+tk and ipykernel+tk: %%gui tk (under Xvfb if there is no DISPLAY)")
    args = p.parse_args()
    add_baselines(args.baseline)
    for wanted, suffix, cell in ((args.with_task, "task", BACKGROUND_TASK), (args.with_tk, "tk", "%gui tk")):
        for name in ("python", "ipykernel") if wanted else ():
            if name in KERNELS:
                with_setup(name, suffix, cell)
    xvfb = None
    if args.with_tk and not os.environ.get("DISPLAY"):
        os.environ["DISPLAY"], xvfb = start_xvfb()  # (the kernels inherit it)
    try:
        report(args, p)
    finally:
        if xvfb is not None:
            xvfb.kill()
            xvfb.wait()


def report(args, p):
    for name in args.kernel or ():
        if name not in KERNELS:
            p.error(f"unknown kernel {name!r}: choose from {', '.join(sorted(KERNELS))}")
    names = args.kernel or ["python"] + [name for name in KERNELS if name != "python"]
    out = bench(names, args.rounds, args.lines, args.launches)
    width = max(12, *(len(name) + 2 for name in names))
    print(f"{'kernel':<{width}}" + "".join(f"{heading:>18}" for _, heading, _, _ in COLUMNS) + f"{'lines lost':>12}")
    for name in names:
        r = out[name]
        row = ""
        for key, _, scale, fmt in COLUMNS:
            if key not in r:
                row += f"{'-':>18}"
            elif key == "idle_rss":
                row += f"{fmt.format(r[key][0]):>18}"
            else:
                value = max(r[key]) if key == "stream" else statistics.median(r[key])
                row += f"{fmt.format(value * scale):>18}"
        print(f"{name:<{width}}{row}{max(r['lines_lost']) if 'lines_lost' in r else '-':>12}")
    print(f"\n99th percentile ms (p99/p50)")
    print(f"{'kernel':<{width}}" + "".join(f"{key:>18}" for key in ROUND_TRIPS))
    for name in names:
        row = ""
        for key in ROUND_TRIPS:
            if key in out[name]:
                p99 = percentile(out[name][key], 99)
                row += f"{f'{p99 * 1000:.3f} ({p99 / statistics.median(out[name][key]):.1f}x)':>18}"
            else:
                row += f"{'-':>18}"
        print(f"{name:<{width}}{row}")
    for name in names:
        if "deaf" in out[name]:
            print(f"{name}: {out[name]['deaf']}")
    base = names[0]
    if len(names) > 1:
        print(f"\nratio to {base} (lowest-highest over {BLOCKS} blocks of rounds)")
        for name in names[1:]:
            row = ""
            for key, _, _, _ in COLUMNS:
                if key not in out[name] or key not in out[base]:
                    row += f"{'-':>18}"
                elif key == "stream":
                    row += f"{max(out[name][key]) / max(out[base][key]):>18.2f}"
                elif key == "idle_rss":
                    row += f"{out[name][key][0] / out[base][key][0]:>18.2f}"
                else:
                    ratio, low, high = compare(out[name][key], out[base][key])
                    row += f"{f'{ratio:.2f} ({low:.2f}-{high:.2f})':>18}"
            print(f"{name:<{width}}{row}")


if __name__ == "__main__":
    main()
