"""Remote kernels for real: two network namespaces joined by a veth pair, sshd
in one (the kernels' host), the launcher and jupyter_client in the other.
Kernels start through ssh with their registration info on stdin, bind every
interface of their host, make their own CurveZMQ keys, and register back; the
launcher learns where they are from the registration itself (tests/netns.py
builds the two hosts; tests/remote_driver.py is the launcher's side)."""

import json
import os
import sys
import uuid

import pytest
import zmq

from netns import run_in_client
from support import HERE

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE support")

DRIVER = str(HERE / "remote_driver.py")
EXEC_KERNEL_PATH = str(HERE / "kernels" / "exec_kernel.py")


def drive(hosts, scenario, timeout=150, env=None, **cfg) -> dict:
    cfg = {"ssh": hosts.ssh(), "registration_ip": hosts.client_ip, "server_ip": hosts.server_ip, **cfg}
    done = run_in_client(hosts, DRIVER, scenario, json.dumps(cfg), timeout=timeout, env=env)
    assert done.returncode == 0, f"driver failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def marked(mark, *argv) -> list:
    """A remote command whose processes carry a marker we can look for."""
    return ["env", f"KK17_MARK={mark}", *argv]


@pytest.fixture
def jupyter_path(tmp_path, two_hosts):
    """Kernelspecs for the bundled Python kernel on the server, through ssh,
    curve on: ``remote-python``, and ``remote-python-keep`` with
    ``preferred_ports`` (restarts keep the ports)."""
    for name, extra in (("remote-python", {}), ("remote-python-keep", {"preferred_ports": True})):
        spec = {
            "argv": [sys.executable, "-m", "kernelkit.python", "-f", "{connection_file}"],
            "display_name": "Python (remote)",
            "language": "python",
            "metadata": {
                "supported_encryption": ["curve"],
                "kernel_provisioner": {
                    "provisioner_name": "kernelkit-handshake",
                    "config": {"launch_prefix": two_hosts.ssh(), "registration_ip": two_hosts.client_ip,
                               "allowed_peers": [two_hosts.server_ip], **extra},
                },
            },
        }
        d = tmp_path / "share" / "kernels" / name
        d.mkdir(parents=True)
        (d / "kernel.json").write_text(json.dumps(spec))
    return {"JUPYTER_PATH": str(tmp_path / "share"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}


@pytest.mark.timeout(180)
def test_python_kernel_through_ssh(two_hosts, jupyter_path):
    facts = drive(two_hosts, "session", kernel_name="remote-python", env={**os.environ, **jupyter_path})
    # the kernel runs on the other host and clients were told where it is
    assert facts["first"]["netns"] != facts["launcher_netns"]
    assert facts["ip"] == two_hosts.server_ip
    assert facts["curve"], "the connection info carries the kernel's own curve keys"
    assert facts["interrupt_mode"] == "message"
    assert facts["execute"][0]["status"] == "ok" and facts["execute"][1] == "42"
    assert facts["input"][0]["status"] == "ok" and facts["input"][1] == "hello remote"
    assert facts["interrupt"]["status"] == "error" and facts["interrupt"]["ename"] == "KeyboardInterrupt"
    assert facts["interrupt"]["seconds"] < 10
    assert facts["after_interrupt"][1] == "still here"
    # encrypted: only a client with the kernel's key is served
    assert facts["right_key_client_answered"]
    assert not facts["plain_client_answered"]
    assert not facts["wrong_key_client_answered"]
    # restart: a new kernel process on the remote host, the old one gone
    assert facts["restarted"]["pid"] != facts["first"]["pid"]
    assert facts["restarted"]["netns"] == facts["first"]["netns"]
    assert facts["restarted_execute"][1] == "again"
    assert facts["first_gone_after_restart"]
    assert not facts["alive_after_shutdown"] and facts["gone_after_shutdown"]
    assert facts["gone_after_ssh_killed"], "the remote kernel outlived its ssh session"


@pytest.mark.timeout(180)
def test_restarts_of_a_remote_kernel_keep_its_ports_and_clients(two_hosts, jupyter_path):
    facts = drive(two_hosts, "restart", kernel_name="remote-python-keep", env={**os.environ, **jupyter_path})
    first = facts["first"]
    assert first["netns"] != facts["launcher_netns"]
    # by hand and by the autorestarter: a new process on the server, the same
    # five ports and keys, and the client made at the start runs the next cell
    pids = [first["pid"]]
    for case, text in (("by_hand", "after a restart"), ("autorestart", "after a crash")):
        after = facts[case]
        assert after["netns"] == first["netns"], case
        assert after["pid"] not in pids, case
        pids.append(after["pid"])
        assert after["ports"] == first["ports"], case
        assert after["curve"] == first["curve"], case
        assert after["execute"][0]["status"] == "ok" and after["execute"][1] == text, (case, after["execute"])
    # a port taken on the server meanwhile: a fresh one for it, the other four
    # kept, one log line; clients reconnect to the new connection file
    taken = facts["port_taken"]
    assert taken["ports"]["shell_port"] != first["ports"]["shell_port"]
    assert {k: v for k, v in taken["ports"].items() if k != "shell_port"} == {k: v for k, v in first["ports"].items() if k != "shell_port"}
    assert taken["execute"][0]["status"] == "ok" and taken["execute"][1] == "on a fresh port"
    assert len(taken["log"]) == 1, taken["log"]
    assert f"previous shell_port {first['ports']['shell_port']} (now {taken['ports']['shell_port']}) taken" in taken["log"][0]
    assert "clients made before the restart must reconnect" in taken["log"][0]


@pytest.mark.timeout(240)
def test_twenty_remote_kernels_at_once(two_hosts):
    mark = uuid.uuid4().hex
    count = 20
    facts = drive(two_hosts, "many", timeout=220, count=count, mark=mark,
                  kernel=marked(mark, sys.executable, EXEC_KERNEL_PATH, "-f", "{connection_file}"))
    assert facts["results"] == ["5"] * count
    assert facts["ips"] == [two_hosts.server_ip]
    assert facts["curve"]
    assert facts["pids"] == count


@pytest.mark.timeout(180)
def test_bad_remote_launches_fail_with_one_line_and_leave_nothing(two_hosts):
    mark = uuid.uuid4().hex
    unreachable = two_hosts.unreachable_ip
    kernel = marked(mark, sys.executable, EXEC_KERNEL_PATH, "-f", "{connection_file}", "--registration-timeout", "2")
    facts = drive(two_hosts, "bad", mark=mark, kernel=kernel, unreachable_ip=unreachable,
                  ssh_wrong_port=two_hosts.ssh(port=2222))
    for case, outcome in facts.items():
        assert outcome["error"] and "\n" not in outcome["error"], (case, outcome)
        assert outcome["left_running"] == [], (case, outcome)
        assert not outcome.get("ssh_running"), (case, outcome)
    assert f"no registration receipt from the launcher at {unreachable}:" in facts["unreachable"]["error"]
    assert "registration receipt rejected" in facts["hmac_key_mismatch"]["error"]
    assert "is registration_publickey the launcher's key?" in facts["curve_key_mismatch"]["error"]
    assert f"kernel registered from {two_hosts.server_ip}, not from an expected peer" in facts["unexpected_peer"]["error"]
    assert "Connection refused" in facts["ssh_cannot_connect"]["error"]
    assert "cannot start the kernel '/nonexistent/ssh'" in facts["no_ssh_binary"]["error"]
    for case in ("dialect_a_remote", "loopback_registration"):
        assert not facts[case]["started"], case
    assert "dialect A registers on the kernel's own bind address" in facts["dialect_a_remote"]["error"]
    assert "a remote kernel needs registration_ip" in facts["loopback_registration"]["error"]
