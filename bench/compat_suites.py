"""Run nbclient's and papermill's own test suites on ipykernel and on the
kernelkit Python kernel, each installed as the kernelspec ``python3``, and
report where the outcomes differ.

    python3 bench/compat_suites.py [--workdir DIR] [--only nbclient|papermill] [-k EXPR]

In a venv of its own (``DIR/venv``): kernelkit from this repo, ipykernel 7.4,
and each project from its sdist (``pip download --no-binary :all: --no-deps``)
with the test dependencies its suite needs. papermill's cloud-storage tests
(S3, Azure, GCS, HDFS) need those services' SDKs and no kernel: they are left
out. Each suite runs twice, once per kernel (``python -m ipykernel install
--sys-prefix`` then ``kernelkit install --sys-prefix --name python3``), with
Jupyter's and IPython's user dirs inside DIR so no other kernelspec is found.
Outcomes are compared test by test (from pytest's JUnit XML).

Slow (installs, then two full runs per suite): not part of the test suite.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SUITES = {
    # project: (pip requirement, extra test requirements, test dir in the sdist, pytest arguments)
    "nbclient": ("nbclient==0.11.0", ["flaky", "ipywidgets", "nbconvert>=7.1.0", "pytest-asyncio>=1.3.0", "pytest>=9.0.1,<10", "testpath", "xmltodict"], "tests", []),
    "papermill": (
        "papermill==2.7.0",
        ["pytest", "pytest-mock>=1.10", "pytest-env>=0.6.2", "attrs>=17.4.0", "ipywidgets", "python-dateutil"],
        "papermill/tests",
        [f"--ignore=papermill/tests/test_{name}.py" for name in ("s3", "abs", "adl", "gcs", "hdfs")],
    ),
}
KERNELS = ("ipykernel", "kernelkit")
PER_TEST_TIMEOUT = 120


def run(argv, **kw):
    print("+", " ".join(str(a) for a in argv), flush=True)
    return subprocess.run([str(a) for a in argv], check=True, **kw)


def make_venv(workdir: Path) -> Path:
    venv = workdir / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        run([sys.executable, "-m", "venv", venv])
    reqs = [f"{ROOT}[python,launcher]", "ipykernel>=7.4,<7.5", "pytest-timeout"]
    for requirement, test_reqs, _, _ in SUITES.values():
        reqs += [requirement, *test_reqs]
    run([python, "-m", "pip", "install", "-q", *reqs])
    # this tree as it is now, also when the venv holds an older build of it
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", ROOT])
    return python


def unpack_sdist(python: Path, workdir: Path, requirement: str) -> Path:
    dest = workdir / "sdists"
    dest.mkdir(exist_ok=True)
    run([python, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps", "-d", dest, requirement])
    name, version = requirement.split("==")
    archive = dest / f"{name}-{version}.tar.gz"
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest / f"{name}-{version}"


def select_kernel(python: Path, kernel: str) -> None:
    if kernel == "ipykernel":
        run([python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], stdout=subprocess.DEVNULL)
    else:
        run([python, "-m", "kernelkit.cli", "install", "--sys-prefix", "--name", "python3"], stdout=subprocess.DEVNULL)


def outcomes(junit: Path) -> dict:
    """test id -> passed / failed / error / skipped."""
    result = {}
    for case in ET.parse(junit).iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        result[test_id] = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed").replace("failure", "failed")
    return result


def run_suite(python: Path, workdir: Path, project: str, kernel: str, keyword) -> dict:
    requirement, _, tests, extra = SUITES[project]
    source = unpack_sdist(python, workdir, requirement)
    select_kernel(python, kernel)
    junit = workdir / f"{project}-{kernel}.xml"
    env = {
        **os.environ,
        "JUPYTER_DATA_DIR": str(workdir / "jupyter-data"),
        "JUPYTER_CONFIG_DIR": str(workdir / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
        "IPYTHONDIR": str(workdir / "ipython"),
        "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",  # (jupyter-execute, papermill)
    }
    env.pop("JUPYTER_PATH", None)
    junit.unlink(missing_ok=True)
    argv = [
        python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--timeout={PER_TEST_TIMEOUT}", f"--junitxml={junit}",
        # (nbclient's suite turns warnings into errors, this one included)
        "-o", "asyncio_default_fixture_loop_scope=function", *extra, tests,
    ]
    if keyword:
        argv += ["-k", keyword]
    print("+", " ".join(str(a) for a in argv), flush=True)
    subprocess.run([str(a) for a in argv], cwd=source, env=env, check=False)
    if not junit.exists():
        raise SystemExit(f"{project}'s suite did not run on {kernel} (see pytest's output above)")
    return outcomes(junit)


def report(project: str, by_kernel: dict) -> None:
    ipk, kk = by_kernel["ipykernel"], by_kernel["kernelkit"]
    print(f"\n== {project}")
    for kernel, result in by_kernel.items():
        counts = {k: sum(1 for v in result.values() if v == k) for k in ("passed", "failed", "error", "skipped")}
        print(f"  {kernel:10} " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    differ = sorted(t for t in set(ipk) | set(kk) if ipk.get(t) != kk.get(t))
    print(f"  differences: {len(differ)}")
    for t in differ:
        print(f"    {t}: ipykernel {ipk.get(t, 'absent')}, kernelkit {kk.get(t, 'absent')}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/kernelkit-compat-suites"))
    p.add_argument("--only", choices=sorted(SUITES))
    p.add_argument("-k", dest="keyword", help="pytest -k expression (to look at some tests)")
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    for d in ("jupyter-data", "jupyter-config", "jupyter-runtime", "ipython"):
        shutil.rmtree(args.workdir / d, ignore_errors=True)
    python = make_venv(args.workdir)
    results = {}
    try:
        for project in [args.only] if args.only else SUITES:
            results[project] = {kernel: run_suite(python, args.workdir, project, kernel, args.keyword) for kernel in KERNELS}
    finally:
        select_kernel(python, "ipykernel")  # leave the venv as pip made it
    for project, by_kernel in results.items():
        report(project, by_kernel)


if __name__ == "__main__":
    main()
