"""Run jupyter_client's own kernel-starting tests on kernelkit, beside ipykernel.

    python bench/jupyter_client_tests.py [--mode ipykernel --mode kernelkit ...] [-k EXPR]

Downloads the sdist of the installed jupyter_client (``pip download
--no-binary :all: --no-deps``), installs its test plugins (pytest-jupyter),
and runs test_kernelmanager, test_client, test_multikernelmanager and
test_restarter once per mode. In every mode the kernelspecs those tests start
by name, ``python3`` and ``echo``, are replaced (``signaltest`` stays
jupyter_client's own kernel: its tests drive its special commands):

- ``ipykernel``: ``python -m ipykernel_launcher``, the baseline;
- ``kernelkit``: ``python -m kernelkit.python`` on a classic connection file;
- ``kernelkit-handshake``: the same through the ``kernelkit-handshake``
  provisioner (``preferred_ports``).

Prints each mode's counts and the tests that pass on ipykernel but not on the
mode (and the reverse). Exit code 1 when such a test exists.
"""

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

MODULES = ["tests/test_kernelmanager.py", "tests/test_client.py", "tests/test_multikernelmanager.py", "tests/test_restarter.py"]
MODES = ["ipykernel", "kernelkit", "kernelkit-handshake"]
CACHE = Path(tempfile.gettempdir()) / "kernelkit-jupyter-client-tests"

# loaded into jupyter_client's pytest run (-p): after pytest-jupyter has made
# the test's kernel dir, put the mode's kernelspecs there
PLUGIN = '''
import json, os, sys
import pytest

MODE = os.environ["KERNELKIT_JC_MODE"]

def spec():
    if MODE == "ipykernel":
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    else:
        argv = [sys.executable, "-m", "kernelkit.python", "-f", "{connection_file}"]
    data = {"argv": argv, "display_name": MODE, "language": "python"}
    if MODE == "kernelkit-handshake":
        data["metadata"] = {"kernel_provisioner": {"provisioner_name": "kernelkit-handshake",
                                                   "config": {"preferred_ports": True}}}
    return data

@pytest.fixture(autouse=True)
def kernelkit_kernelspecs(jp_environ, jp_kernel_dir):
    for name in ("python3", "echo"):
        os.makedirs(os.path.join(jp_kernel_dir, name), exist_ok=True)
        with open(os.path.join(jp_kernel_dir, name, "kernel.json"), "w") as f:
            json.dump(spec(), f)
'''


def pip(*args):
    subprocess.run([sys.executable, "-m", "pip", "-q", *args], check=True)


def sources() -> Path:
    """jupyter_client's sdist for the installed version, unpacked (cached)."""
    version = importlib.metadata.version("jupyter_client")
    root = CACHE / f"jupyter_client-{version}"
    if not (root / "tests").is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        pip("download", "--no-binary", ":all:", "--no-deps", f"jupyter_client=={version}", "-d", str(CACHE))
        with tarfile.open(CACHE / f"jupyter_client-{version}.tar.gz") as tar:
            tar.extractall(CACHE, filter="data")
    return root


def run_mode(root: Path, mode: str, extra: list) -> dict:
    """{test id: "passed" | "failed" | "skipped"} for one mode."""
    plugin_dir = CACHE / "plugin"
    plugin_dir.mkdir(exist_ok=True)
    (plugin_dir / "kernelkit_jc_plugin.py").write_text(PLUGIN)
    report = CACHE / f"{mode}.xml"
    env = dict(os.environ, KERNELKIT_JC_MODE=mode, PYTHONPATH=os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "kernelkit_jc_plugin", "-p", "no:cacheprovider", "--color=no",
           f"--junitxml={report}", "-o", "addopts=", *extra, *MODULES]
    print(f"+ [{mode}] {' '.join(cmd[2:])}", flush=True)
    subprocess.run(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL)
    results = {}
    for case in ET.parse(report).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            results[name] = "failed"
        elif case.find("skipped") is not None:
            results[name] = "skipped"
        else:
            results[name] = "passed"
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", action="append", choices=MODES, help="default: all three")
    p.add_argument("-k", help="pytest -k expression")
    args = p.parse_args(argv)
    modes = args.mode or MODES
    if "ipykernel" not in modes:
        modes = ["ipykernel", *modes]  # the baseline
    pip("install", "pytest-jupyter[client]>=0.6.2", "pytest-timeout", "ipykernel")
    root = sources()
    extra = ["-k", args.k] if args.k else []
    results = {mode: run_mode(root, mode, extra) for mode in modes}
    base = results["ipykernel"]
    worse = False
    summary = {}
    for mode, res in results.items():
        counts = {s: sum(1 for v in res.values() if v == s) for s in ("passed", "failed", "skipped")}
        summary[mode] = counts
        print(f"{mode:20} {counts['passed']:4} passed {counts['failed']:4} failed {counts['skipped']:4} skipped")
        if mode == "ipykernel":
            continue
        lost = sorted(t for t, v in base.items() if v == "passed" and res.get(t) != "passed")
        gained = sorted(t for t, v in res.items() if v == "passed" and base.get(t) != "passed")
        for t in lost:
            print(f"    passes on ipykernel, {res.get(t, 'missing')} on {mode}: {t}")
        for t in gained:
            print(f"    passes on {mode}, {base.get(t, 'missing')} on ipykernel: {t}")
        worse = worse or bool(lost)
    (CACHE / "summary.json").write_text(json.dumps({"counts": summary, "results": results}, indent=1))
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
