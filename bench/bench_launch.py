"""Benchmark starting kernels through jupyter_client: the kernelkit-handshake
provisioner against jupyter_client's default (LocalProvisioner: client-picked
ports in a connection file), same kernel (the exec test kernel).

    python3 bench/bench_launch.py [--rounds N] [--burst N]

launch-to-ready: from ``start_kernel()`` to the first kernel_info reply
(``wait_for_ready``), median and max over rounds, one kernel at a time.
burst: N kernels started at once (AsyncKernelManager + asyncio.gather), time
until all are ready, and how many failed.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client import AsyncKernelManager

ROOT = Path(__file__).resolve().parent.parent
ARGV = [sys.executable, str(ROOT / "tests" / "kernels" / "exec_kernel.py"), "-f", "{connection_file}"]
SPECS = {
    "handshake (kernelkit-handshake, dialect B)": {"provisioner_name": "kernelkit-handshake", "config": {"dialect": "B"}},
    "handshake (kernelkit-handshake, dialect A)": {"provisioner_name": "kernelkit-handshake", "config": {"dialect": "A"}},
    "classic (local-provisioner)": None,
}


def install_specs(root: Path) -> dict:
    names = {}
    for i, (label, provisioner) in enumerate(SPECS.items()):
        d = root / "kernels" / f"bench-{i}"
        d.mkdir(parents=True)
        spec = {"argv": ARGV, "display_name": label, "language": "python", "metadata": {}}
        if provisioner:
            spec["metadata"]["kernel_provisioner"] = provisioner
        (d / "kernel.json").write_text(json.dumps(spec))
        names[label] = f"bench-{i}"
    return names


async def start_ready(name: str):
    """Start one kernel; returns (manager, seconds to ready, seconds in start_kernel)."""
    km = AsyncKernelManager(kernel_name=name)
    t0 = time.perf_counter()
    await km.start_kernel()
    started = time.perf_counter() - t0
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=120)
    finally:
        kc.stop_channels()
    return km, time.perf_counter() - t0, started


async def one_at_a_time(name: str, rounds: int):
    ready, started = [], []
    for _ in range(rounds):
        km, seconds, start_seconds = await start_ready(name)
        ready.append(seconds)
        started.append(start_seconds)
        await km.shutdown_kernel(now=True)
    return ready, started


async def burst(name: str, n: int):
    t0 = time.perf_counter()
    results = await asyncio.gather(*(start_ready(name) for _ in range(n)), return_exceptions=True)
    elapsed = time.perf_counter() - t0
    managers = [r[0] for r in results if isinstance(r, tuple)]
    failed = [r for r in results if not isinstance(r, tuple)]
    await asyncio.gather(*(km.shutdown_kernel(now=True) for km in managers), return_exceptions=True)
    return elapsed, failed


async def main_async(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["JUPYTER_PATH"] = tmp
        names = install_specs(Path(tmp))
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, exec test kernel, {args.rounds} rounds, burst of {args.burst}")
        for label, name in names.items():
            await one_at_a_time(name, 1)  # warm the file cache and imports
            times, started = await one_at_a_time(name, args.rounds)
            elapsed, failed = await burst(name, args.burst)
            print(f"{label:44} launch-to-ready median {1000 * statistics.median(times):5.0f} ms "
                  f"(start_kernel {1000 * statistics.median(started):4.0f} ms), max {1000 * max(times):5.0f} ms "
                  f"| {args.burst} at once: all ready in {elapsed:5.2f} s, {len(failed)} failed")
            for error in failed[:3]:
                print(f"    {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--burst", type=int, default=20)
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
