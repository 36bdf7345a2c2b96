"""Many clients at once: every reply routed to its client, iopub exactly once.

    python3 bench/bench_load.py [--clients 10] [--executes 500] [--kernel NAME ...] [--baseline [NAME=]SRC ...]

Each client has its own shell (DEALER) and iopub (SUB) socket, as a frontend
does. Two modes:

- closed loop: each client sends an execute ("pass"), waits for its reply and
  its idle, then sends the next;
- pipelined: each client sends all its executes at once, then collects.

Latency is send to idle (the request done, as a frontend sees it), p50 and
p99 over every request of every client; throughput is executes per second
for all clients together. A run fails loudly (non-zero exit) when a reply
reaches a client that did not send its request, a request gets no reply or
two, or a client's iopub does not carry exactly one busy, one execute_input
and one idle for each of its requests.

Kernels take turns, side by side as in bench_kernel.py: each mode is split
into BLOCKS blocks of executes per client, and the kernels run one block each
in a shuffled order, so a noisy spell of the shared machine is spread over
all of them. The client is one thread polling all sockets (cheap parsing: no
signature checks on what it receives, another client's iopub messages told
apart by their parent's msg_id alone, frames read through pyzmq's backend),
so the figures are mostly the kernel's: with pyzmq's recv_multipart and every
message parsed, the client took a whole core and set the pace.
"""

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.session import Session

from kernelkit.io.shortcuts import recv_multipart  # (pyzmq's makes an enum per frame: see below)

BLOCKS = 5
MODES = ("closed", "pipelined")
# the request a message answers, found without parsing its JSON: each client
# reads every client's iopub messages (ten times what it keeps), and parsing
# them all made the client, not the kernel, the bottleneck (one core busy)
_MSG_ID = re.compile(rb'"msg_id"\s*:\s*"([^"]*)"')


# pyzmq's Socket.get makes an enum for every option it is asked (RCVMORE per
# frame in its recv_multipart, EVENTS), and a failed read raises an exception
# (7 us): the client reads 31 messages of 7 frames per execute, so it reads
# through kernelkit's shortcut to the backend and asks the backend, which
# takes plain ints (1-2 us)
_get = zmq.backend.Socket.get
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)


def readable(sock) -> bool:
    return bool(_get(sock, _EVENTS) & _POLLIN)


def parent_id(parent_header: bytes) -> str | None:
    m = _MSG_ID.search(parent_header)
    return m.group(1).decode() if m else None


class Client:
    """One frontend's shell and iopub sockets, and what it is waiting for."""

    def __init__(self, ctx, info, session):
        self.session = session
        self.shell = ctx.socket(zmq.DEALER)
        self.shell.connect(f"tcp://{info['ip']}:{info['shell_port']}")
        self.iopub = ctx.socket(zmq.SUB)
        self.iopub.setsockopt(zmq.SUBSCRIBE, b"")
        self.iopub.connect(f"tcp://{info['ip']}:{info['iopub_port']}")
        self.sent = {}  # msg_id -> send time
        self.replies = {}  # msg_id -> count
        self.seen = {}  # msg_id -> {msg_type or execution_state: count}
        self.done = {}  # msg_id -> time both reply and idle were in
        self.foreign = 0  # replies to requests this client did not send

    def send(self):
        msg = self.session.msg("execute_request", {"code": "pass", "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
        msg_id = msg["header"]["msg_id"]
        self.sent[msg_id] = time.perf_counter()
        self.session.send(self.shell, msg)
        return msg_id

    def _finish(self, msg_id):
        if msg_id in self.replies and self.seen.get(msg_id, {}).get("idle") and msg_id not in self.done:
            self.done[msg_id] = time.perf_counter()
            return True
        return False

    def read_shell(self):
        """Returns the msg_ids this read finished."""
        frames = recv_multipart(self.shell)
        i = frames.index(b"<IDS|MSG>")
        parent = parent_id(frames[i + 3])
        if parent not in self.sent:
            self.foreign += 1
            return []
        self.replies[parent] = self.replies.get(parent, 0) + 1
        return [parent] if self._finish(parent) else []

    def read_iopub(self):
        frames = recv_multipart(self.iopub)
        i = frames.index(b"<IDS|MSG>")
        parent = parent_id(frames[i + 3])
        if parent not in self.sent:
            return []  # another client's (every subscriber sees all): not parsed
        kind = json.loads(frames[i + 2])["msg_type"]
        if kind == "status":
            kind = json.loads(frames[i + 5])["execution_state"]
        counts = self.seen.setdefault(parent, {})
        counts[kind] = counts.get(kind, 0) + 1
        return [parent] if kind == "idle" and self._finish(parent) else []

    def problems(self):
        bad = []
        if self.foreign:
            bad.append(f"{self.foreign} replies to requests of other clients")
        missing = [m for m in self.sent if self.replies.get(m, 0) != 1]
        if missing:
            bad.append(f"{len(missing)} requests without exactly one reply")
        wrong = [m for m in self.sent if any(self.seen.get(m, {}).get(k, 0) != 1 for k in ("busy", "execute_input", "idle"))]
        if wrong:
            bad.append(f"{len(wrong)} requests without exactly one busy, execute_input and idle on iopub")
        return bad

    def close(self):
        self.shell.close(linger=0)
        self.iopub.close(linger=0)


def connect_clients(kc, n):
    """n clients on the kernel of ``kc`` (a started BlockingKernelClient),
    each subscribed: it has seen an idle for a request of its own."""
    info = kc.get_connection_info()
    ctx = zmq.Context.instance()
    session = Session(key=info["key"], signature_scheme=info["signature_scheme"])
    clients = [Client(ctx, info, session) for _ in range(n)]
    give_up = time.monotonic() + 60
    for c in clients:
        while True:  # (a SUB socket's subscription takes a moment to reach the kernel)
            if time.monotonic() > give_up:
                raise RuntimeError("load: the kernel did not answer every client within 60 s")
            msg_id = c.send()
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline and msg_id not in c.done:
                if c.shell.poll(10):
                    c.read_shell()
                while c.iopub.poll(0):
                    c.read_iopub()
            if msg_id in c.done:
                break
        c.sent.clear(), c.replies.clear(), c.seen.clear(), c.done.clear()
    return clients


def run_block(clients, executes, mode, stall=10):
    """Each client sends ``executes`` requests; returns (latencies, seconds,
    problems). Gives up once nothing has arrived for ``stall`` seconds (a
    kernel that dropped an idle or a reply), counting what is missing."""
    poller = zmq.Poller()
    owner = {}
    for c in clients:
        c.sent.clear(), c.replies.clear(), c.seen.clear(), c.done.clear()
        c.foreign = 0
        for sock, read in ((c.shell, c.read_shell), (c.iopub, c.read_iopub)):
            poller.register(sock, zmq.POLLIN)
            owner[sock] = (c, read)
    left = {c: executes for c in clients}
    t0 = time.perf_counter()
    for c in clients:
        for _ in range(executes if mode == "pipelined" else 1):
            c.send()
            left[c] -= 1
    total = executes * len(clients)
    finished = 0
    last = time.monotonic()
    while finished < total:
        events = poller.poll(1000)
        if events:
            last = time.monotonic()
        elif time.monotonic() - last > stall:
            break
        for sock, _ in events:
            c, read = owner[sock]
            while readable(sock):
                done = read()
                finished += len(done)
                if done and mode == "closed" and left[c]:
                    c.send()
                    left[c] -= 1
    seconds = time.perf_counter() - t0
    # the last messages of a request may be followed by stray duplicates: look once more
    for sock, _ in poller.poll(50):
        c, read = owner[sock]
        while readable(sock):
            read()
    problems = [p for c in clients for p in c.problems()]
    if finished < total:
        problems.insert(0, f"{total - finished} of {total} requests unfinished (nothing more arrived for {stall} s)")
    latencies = [c.done[m] - c.sent[m] for c in clients for m in c.done]
    return latencies, seconds, problems


def main():
    # (imported here: tests/test_load.py uses the clients above without it)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_kernel import KERNELS, add_baselines, percentile, start, stop

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--executes", type=int, default=500, help="executes per client and mode")
    p.add_argument("--kernel", action="append", help="python, ipykernel, xeus-python or a --baseline name (the first is the reference)")
    p.add_argument("--baseline", metavar="[NAME=]SRC", action="append", help="the Python kernel from another kernelkit src/ tree, as NAME")
    args = p.parse_args()
    add_baselines(args.baseline)
    names = args.kernel or [n for n in ("python", "ipykernel", "xeus-python") if n in KERNELS]
    rng = random.Random(0)
    per_block = max(1, args.executes // BLOCKS)
    results = {(n, m): ([], 0.0) for n in names for m in MODES}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        running = {}
        try:
            for name in names:
                proc, kc, _ = start(KERNELS[name][0], tmp)
                # (its iopub would go unread: a kernel that loses nothing holds
                # the others' messages for it once its queue is full)
                kc.stop_channels()
                running[name] = (proc, kc, [])
                running[name][2].extend(connect_clients(kc, args.clients))
            for mode in MODES:
                for _ in range(BLOCKS):
                    order = list(names)
                    rng.shuffle(order)
                    for name in order:
                        lat, secs, problems = run_block(running[name][2], per_block, mode)
                        failures += [f"{name} {mode}: {p}" for p in problems]
                        prev_lat, prev_secs = results[(name, mode)]
                        results[(name, mode)] = (prev_lat + lat, prev_secs + secs)
        finally:
            for proc, kc, clients in running.values():
                for c in clients:
                    c.close()
                fresh = BlockingKernelClient()  # (channels cannot start twice)
                fresh.load_connection_info(kc.get_connection_info())
                fresh.start_channels()
                stop(proc, fresh)
    total = per_block * BLOCKS
    print(f"{args.clients} clients x {total} executes (\"pass\"), latency send->idle")
    width = max(12, *(len(n) + 2 for n in names))
    print(f"{'kernel':<{width}}{'mode':>10}{'p50 ms':>10}{'p99 ms':>10}{'p99/p50':>9}{'executes/s':>12}")
    for mode in MODES:
        for name in names:
            lat, secs = results[(name, mode)]
            p50, p99 = statistics.median(lat), percentile(lat, 99)
            print(f"{name:<{width}}{mode:>10}{p50 * 1000:>10.2f}{p99 * 1000:>10.2f}{p99 / p50:>9.1f}{len(lat) / secs:>12.0f}")
    if failures:
        print("\nFAILED:\n" + "\n".join(failures))
        raise SystemExit(1)
    print("\nevery reply reached its own client; every request had exactly one busy, execute_input and idle on each client's iopub")


if __name__ == "__main__":
    main()
