"""The parts of remote kernels that one host can show (test_remote.py runs the
real thing across two network namespaces): registration info on stdin or in the
environment, the end of stdin ending the kernel, bind-all kernels whose address
the launcher learns from the handshake, kernel-made CurveZMQ keys over a CURVE
registration socket, and launches refused before anything starts."""

import json
import os
import subprocess
import sys
import time

import pytest
import zmq
from jupyter_client import BlockingKernelClient

from kernelkit.launcher import PendingLaunch, RegistrationService, launch_kernel
from kernelkit.launcher.registration import LOOPBACK
from kernelkit.startup import StartupError
from kernelkit.startup.files import parse
from kernelkit.startup.sources import ENV_VAR
from support import EXEC_KERNEL, is_served

needs_curve = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE support")
KERNEL_ARGV = [*EXEC_KERNEL, "-f", "{connection_file}"]


def client(info) -> BlockingKernelClient:
    """A ready client: its iopub subscription is in before it sends anything
    (a client that executes at once races its own subscription, on any kernel:
    output sent before that arrives is not its; kernelkit's iopub handshake has
    a ZAP answer in it, 0.2 ms more, which made this test lose that race once)."""
    kc = BlockingKernelClient()
    kc.load_connection_info(info)
    kc.start_channels()
    kc.wait_for_ready(timeout=30)
    return kc


def result(kc, code, timeout=15):
    out = []
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=out.append)
    assert reply["content"]["status"] == "ok", reply["content"]
    return [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"]


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    return tmp_path / "runtime"


def test_stdin_registration_bind_all_and_the_address_learned(runtime):
    with launch_kernel(KERNEL_ARGV, registration_via="stdin", ip="0.0.0.0") as k:
        assert k.process.args[-1] == "-", "the kernel reads its registration on stdin"
        assert not list(runtime.glob("*")), "no registration file was written"
        # the kernel bound every interface; clients are told the address it registered from
        assert k.connection_info["ip"] == LOOPBACK
        kc = client(k.connection_info)
        try:
            assert result(kc, "6 * 7") == ["42"]
        finally:
            kc.stop_channels()
        # the launcher goes away (its end of stdin closes): the kernel ends by itself
        k.process.stdin.close()
        assert k.process.wait(15) == 0


def test_env_registration(runtime):
    with launch_kernel(EXEC_KERNEL, registration_via="env") as k:
        kc = client(k.connection_info)
        try:
            assert result(kc, "__import__('os').environ.get('KERNELKIT_REGISTRATION', 'unset')") == ["'unset'"], \
                "the key does not stay in the kernel's environment"
        finally:
            kc.stop_channels()
    assert not list(runtime.glob("*"))


@needs_curve
def test_kernel_made_curve_keys(runtime):
    with launch_kernel(KERNEL_ARGV, registration_via="stdin", encryption="curve") as k:
        info = k.connection_info
        assert len(info["curve_publickey"]) == 40 and len(info["curve_secretkey"]) == 40
        kc = client(info)
        try:
            assert result(kc, "1 + 1") == ["2"]
        finally:
            kc.stop_channels()
        pub, sec = zmq.curve_keypair()
        assert not is_served({k: v for k, v in info.items() if not k.startswith("curve_")})
        assert not is_served({**info, "curve_publickey": pub.decode(), "curve_secretkey": sec.decode()})


@needs_curve
def test_curve_registration_socket_refuses_plain_kernels():
    """A kernel that does not encrypt its registration is never heard by a CURVE service."""
    service = RegistrationService(LOOPBACK, curve=True)
    try:
        pending = PendingLaunch(service=service, encryption="curve", registration_via="stdin")
        del pending.expected.registration["registration_publickey"]  # a kernel that ignores it
        try:
            pending.spawn(pending.command([*KERNEL_ARGV, "--registration-timeout", "1"]))
            with pytest.raises(Exception, match="no registration receipt .* within 1 s"):
                pending.wait(20)
        finally:
            pending.abort()
    finally:
        service.close()


def test_no_connection_info_is_one_line():
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    done = subprocess.run(EXEC_KERNEL, capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"kernel did not start: no connection info: give -f FILE, -f - (JSON on stdin) or set {ENV_VAR}"]


@pytest.mark.parametrize("stdin, why", [(b"", "no registration info"), (b"{not json\n", "not valid JSON")])
def test_bad_stdin_is_one_line(stdin, why):
    done = subprocess.run([*EXEC_KERNEL, "-f", "-"], input=stdin, capture_output=True, timeout=30)
    assert done.returncode == 1
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kernel did not start: <stdin>:") and why in lines[0], lines


def test_registration_fields_are_checked():
    base = {"kernel_id": "k", "registration_ip": "127.0.0.1", "registration_port": 4000, "key": "x"}
    info = parse({**base, "encryption": "curve", "registration_publickey": zmq.curve_keypair()[0].decode()})
    assert info.encryption == "curve" and len(info.registration_publickey) == 40
    with pytest.raises(StartupError, match="unknown encryption 'tls'"):
        parse({**base, "encryption": "tls"})
    with pytest.raises(StartupError, match="registration_publickey must be a 40-character Z85 string"):
        parse({**base, "registration_publickey": "short"})


@pytest.mark.parametrize("options, line", [
    ({"remote": True, "dialect": "A", "registration_ip": "10.0.0.1", "registration_via": "stdin"},
     "dialect A registers on the kernel's own bind address"),
    ({"remote": True, "registration_ip": "10.0.0.1"}, "cannot read this host's registration file"),
    ({"remote": True, "registration_via": "stdin"}, "a remote kernel needs registration_ip"),
    ({"remote": True, "registration_ip": "0.0.0.0", "registration_via": "stdin"}, "a remote kernel needs registration_ip"),
    ({"encryption": "tls"}, "unknown encryption 'tls'"),
    ({"registration_via": "carrier pigeon"}, "registration_via must be one of file, stdin, env"),
])
def test_impossible_launches_are_refused_before_any_process(tmp_path, options, line):
    marker = tmp_path / "started"
    argv = [sys.executable, "-c", f"open({str(marker)!r}, 'w')", "{connection_file}"]
    with pytest.raises(ValueError, match=line) as e:
        launch_kernel(argv, **options)
    assert "\n" not in str(e.value)
    assert not marker.exists()


def test_registration_address_not_on_this_host_is_one_line():
    """192.0.2.1 (TEST-NET-1) is on no interface here: the service cannot bind it."""
    from kernelkit.launcher import HandshakeError

    with pytest.raises(HandshakeError, match=r"cannot start the registration service on '192.0.2.1': ") as e:
        PendingLaunch(remote=True, registration_ip="192.0.2.1", registration_via="stdin")
    assert "\n" not in str(e.value)


def test_stdin_registration_through_a_command_prefix(runtime):
    """The provisioner's shape without ssh: a prefix that runs the kernel (here env),
    registration on stdin, and the kernel's stderr teed back as ssh would."""
    t0 = time.monotonic()
    with launch_kernel(["env", "KK=1", *KERNEL_ARGV], registration_via="stdin") as k:
        kc = client(k.connection_info)
        try:
            assert result(kc, "__import__('os').environ['KK']") == ["'1'"]
        finally:
            kc.stop_channels()
    assert time.monotonic() - t0 < 30


def test_bind_all_xeus_python_gets_its_address_from_the_handshake():
    """The address comes from the registration connection, so it works for a
    dialect B kernel nobody here wrote (xeus-python binds where ``ip`` says)."""
    import importlib.util

    if importlib.util.find_spec("xpython_launcher") is None:
        pytest.skip("xeus-python is not installed (pip install 'xeus-python>=0.19,<0.20')")
    with launch_kernel([sys.executable, "-m", "xpython_launcher", "-f", "{connection_file}"], ip="0.0.0.0", timeout=60) as k:
        assert k.connection_info["ip"] == LOOPBACK
        kc = client(k.connection_info)
        try:
            kc.wait_for_ready(timeout=30)
            out = []
            reply = kc.execute_interactive("print(6 * 7)", timeout=30, output_hook=out.append)
            assert reply["content"]["status"] == "ok"
            assert "".join(m["content"]["text"] for m in out if m["msg_type"] == "stream") == "42\n"
        finally:
            kc.stop_channels()


@pytest.mark.parametrize("via", ["stdin", "env"])
def test_provisioner_registration_without_a_file(tmp_path, monkeypatch, via):
    from jupyter_client import KernelManager

    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    argv = KERNEL_ARGV if via == "stdin" else EXEC_KERNEL
    spec = {"argv": argv, "display_name": via, "language": "python",
            "metadata": {"kernel_provisioner": {"provisioner_name": "kernelkit-handshake", "config": {"registration_via": via}}}}
    d = tmp_path / "share" / "kernels" / f"no-file-{via}"
    d.mkdir(parents=True)
    (d / "kernel.json").write_text(json.dumps(spec))
    km = KernelManager(kernel_name=f"no-file-{via}")
    km.start_kernel()
    try:
        assert km.provisioner.process.args[-1] == ("-" if via == "stdin" else argv[-1])
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=30)
            assert result(kc, "6 * 7") == ["42"]
        finally:
            kc.stop_channels()
    finally:
        km.shutdown_kernel(now=False)
    assert not km.is_alive()
    assert [p.name for p in (tmp_path / "runtime").glob("kernelkit-registration-*")] == []
