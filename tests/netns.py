"""Two hosts on one machine for the remote-kernel tests: two network namespaces
joined by a veth pair, Debian's sshd in one ("server"), the launcher and its
clients in the other ("client"). Needs root and ``ip netns``; sshd comes from
Debian's openssh-server, installed with apt-get when missing. Traffic only ever
goes to addresses inside the namespaces made here.

Everything made here is removed when the fixture ends: processes (killed by
pid), namespaces (which takes their interfaces with them), files.
"""

import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field


SSHD = "/usr/sbin/sshd"
READY_TIMEOUT = 20.0


def _run(*cmd, check=True, timeout=60, **kw):
    return subprocess.run(cmd, check=check, timeout=timeout, capture_output=True, text=True, **kw)


def why_not_available() -> str | None:
    """None when two namespaces and an sshd can be had here; else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, sshd)"
    if shutil.which("ip") is None:
        return "needs the ip command (iproute2)"
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "needs the OpenSSH client (ssh, ssh-keygen)"
    probe = f"kk17probe{secrets.token_hex(3)}"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    _run("ip", "netns", "delete", probe, check=False)
    if not os.path.exists(SSHD):
        if shutil.which("apt-get") is None:
            return "needs sshd (Debian's openssh-server) and there is no apt-get to install it"
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _run("apt-get", "update", "-qq", check=False, timeout=300, env=env)
        got = _run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "openssh-server", check=False, timeout=600, env=env)
        if not os.path.exists(SSHD):
            return f"apt-get could not install openssh-server: {(got.stderr or got.stdout).strip().splitlines()[-1:]}"
    return None


@dataclass
class TwoHosts:
    client_ns: str
    server_ns: str
    client_ip: str  # the launcher's host, as the server sees it
    server_ip: str  # where sshd listens and the kernels run
    key_file: str  # the ssh client key authorised on the server
    unreachable_ip: str  # an address of the client host that the server has no route to
    directory: str
    processes: list = field(default_factory=list)

    def ssh(self, port=22) -> list:
        """The ssh command prefix that runs a command on the server."""
        return ["ssh", "-F", "/dev/null", "-i", self.key_file, "-p", str(port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=10", f"root@{self.server_ip}"]

    def in_client(self, argv) -> list:
        return ["ip", "netns", "exec", self.client_ns, *argv]


def _start_sshd(hosts: TwoHosts) -> subprocess.Popen:
    d = hosts.directory
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/host_key")
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hosts.key_file)
    os.rename(f"{hosts.key_file}.pub", f"{d}/authorized_keys")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    with open(f"{d}/sshd_config", "w") as f:
        f.write(f"""ListenAddress {hosts.server_ip}
Port 22
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
PidFile {d}/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
# 20 kernels start at once: let every connection through
MaxStartups 100
MaxSessions 100
""")
    proc = subprocess.Popen(["ip", "netns", "exec", hosts.server_ns, SSHD, "-D", "-e", "-f", f"{d}/sshd_config"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    hosts.processes.append(proc)
    # -e: sshd logs to stderr; it says when it listens
    deadline = time.monotonic() + READY_TIMEOUT
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line.strip())
        if "Server listening" in line:
            # keep draining its log so it never blocks on a full pipe
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc
    raise RuntimeError(f"sshd did not start: {seen[-3:]}")


def make_two_hosts(directory) -> TwoHosts:
    tag = secrets.token_hex(3)
    a, b = secrets.randbelow(200) + 20, secrets.randbelow(250) + 1
    net = f"10.{a}.{b}"
    # in another /24: the server's only route is to the veth's
    unreachable = f"10.{a}.{b % 250 + 1}.77"
    hosts = TwoHosts(f"kk17c-{tag}", f"kk17s-{tag}", f"{net}.1", f"{net}.2", f"{directory}/client_key", unreachable, str(directory))
    try:
        for ns in (hosts.client_ns, hosts.server_ns):
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        # made inside the client namespace, so nothing appears in the machine's own
        _run("ip", "-n", hosts.client_ns, "link", "add", f"kkc{tag}", "type", "veth", "peer", "name", f"kks{tag}", "netns", hosts.server_ns)
        _run("ip", "-n", hosts.client_ns, "addr", "add", f"{hosts.client_ip}/24", "dev", f"kkc{tag}")
        _run("ip", "-n", hosts.server_ns, "addr", "add", f"{hosts.server_ip}/24", "dev", f"kks{tag}")
        _run("ip", "-n", hosts.client_ns, "link", "set", f"kkc{tag}", "up")
        _run("ip", "-n", hosts.client_ns, "addr", "add", f"{hosts.unreachable_ip}/32", "dev", "lo")
        _run("ip", "-n", hosts.server_ns, "link", "set", f"kks{tag}", "up")
        _start_sshd(hosts)
    except BaseException:
        remove_two_hosts(hosts)
        raise
    return hosts


def remove_two_hosts(hosts: TwoHosts) -> None:
    for proc in hosts.processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # processes still in a namespace (a kernel that outlived its test): by pid
    for ns in (hosts.server_ns, hosts.client_ns):
        pids = _run("ip", "netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        _run("ip", "netns", "delete", ns, check=False)


def run_in_client(hosts: TwoHosts, *args, timeout=120, env=None) -> subprocess.CompletedProcess:
    """Run ``python args...`` in the client namespace (the launcher's host)."""
    return subprocess.run(hosts.in_client([sys.executable, *args]), capture_output=True, text=True, timeout=timeout, env=env)
