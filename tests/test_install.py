"""kernelkit install / uninstall, as a user runs them."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path


def kernelkit(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "kernelkit.cli", *args], capture_output=True, text=True, env=e, timeout=60)


def test_install_writes_a_kernelspec_jupyter_lists_and_uninstall_removes_it(tmp_path):
    r = kernelkit("install", "--prefix", str(tmp_path), "--name", "kk-test", "--display-name", "KK Test")
    assert r.returncode == 0, r.stderr
    spec_dir = tmp_path / "share" / "jupyter" / "kernels" / "kk-test"
    spec = json.loads((spec_dir / "kernel.json").read_text())
    assert spec["argv"][1:] == ["-m", "kernelkit.python", "-f", "{connection_file}"]
    assert spec["display_name"] == "KK Test"
    assert spec["language"] == "python"
    assert spec["interrupt_mode"] == "signal"
    assert spec["kernel_protocol_version"] == "5.5"
    assert spec["metadata"]["supported_encryption"] == ["curve"]
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "kernelkit-handshake"

    listed = subprocess.run(
        [sys.executable, "-m", "jupyter_client.kernelspecapp", "list", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "JUPYTER_PATH": str(tmp_path / "share" / "jupyter")},
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    listed_spec = json.loads(listed.stdout)["kernelspecs"]["kk-test"]
    # the launcher's logos, where Jupyter looks for them (jupyter_server
    # serves logo-*.png of the resource dir): real PNGs of the sizes named
    for size in (32, 64):
        data = (Path(listed_spec["resource_dir"]) / f"logo-{size}x{size}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", data[16:24]) == (size, size)

    r = kernelkit("uninstall", "--prefix", str(tmp_path), "--name", "kk-test")
    assert r.returncode == 0, r.stderr
    assert not spec_dir.exists()


def test_default_install_is_for_the_user(tmp_path):
    r = kernelkit("install", env={"JUPYTER_DATA_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "kernels" / "kernelkit" / "kernel.json").is_file()


def test_no_handshake_leaves_the_provisioner_out(tmp_path):
    r = kernelkit("install", "--prefix", str(tmp_path), "--no-handshake")
    assert r.returncode == 0, r.stderr
    spec = json.loads((tmp_path / "share" / "jupyter" / "kernels" / "kernelkit" / "kernel.json").read_text())
    assert "kernel_provisioner" not in spec["metadata"]


def test_bad_arguments_are_one_clear_error(tmp_path):
    for args, words in [
        (["install", "--name", "no spaces"], "invalid kernel name"),
        (["install", "--user", "--sys-prefix"], "not allowed with"),
        (["install", "--display-name", "  "], "must not be empty"),
        (["install", "--frobnicate"], "unrecognized arguments"),
        (["uninstall", "--prefix", str(tmp_path), "--name", "absent"], "no kernelspec 'absent'"),
        (["nonsense"], "unknown command"),
    ]:
        r = kernelkit(*args)
        assert r.returncode != 0, args
        assert words in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
