"""First use of each feature of the Python kernel, side by side: what a
kernel that loads a feature's code only when it is first used (imports) pays
for it at that moment.

    python3 bench/bench_first_use.py [--launches N] [--baseline [NAME=]SRC ...] [--kernel NAME ...]

Each launch starts a fresh kernel (kernels take turns, as in bench_kernel.py,
whose kernels, client and --baseline this uses) and times, in this order:
launch->ready (the first kernel_info reply), the first cell (``pass``:
IPython's shell is made), the first complete_request, the first
inspect_request, and the first debug_request (``initialize``: the debugger
starts); then idle RSS after those. Medians of --launches.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_kernel as bk  # noqa: E402

STEPS = ["ready", "first cell", "complete", "inspect", "debug initialize", "idle RSS MB"]


def timed(kc, send, channel="shell"):
    t = time.perf_counter()
    msg_id = send()
    get = kc.get_shell_msg if channel == "shell" else kc.get_control_msg
    while get(timeout=60)["parent_header"].get("msg_id") != msg_id:
        pass
    bk.wait_idle(kc, msg_id)
    return time.perf_counter() - t


def debug_initialize(kc):
    msg = kc.session.msg("debug_request", {
        "type": "request", "seq": 1, "command": "initialize",
        "arguments": {"clientID": "bench", "adapterID": "python", "pathFormat": "path", "linesStartAt1": True,
                      "columnsStartAt1": True, "supportsVariableType": True},
    })
    kc.control_channel.send(msg)
    return msg["header"]["msg_id"]


def one(name, tmp):
    proc, kc, ready = bk.start(bk.KERNELS[name][0], tmp)
    try:
        out = {"ready": ready}
        out["first cell"] = timed(kc, lambda: kc.execute("pass", store_history=False))
        out["complete"] = timed(kc, lambda: kc.complete("import o", 8))
        out["inspect"] = timed(kc, lambda: kc.inspect("print", 5))
        out["debug initialize"] = timed(kc, lambda: debug_initialize(kc), "control")
        time.sleep(1.0)
        out["idle RSS MB"] = bk.idle_rss_mb(proc.pid)
        return out
    finally:
        bk.stop(proc, kc)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--launches", type=int, default=10)
    p.add_argument("--kernel", action="append", help="python (default), ipykernel, xeus-python, or a --baseline's name")
    p.add_argument("--baseline", metavar="[NAME=]SRC", action="append", help="as bench_kernel.py's")
    args = p.parse_args()
    bk.add_baselines(args.baseline)
    names = args.kernel or ["python", *(b.rpartition("=")[0] or "baseline" for b in args.baseline or ())]
    import random

    with tempfile.TemporaryDirectory() as tmp:
        runs = bk.take_turns(names, args.launches, lambda name: one(name, tmp), random.Random(0))
    width = max(12, *(len(n) + 2 for n in names))
    print(f"{'kernel':<{width}}" + "".join(f"{s:>18}" for s in STEPS) + "   (ms, medians)")
    for name in names:
        row = ""
        for step in STEPS:
            values = [r[step] for r in runs[name] if r.get(step) is not None]
            v = statistics.median(values) if values else None
            row += f"{'-':>18}" if v is None else f"{v:>18.1f}" if step == "idle RSS MB" else f"{v * 1000:>18.1f}"
        print(f"{name:<{width}}{row}")


if __name__ == "__main__":
    main()
