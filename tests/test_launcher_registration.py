"""The registration service and the launch API: real kernel processes, real ZeroMQ.

In-process peers use kernelkit's own kernel-side ``register()`` so that many
handshakes can run at once cheaply; the launch tests start real kernels.
"""

import asyncio
import concurrent.futures
import sys
import time

import pytest
import zmq
from jupyter_client import AsyncKernelClient, BlockingKernelClient

from kernelkit.launcher import HandshakeError, RegistrationService, async_launch_kernel, launch_kernel
from kernelkit.startup import StartupError
from kernelkit.startup.files import parse
from kernelkit.startup.handshake import register
from kernelkit.wire import DELIMITER, Session
from support import CALC_KERNEL, EXEC_KERNEL

EXEC_ARGV = [*EXEC_KERNEL, "-f", "{connection_file}"]
CALC_ARGV = [*CALC_KERNEL, "-f", "{connection_file}"]


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path, monkeypatch):
    d = tmp_path / "runtime"
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(d))
    return d


@pytest.fixture
def service():
    s = RegistrationService()
    yield s
    s.close()


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.term()


def fake_kernel(ctx, expected, ports, key=None, timeout=5.0):
    """Register like a kernel would, from the registration dict; returns the StartupError or None."""
    reg = parse(dict(expected.registration, **({"key": key} if key else {})))
    try:
        register(ctx, Session(reg.connection.key, reg.connection.signature_scheme), reg, ports, timeout)
    except StartupError as e:
        return e
    return None


def port_set(base):
    return {c: base + i for i, c in enumerate(("shell", "iopub", "stdin", "control", "hb"))}


def test_registration_file_contents_per_dialect(service):
    a = service.expect("k-a", dialect="A")
    b = service.expect("k-b", dialect="B")
    assert a.registration == {"transport": "tcp", "signature_scheme": "hmac-sha256", "key": "k-a", "ip": "127.0.0.1", "registration_port": service.port}
    # xeus needs ip and a string port
    assert b.registration["registration_port"] == str(service.port)
    assert b.registration["kernel_id"] == b.kernel_id and b.registration["ip"] == "127.0.0.1"
    assert parse(a.registration).dialect == "A" and parse(b.registration).dialect == "B"
    service.forget(a)
    service.forget(b)
    assert a.future.cancelled() and b.future.cancelled()


def test_many_kernels_both_dialects_at_once(service, ctx):
    """40 handshakes race on one socket; each launch gets its own kernel's ports."""
    launches = [(service.expect(f"key-{i}", dialect="AB"[i % 2]), port_set(20000 + 10 * i)) for i in range(40)]
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        errors = list(pool.map(lambda lp: fake_kernel(ctx, *lp), launches))
    assert errors == [None] * 40
    for expected, ports in launches:
        assert expected.future.result(0) == {f"{c}_port": p for c, p in ports.items()}


@pytest.mark.parametrize("dialect", ["A", "B"])
def test_wrong_key_is_refused_and_launch_keeps_waiting(service, ctx, dialect):
    expected = service.expect("right", dialect=dialect)
    t = time.perf_counter()
    error = fake_kernel(ctx, expected, port_set(30000), key="wrong")
    # answered at once (error receipt), not after the kernel's 5 s timeout
    assert error is not None and time.perf_counter() - t < 2
    assert not expected.future.done()
    assert fake_kernel(ctx, expected, port_set(30000)) is None
    assert expected.future.result(0)["shell_port"] == 30000


def test_unknown_kernel_id_and_garbage_do_not_stop_the_service(service, ctx):
    expected = service.expect("k", dialect="B")
    stranger = dict(expected.registration, kernel_id="somebody-else", key="other")
    reg = parse(stranger)
    with pytest.raises(StartupError):
        register(ctx, Session(b"other"), reg, port_set(31000), 5)
    junk = ctx.socket(zmq.DEALER)
    junk.linger = 0
    junk.connect(f"tcp://127.0.0.1:{service.port}")
    junk.send_multipart([b"no delimiter here"])
    junk.send_multipart([DELIMITER, b"sig"])
    assert junk.poll(5000)
    assert b"error" in junk.recv_multipart()[-1]
    junk.close()
    assert fake_kernel(ctx, expected, port_set(31000)) is None
    assert expected.future.result(0)["hb_port"] == 31004


# a local process without the key: 30 registrations naming an 8 MB kernel_id and
# 30,000 garbage messages over 20 connections, none of whose answers it reads
FLOODER = r"""
import json, os, sys, zmq
ctx = zmq.Context()
socks = []
for _ in range(20):
    s = ctx.socket(zmq.DEALER)
    s.sndhwm = 0
    s.connect(f"tcp://127.0.0.1:{sys.argv[1]}")
    socks.append(s)
big = json.dumps({"kernel_id": "x" * (8 << 20)}).encode()
for i in range(30):
    socks[i % 20].send_multipart([b"<IDS|MSG>", b"00", big])
for i in range(30000):
    socks[i % 20].send_multipart([b"<IDS|MSG>", b"junk", os.urandom(16)])
for s in socks:
    s.close(linger=-1)
ctx.term()
"""


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_a_flood_without_the_key_costs_little_memory_and_few_log_lines(service, ctx, caplog):
    """The registration socket is open to every local process: its memory and
    log must not grow with what a peer sends (before: 30 x 8 MB cost 240 MB+,
    echoed into the answers and the log, one log line per message)."""
    import subprocess
    import threading

    caplog.set_level("WARNING", logger="kernelkit.launcher")
    baseline, peak, done = _rss_mb(), [0.0], threading.Event()

    def sample():
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        flood = subprocess.Popen([sys.executable, "-c", FLOODER, str(service.port)])
        # a launch meanwhile is served
        expected = service.expect("k", dialect="B")
        assert fake_kernel(ctx, expected, port_set(32000)) is None
        assert flood.wait(60) == 0
        # the last of the flood's messages, then one more launch
        junk = ctx.socket(zmq.DEALER)
        junk.linger = 0
        junk.connect(f"tcp://127.0.0.1:{service.port}")
        junk.send_multipart([DELIMITER, b"sig", b"{}"])
        assert junk.poll(10000), "the service stopped answering"
        junk.close()
        expected = service.expect("k2", dialect="A")
        assert fake_kernel(ctx, expected, port_set(32100)) is None
    finally:
        done.set()
        sampler.join()
    rejected = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert 1 <= len(rejected) <= 5, rejected
    assert all(len(line) < 400 for line in rejected), max(rejected, key=len)[:400]
    assert peak[0] - baseline < 100, f"the service grew {peak[0] - baseline:.0f} MB under the flood"


@pytest.mark.parametrize("dialect", ["A", "B"])
def test_verified_but_unusable_ports_fail_the_launch(service, ctx, dialect):
    expected = service.expect("k", dialect=dialect)
    error = fake_kernel(ctx, expected, dict(port_set(32000), hb=0))
    assert error is not None and "refused" in str(error)
    with pytest.raises(HandshakeError, match="hb_port"):
        expected.future.result(0)


def test_dialect_a_needs_a_key_per_launch(service):
    service.expect("same", dialect="A")
    with pytest.raises(ValueError, match="same key"):
        service.expect("same", dialect="A")
    with pytest.raises(ValueError, match="non-empty key"):
        service.expect("", dialect="B")


@pytest.mark.parametrize("dialect", ["A", "B"])
@pytest.mark.parametrize("argv", [EXEC_ARGV, CALC_ARGV], ids=["exec", "calc"])
def test_launch_kernel_and_run_code(runtime_dir, dialect, argv):
    with launch_kernel(argv, dialect=dialect) as kernel:
        files = list(runtime_dir.iterdir())
        assert files == [], "the registration file is removed once the kernel registered"
        kc = BlockingKernelClient()
        kc.load_connection_info(kernel.connection_info)
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=20)
            reply = kc.execute_interactive("6 * 7", timeout=20)
            assert reply["content"]["status"] == "ok"
        finally:
            kc.stop_channels()
    assert kernel.process.poll() is not None


def test_registration_file_is_private_while_it_exists(runtime_dir):
    """The kernel itself checks: it reports the mode of the file it was given."""
    probe = [sys.executable, "-c", "import os, sys, stat; p = sys.argv[1]; "
             "sys.stderr.write('%o %s\\n' % (stat.S_IMODE(os.stat(p).st_mode), os.path.dirname(p))); sys.exit(1)",
             "{connection_file}"]
    with pytest.raises(HandshakeError) as info:
        launch_kernel(probe, forward_stderr=False)
    mode, directory = info.value.summary.rsplit(": ", 1)[1].split(" ", 1)
    assert mode == "600" and directory == str(runtime_dir)
    assert list(runtime_dir.iterdir()) == []


def test_async_launch_with_async_client():
    async def main():
        kernel = await async_launch_kernel(EXEC_ARGV)
        kc = AsyncKernelClient()
        kc.load_connection_info(kernel.connection_info)
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=20)
            msg_id = kc.execute("kernel.stream('hi\\n')")
            reply = await kc.get_shell_msg(timeout=20)
            assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok"
        finally:
            kc.stop_channels()
            kernel.kill()

    asyncio.run(main())


def test_kernel_that_dies_fails_fast_with_its_stderr(runtime_dir):
    dying = [sys.executable, "-c", "import sys; print('first'); sys.stderr.write('warming up\\nno GPU here\\n'); sys.exit(3)", "{connection_file}"]
    t = time.perf_counter()
    with pytest.raises(HandshakeError) as info:
        launch_kernel(dying, timeout=30, forward_stderr=False)
    assert time.perf_counter() - t < 10, "must not wait for the timeout"
    assert info.value.summary == "kernel exited with code 3 before registering: no GPU here"
    assert info.value.stderr_tail == ["warming up", "no GPU here"]
    assert list(runtime_dir.iterdir()) == []


def test_kernel_that_never_registers_times_out_and_is_killed(runtime_dir):
    silent = [sys.executable, "-c", "import time; time.sleep(60)", "{connection_file}"]
    with pytest.raises(HandshakeError, match=r"did not register within 0.5 s") as info:
        launch_kernel(silent, timeout=0.5)
    assert info.value.stderr_tail == []
    assert list(runtime_dir.iterdir()) == []


def test_kernel_speaking_the_other_dialect_is_told_so():
    """A dialect A request arriving for a dialect B launch (and vice versa) still
    matches by key; the receipt follows the request's shape."""
    service = RegistrationService()
    ctx = zmq.Context()
    try:
        expected = service.expect("k", dialect="B")
        reg = parse(expected.registration)
        reg.dialect = "A"
        register(ctx, Session(b"k"), reg, port_set(33000), 5)
        assert expected.future.result(0)["shell_port"] == 33000
    finally:
        service.close()
        ctx.term()


def test_unknown_program_is_one_line():
    with pytest.raises(HandshakeError, match="cannot start the kernel '/nonexistent/kernel': No such file"):
        launch_kernel(["/nonexistent/kernel", "{connection_file}"])
    with pytest.raises(ValueError, match="connection_file"):
        launch_kernel([sys.executable, "-c", "pass"])


def test_closed_service_fails_pending_launches():
    service = RegistrationService()
    expected = service.expect("k")
    service.close()
    with pytest.raises(HandshakeError, match="closed"):
        expected.future.result(0)


def test_launch_from_a_kernelspec(tmp_path, monkeypatch):
    import json

    from jupyter_client.kernelspec import NoSuchKernel

    spec = tmp_path / "share" / "kernels" / "calc"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": ["python", str(CALC_KERNEL[1]), "-f", "{connection_file}", "--log-level", "{resource_dir}"],
        "display_name": "Calc", "language": "calc", "env": {"CALC_MARK": "from-spec"},
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share"))
    from kernelkit.launcher.launch import kernel_command

    cmd, env = kernel_command(kernel_name="calc")
    assert cmd[0] == sys.executable and cmd[-1] == str(spec) and env["CALC_MARK"] == "from-spec"
    # the real launch, with a spec the kernel accepts
    (spec / "kernel.json").write_text(json.dumps({"argv": ["python", str(CALC_KERNEL[1]), "-f", "{connection_file}"], "display_name": "Calc", "language": "calc"}))
    with launch_kernel(kernel_name="calc") as kernel:
        kc = BlockingKernelClient()
        kc.load_connection_info(kernel.connection_info)
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=20)
            assert kc.kernel_info(reply=True, timeout=20)["content"]["implementation"] == "calc"
        finally:
            kc.stop_channels()
    with pytest.raises(NoSuchKernel):
        launch_kernel(kernel_name="no-such-kernel")
