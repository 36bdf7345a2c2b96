"""What a kernel's memory does while iopub subscribers lag: peak growth and time.

    python3 bench/bench_iopub_memory.py [--baseline SRC] [--scale F]

Scenarios (exec test kernel, raw ZeroMQ sockets, a classic connection file):

- stalled + reader, N displays of S: one subscriber reads every message at
  once, one with tiny queues reads nothing. Reported: the kernel's peak
  growth (VmHWM over its RSS before the cell), how long the reader took to
  get every display, and how long after that the kernel is back within
  50 MB of where it started (at most 45 s is waited).
- paused reader: 300 displays of 1 MB for a fast subscriber and one that
  reads nothing until the fast one has had nothing for 1 s, then all.

``--baseline SRC`` runs the same scenarios on another kernelkit source tree
(a git worktree of an earlier commit) first, for a before/after table.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq
from jupyter_client.connect import write_connection_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
from kernelkit.wire import Session  # noqa: E402

KERNEL = ROOT / "tests" / "kernels" / "exec_kernel.py"
KEY = b"bench-key"


def _rss(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def _peak(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e3
    return float("nan")


class Kernel:
    def __init__(self, src: str):
        self.dir = tempfile.mkdtemp()
        self.file, self.info = write_connection_file(os.path.join(self.dir, "k.json"), key=KEY, ip="127.0.0.1")
        self.session = Session(KEY, self.info["signature_scheme"])
        self.ctx = zmq.Context()
        self.socks = []
        env = dict(os.environ, PYTHONPATH=src)
        self.first = self.sub()
        self.proc = subprocess.Popen([sys.executable, str(KERNEL), "-f", self.file], env=env, stderr=subprocess.DEVNULL)
        assert self.recv(self.first, 20) is not None, "kernel did not start"

    def url(self, ch):
        return f"tcp://127.0.0.1:{self.info[ch + '_port']}"

    def sub(self, **opts):
        s = self.ctx.socket(zmq.SUB)
        s.linger = 0
        for k, v in opts.items():
            s.setsockopt(getattr(zmq, k.upper()), v)
        s.setsockopt(zmq.SUBSCRIBE, b"")
        s.connect(self.url("iopub"))
        self.socks.append(s)
        return s

    def recv(self, s, timeout):
        if not s.poll(int(timeout * 1000)):
            return None
        frames = s.recv_multipart()
        return self.session.parse(frames, check_replay=False)

    def execute(self, code):
        shell = self.ctx.socket(zmq.DEALER)
        shell.linger = 0
        shell.connect(self.url("shell"))
        self.socks.append(shell)
        shell.send_multipart(self.session.frames("execute_request", {"code": code, "silent": False}))
        return shell

    def close(self):
        self.proc.kill()
        self.proc.wait()
        for s in self.socks:
            s.close(linger=0)
        self.ctx.term()


def _displays(k, sock, want, quiet):
    got = 0
    while got < want:
        m = k.recv(sock, quiet)
        if m is None:
            break
        got += m.msg_type == "display_data"
    return got


def _cell_with_a_lagging_subscriber(src, sub_opts, code, watch):
    """Start a kernel, subscribe a second subscriber with ``sub_opts``, run
    ``code``; return ``watch(kernel, second, pid, rss_before, t0)``."""
    k = Kernel(src)
    try:
        second = k.sub(**sub_opts)
        assert k.recv(second, 5) is not None
        pid = k.proc.pid
        base = _rss(pid)
        t0 = time.monotonic()
        k.execute(code)
        return watch(k, second, pid, base, t0)
    finally:
        k.close()


def stalled_and_reader(src, n, size):
    def watch(k, stalled, pid, base, t0):
        got = _displays(k, k.first, n, 120)
        took = time.monotonic() - t0
        peak = _peak(pid) - base
        # then how long the kernel keeps what the stalled one's queue holds
        # (sampled: there is no event to wait on)
        t1 = time.monotonic()
        while (left := _rss(pid) - base) > 50 and time.monotonic() - t1 < 45:
            time.sleep(0.5)
        kept = f"{left:5.0f} MB kept after 45 s" if left > 50 else f"freed {time.monotonic() - t1:4.1f} s after"
        return f"{peak:7.0f} MB peak, reader got {got}/{n} in {took:5.1f} s, {kept}"

    code = f"x = 'x' * {size}\nfor i in range({n}): kernel.display_data({{'text/plain': x}})"
    return _cell_with_a_lagging_subscriber(src, {"rcvhwm": 1, "rcvbuf": 4096}, code, watch)


def paused_reader(src):
    def watch(k, slow, pid, base, t0):
        fast = _displays(k, k.first, 300, 1.0)
        slow_got = _displays(k, slow, 300, 30)
        fast += _displays(k, k.first, 300 - fast, 30)
        took = time.monotonic() - t0
        return f"{_peak(pid) - base:7.0f} MB peak, both got {min(fast, slow_got)}/300 in {took:5.1f} s"

    code = "x = 'x' * 1_000_000\nfor i in range(300): kernel.display_data({'text/plain': x})"
    return _cell_with_a_lagging_subscriber(src, {"rcvhwm": 2, "rcvbuf": 65536}, code, watch)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", help="another kernelkit src tree to run first")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the display counts")
    args = p.parse_args()
    trees = ([("baseline", args.baseline)] if args.baseline else []) + [("this", str(ROOT / "src"))]
    scenarios = [
        (f"stalled + reader, {int(5000 * args.scale)} x 100 kB", lambda src: stalled_and_reader(src, int(5000 * args.scale), 100_000)),
        (f"stalled + reader, {int(1000 * args.scale)} x 1 MB", lambda src: stalled_and_reader(src, int(1000 * args.scale), 1_000_000)),
        ("paused reader, 300 x 1 MB", paused_reader),
    ]
    for title, run in scenarios:
        print(title, flush=True)
        for name, src in trees:
            print(f"  {name:9s} {run(src)}", flush=True)


if __name__ == "__main__":
    main()
