"""Output lost when the kernel's process is paused mid-stream.

    python3 bench/bench_pause.py [--pauses 1,10,60] [--runs 10] [--displays 20000] [--ref GIT_REF]

Each run starts the exec test kernel on a classic connection file, has it send
``--displays`` display messages of 3 kB, and reads them on a SUB socket that
queues little (RCVHWM 10). After 1,000 displays the reader stops for 3 s (iopub
fills up and the kernel holds its output), then the kernel is stopped with
SIGSTOP for the pause (what docker pause, a cgroup freezer, a VM stall or a
debugger attaching do) and continued, and the reader reads on at full speed.
The reader made no room for about 3 s of the kernel's running time, less than
the 5 s after which a subscriber is taken as stalled, so nothing may be lost.

With ``--ref`` the same runs go, alternating, against that revision of
kernelkit as well (checked out into a temporary directory), for a before and
after in one run. Prints, per pause and revision, the runs that lost displays
and the most lost.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file
from jupyter_client.session import Session

ROOT = Path(__file__).resolve().parent.parent
KERNEL = ROOT / "tests" / "kernels" / "exec_kernel.py"


def one_run(src: Path, pause: float, n: int) -> int:
    """Displays lost in one run with kernelkit from ``src``."""
    with tempfile.TemporaryDirectory() as d:
        fname, _ = write_connection_file(os.path.join(d, "kernel.json"), key=b"bench")
        env = dict(os.environ, PYTHONPATH=str(src))
        proc = subprocess.Popen([sys.executable, str(KERNEL), "-f", fname], env=env, stderr=subprocess.DEVNULL)
        kc = BlockingKernelClient()
        kc.load_connection_file(fname)
        kc.start_channels(iopub=False)
        session = Session(key=b"bench")  # the reader's own (the client's checks replays of what it read)
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.rcvhwm = 10
        sub.linger = 0
        sub.subscribe(b"")
        sub.connect(f"tcp://{kc.ip}:{kc.iopub_port}")
        try:
            kc.wait_for_ready(timeout=60)
            msg_id = kc.execute(f"pad = 'x' * 3000\nfor i in range({n}): kernel.display_data({{'text/plain': str(i), 'text/x-pad': pad}})")
            seen = 0
            while sub.poll(60_000):
                msg = session.deserialize(session.feed_identities(sub.recv_multipart())[1])
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "display_data":
                    seen += 1
                    if seen == 1000:
                        time.sleep(3)
                        proc.send_signal(signal.SIGSTOP)
                        time.sleep(pause)
                        proc.send_signal(signal.SIGCONT)
                elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
            return n - seen
        finally:
            sub.close()
            kc.stop_channels()
            proc.kill()
            proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pauses", default="1,10,60", help="seconds, comma-separated")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--displays", type=int, default=20_000)
    p.add_argument("--ref", help="also run this git revision, side by side")
    args = p.parse_args()
    revisions = {"now": ROOT / "src"}
    tmp = None
    if args.ref:
        tmp = tempfile.TemporaryDirectory()
        subprocess.run(f"git -C {ROOT} archive {args.ref} src | tar -x -C {tmp.name}", shell=True, check=True)
        revisions[args.ref] = Path(tmp.name) / "src"
    for pause in [float(x) for x in args.pauses.split(",")]:
        lost = {name: [] for name in revisions}
        for _ in range(args.runs):
            for name, src in revisions.items():
                lost[name].append(one_run(src, pause, args.displays))
        for name, counts in lost.items():
            bad = [c for c in counts if c]
            print(f"pause {pause:g} s, {name}: {len(bad)} of {len(counts)} runs lost displays; most lost {max(counts)} of {args.displays}", flush=True)


if __name__ == "__main__":
    main()
