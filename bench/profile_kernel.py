"""Where a round trip's time goes: one kernel, one request type, a raw client.

    python3 bench/profile_kernel.py [--kernel python] [--what execute|cell|kernel_info]
                                    [--rounds 2000] [--py-spy] [--baseline [NAME=]SRC]

The client is a bare DEALER and SUB (no signature check, no parsing beyond
finding the idle), so the round trip is mostly the kernel's. Printed:

- the round trip (send to idle) p50 and p99, and the same for a raw ZeroMQ
  echo of the request's frames (a process that sends back what it gets): the
  transport's and the client's part;
- per kernel thread (Linux /proc/PID/task/TID/schedstat): CPU time and times
  it was scheduled in, per request. ``io`` is kernelkit's I/O thread, ``main``
  the thread that runs the cell, ``ZMQbg/*`` libzmq's own threads;
- with --py-spy: a second run of as many rounds under a sampling profiler
  (py-spy record, 1 kHz, --gil: only the thread holding the GIL is sampled,
  --nonblocking), as microseconds per request in each thread's 15 costliest
  functions (self time) and in a few named steps (inclusive time). Time in C
  without the GIL (libzmq, waiting) does not show; sampling slows the kernel
  a little, so read shares rather than an exact sum.

bench/README.md has the figures and what they say.
"""

import argparse
import collections
import datetime
import hmac
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernel import KERNELS, add_baselines, percentile, start  # noqa: E402

ECHO = """
import sys, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.ROUTER)
port = s.bind_to_random_port("tcp://127.0.0.1")
print(port, flush=True)
while True:
    s.send_multipart(s.recv_multipart())
"""

# inclusive steps worth naming: (label, function name as py-spy shows it)
STEPS = [
    ("I/O thread: read and parse a request", "IOThread._read"),
    ("  of which Session.parse (JSON, HMAC check)", "Session.parse"),
    ("  of which Lifecycle.arrive (queue, announce)", "Lifecycle.arrive"),
    ("I/O thread: send the FIFO", "IOThread._send_outbound"),
    ("building messages (header, JSON, HMAC), all threads", "Session._signed_frames"),
    ("main: Lifecycle.handle (the request, its reply)", "Lifecycle.handle"),
    ("main: IPython's run_cell", "InteractiveShell.run_cell"),
    ("main: ShellQueue.take (waking up, taking the request)", "ShellQueue.take"),
]


class RawClient:
    def __init__(self, info):
        self.key = info["key"].encode() if isinstance(info["key"], str) else info["key"]
        self.ctx = zmq.Context()
        self.shell = self.ctx.socket(zmq.DEALER)
        self.shell.connect(f"tcp://{info['ip']}:{info['shell_port']}")
        self.iopub = self.ctx.socket(zmq.SUB)
        self.iopub.setsockopt(zmq.SUBSCRIBE, b"")
        self.iopub.connect(f"tcp://{info['ip']}:{info['iopub_port']}")
        self.session = uuid.uuid4().hex
        # one date for every request (formatting one per request would add client time): the
        # kernel refuses a message dated more than 5 min before its start as a replay
        self.date = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
        self.n = 0

    def frames(self, msg_type, content):
        self.n += 1
        msg_id = f"{self.session}_{self.n}"
        parts = [
            json.dumps({"msg_id": msg_id, "msg_type": msg_type, "username": "bench", "session": self.session, "date": self.date, "version": "5.4"}).encode(),
            b"{}",
            b"{}",
            json.dumps(content).encode(),
        ]
        sig = hmac.new(self.key, b"".join(parts), "sha256").hexdigest().encode()
        return msg_id.encode(), [b"<IDS|MSG>", sig, *parts]

    def round_trip(self, msg_type, content, timeout=30):
        msg_id, frames = self.frames(msg_type, content)
        t = time.perf_counter()
        self.shell.send_multipart(frames)
        replied = idle = False
        while not (replied and idle):
            if time.perf_counter() - t > timeout:
                raise TimeoutError(f"no reply and idle within {timeout} s")
            if not replied and self.shell.poll(0):
                self.shell.recv_multipart()
                replied = True
            while self.iopub.poll(0 if not replied or idle else 1):
                f = self.iopub.recv_multipart()
                if msg_id in f[-3] and b'"idle"' in f[-1]:
                    idle = True
            if not replied and not idle:
                self.shell.poll(1)
        return time.perf_counter() - t

    def close(self):
        self.ctx.destroy(linger=0)


def echo_times(frames, rounds):
    proc = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        ctx = zmq.Context()
        s = ctx.socket(zmq.DEALER)
        s.connect(f"tcp://127.0.0.1:{port}")
        times = []
        for i in range(rounds + 100):
            t = time.perf_counter()
            s.send_multipart(frames)
            s.recv_multipart()
            if i >= 100:
                times.append(time.perf_counter() - t)
        ctx.destroy(linger=0)
        return times
    finally:
        proc.kill()


def schedstat(pid):
    """{tid: (name, cpu ns, times scheduled in)} for a process's threads."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            cpu, _, slices = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        except OSError:
            continue
        out[int(tid)] = (name, int(cpu), int(slices))
    return out


def thread_names(pid, before, after):
    """Name the threads: the process's own (main), libzmq's (their comm), and
    of the rest the busiest (kernelkit's I/O thread when it is one)."""
    names = {}
    rest = []
    for tid, (name, cpu, _) in after.items():
        if tid == pid:
            names[tid] = "main"
        elif name.startswith("ZMQbg"):
            names[tid] = name
        else:
            rest.append((cpu - before.get(tid, (name, 0, 0))[1], tid))
    for i, (_, tid) in enumerate(sorted(rest, reverse=True)):
        names[tid] = "io" if i == 0 else f"thread{i}"
    return names


def summarize_py_spy(path, rounds, rate):
    """Self time per thread and function, and the named steps' inclusive
    time, in microseconds per request."""
    self_us = collections.defaultdict(collections.Counter)
    steps = collections.Counter()
    per_sample = 1e6 / rate / rounds
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = frames[0]
        funcs = [f.split(" (")[0] for f in frames[1:]]
        if not funcs:
            continue
        us = int(count) * per_sample
        self_us[thread][funcs[-1]] += us
        for label, func in STEPS:
            if func in funcs:
                steps[label] += us
    return self_us, steps


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernel", default="python")
    p.add_argument("--what", default="execute", choices=("execute", "cell", "kernel_info"), help="cell: the 50-line cell")
    p.add_argument("--rounds", type=int, default=2000)
    p.add_argument("--py-spy", action="store_true", help="also record a sampling profile (py-spy on PATH)")
    p.add_argument("--baseline", metavar="[NAME=]SRC", action="append", help="the Python kernel from another kernelkit src/ tree, as NAME")
    args = p.parse_args()
    add_baselines(args.baseline)
    msg_type = "kernel_info_request" if args.what == "kernel_info" else "execute_request"
    code = KERNELS[args.kernel][3 if args.what == "cell" else 2]
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False, "stop_on_error": True} if args.what != "kernel_info" else {}

    with tempfile.TemporaryDirectory() as tmp:
        proc, kc, _ = start(KERNELS[args.kernel][0], tmp)
        info = kc.get_connection_info()
        kc.stop_channels()
        client = RawClient(info)
        try:
            while True:  # until the SUB's subscription has reached the kernel
                try:
                    client.round_trip(msg_type, content, timeout=0.5)
                    break
                except TimeoutError:  # (its reply, if it came late, is read below)
                    pass
            for _ in range(200):  # warm up
                client.round_trip(msg_type, content)
            while client.shell.poll(100):  # (a late reply to a timed-out try)
                client.shell.recv_multipart()
            before = schedstat(proc.pid)
            times = [client.round_trip(msg_type, content) for _ in range(args.rounds)]
            after = schedstat(proc.pid)
            if args.py_spy:  # a second run: py-spy's sampling disturbs the first's figures
                out = str(Path(tmp) / "profile.txt")
                spy = subprocess.Popen(["py-spy", "record", "--pid", str(proc.pid), "--rate", "1000", "--format", "raw", "--threads", "--gil", "--nonblocking", "--output", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)  # (py-spy attaching)
                for _ in range(args.rounds):
                    client.round_trip(msg_type, content)
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
                self_us, steps = summarize_py_spy(out, args.rounds, 1000)
        finally:
            client.close()
            proc.kill()
            proc.wait()

    _, frames = RawClient(info).frames(msg_type, content)
    echo = echo_times(frames, args.rounds)
    print(f"{args.kernel} {args.what}: {args.rounds} round trips, raw client")
    print(f"  send -> reply and idle   p50 {statistics.median(times) * 1e6:7.0f} us   p99 {percentile(times, 99) * 1e6:7.0f} us")
    print(f"  raw ZeroMQ echo          p50 {statistics.median(echo) * 1e6:7.0f} us   p99 {percentile(echo, 99) * 1e6:7.0f} us")
    names = thread_names(proc.pid, before, after)
    print("  per request, thread: CPU us, times scheduled in")
    for tid, (name, cpu, slices) in sorted(after.items(), key=lambda kv: names[kv[0]]):
        _, cpu0, slices0 = before.get(tid, (name, 0, 0))
        print(f"    {names[tid]:<14}{(cpu - cpu0) / 1000 / args.rounds:8.1f} us {(slices - slices0) / args.rounds:6.2f}")
    if args.py_spy:
        print("  py-spy (us per request, while sampling):")
        for label, _ in STEPS:
            us = steps[label]
            print(f"    {label:<58}{us:8.1f}")
        for thread, funcs in self_us.items():
            print(f"  {thread}: self time, {sum(funcs.values()):.0f} us per request")
            for func, us in funcs.most_common(15):
                print(f"    {func:<58}{us:8.1f}")


if __name__ == "__main__":
    main()
