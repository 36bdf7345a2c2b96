"""gateway_provisioners' DistributedProvisioner starting kernelkit
(``python -m kernelkit.gateway``) and its own ``launch_ipykernel.py`` (with
ipykernel), side by side on one setup: two network namespaces, a real sshd,
the provisioner and jupyter_client's KernelManager on one side, the kernels on
the other (tests/netns.py, tests/gateway_driver.py). Needs root.

    flock /work/heavy.lock python3 bench/bench_gateway.py [--launches N] [--squat-tries N]

launch: KernelManager.start_kernel() (ssh, kernel start, encrypted answer; the
provisioner checks for it every 0.5 s, GP_POLL_INTERVAL) and then the first
cell's result, one kernel at a time. squatted: a 10-port range in which
another program holds 4 ports. race: a program that binds the ports the
launcher picked, as soon as they are picked (it reads the stock launcher's
connection file; kernelkit writes none and binds at once). restart: how long
KernelManager.restart_kernel() takes and whether a client made before it
still gets answers.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from netns import make_two_hosts, remove_two_hosts, run_in_client, why_not_available  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--launches", type=int, default=5)
    p.add_argument("--squat-tries", type=int, default=5)
    p.add_argument("--launch-timeout", type=int, default=10)
    p.add_argument("--json", metavar="PATH", help="also write every observation there")
    args = p.parse_args()
    reason = why_not_available()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        hosts = make_two_hosts(tmp)
        try:
            with open(f"{tmp}/host_key.pub") as f:
                host_key = " ".join(f.read().split()[:2])
            cfg = {"server_ip": hosts.server_ip, "client_ip": hosts.client_ip, "server_ns": hosts.server_ns,
                   "key_file": hosts.key_file, "host_key": host_key, "directory": tmp, "launches": args.launches,
                   "squat_tries": args.squat_tries, "launch_timeout": args.launch_timeout}
            done = run_in_client(hosts, str(ROOT / "tests" / "gateway_driver.py"), "bench", json.dumps(cfg), timeout=1800)
        finally:
            remove_two_hosts(hosts)
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
        return 1
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    if args.json:
        Path(args.json).write_text(json.dumps(facts, indent=1))
    report(facts, args)
    return 0


def _ok(run) -> bool:
    return run.get("started") and run.get("result") == "42"


def report(facts, args) -> None:
    low, high = facts["squatted_range"]
    print(f"DistributedProvisioner over ssh; {args.launches} launches each; squatted: {low}..{high} with "
          f"{len(facts['squatted_ports'])} ports held, {args.squat_tries} tries; launch timeout {args.launch_timeout} s")
    print(f"{'':28} {'kernelkit.gateway':>22} {'launch_ipykernel.py':>22}")
    rows = {}
    for launcher in ("kernelkit", "stock"):
        f = facts[launcher]
        times = [r["seconds"] for r in f["launch"] if _ok(r)]
        rows.setdefault("launch ok", []).append(f"{len(times)}/{len(f['launch'])}")
        rows.setdefault("start_kernel() median (s)", []).append(f"{statistics.median(times):.2f}" if times else "-")
        rows.setdefault("start_kernel() max (s)", []).append(f"{max(times):.2f}" if times else "-")
        sq = f["squatted"]
        rows.setdefault("squatted range: ok", []).append(f"{sum(map(_ok, sq))}/{len(sq)}")
        race = f["race"]
        rows.setdefault("race: ports stolen", []).append(str(len(race["stolen"])))
        rows.setdefault("race: first cell", []).append("42" if _ok(race) else "failed")
        rows.setdefault("race: processes left", []).append(str(len(race["left"] or [])))
        r = f["restart"]
        rows.setdefault("restart_kernel() (s)", []).append(f"{r['seconds']:.2f}")
        rows.setdefault("restart: same ports", []).append("yes" if r["same_ports"] else "no")
        rows.setdefault("restart: old client answered", []).append("yes" if r["old_client_served"] else "no")
        rows.setdefault("restart: new client", []).append(r["new_client"])
    for label, (a, b) in rows.items():
        print(f"{label:28} {a:>22} {b:>22}")
    for launcher in ("kernelkit", "stock"):
        errors = sorted({(r.get("error") or r.get("result") or "")[:140] for r in facts[launcher]["squatted"] + [facts[launcher]["race"]] if not _ok(r)})
        for e in errors:
            print(f"  {launcher} failure: {e}")


if __name__ == "__main__":
    sys.exit(main())
