"""The launcher's host in the remote-kernel tests (test_remote.py): runs inside
the client network namespace, starts kernels on the server namespace through
ssh, and prints what it observed as one JSON object; the tests assert on it.

    python remote_driver.py SCENARIO CONFIG_JSON
"""

import asyncio
import concurrent.futures
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid

import zmq
from jupyter_client import BlockingKernelClient, KernelManager
from jupyter_client.ioloop import AsyncIOLoopKernelManager
from traitlets.config import Config

from kernelkit.launcher import HandshakeError, PendingLaunch, async_launch_kernel
from support import file_ports, is_served, nudge  # (this script runs from tests/)



def kernel_pids(mark: str) -> list:
    """Processes carrying the marker in their environment (the remote kernels
    of this run: the namespaces share one pid space)."""
    found = []
    needle = f"KK17_MARK={mark}".encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            pass
    return found


def gone_within(pids, timeout=15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(os.path.exists(f"/proc/{p}") and not _zombie(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _zombie(pid) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def run(kc, code, timeout=30, stdin_hook=None):
    out = []
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=out.append, allow_stdin=stdin_hook is not None,
                                   stdin_hook=stdin_hook)
    text = "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream")
    return reply["content"], text.strip()


def remote_facts(kc) -> dict:
    """pid and network namespace of the kernel, seen from inside it."""
    _, text = run(kc, "import os\nprint(os.getpid(), os.readlink('/proc/self/ns/net'))")
    pid, netns = text.split()
    return {"pid": int(pid), "netns": netns}


def user_session(km, facts: dict):
    """What a user does with a new kernel: run, answer input(), interrupt a
    cell and run another. Records it in ``facts``; returns the client."""
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=30)
    facts["first"] = remote_facts(kc)
    facts["execute"] = run(kc, "print(6 * 7)")
    facts["input"] = run(kc, "name = input('who? ')\nprint('hello', name)", stdin_hook=lambda msg: kc.input("remote"))
    facts["interrupt"] = interrupted_cell(kc, km)
    facts["after_interrupt"] = run(kc, "print('still here')")
    return kc


def interrupted_cell(kc, km) -> dict:
    """Interrupt a sleeping cell once it runs: its reply, and how long the interrupt took."""
    msg_id = kc.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(60)")
    # the cell runs once its first output arrives
    while True:
        msg = kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            break
    t0 = time.monotonic()
    km.interrupt_kernel()
    while True:
        reply = kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    return {"status": reply["content"]["status"], "ename": reply["content"].get("ename"), "seconds": time.monotonic() - t0}


def scenario_session(cfg) -> dict:
    """The bundled Python kernel through the provisioner: everything a user does."""
    facts = {"launcher_netns": os.readlink("/proc/self/ns/net")}
    km = KernelManager(kernel_name=cfg["kernel_name"], transport_encryption="required")
    km.start_kernel()
    try:
        info = km.get_connection_info()
        facts["ip"] = info["ip"]
        facts["curve"] = bool(info.get("curve_publickey")) and bool(info.get("curve_secretkey"))
        facts["interrupt_mode"] = km.kernel_spec.interrupt_mode
        kc = user_session(km, facts)

        plain = {k: v for k, v in info.items() if not k.startswith("curve_")}
        pub, sec = zmq.curve_keypair()
        wrong = {**info, "curve_publickey": pub.decode(), "curve_secretkey": sec.decode()}
        facts["plain_client_answered"] = is_served(plain)
        facts["wrong_key_client_answered"] = is_served(wrong)
        facts["right_key_client_answered"] = is_served(info, timeout=10)
        kc.stop_channels()

        km.restart_kernel(now=False)
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        facts["restarted"] = remote_facts(kc)
        facts["restarted_execute"] = run(kc, "print('again')")
        facts["first_gone_after_restart"] = gone_within([facts["first"]["pid"]])
        kc.stop_channels()

        km.shutdown_kernel(now=False)
        facts["alive_after_shutdown"] = km.is_alive()
        facts["gone_after_shutdown"] = gone_within([facts["restarted"]["pid"]])

        # the launcher's side goes away without a word: the ssh session ends, so does the kernel
        km = KernelManager(kernel_name=cfg["kernel_name"], transport_encryption="required")  # (a shut-down one's context is gone)
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        pid = remote_facts(kc)["pid"]
        kc.stop_channels()
        os.killpg(km.provisioner.process.pid, signal.SIGKILL)
        facts["gone_after_ssh_killed"] = gone_within([pid])
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    return facts


# holds a TCP port on the server (SO_REUSEADDR, as a kernel binds) until its stdin closes
SQUATTER = ("import socket, sys\n"
            "s = socket.socket()\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('0.0.0.0', int(sys.argv[1])))\n"
            "s.listen()\n"
            "print('listening', flush=True)\n"
            "sys.stdin.read()\n")


class LogLines(logging.Handler):
    """The launcher's warnings and errors, as a user would read them."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []
        logging.getLogger("kernelkit.launcher").addHandler(self)

    def emit(self, record):
        self.lines.append(record.getMessage())


def scenario_restart(cfg) -> dict:
    """preferred_ports through ssh, curve on: a restart by hand and one by
    jupyter_client's autorestarter (the remote kernel killed) bring the kernel
    back on its five ports with its keys, and a client made at the start runs
    the next cell; a port taken on the server while the kernel is down is
    replaced by a fresh one, with one log line."""
    log = LogLines()
    # random_ports_until_alive off: these kills come within stable_start_time of
    # the start, when the restarter would otherwise ask for new ports on purpose
    config = Config({"KernelRestarter": {"time_to_dead": 0.2, "random_ports_until_alive": False}})
    facts = {"launcher_netns": os.readlink("/proc/self/ns/net")}

    def after(kc, code):
        """What the client made at the start sees of the kernel now."""
        nudge(kc)
        return {**remote_facts(kc), "execute": run(kc, code)}

    async def main():
        km = AsyncIOLoopKernelManager(kernel_name=cfg["kernel_name"], transport_encryption="required", config=config)
        await km.start_kernel()
        kc = BlockingKernelClient()
        kc.load_connection_info(km.get_connection_info())
        kc.start_channels()
        squatter = None
        try:
            await asyncio.to_thread(kc.wait_for_ready, 30)
            first = await asyncio.to_thread(remote_facts, kc)
            facts["first"] = {**first, "ports": file_ports(km), "curve": km.curve_publickey.decode()}

            await km.restart_kernel(now=False)
            facts["by_hand"] = {**await asyncio.to_thread(after, kc, "print('after a restart')"),
                                "ports": file_ports(km), "curve": km.curve_publickey.decode()}

            ssh_pid = km.provisioner.pid
            os.kill(facts["by_hand"]["pid"], signal.SIGKILL)  # the remote kernel (the namespaces share one pid space)
            deadline = time.monotonic() + 60
            while not km.has_kernel or km.provisioner.pid == ssh_pid:  # the restarter's new ssh
                assert time.monotonic() < deadline, "the autorestarter did not restart the remote kernel"
                await asyncio.sleep(0.05)
            facts["autorestart"] = {**await asyncio.to_thread(after, kc, "print('after a crash')"),
                                    "ports": file_ports(km), "curve": km.curve_publickey.decode()}

            await km.shutdown_kernel(restart=True)
            taken = facts["first"]["ports"]["shell_port"]
            squatter = subprocess.Popen([*cfg["ssh"], shlex.join([sys.executable, "-c", SQUATTER, str(taken)])],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert squatter.stdout.readline().strip() == "listening"
            logged = len(log.lines)
            await km.start_kernel()
            fresh = BlockingKernelClient()  # the connection file changed: clients reconnect
            fresh.load_connection_info(km.get_connection_info())
            fresh.start_channels()
            try:
                await asyncio.to_thread(fresh.wait_for_ready, 30)
                facts["port_taken"] = {"execute": await asyncio.to_thread(run, fresh, "print('on a fresh port')"),
                                       "ports": file_ports(km), "log": log.lines[logged:]}
            finally:
                fresh.stop_channels()
        finally:
            kc.stop_channels()
            km.stop_restarter()
            if squatter is not None:
                squatter.stdin.close()
                squatter.wait(10)
            if km.has_kernel:
                await km.shutdown_kernel(now=True)

    asyncio.run(main())
    return facts


def scenario_many(cfg) -> dict:
    """``count`` kernels at once on one (CURVE) registration service."""

    async def main():
        t0 = time.monotonic()
        kernels = await asyncio.gather(*(
            async_launch_kernel([*cfg["ssh"], *cfg["kernel"]], remote=True, registration_ip=cfg["registration_ip"],
                                registration_via="stdin", encryption="curve", allowed_peers=[cfg["server_ip"]], timeout=90)
            for _ in range(cfg["count"])))
        return kernels, time.monotonic() - t0

    def one_cell(k) -> str:
        kc = BlockingKernelClient()
        kc.load_connection_info(k.connection_info)
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            return run(kc, "kernel.stream(str(2 + 3))")[1]
        finally:
            kc.stop_channels()

    kernels, seconds = asyncio.run(main())
    try:
        # a client of each at once (each waits at least 0.4 s for readiness)
        with concurrent.futures.ThreadPoolExecutor(len(kernels)) as pool:
            results = list(pool.map(one_cell, kernels))
        infos = [k.connection_info for k in kernels]
        return {"seconds": seconds, "results": results, "ips": sorted({i["ip"] for i in infos}),
                "curve": all(i.get("curve_publickey") for i in infos), "pids": len(kernel_pids(cfg["mark"]))}
    finally:
        for k in kernels:
            k.kill()


def _failed_launch(cfg, argv, **options) -> dict:
    """Start one kernel that must not come up: the error line, and whether
    anything of it is left running afterwards."""
    mutate = options.pop("mutate", None)
    processes = []
    error = None
    try:
        pending = PendingLaunch(**options)
    except (ValueError, HandshakeError) as e:
        return {"error": str(e), "error_type": type(e).__name__, "started": False, "left_running": kernel_pids(cfg["mark"])}
    try:
        if mutate:
            mutate(pending.expected.registration)
        processes.append(pending.spawn(pending.command(argv)))
        pending.wait(30)
    except HandshakeError as e:
        error = e.summary
    finally:
        pending.abort()
    left = [p for p in kernel_pids(cfg["mark"]) if not gone_within([p], 10)]
    return {"error": error, "started": True, "ssh_running": [p.pid for p in processes if p.poll() is None], "left_running": left}


def scenario_bad(cfg) -> dict:
    remote = {"remote": True, "registration_ip": cfg["registration_ip"], "registration_via": "stdin"}
    argv = [*cfg["ssh"], *cfg["kernel"]]
    out = {}
    out["unreachable"] = _failed_launch(cfg, argv, **{**remote, "registration_ip": cfg["unreachable_ip"]})
    out["hmac_key_mismatch"] = _failed_launch(cfg, argv, **remote, mutate=lambda r: r.update(key="not-the-key"))
    pub, _ = zmq.curve_keypair()
    out["curve_key_mismatch"] = _failed_launch(cfg, argv, **remote, encryption="curve",
                                               mutate=lambda r: r.update(registration_publickey=pub.decode()))
    out["unexpected_peer"] = _failed_launch(cfg, argv, **remote, allowed_peers=["10.255.255.254"])
    out["ssh_cannot_connect"] = _failed_launch(cfg, [*cfg["ssh_wrong_port"], *cfg["kernel"]], **remote)
    out["no_ssh_binary"] = _failed_launch(cfg, ["/nonexistent/ssh", *cfg["ssh"][1:], *cfg["kernel"]], **remote)
    out["dialect_a_remote"] = _failed_launch(cfg, argv, **remote, dialect="A")
    out["loopback_registration"] = _failed_launch(cfg, argv, **{**remote, "registration_ip": "127.0.0.1"})
    return out


if __name__ == "__main__":
    scenario, config = sys.argv[1], json.loads(sys.argv[2])
    config.setdefault("mark", uuid.uuid4().hex)
    print(json.dumps(globals()[f"scenario_{scenario}"](config)))
