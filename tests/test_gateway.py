"""kernelkit kernels started by gateway_provisioners, for real: its
DistributedProvisioner (the ssh one) in one network namespace starts
``python -m kernelkit.gateway`` on the other through a real sshd, with the
launch protocol its Kubernetes, Docker and YARN provisioners use too: the
response address, the RSA/AES payload, the port range, the comm port.
tests/gateway_driver.py is the notebook server's side; tests/netns.py makes
the two hosts. The bad-input cases run the module on this host."""

import json
import os
import socket
import subprocess
import sys

import pytest

from netns import run_in_client
from support import HERE

DRIVER = str(HERE / "gateway_driver.py")


def drive(hosts, scenario, timeout=170, **cfg) -> dict:
    with open(f"{hosts.directory}/host_key.pub") as f:
        host_key = " ".join(f.read().split()[:2])
    cfg = {"server_ip": hosts.server_ip, "client_ip": hosts.client_ip, "server_ns": hosts.server_ns,
           "key_file": hosts.key_file, "host_key": host_key, "directory": hosts.directory, **cfg}
    done = run_in_client(hosts, DRIVER, scenario, json.dumps(cfg), timeout=timeout)
    assert done.returncode == 0, f"driver failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(200)
def test_a_kernel_started_by_the_distributed_provisioner(two_hosts):
    facts = drive(two_hosts, "session")
    # on the other host, found there by the provisioner, in the range it gave
    assert facts["first"]["netns"] != facts["launcher_netns"]
    assert facts["ip"] == two_hosts.server_ip
    low, high = facts["range"]
    assert facts["ports"] == list(range(low, high + 1)), "five channels and the comm port, all in the six-port range"
    assert facts["curve"]
    assert facts["execute"][0]["status"] == "ok" and facts["execute"][1] == "42"
    assert facts["input"][0]["status"] == "ok" and facts["input"][1] == "hello remote"
    # interrupt: the provisioner's SIGINT through the comm port
    assert facts["interrupt"]["status"] == "error" and facts["interrupt"]["ename"] == "KeyboardInterrupt"
    assert facts["interrupt"]["seconds"] < 10
    assert facts["after_interrupt"][1] == "still here"
    # transport encryption asked for: only a client with the kernel's keys is served
    assert facts["right_key_client_answered"] and not facts["plain_client_answered"]
    # restart: a new process on the same host; the old one gone
    assert facts["restarted"]["netns"] == facts["first"]["netns"]
    assert facts["restarted"]["pid"] != facts["first"]["pid"]
    assert facts["restarted_execute"][1] == "again"
    assert facts["first_gone_after_restart"]
    # killed on the remote host: the provisioner's poll notices, nothing stays
    assert facts["noticed_kill"], facts
    assert facts["left_after_kill"] == []
    assert not facts["alive_after_shutdown"] and facts["gone_after_shutdown"]


@pytest.mark.timeout(240)
def test_twenty_kernels_at_once_in_one_port_range(two_hosts):
    facts = drive(two_hosts, "many", timeout=230, count=20)
    assert facts["results"] == ["5"] * 20
    assert facts["pids"] == 20, "one process per kernel: no helper process beside it"
    assert facts["distinct_ports"] == 100 and facts["in_range"]
    assert facts["left_after_shutdown"] == []


@pytest.mark.timeout(200)
def test_tight_and_squatted_port_ranges(two_hosts):
    facts = drive(two_hosts, "ranges", tries=3)
    exact = facts["exact"]
    low, high = exact["range"]
    assert exact["started"] and exact["result"] == "42", exact
    assert sorted([*exact["ports"].values(), exact["comm_port"]]) == list(range(low, high + 1))
    low, high = facts["squatted_range"]
    free = set(range(low, high + 1)) - set(facts["squatted_ports"])
    for attempt in facts["squatted"]["kernelkit"]:
        assert attempt["started"] and attempt["result"] == "42", attempt
        assert {*attempt["ports"].values(), attempt["comm_port"]} == free


@pytest.mark.timeout(200)
def test_ports_taken_between_pick_and_bind_fail_the_stock_launcher_not_kernelkit(two_hosts):
    facts = drive(two_hosts, "race", launch_timeout=15)
    stock, kk = facts["stock"], facts["kernelkit"]
    # the stock launcher picks, closes, writes, then its kernel binds: the thief got in between
    assert stock["stolen"], stock
    assert stock.get("result") != "42", stock
    # kernelkit binds once: nothing to steal, the kernel runs
    assert kk["stolen"] == [] and kk["result"] == "42", kk
    assert kk["left"] == []


# ---------------------------------------------------------------- bad input

def _public_key() -> str:
    from Cryptodome.PublicKey import RSA

    pem = RSA.generate(1024).publickey().export_key("PEM").decode()
    return "".join(pem.splitlines()[1:-1])


def _free_range(size):
    """``size`` consecutive free ports on this host."""
    for base in range(41000, 47000, 50):
        socks = []
        try:
            for port in range(base, base + size):
                s = socket.socket()
                socks.append(s)
                s.bind(("0.0.0.0", port))
            return base, base + size - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free range")


def _all_free(low, high) -> bool:
    socks = []
    try:
        for port in range(low, high + 1):
            s = socket.socket()
            socks.append(s)
            s.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def _refused_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    return port


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ["malformed_address", "too_small", "inverted", "bad_key", "refused", "unreachable", "no_kernel_id", "range_full"])
def test_bad_input_is_one_line_exit_1_and_nothing_bound(case):
    low, high = _free_range(8)
    args = {"--response-address": f"127.0.0.1:{_refused_port()}", "--public-key": _public_key(),
            "--kernel-id": "k1", "--port-range": f"{low}..{high}", "--response-timeout": "2"}
    expect = {
        "malformed_address": ("--response-address", "127.0.0.1", "expected IP:PORT"),
        "too_small": ("--port-range", f"{low}..{low + 4}", "holds 5 ports; a kernel needs 6"),
        "inverted": ("--port-range", f"{high}..{low}", "inverted"),
        "bad_key": ("--public-key", "bm90IGEga2V5", "not an RSA public key"),
        "refused": (None, None, "Connection refused"),
        # TEST-NET-1 (RFC 5737): refused or unanswered, as the network has it
        "unreachable": ("--response-address", "192.0.2.1:8877", "192.0.2.1:8877"),
        "no_kernel_id": ("--kernel-id", "", "--kernel-id is required"),
        # six ports, one held by another program: the kernel binds five, then finds none left
        "range_full": ("--port-range", f"{low}..{low + 5}", f"no free port left in {low}..{low + 5}"),
    }[case]
    flag, value, message = expect
    if flag:
        args[flag] = value
    env = {k: v for k, v in os.environ.items() if k not in ("KERNEL_ID", "PUBLIC_KEY", "RESPONSE_ADDRESS", "PORT_RANGE")}
    held = socket.socket()
    if case == "range_full":
        held.bind(("0.0.0.0", low + 3))
        held.listen()
    try:
        done = subprocess.run([sys.executable, "-m", "kernelkit.gateway", *[x for kv in args.items() for x in kv]],
                              capture_output=True, text=True, timeout=60, env=env)
    finally:
        held.close()
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kernel did not start: ") and message in lines[0], done.stderr
    assert _all_free(low, high), "a port of the range is still bound"


@pytest.mark.timeout(200)
def test_a_jupyter_server_runs_kernelkit_through_the_distributed_provisioner(two_hosts):
    facts = drive(two_hosts, "server")
    assert facts["created"] == 201
    status, _, text = facts["pid"]
    pid, netns = text.split()
    assert status == "ok" and netns != os.readlink("/proc/self/ns/net")
    assert facts["execute"] == ["ok", None, "42"]
    assert facts["input"] == ["ok", None, "hello server"]
    assert facts["interrupt_code"] == 204 and facts["interrupt"][:2] == ["error", "KeyboardInterrupt"]
    # restart: new ports, so a websocket made before hears nothing (as with the
    # stock launcher); the one JupyterLab opens after a restart runs the next cell
    assert facts["restart_code"] == 200
    assert facts["old_websocket_after_restart"] is None
    assert facts["after_restart"][0] == "ok" and facts["after_restart"][2] != pid
    assert facts["delete_code"] == 204 and facts["left_after_delete"] == []


@pytest.mark.timeout(120)
def test_a_container_entry_command_reads_the_environment(tmp_path):
    """What a Kubernetes or Docker provisioner's pod runs: ``python -m
    kernelkit.gateway`` with no arguments, the launch values in the
    environment. The answer is decrypted by gateway_provisioners' own
    ResponseManager code; the comm port then takes a liveness poll and a
    shutdown, and the kernel ends with its range free again."""
    import logging
    from types import SimpleNamespace

    from Cryptodome.PublicKey import RSA
    from gateway_provisioners.response_manager import ResponseManager
    from jupyter_client import BlockingKernelClient

    private = RSA.generate(1024)
    public = "".join(private.publickey().export_key("PEM").decode().splitlines()[1:-1])
    low, high = _free_range(6)
    response = socket.socket()
    response.bind(("127.0.0.1", 0))
    response.listen()
    env = {**os.environ, "KERNEL_ID": "pod-kernel", "RESPONSE_ADDRESS": f"127.0.0.1:{response.getsockname()[1]}",
           "PUBLIC_KEY": public, "PORT_RANGE": f"{low}..{high}", "TRANSPORT_ENCRYPTION": "required",
           "KERNEL_CLASS_NAME": "ipykernel.ipkernel.IPythonKernel"}
    proc = subprocess.Popen([sys.executable, "-m", "kernelkit.gateway"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        response.settimeout(60)
        conn, _ = response.accept()
        with conn:
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
        manager = SimpleNamespace(_private_key=private, log=logging.getLogger("test"), _response_registry={})
        info = ResponseManager._decode_payload(manager, data.decode())
        assert info["kernel_id"] == "pod-kernel" and info["pid"] == proc.pid
        ports = sorted([info[f"{c}_port"] for c in ("shell", "iopub", "stdin", "control", "hb")] + [info["comm_port"]])
        assert ports == list(range(low, high + 1))
        assert len(info["curve_publickey"]) == 40 and len(info["curve_secretkey"]) == 40

        kc = BlockingKernelClient()
        kc.load_connection_info({**info, "ip": "127.0.0.1"})
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=30)
            out = []
            reply = kc.execute_interactive("print(6 * 7)", timeout=30, output_hook=out.append)
            assert reply["content"]["status"] == "ok"
            assert "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream").strip() == "42"
        finally:
            kc.stop_channels()

        def comm(request):
            with socket.create_connection(("127.0.0.1", info["comm_port"]), timeout=5) as s:
                s.sendall(json.dumps(request).encode())

        comm({"signum": 0})  # the liveness poll: accepted, nothing happens
        comm("not an object")  # tolerated: a log line
        assert proc.poll() is None
        comm({"shutdown": 1})
        assert proc.wait(timeout=15) == 0
        assert _all_free(low, high)
        with pytest.raises(ConnectionRefusedError):
            comm({"signum": 0})
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        response.close()
