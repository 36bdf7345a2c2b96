"""Ten clients at once on one Python kernel: every reply reaches the client
that sent its request, and each client's iopub carries each of its requests'
busy, execute_input and idle exactly once, whether the clients wait for each
answer (closed loop) or send all their requests at once (pipelined).
bench/bench_load.py measures the same with 500 requests per client, beside
ipykernel and xeus-python; this is its check with a few."""

import sys
from pathlib import Path

from support import start_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_load import connect_clients, run_block  # noqa: E402

PYTHON_KERNEL = [sys.executable, "-m", "kernelkit.python"]


def test_ten_clients_get_their_own_replies_and_each_iopub_message_once(tmp_path):
    proc, kc = start_kernel(tmp_path, argv=PYTHON_KERNEL)
    kc.stop_channels()  # (its iopub would go unread, and the kernel holds output for every subscriber)
    clients = connect_clients(kc, 10)
    try:
        for mode in ("closed", "pipelined"):
            latencies, _, problems = run_block(clients, 20, mode)
            assert problems == [], mode
            assert len(latencies) == 10 * 20, mode
    finally:
        for c in clients:
            c.close()
        proc.kill()
