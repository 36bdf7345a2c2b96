"""The notebook server's host in the gateway tests (test_gateway.py): runs in
the client network namespace with gateway_provisioners' DistributedProvisioner,
which starts kernels on the server namespace through a real sshd (paramiko),
and prints what it observed as one JSON object; the tests assert on it.

    python gateway_driver.py SCENARIO CONFIG_JSON

CONFIG has ``server_ip``, ``client_ip``, ``server_ns``, ``key_file``,
``host_key`` (the sshd's public host key), ``directory`` (scratch), ``mark``.
Kernels are either kernelkit (``python -m kernelkit.gateway``) or the stock
``launch_ipykernel.py`` of gateway_provisioners (``launcher: "stock"``).
"""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

# (this script runs from tests/)
from remote_driver import _zombie, remote_facts, run, user_session
from remote_driver import kernel_pids as marked_pids
from support import is_served


def _prepare_environment(cfg) -> None:
    """What gateway_provisioners reads at import: where the response address
    binds, who logs in over ssh (paramiko looks in ~/.ssh), where kernel logs go."""
    home = os.path.join(cfg["directory"], f"home-{uuid.uuid4().hex[:6]}")
    os.makedirs(f"{home}/.ssh", mode=0o700)
    shutil.copy(cfg["key_file"], f"{home}/.ssh/id_ed25519")
    with open(f"{home}/.ssh/known_hosts", "w") as f:
        f.write(f"{cfg['server_ip']} {cfg['host_key']}\n")
    os.environ.update({
        "HOME": home,
        "GP_RESPONSE_IP": cfg["client_ip"],
        "GP_REMOTE_USER": "root",
        "GP_UNAUTHORIZED_USERS": "nobody",  # (root is refused by default)
        "GP_KERNEL_LOG_DIR": cfg["directory"],
        "GP_MIN_PORT_RANGE_SIZE": "5",  # ranges of six ports: five channels and the comm port
        "JUPYTER_PATH": os.path.join(home, "share"),
        "JUPYTER_RUNTIME_DIR": os.path.join(home, "runtime"),
    })


def stock_scripts(cfg) -> str:
    """launch_ipykernel.py with its assembled server_listener.py, as
    ``jupyter-ssh-spec install`` lays them out."""
    import gateway_provisioners

    src = os.path.join(os.path.dirname(gateway_provisioners.__file__), "kernel-launchers")
    dest = os.path.join(cfg["directory"], "stock-scripts")
    os.makedirs(dest, exist_ok=True)
    shutil.copy(f"{src}/python/scripts/launch_ipykernel.py", dest)
    shutil.copy(f"{src}/shared/scripts/server_listener.py", dest)
    return f"{dest}/launch_ipykernel.py"


def write_spec(cfg, name, launcher="kernelkit", port_range="0..0", launch_timeout=30) -> str:
    """A kernelspec as jupyter-ssh-spec writes it, for kernelkit or the stock launcher."""
    head = [sys.executable, "-m", "kernelkit.gateway"] if launcher == "kernelkit" else [sys.executable, stock_scripts(cfg)]
    spec = {
        "argv": [*head, "--kernel-id", "{kernel_id}", "--port-range", "{port_range}",
                 "--response-address", "{response_address}", "--public-key", "{public_key}",
                 "--transport-encryption", "{transport_encryption}",
                 "--kernel-class-name", "ipykernel.ipkernel.IPythonKernel"],
        # exported in the remote shell: the marker finds this run's kernels;
        # the stock launcher's own minimum range size is 1000
        "env": {"KK17_MARK": cfg["mark"], "MIN_PORT_RANGE_SIZE": "5"},
        "display_name": f"Python ({launcher}, ssh)",
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {
            "supported_encryption": ["curve"],
            "kernel_provisioner": {"provisioner_name": "distributed-provisioner", "config": {
                "remote_hosts": [cfg["server_ip"]], "port_range": port_range, "launch_timeout": launch_timeout}},
        },
    }
    d = os.path.join(os.environ["JUPYTER_PATH"], "kernels", name)
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/kernel.json", "w") as f:
        json.dump(spec, f)
    return name


def kernel_pids(mark: str) -> list:
    """This run's remote kernels (and any helper of theirs) still running."""
    return [pid for pid in marked_pids(mark) if not _zombie(pid)]


def wait_until(predicate, timeout=15.0, step=0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def in_server(cfg, argv) -> list:
    return ["ip", "netns", "exec", cfg["server_ns"], *argv]


# holds TCP ports on the server (as another program would) until its stdin closes
SQUATTER = ("import socket, sys\n"
            "held = []\n"
            "for port in sys.argv[1:]:\n"
            "    s = socket.socket()\n"
            "    s.bind(('0.0.0.0', int(port)))\n"
            "    s.listen()\n"
            "    held.append(s)\n"
            "print('holding', flush=True)\n"
            "sys.stdin.read()\n")

# takes the ports a launcher has picked, as soon as they are picked: it reads
# the connection file the stock launcher writes before its kernel binds (the
# window between the helper's close and the kernel's bind), and binds its ports
THIEF = ("import glob, json, select, socket, sys\n"
         "pattern, held, done = sys.argv[1], [], False\n"
         "while not select.select([sys.stdin], [], [], 0.001)[0]:\n"
         "    for path in [] if done else glob.glob(pattern):\n"
         "        try:\n"
         "            info = json.load(open(path))\n"
         "        except (OSError, ValueError):\n"
         "            continue\n"
         "        done = True\n"
         "        for key in ('shell_port', 'iopub_port', 'stdin_port', 'control_port', 'hb_port'):\n"
         "            s = socket.socket()\n"
         "            try:\n"
         "                s.bind(('0.0.0.0', info[key])); s.listen(); held.append(s)\n"
         "            except OSError:\n"
         "                s.close()\n"
         "print(json.dumps([s.getsockname()[1] for s in held]), flush=True)\n")


def free_range(cfg, size) -> tuple:
    """``size`` consecutive ports that nothing on the server holds."""
    base = 20000 + (os.getpid() % 1200) * 10  # below Linux's ephemeral ports
    return base, base + size - 1


def start_kernel(name, encryption="disabled", kernel_id=None):
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name=name, transport_encryption=encryption)
    t0 = time.monotonic()
    km.start_kernel(**({"kernel_id": kernel_id} if kernel_id else {}))
    return km, time.monotonic() - t0


def try_start(name, ready_timeout=30, **kw) -> dict:
    """Start, run one cell, shut down: what a user of this kernelspec gets."""
    try:
        km, seconds = start_kernel(name, **kw)
    except Exception as e:
        return {"started": False, "error": f"{type(e).__name__}: {e}".splitlines()[0]}
    try:
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=ready_timeout)
            result = run(kc, "print(6 * 7)")[1]
        except Exception as e:
            result = f"{type(e).__name__}: {e}"
        finally:
            kc.stop_channels()
        ports = {k: v for k, v in km.get_connection_info().items() if k.endswith("_port")}
        return {"started": True, "seconds": seconds, "result": result, "ports": ports,
                "comm_port": km.provisioner.comm_port}
    finally:
        km.shutdown_kernel(now=True)


def scenario_session(cfg) -> dict:
    """One kernelkit kernel through the DistributedProvisioner: everything a user does."""
    facts = {"launcher_netns": os.readlink("/proc/self/ns/net")}
    low, high = free_range(cfg, 6)
    name = write_spec(cfg, "kk-gateway", port_range=f"{low}..{high}")
    km, facts["launch_seconds"] = start_kernel(name, encryption="required")
    try:
        info = km.get_connection_info()
        facts["ip"] = info["ip"]
        facts["range"] = [low, high]
        facts["ports"] = sorted([v for k, v in info.items() if k.endswith("_port")] + [km.provisioner.comm_port])
        facts["curve"] = bool(info.get("curve_publickey")) and bool(info.get("curve_secretkey"))
        kc = user_session(km, facts)  # (the interrupt: a signal, through the comm port)

        plain = {k: v for k, v in info.items() if not k.startswith("curve_")}
        facts["plain_client_answered"] = is_served(plain)
        facts["right_key_client_answered"] = is_served(info, timeout=10)

        # restart: a new process (new ports: the launch protocol has no way to ask for the old ones)
        km.restart_kernel(now=False)
        facts["old_client_after_restart"] = is_served_by(kc)
        kc.stop_channels()
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        facts["restarted"] = remote_facts(kc)
        facts["restarted_execute"] = run(kc, "print('again')")
        facts["first_gone_after_restart"] = wait_until(lambda: not os.path.exists(f"/proc/{facts['first']['pid']}"))

        # killed on the remote host: the provisioner's poll notices (its comm port is gone with it)
        pid = facts["restarted"]["pid"]
        os.kill(pid, 9)
        t0 = time.monotonic()
        facts["noticed_kill"] = wait_until(lambda: not km.is_alive(), timeout=20, step=0.2)
        facts["noticed_kill_seconds"] = time.monotonic() - t0
        facts["left_after_kill"] = kernel_pids(cfg["mark"])
        kc.stop_channels()
        km.shutdown_kernel(now=True)

        # a clean shutdown: the process ends and nothing of it stays
        km, _ = start_kernel(name)
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        pid = remote_facts(kc)["pid"]
        kc.stop_channels()
        km.shutdown_kernel(now=False)
        facts["alive_after_shutdown"] = km.is_alive()
        facts["gone_after_shutdown"] = wait_until(lambda: not kernel_pids(cfg["mark"]))
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    return facts


def is_served_by(kc, timeout=3.0) -> bool:
    """Whether a client made before a restart still gets an answer."""
    try:
        msg_id = kc.kernel_info()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = kc.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return True
    except Exception:
        pass
    return False


def scenario_many(cfg) -> dict:
    """``count`` kernelkit kernels at once through the provisioner, one port range."""
    import asyncio

    from jupyter_client import AsyncKernelManager

    low, high = free_range(cfg, 6 * cfg["count"] + 20)
    name = write_spec(cfg, "kk-gateway-many", port_range=f"{low}..{high}", launch_timeout=90)

    async def one_cell(km) -> str:
        """A client of ``km`` waits for it to be ready and runs a cell: what it printed."""
        printed = []
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=90)
            await kc.execute_interactive("print(2 + 3)", timeout=90, output_hook=lambda m: printed.append(m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
        finally:
            kc.stop_channels()
        return "".join(printed).strip()

    async def main():
        kms = [AsyncKernelManager(kernel_name=name) for _ in range(cfg["count"])]
        t0 = time.monotonic()
        await asyncio.gather(*(km.start_kernel() for km in kms))
        seconds = time.monotonic() - t0
        try:
            # a client of each at once (one after the other, each waiting for
            # its kernel's first cell, took 50 of this test's 85 s)
            results = list(await asyncio.gather(*(one_cell(km) for km in kms)))
            ports = [v for km in kms for k, v in km.get_connection_info().items() if k.endswith("_port")]
            pids = len(kernel_pids(cfg["mark"]))
        finally:
            await asyncio.gather(*(km.shutdown_kernel(now=False) for km in kms))
        return {"seconds": seconds, "results": results, "pids": pids, "distinct_ports": len(set(ports)),
                "in_range": all(low <= p <= high for p in ports),
                "left_after_shutdown": wait_until(lambda: not kernel_pids(cfg["mark"])) and kernel_pids(cfg["mark"])}

    return asyncio.run(main())


def _hold(cfg, script, *args):
    p = subprocess.Popen(in_server(cfg, [sys.executable, "-c", script, *map(str, args)]), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    return p


def _release(p) -> str:
    p.stdin.close()
    out = p.stdout.read()
    p.wait(10)
    return out


def scenario_ranges(cfg) -> dict:
    """Tight port ranges: exactly the six ports a kernel needs, and a range
    where other programs hold some ports (kernelkit and, where asked, stock)."""
    out = {}
    low, high = free_range(cfg, 6)
    out["exact"] = try_start(write_spec(cfg, "kk-exact", port_range=f"{low}..{high}"))
    out["exact"]["range"] = [low, high]
    low, high = low + 100, low + 109
    squatted = [low + 1, low + 4, low + 6, low + 8]
    holder = _hold(cfg, SQUATTER, *squatted)
    assert holder.stdout.readline().strip() == "holding"
    try:
        out["squatted"] = {launcher: [try_start(write_spec(cfg, f"sq-{launcher}", launcher=launcher,
                                                           port_range=f"{low}..{high}", launch_timeout=cfg.get("launch_timeout", 20)))
                                      for _ in range(cfg.get("tries", 1))]
                           for launcher in cfg.get("launchers", ["kernelkit"])}
    finally:
        _release(holder)
    out["squatted_range"], out["squatted_ports"] = [low, high], squatted
    return out


def scenario_race(cfg) -> dict:
    """A program that takes the ports a launcher picked, in the window before
    the kernel binds them: stock launch_ipykernel.py, then kernelkit."""
    out = {}
    for launcher in ("stock", "kernelkit"):
        name = write_spec(cfg, f"race-{launcher}", launcher=launcher, launch_timeout=cfg.get("launch_timeout", 15))
        # the stock launcher's connection file: tempfile.mkstemp(prefix="kernel-<id>_") in the server's /tmp
        kernel_id = str(uuid.uuid4())
        thief = _hold(cfg, THIEF, f"/tmp/kernel-{kernel_id}_*.json")
        try:
            # (a stock kernel whose ports were stolen can never bind them: it
            # is not waited for as long as one that may be slow to start)
            out[launcher] = try_start(name, ready_timeout=3 if launcher == "stock" else 10, kernel_id=kernel_id)
        finally:
            out[launcher]["stolen"] = json.loads(_release(thief).splitlines()[0])
        out[launcher]["left"] = wait_until(lambda: not kernel_pids(cfg["mark"])) and kernel_pids(cfg["mark"])
    return out


def restart_facts(name) -> dict:
    """What a client made before a restart gets, and how long the restart takes."""
    km, _ = start_kernel(name)
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        before = {k: v for k, v in km.get_connection_info().items() if k.endswith("_port")}
        t0 = time.monotonic()
        km.restart_kernel(now=False)
        seconds = time.monotonic() - t0
        after = {k: v for k, v in km.get_connection_info().items() if k.endswith("_port")}
        old_served = is_served_by(kc)
        kc.stop_channels()
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=30)
        new_result = run(kc, "print(6 * 7)")[1]
        kc.stop_channels()
        return {"seconds": seconds, "same_ports": before == after, "old_client_served": old_served, "new_client": new_result}
    finally:
        km.shutdown_kernel(now=True)


def scenario_bench(cfg) -> dict:
    """bench/bench_gateway.py: kernelkit and the stock launcher, side by side."""
    out = {}
    for launcher in ("kernelkit", "stock"):
        name = write_spec(cfg, f"bench-{launcher}", launcher=launcher, launch_timeout=cfg["launch_timeout"])
        runs = [try_start(name, ready_timeout=cfg["launch_timeout"]) for _ in range(cfg["launches"])]
        out[launcher] = {"launch": runs, "restart": restart_facts(name)}
    squat = scenario_ranges({**cfg, "launchers": ["kernelkit", "stock"], "tries": cfg["squat_tries"]})
    race = scenario_race(cfg)
    for launcher in ("kernelkit", "stock"):
        out[launcher]["squatted"] = squat["squatted"][launcher]
        out[launcher]["race"] = race[launcher]
    out["squatted_range"], out["squatted_ports"] = squat["squatted_range"], squat["squatted_ports"]
    return out


def scenario_server(cfg) -> dict:
    """A jupyter_server whose kernelspec uses the DistributedProvisioner: the
    kernels REST API and the channels websocket, as JupyterLab uses them."""
    import asyncio
    import socket

    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    from tornado.websocket import websocket_connect

    name = write_spec(cfg, "kk-gateway-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = uuid.uuid4().hex
    root = os.path.join(os.environ["HOME"], "notebooks")
    os.makedirs(root, exist_ok=True)
    server = subprocess.Popen([sys.executable, "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1", "--no-browser", "--allow-root",
                               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(cfg["directory"], "server.log"), "w"))
    base, http = f"http://127.0.0.1:{port}", AsyncHTTPClient()

    async def call(method, path, body=None):
        req = HTTPRequest(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"},
                          body=None if body is None else json.dumps(body), allow_nonstandard_methods=True, request_timeout=60)
        resp = await http.fetch(req, raise_error=False)
        return resp.code, (json.loads(resp.body) if resp.body else None)

    def message(msg_type, content, channel="shell"):
        return {"header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "u", "session": session,
                           "date": "", "version": "5.3"}, "parent_header": {}, "metadata": {}, "content": content,
                "channel": channel}

    session = uuid.uuid4().hex

    async def execute(ws, code, on_input=None, then=None):
        msg = message("execute_request", {"code": code, "silent": False, "allow_stdin": on_input is not None})
        await ws.write_message(json.dumps(msg))
        text, streaming, reply, idle = [], False, None, False
        while True:
            m = json.loads(await asyncio.wait_for(ws.read_message(), 60))
            if m.get("parent_header", {}).get("msg_id") != msg["header"]["msg_id"]:
                continue
            if m["msg_type"] == "stream":
                text.append(m["content"]["text"])
                if then and not streaming:
                    streaming = True
                    await then()
            elif m["msg_type"] == "input_request":
                await ws.write_message(json.dumps(message("input_reply", {"value": on_input}, "stdin")))
            elif m["msg_type"] == "execute_reply":
                reply = m["content"]
            elif m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                idle = True
            # shell and iopub reach the websocket in either order: the output is complete at idle
            if reply is not None and idle:
                return reply["status"], reply.get("ename"), "".join(text).strip()

    async def main():
        facts = {}
        for _ in range(300):
            try:
                if (await call("GET", "/api/status"))[0] == 200:
                    break
            except OSError:
                pass
            await asyncio.sleep(0.1)
        code, kernel = await call("POST", "/api/kernels", {"name": name})
        facts["created"] = code
        kid = kernel["id"]
        ws = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{port}/api/kernels/{kid}/channels?session_id={session}",
                                                 headers={"Authorization": f"token {token}"}))
        facts["pid"] = await execute(ws, "import os; print(os.getpid(), os.readlink('/proc/self/ns/net'))")
        facts["execute"] = await execute(ws, "print(6 * 7)")
        facts["input"] = await execute(ws, "print('hello', input('who? '))", on_input="server")

        async def interrupt():
            facts["interrupt_code"] = (await call("POST", f"/api/kernels/{kid}/interrupt"))[0]
        facts["interrupt"] = await execute(ws, "import time\nprint('sleeping', flush=True)\ntime.sleep(60)", then=interrupt)
        facts["restart_code"] = (await call("POST", f"/api/kernels/{kid}/restart"))[0]
        # new ports after a restart: the websocket made before hears nothing
        # (the server's streams still point at the old ports); JupyterLab
        # reconnects its websocket after a restart for this reason, so do we
        try:
            facts["old_websocket_after_restart"] = await asyncio.wait_for(execute(ws, "print('old')"), 5)
        except asyncio.TimeoutError:
            facts["old_websocket_after_restart"] = None
        ws.close()
        ws = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{port}/api/kernels/{kid}/channels?session_id={session}",
                                                 headers={"Authorization": f"token {token}"}))
        facts["after_restart"] = await execute(ws, "import os; print(os.getpid())")
        facts["delete_code"] = (await call("DELETE", f"/api/kernels/{kid}"))[0]
        ws.close()
        facts["left_after_delete"] = wait_until(lambda: not kernel_pids(cfg["mark"])) and kernel_pids(cfg["mark"])
        return facts

    try:
        return asyncio.run(main())
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    scenario, config = sys.argv[1], json.loads(sys.argv[2])
    config.setdefault("mark", uuid.uuid4().hex)
    _prepare_environment(config)
    print(json.dumps(globals()[f"scenario_{scenario}"](config)))
