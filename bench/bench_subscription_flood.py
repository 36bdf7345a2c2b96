"""Subscription floods on iopub, side by side: the kernel's memory and its answers.

    python3 bench/bench_subscription_flood.py [--kernel NAME ...] [--baseline [NAME=]SRC ...]

Anyone who reaches the iopub port can subscribe, without the key. Each
scenario floods a freshly started kernel from raw XSUB sockets (which, like
a SUB, send their whole subscription set again when they reconnect):

- topics: one connection, 200,000 distinct 50-byte topics;
- duplicates: one connection, 200,000 subscriptions to "";
- ten: ten connections at once, 100,000 distinct topics each.

After a first cell, while it floods (6 s), the kernel's RSS is sampled every
20 ms and one execute is timed through jupyter_client; then the flooders leave, and the
RSS is read again after 5 s. Reported: baseline, peak and after (MB above
baseline), the execute's round trip, and how many welcomes to "" a normal
client received during the flood (a welcome per duplicate used to reach every
subscriber).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernel import KERNELS, add_baselines, start, stop  # noqa: E402

FLOOD_SECONDS = 6
SETTLE_SECONDS = 5
SCENARIOS = {
    "topics": (1, 200_000, lambda i: b"\x01topic-%d-" % i + b"x" * 40),
    "duplicates": (1, 200_000, lambda i: b"\x01"),
    "ten": (10, 100_000, lambda i: b"\x01topic-%d-" % i + b"x" * 40),
}


def rss_mb(pid) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def run(kc, code):
    msg_id = kc.execute(code)
    while kc.get_shell_msg(timeout=30)["parent_header"].get("msg_id") != msg_id:
        pass


def flood(name, scenario, tmp):
    connections, count, topic = SCENARIOS[scenario]
    proc, kc, _ = start(KERNELS[name][0], tmp)
    ctx = zmq.Context()
    url = f"tcp://{kc.ip}:{kc.iopub_port}"
    try:
        run(kc, "pass")  # (the first cell makes IPython's shell: not the flood's)
        time.sleep(1)
        base = rss_mb(proc.pid)
        socks = []
        for _ in range(connections):
            s = ctx.socket(zmq.XSUB)
            s.sndhwm = 0  # (the flooder queues all of it; the kernel takes what it takes)
            s.linger = 0
            s.connect(url)
            socks.append(s)
        for i in range(count):
            for s in socks:
                s.send(topic(i))
        peak = base
        took = None
        deadline = time.monotonic() + FLOOD_SECONDS
        while time.monotonic() < deadline:
            peak = max(peak, rss_mb(proc.pid))
            if took is None and time.monotonic() > deadline - FLOOD_SECONDS / 2:
                t0 = time.perf_counter()
                run(kc, "pass")
                took = time.perf_counter() - t0
            time.sleep(0.02)
        welcomes = 0
        while True:
            try:
                msg = kc.get_iopub_msg(timeout=0.2)
            except Exception:
                break
            welcomes += msg["msg_type"] == "iopub_welcome" and msg["content"].get("subscription") == ""
        for s in socks:
            s.close()
        time.sleep(SETTLE_SECONDS)
        after = rss_mb(proc.pid)
        return base, peak - base, after - base, took, welcomes
    finally:
        ctx.term()
        stop(proc, kc)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernel", action="append", help="python, ipykernel, xeus-python or a --baseline name")
    p.add_argument("--baseline", metavar="[NAME=]SRC", action="append", help="the Python kernel from another kernelkit src/ tree, as NAME")
    p.add_argument("--scenario", action="append", choices=list(SCENARIOS))
    args = p.parse_args()
    add_baselines(args.baseline)
    names = args.kernel or [n for n in ("python", "ipykernel") if n in KERNELS]
    print(f"{'kernel':<14}{'scenario':<12}{'base MB':>9}{'peak +MB':>10}{'after +MB':>11}{'execute ms':>12}{'welcomes':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in args.scenario or list(SCENARIOS):
            for name in names:
                base, peak, after, took, welcomes = flood(name, scenario, tmp)
                ms = f"{took * 1000:.1f}" if took is not None else "-"
                print(f"{name:<14}{scenario:<12}{base:>9.1f}{peak:>10.1f}{after:>11.1f}{ms:>12}{welcomes:>10}", flush=True)


if __name__ == "__main__":
    main()
