"""metakernel's own test suite, on ipykernel's ``Kernel`` and on kernelkit's
ipykernel layer (what ``kernelkit adopt`` gives a kernel), side by side.

    python3 bench/metakernel_suite.py [--workdir DIR] [--version 1.0.7]

metakernel's tests make kernels in-process (``MetaKernel(session=...,
iopub_socket=...)``) and call their methods: with the layer in place
(a conftest that calls ``kernelkit.adopt.layer.install()`` first) they run on
kernelkit's ``ipykernel.kernelbase.Kernel``. Runs in this Python (which
needs metakernel and its test dependencies: the [test] extra); the sdist
is fetched with ``pip download``. Prints each run's summary and the tests
whose outcome differs. Slow (two full runs): not part of the test suite.
"""

import argparse
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

CONFTEST = """import os
if os.environ.get("KERNELKIT_LAYER"):
    from kernelkit.adopt.layer import install
    install()
"""


def outcomes(xml: Path) -> dict:
    result = {}
    for case in ET.parse(xml).iter("testcase"):
        kinds = {child.tag for child in case}
        result[f"{case.get('classname')}::{case.get('name')}"] = (
            "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds else "passed"
        )
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path(tempfile.mkdtemp(prefix="metakernel-suite-")))
    p.add_argument("--version", default="1.0.7")
    args = p.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                    f"metakernel=={args.version}", "-d", str(work)], check=True)
    with tarfile.open(next(work.glob(f"metakernel-{args.version}.tar.gz"))) as tar:
        tar.extractall(work, filter="data")
    src = work / f"metakernel-{args.version}"
    (src / "conftest.py").write_text(CONFTEST)
    runs = {}
    for name, env in (("ipykernel", {}), ("kernelkit", {"KERNELKIT_LAYER": "1"})):
        xml = work / f"{name}.xml"
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "tests",
                               f"--junitxml={xml}"], cwd=src, env={**__import__("os").environ, **env},
                              capture_output=True, text=True)
        print(f"{name:>10}: {done.stdout.strip().splitlines()[-1]}")
        runs[name] = outcomes(xml)
    differ = sorted(t for t in runs["ipykernel"] if runs["ipykernel"][t] != runs["kernelkit"].get(t))
    print(f"tests whose outcome differs: {len(differ)}")
    for t in differ:
        print(f"  {t}: ipykernel {runs['ipykernel'][t]}, kernelkit {runs['kernelkit'].get(t)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
