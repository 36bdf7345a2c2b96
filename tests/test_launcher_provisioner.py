"""The kernelkit-handshake provisioner under jupyter_client's KernelManager:
start, run code, interrupt, restart, shutdown; 20 kernels at once; xeus-python."""

import asyncio
import importlib.util
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile

import pytest
from jupyter_client import AsyncKernelManager, BlockingKernelClient, KernelManager
from jupyter_client.ioloop import AsyncIOLoopKernelManager, IOLoopKernelManager
from traitlets.config import Config

from kernelkit.launcher import HandshakeError
from kernelkit.launcher.provisioner import HandshakeProvisioner
from kernelkit.startup.files import PORT_KEYS
from support import EXEC_KERNEL, file_ports, km_client, nudge


def write_spec(root, name, argv, dialect=None, interrupt_mode=None, language="python", preferred_ports=None, config=None, **spec_extra):
    provisioner = {"provisioner_name": "kernelkit-handshake", "config": dict(config or {})}
    if dialect:
        provisioner["config"]["dialect"] = dialect
    if preferred_ports is not None:
        provisioner["config"]["preferred_ports"] = preferred_ports
    spec = {"argv": argv, "display_name": name, "language": language,
            "metadata": {"kernel_provisioner": provisioner, **spec_extra}}
    if interrupt_mode:
        spec["interrupt_mode"] = interrupt_mode
    d = root / "kernels" / name
    d.mkdir(parents=True)
    (d / "kernel.json").write_text(json.dumps(spec))
    return name


@pytest.fixture
def jupyter_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    return tmp_path


def exec_spec(jupyter_dirs, dialect=None, interrupt_mode=None, preferred_ports=True):
    name = f"exec-{dialect or 'default'}-{interrupt_mode or 'signal'}-{preferred_ports}"
    return write_spec(jupyter_dirs / "share", name, [*EXEC_KERNEL, "-f", "{connection_file}"], dialect, interrupt_mode, preferred_ports=preferred_ports)


def run(kc, code, timeout=30):
    out = []
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=out.append)
    results = [m["content"]["data"]["text/plain"] for m in out if m["msg_type"] == "execute_result"]
    streams = "".join(m["content"]["text"] for m in out if m["msg_type"] == "stream")
    return reply["content"], results, streams


def test_entry_point_is_registered():
    from jupyter_client.provisioning.factory import KernelProvisionerFactory

    assert "kernelkit-handshake" in KernelProvisionerFactory.instance().get_provisioner_entries()


@pytest.mark.parametrize("preferred_ports", [True, False], ids=["preferred-ports", "classic-restart"])
@pytest.mark.parametrize("dialect", ["A", "B"])
def test_start_run_restart_shutdown(jupyter_dirs, managers, dialect, preferred_ports):
    km = managers(exec_spec(jupyter_dirs, dialect, preferred_ports=preferred_ports))
    assert isinstance(km.provisioner, HandshakeProvisioner) and km.provisioner.dialect == dialect
    # the connection file the manager wrote holds ports a fresh client can use
    before = file_ports(km)
    assert before == {k: v for k, v in km.get_connection_info().items() if k.endswith("_port")}
    kc = BlockingKernelClient()
    kc.load_connection_file(km.connection_file)
    kc.start_channels()
    kc.wait_for_ready(timeout=30)
    run(kc, "x = 6")
    assert run(kc, "x * 7")[1] == ["42"]
    # no registration file is left behind
    assert not [p for p in os.listdir(jupyter_dirs / "runtime") if p.startswith("kernelkit-registration")]

    old_pid = km.provisioner.pid
    km.restart_kernel()
    assert km.provisioner.pid != old_pid
    assert file_ports(km) == before, "a restart keeps the ports"
    # the client made before the restart carries on, with the new kernel
    nudge(kc)
    content, results, _ = run(kc, "'x' in kernel.ns")
    assert content["status"] == "ok" and results == ["False"]
    kc.stop_channels()

    pid, connection_file = km.provisioner.pid, km.connection_file
    km.shutdown_kernel()
    assert not km.has_kernel and not os.path.exists(connection_file)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize("preferred_ports", [True, False], ids=["preferred-ports", "classic-restart"])
def test_restart_with_a_port_taken_meanwhile(jupyter_dirs, managers, preferred_ports):
    """The one failure case: a port taken between the kernels. The new kernel
    still starts (no port race to lose), on new ports the manager writes down."""
    km = managers(exec_spec(jupyter_dirs, preferred_ports=preferred_ports))
    before = file_ports(km)
    km.shutdown_kernel(restart=True)
    with socket.socket() as squatter:
        squatter.bind((km.ip, before["shell_port"]))
        squatter.listen()
        km.start_kernel()
        after = file_ports(km)
        assert after["shell_port"] != before["shell_port"]
        if preferred_ports:  # only the taken one changes
            assert {k: v for k, v in after.items() if k != "shell_port"} == {k: v for k, v in before.items() if k != "shell_port"}
        kc = km_client(km)
        assert run(kc, "6 * 7")[1] == ["42"]
        kc.stop_channels()


@pytest.mark.parametrize("random_ports_until_alive", [True, False], ids=["new-ports-asked", "ports-kept-asked"])
@pytest.mark.parametrize("manager_class", [AsyncIOLoopKernelManager, IOLoopKernelManager])
def test_autorestart_after_a_crash_keeps_clients(jupyter_dirs, manager_class, random_ports_until_alive):
    """jupyter_client's restarter brings the kernel back after os._exit(1),
    and the client made at the start runs the next cell, crash after crash."""
    # these crashes come within stable_start_time (10 s) of the start, when the
    # restarter asks for new ports unless random_ports_until_alive is off: the
    # kernel comes back on its ports either way (as ipykernel under LocalProvisioner)
    config = Config({"KernelRestarter": {"time_to_dead": 0.2, "restart_limit": 100,
                                         "random_ports_until_alive": random_ports_until_alive}})
    name = exec_spec(jupyter_dirs)

    async def main():
        km = manager_class(kernel_name=name, config=config)
        await km.start_kernel() if manager_class is AsyncIOLoopKernelManager else km.start_kernel()
        # a blocking client: its own threads, so it works while the loop runs the restarter
        kc = BlockingKernelClient()
        kc.load_connection_info(km.get_connection_info())
        kc.start_channels()
        try:
            await asyncio.to_thread(kc.wait_for_ready, 30)
            ports = file_ports(km)
            for crash in range(3):
                pid = km.provisioner.pid
                kc.execute("import os; os._exit(1)")
                while not km.has_kernel or km.provisioner.pid == pid:  # the restarter's new kernel
                    await asyncio.sleep(0.05)
                # from here the manager says alive: jupyter_server connects a reconnecting
                # websocket to the manager's ports now, and never again
                assert {name: getattr(km, name) for name in ports} == ports
                assert file_ports(km) == ports
                await asyncio.to_thread(nudge, kc)
                content, results, _ = await asyncio.to_thread(run, kc, f"{crash} + 1")
                assert content["status"] == "ok" and results == [str(crash + 1)]
        finally:
            kc.stop_channels()
            km.stop_restarter()
            await km.shutdown_kernel(now=True) if manager_class is AsyncIOLoopKernelManager else km.shutdown_kernel(now=True)

    asyncio.run(main())


@pytest.mark.parametrize("mode", ["signal", "message"])
def test_interrupt(jupyter_dirs, managers, mode):
    km = managers(exec_spec(jupyter_dirs, interrupt_mode=mode))
    assert km.kernel_spec.interrupt_mode == mode
    kc = km_client(km)
    # stop_on_error=False: kernelkit can abort an execute sent just after an error
    # reply (a kernel-side race, reported), which is not what this test is about
    msg_id = kc.execute("kernel.stream('started\\n'); time.sleep(60)", stop_on_error=False)
    # interrupt only once the cell runs (an idle kernel has nothing to interrupt)
    while True:
        msg = kc.get_iopub_msg(timeout=20)
        if msg["msg_type"] == "stream" and msg["parent_header"].get("msg_id") == msg_id:
            break
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=20)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    after = run(kc, "1 + 1")
    assert after[1] == ["2"], after
    kc.stop_channels()


def test_kernel_dying_at_start_fails_fast(jupyter_dirs):
    name = write_spec(jupyter_dirs / "share", "dies", [sys.executable, "-c", "import sys; sys.exit('no licence for this kernel')", "{connection_file}"])
    km = KernelManager(kernel_name=name)
    with pytest.raises(HandshakeError, match="exited with code 1 before registering: no licence for this kernel"):
        km.start_kernel()
    assert not km.has_kernel
    assert not [p for p in os.listdir(jupyter_dirs / "runtime") if p.startswith("kernelkit-registration")]


def test_bad_dialect_in_kernelspec_is_an_error(jupyter_dirs):
    name = write_spec(jupyter_dirs / "share", "bad-dialect", [*EXEC_KERNEL, "-f", "{connection_file}"], dialect="C")
    km = KernelManager(kernel_name=name)
    with pytest.raises(Exception, match="dialect"):
        km.start_kernel()
    assert not km.has_kernel


def test_twenty_kernels_at_once(jupyter_dirs):
    """No port race, no crossed registrations: every kernel comes up and answers
    a question only it can answer."""
    name = exec_spec(jupyter_dirs)

    async def one(i):
        km = AsyncKernelManager(kernel_name=name)
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            msg_id = kc.execute(f"{i} * 1000 + __import__('os').getpid() % 1000")
            while True:
                msg = await kc.get_iopub_msg(timeout=60)
                if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_result":
                    return km, int(msg["content"]["data"]["text/plain"])
        finally:
            kc.stop_channels()

    async def main():
        managers = []
        try:
            results = await asyncio.gather(*(one(i) for i in range(20)), return_exceptions=True)
            managers = [r[0] for r in results if isinstance(r, tuple)]
            errors = [r for r in results if not isinstance(r, tuple)]
            assert not errors, errors
            for i, (km, value) in enumerate(results):
                assert value == i * 1000 + km.provisioner.pid % 1000
            ports = [p for km, _ in results for p in km.ports]
            assert len(set(ports)) == 100
        finally:
            await asyncio.gather(*(km.shutdown_kernel(now=True) for km in managers))

    asyncio.run(main())


def xeus_spec(root, dialect=None):
    source = os.path.join(sys.prefix, "share", "jupyter", "kernels", "xpython", "kernel.json")
    if importlib.util.find_spec("xpython_launcher") is None or not os.path.exists(source):
        pytest.skip("xeus-python is not installed (pip install 'xeus-python>=0.19,<0.20')")
    with open(source) as f:
        spec = json.load(f)
    d = root / "kernels" / "xpython-handshake"
    d.mkdir(parents=True)
    spec["metadata"] = dict(spec.get("metadata") or {}, kernel_provisioner={"provisioner_name": "kernelkit-handshake", "config": {"dialect": dialect or "B"}})
    (d / "kernel.json").write_text(json.dumps(spec))
    return "xpython-handshake"


def test_xeus_python_starts_runs_and_restarts(jupyter_dirs, managers):
    km = managers(xeus_spec(jupyter_dirs / "share"))
    kc = km_client(km)
    info = kc.kernel_info(reply=True, timeout=30)["content"]
    assert info["implementation"] == "xeus-python"
    content, results, streams = run(kc, "import os\nprint('pid', os.getpid())\n6 * 7")
    assert content["status"] == "ok" and results == ["42"] and streams == f"pid {km.provisioner.pid}\n"
    before, pid = file_ports(km), km.provisioner.pid
    # xeus-python knows nothing of preferred_ports: it is restarted on a
    # classic connection file with its previous ports, and the old client carries on
    km.restart_kernel()
    assert file_ports(km) == before and km.provisioner.pid != pid
    nudge(kc)
    content, results, streams = run(kc, "import os\nprint('pid', os.getpid())\n21 * 2")
    assert results == ["42"] and streams == f"pid {km.provisioner.pid}\n"
    kc.stop_channels()
    km.shutdown_kernel()
    assert not km.has_kernel


def test_provisioner_info_round_trips(jupyter_dirs, managers):
    km = managers(exec_spec(jupyter_dirs, "A"))
    info = asyncio.run(km.provisioner.get_provisioner_info())
    assert info["dialect"] == "A" and info["pid"] == km.provisioner.pid
    assert info["connection_info"]["shell_port"] == km.shell_port
    json.dumps(info, default=lambda b: b.decode())  # persistable
    other = HandshakeProvisioner(kernel_id=info["kernel_id"], kernel_spec=km.kernel_spec, parent=None)
    asyncio.run(other.load_provisioner_info(info))
    assert other.dialect == "A" and other.pid == km.provisioner.pid


def test_curve_encryption_rides_in_the_registration_file(jupyter_dirs, managers):
    import zmq

    if not zmq.has("curve"):
        pytest.skip("libzmq without CurveZMQ")
    name = write_spec(jupyter_dirs / "share", "exec-curve", [*EXEC_KERNEL, "-f", "{connection_file}"],
                      supported_encryption=["curve"])
    km = managers(name, transport_encryption="required")
    with open(km.connection_file) as f:
        info = json.load(f)
    assert len(info["curve_publickey"]) == 40 and info["curve_publickey"] == km.curve_publickey.decode()
    kc = km_client(km)
    assert run(kc, "6 * 7")[1] == ["42"]
    kc.stop_channels()


def test_caller_chosen_stderr_is_respected(jupyter_dirs, tmp_path):
    name = write_spec(jupyter_dirs / "share", "dies-quietly", [sys.executable, "-c", "import sys; sys.exit('to the log file')", "{connection_file}"])
    km = KernelManager(kernel_name=name)
    with open(tmp_path / "kernel.log", "w") as log, pytest.raises(HandshakeError, match="exited with code 1 before registering$"):
        km.start_kernel(stderr=log)
    assert (tmp_path / "kernel.log").read_text() == "to the log file\n"


@pytest.fixture
def short_runtime_dir(jupyter_dirs, monkeypatch):
    """A runtime dir with a short path: an ipc socket path must fit in 107 bytes."""
    path = tempfile.mkdtemp(prefix="kk-")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def ipc_paths(info):
    return [f"{info['ip']}-{info[f'{c}_port']}" for c in ("shell", "iopub", "stdin", "control", "hb")]


@pytest.mark.parametrize("dialect", ["A", "B"])
def test_ipc_transport_through_launch_kernel(short_runtime_dir, dialect):
    from kernelkit.launcher import launch_kernel

    with launch_kernel([*EXEC_KERNEL, "-f", "{connection_file}"], transport="ipc", dialect=dialect) as kernel:
        info = kernel.connection_info
        assert info["transport"] == "ipc" and info["ip"].startswith(short_runtime_dir)
        for path in ipc_paths(info):
            assert stat.S_ISSOCK(os.stat(path).st_mode) and stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
        kc = BlockingKernelClient()
        kc.load_connection_info(info)
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        assert run(kc, "6 * 7")[1] == ["42"]
        kc.stop_channels()
    assert not any(os.path.exists(p) for p in ipc_paths(info))


def test_ipc_transport_through_the_provisioner(jupyter_dirs, short_runtime_dir, managers):
    km = managers(exec_spec(jupyter_dirs), transport="ipc")
    info = km.get_connection_info()
    assert info["transport"] == "ipc"
    modes = {stat.S_IMODE(os.stat(p).st_mode) for p in ipc_paths(info)}
    assert modes == {0o600}
    # the registration socket was an ipc path in the runtime dir too
    assert [p for p in os.listdir(short_runtime_dir) if p.startswith("kernelkit-registration-")]
    kc = km_client(km)
    run(kc, "x = 1")
    km.restart_kernel()
    assert km.get_connection_info() == info
    nudge(kc)
    assert run(kc, "'x' in kernel.ns")[1] == ["False"]
    kc.stop_channels()


# takes a port and says so: another process, as a server started meanwhile would be
SQUATTER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the dead kernel's connections may linger in TIME_WAIT
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("bound", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("random_ports_until_alive", [True, False], ids=["new-ports-asked", "ports-kept-asked"])
def test_alive_after_a_crash_restart_only_with_the_ports_the_kernel_holds(jupyter_dirs, random_ports_until_alive):
    """Another process takes the crashed kernel's shell port before the new one
    binds: the new kernel binds a fresh port. The manager must not say "alive"
    with the old ports meanwhile: jupyter_server connects a reconnecting
    websocket to the manager's ports at the first "alive", and for good.
    (ipykernel under LocalProvisioner, same scenario: restarted on the old ports,
    it dies on the taken one, 5 times, and the restarter gives it up as dead.)"""
    config = Config({"KernelRestarter": {"time_to_dead": 0.1, "restart_limit": 100,
                                         "random_ports_until_alive": random_ports_until_alive}})
    name = exec_spec(jupyter_dirs)

    async def main():
        km = AsyncIOLoopKernelManager(kernel_name=name, config=config)
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        squatter = None
        samples = []  # (alive, the manager's ports) from the crash on

        def take_shell_port():  # the restarter found the kernel dead and is about to start it again
            nonlocal squatter
            squatter = subprocess.Popen([sys.executable, "-c", SQUATTER, km.ip, str(km.shell_port)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert squatter.stdout.readline() == "bound\n"

        try:
            await kc.wait_for_ready(timeout=30)
            before = {port: getattr(km, port) for port in PORT_KEYS}
            km.add_restart_callback(take_shell_port)
            kc.execute("import os; os._exit(1)")
            # the first "alive" after the crash: what jupyter_server's websocket waits for
            while squatter is None or not await km.is_alive():
                samples.append((False, None))
                await asyncio.sleep(0.005)
            first = {port: getattr(km, port) for port in PORT_KEYS}
            fresh = km.client()
            fresh.start_channels()
            # the manager's every answer until the start is over
            while not km.ready.done():
                samples.append((await km.is_alive(), {port: getattr(km, port) for port in PORT_KEYS}))
                await asyncio.sleep(0.005)
            await km.ready
            after = {port: getattr(km, port) for port in PORT_KEYS}
            assert after["shell_port"] != before["shell_port"], "the kernel could not have bound the taken port"
            assert first == after, f"alive with ports the kernel does not hold: {first} (it holds {after})"
            assert all(ports == after for alive, ports in samples if alive)
            await fresh.wait_for_ready(timeout=20)  # its reply comes
            fresh.stop_channels()
        finally:
            kc.stop_channels()
            km.stop_restarter()
            await km.shutdown_kernel(now=True)
            if squatter is not None:
                squatter.kill()
                squatter.wait()

    asyncio.run(main())


# a kernel held at a gate before it starts (and so registers): the test opens it
GATED = "import runpy, sys; open(sys.argv[1]).read(); sys.argv = sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')"


def gated_spec(jupyter_dirs, **config):
    gate = jupyter_dirs / "gate"
    os.mkfifo(gate)
    name = write_spec(jupyter_dirs / "share", "gated", [sys.executable, "-c", GATED, str(gate), *EXEC_KERNEL[1:], "-f", "{connection_file}"],
                      config=config)
    return name, gate


async def open_gate(gate):
    def release():  # blocks until the kernel opens its end
        os.close(os.open(gate, os.O_WRONLY))
    await asyncio.to_thread(release)


async def started_process(km, start):
    """The pid of the kernel process ``start`` (a task) spawned."""
    while getattr(km.provisioner, "pid", None) is None:
        assert not start.done(), start
        await asyncio.sleep(0.01)
    return km.provisioner.pid


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_interrupt_during_a_start_waits_for_the_kernel(jupyter_dirs):
    """An interrupt asked for while the kernel has not registered reaches it once
    it has (jupyter_client waits for a start when there is no process yet)
    instead of killing it mid-start."""
    name, gate = gated_spec(jupyter_dirs)

    async def main():
        km = AsyncKernelManager(kernel_name=name)
        start = asyncio.create_task(km.start_kernel())
        try:
            await started_process(km, start)
            assert not await km.is_alive() and not km.has_kernel
            interrupt = asyncio.create_task(km.interrupt_kernel())
            await asyncio.sleep(0)  # lets it run up to where it waits (it would have signalled the process by now)
            assert not interrupt.done()
            await open_gate(gate)
            await start
            await interrupt
            assert await km.is_alive()
            kc = km.client()
            kc.start_channels()
            await kc.wait_for_ready(timeout=30)
            kc.stop_channels()
        finally:
            if not start.done():
                start.cancel()
            await km.shutdown_kernel(now=True)

    asyncio.run(main())


@pytest.mark.parametrize("now", [True, False], ids=["kill", "shutdown"])
def test_shutdown_during_a_start_ends_the_kernel(jupyter_dirs, now):
    """A kernel that has not registered is not alive, and a shutdown or kill then
    ends its process at once; the start fails."""
    name, gate = gated_spec(jupyter_dirs)

    async def main():
        km = AsyncKernelManager(kernel_name=name)
        start = asyncio.create_task(km.start_kernel())
        pid = await started_process(km, start)
        assert not await km.is_alive()
        try:
            await asyncio.wait_for(km.shutdown_kernel(now=now), 10)
        except asyncio.InvalidStateError:
            pass  # jupyter_client's: the failed start and the shutdown both settle the manager's one `ready` future
        assert gone(pid)
        with pytest.raises(HandshakeError, match="abandoned"):
            await asyncio.wait_for(start, 10)
        assert not km.has_kernel and not await km.is_alive()
        assert not [p for p in os.listdir(jupyter_dirs / "runtime") if p.startswith("kernelkit-registration")]

    asyncio.run(main())


def test_a_kernel_that_never_registers_is_not_alive_and_ends_at_the_timeout(jupyter_dirs):
    name, gate = gated_spec(jupyter_dirs, registration_timeout=1)

    async def main():
        km = AsyncKernelManager(kernel_name=name)
        start = asyncio.create_task(km.start_kernel())
        pid = await started_process(km, start)
        while not start.done():
            assert not await km.is_alive()
            await asyncio.sleep(0.05)
        with pytest.raises(HandshakeError, match="did not register within 1 s"):
            await start
        assert gone(pid) and not km.has_kernel and not await km.is_alive()

    asyncio.run(main())
