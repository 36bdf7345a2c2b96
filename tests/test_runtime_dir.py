"""A Jupyter runtime dir that is full, read-only or cannot be made: launches
fall back to the system's temporary directory (as jupyter_client's
KernelManager does for a connection file), leave no partial file, and when
nothing can be written, say so in one line.

Full and read-only directories are small tmpfs mounts (root only, as CI runs;
elsewhere those cases are skipped, saying why)."""

import json
import os
import shlex
import subprocess
import sys

import pytest
from jupyter_client import BlockingKernelClient, KernelManager

from kernelkit.launcher import launch_kernel
from support import EXEC_KERNEL

EXEC_ARGV = [*EXEC_KERNEL, "-f", "{connection_file}"]


@pytest.fixture
def mounts(tmp_path):
    """``mount(name, options)``: a 64 kB tmpfs at tmp_path/name, unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("a full or read-only directory is made with mount (root only)")
    made = []

    def mount(name, options=""):
        d = tmp_path / name
        d.mkdir()
        opts = ",".join(filter(None, ["size=64k", options]))
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(d)], capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        made.append(d)
        return d

    yield mount
    for d in made:
        subprocess.run(["umount", "-l", str(d)])


def full(mount):
    d = mount("full")
    fd = os.open(d / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:  # ENOSPC: full
        pass
    finally:
        os.close(fd)
    return d


def runtime_dirs(mount, tmp_path):
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    return {"full": full(mount), "read-only": mount("ro", "ro"), "not makeable": not_a_dir / "runtime"}


def registration_files():
    import tempfile

    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("kernelkit-registration-")}


def test_launch_kernel_falls_back_to_the_temp_dir(mounts, tmp_path, monkeypatch, caplog):
    caplog.set_level("WARNING", logger="kernelkit.launcher")
    for what, runtime in runtime_dirs(mounts, tmp_path).items():
        before = registration_files()
        monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
        kernel = launch_kernel(EXEC_ARGV, timeout=30)
        try:
            kc = BlockingKernelClient()
            kc.load_connection_info(kernel.connection_info)
            kc.start_channels()
            assert kc.kernel_info(reply=True, timeout=30)["content"]["status"] == "ok", what
            kc.stop_channels()
        finally:
            kernel.kill()
        assert any(str(runtime) in r.getMessage() and "using" in r.getMessage() for r in caplog.records), what
        caplog.clear()
        # nothing left behind: not an empty file in the runtime dir, not the fallback file
        assert not (runtime.is_dir() and any(p.name.startswith("kernelkit-registration-") for p in runtime.iterdir())), what
        assert registration_files() == before, what


def test_the_provisioner_starts_a_kernel_with_a_full_runtime_dir(mounts, tmp_path, monkeypatch):
    spec = {"argv": EXEC_ARGV, "display_name": "exec", "language": "python",
            "metadata": {"kernel_provisioner": {"provisioner_name": "kernelkit-handshake", "config": {"preferred_ports": True}}}}
    (tmp_path / "share" / "kernels" / "exec").mkdir(parents=True)
    (tmp_path / "share" / "kernels" / "exec" / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(full(mounts)))
    km = KernelManager(kernel_name="exec")
    km.start_kernel()
    try:
        kc = km.client()
        kc.start_channels()
        assert kc.kernel_info(reply=True, timeout=30)["content"]["status"] == "ok"
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)


def test_nowhere_to_write_is_one_line(mounts, tmp_path):
    """Neither the runtime dir nor the temp dir (tempfile's choice, set by hand:
    it only picks a directory it can write) can take the file."""
    ro = mounts("ro", "ro")
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(full(mounts)))
    with_temp_dir = f"import sys, tempfile; tempfile.tempdir = {str(ro)!r}\n"
    code = with_temp_dir + ("from kernelkit.launcher import launch_kernel, HandshakeError\n"
                            "try:\n    launch_kernel(sys.argv[1:], timeout=10)\n"
                            "except HandshakeError as e:\n    print(e); sys.exit(1)\n")
    p = subprocess.run([sys.executable, "-c", code, *EXEC_ARGV], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 1, p
    line = p.stdout.strip()
    assert "\n" not in line and "registration file" in line and "JUPYTER_RUNTIME_DIR" in line and str(ro) in line, line
    # kernelkit run says the same in one line, exit 1
    nb = tmp_path / "nb.ipynb"
    cell = {"cell_type": "code", "id": "c1", "metadata": {}, "source": "1", "outputs": [], "execution_count": None}
    nb.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    code = with_temp_dir + "from kernelkit.cli import main\nsys.argv[0] = 'kernelkit'\nsys.exit(main())\n"
    p = subprocess.run([sys.executable, "-c", code, "run", str(nb), "--kernel-cmd", shlex.join(EXEC_ARGV)],
                       capture_output=True, text=True, env=env, timeout=60)
    errors = [line for line in p.stderr.splitlines() if "registration file" in line]
    assert p.returncode == 2 and len(errors) == 1 and "Traceback" not in p.stderr, p  # 2: the kernel did not start
    assert not (tmp_path / "nb.out.ipynb").exists()
