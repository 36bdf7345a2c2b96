"""``kernelkit-handshake``: a jupyter_client provisioner that starts kernels through
the handshake (JEP 66) instead of handing them five pre-picked ports.

Select it in a kernelspec::

    "metadata": {"kernel_provisioner": {
        "provisioner_name": "kernelkit-handshake",
        "config": {"dialect": "B", "registration_timeout": 30}
    }}

``argv`` keeps ``{connection_file}``: the provisioner puts the registration
file's path there. ``dialect``: "B" (default: jupyter_client docs, xeus, carries
a kernel_id) or "A" (ark/Positron). Once the kernel has registered, the
KernelManager writes the usual connection file, with the kernel's real ports.
Everything after start (signals, interrupt, shutdown, waiting) is
LocalProvisioner's: the kernel is a local process in its own session.

Restarts keep the kernel's ports, so every client made before carries on:

- ``"preferred_ports": true`` (kernelkit kernels; ``kernelkit install`` sets
  it): the registration file names the previous ports as ``preferred_ports``;
  the kernel binds them, a fresh port only for one that is taken meanwhile,
  and registers what it bound.
- otherwise (a kernel that may not know ``preferred_ports``, e.g.
  xeus-python): when the previous ports are all free, the kernel is started
  on a classic connection file with them, as LocalProvisioner would; when one
  is taken, through a fresh handshake.

Either way, a port taken between the old kernel's end and the new kernel's
bind is the one case where clients must reconnect to new ports (the
KernelManager rewrites the connection file).

The kernel is the manager's process (``has_process``, ``poll``, so
``is_alive``) only once it has registered: the manager never says "alive"
with ports the kernel does not hold. Until then an interrupt waits for the
start (jupyter_client's rule when there is no process), a shutdown ends the
starting kernel (``cleanup``), and ``registration_timeout`` ends one that
never registers.

``transport: ipc`` works too: the registration socket and the kernel's
sockets are ipc paths in the Jupyter runtime dir (mode 0600).

A kernel on another host: ``"launch_prefix": ["ssh", "HOST"]`` runs the kernel
command there (as the remote shell parses it), ``"registration_ip"`` is this
host's address the kernel registers to; the registration info goes on the
kernel's stdin (``{connection_file}`` becomes ``-``), interrupts go as
messages, and the local process the provisioner signals and waits for is ssh.
With ``transport_encryption`` the remote kernel makes its own CurveZMQ keys;
a restart hands the new kernel that pair, which the clients hold. A restart
whose preferred port was taken logs one warning naming it.
"""

import logging
import os
import socket

import zmq
from jupyter_client.localinterfaces import is_local_ip, local_ips
from jupyter_client.provisioning import LocalProvisioner
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Bool, CaselessStrEnum, Float, List, Unicode

from . import remote
from .launch import DEFAULT_TIMEOUT, PendingLaunch
from ..startup.endpoints import ipc_path
from ..startup.files import PORT_KEYS

log = logging.getLogger("kernelkit.launcher")


def _previous_ports(km) -> dict | None:
    """The manager's five ports when it holds them all (a restart), else None."""
    ports = {name: getattr(km, name, 0) for name in PORT_KEYS}
    return ports if all(ports.values()) else None


def _all_free(transport: str, ip: str, ports: dict) -> bool:
    """Could a kernel bind every one of ``ports`` right now?"""
    if transport == "ipc":
        return not any(os.path.exists(ipc_path(ip, port)) for port in ports.values())
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    for port in ports.values():
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # as libzmq binds: a port whose old connections linger in TIME_WAIT is free
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((ip, port))
            except OSError:
                return False
    return True


def _note_ports_not_kept(preferred, info) -> None:
    """One log line when a restarted kernel could not bind a previous port."""
    moved = [f"{name} {port} (now {info[name]})" for name, port in (preferred or {}).items() if info.get(name) != port]
    if moved:
        log.warning("kernel restart: previous %s taken meanwhile; the kernel bound a fresh one, and clients made "
                    "before the restart must reconnect", ", ".join(moved))


def _keep_ports_across_restarts(km) -> None:
    """The kernel picked its ports: none is one of jupyter_client's random picks.

    The manager takes every port it did not know before the first start as
    "random" and forgets those when its restarter asks for new ports
    (``random_ports_until_alive``: a kernel that dies within ``stable_start_time``
    of a start, about 10 s). The new kernel would then register fresh ports and
    every client made before would hear nothing. LocalProvisioner avoids this by
    picking the ports before the manager records them; a handshake kernel binds
    its previous ports again, or a fresh one for a port that is taken, so
    forgetting them gains nothing here.
    """
    if km is not None and getattr(km, "transport", "tcp") == "tcp":
        km._random_port_names = []


class HandshakeProvisioner(LocalProvisioner):
    dialect = CaselessStrEnum(["A", "B"], default_value="B", config=True, help="registration dialect: B (kernel_id, DEALER) or A (REQ, handshake_request)")
    registration_timeout = Float(DEFAULT_TIMEOUT, config=True, help="seconds to wait for the kernel to register")
    # a kernel on another host (see kernelkit.launcher.remote)
    launch_prefix = List(Unicode(), config=True, help='runs the kernel command elsewhere, e.g. ["ssh", "HOST"]; the kernel is then remote')
    registration_ip = Unicode(None, allow_none=True, config=True, help="this host's address the remote kernel registers to")
    kernel_ip = Unicode(remote.BIND_ALL, config=True, help="where a remote kernel binds (default: all its interfaces)")
    registration_via = CaselessStrEnum(list(remote.REGISTRATION_VIA), default_value=None, allow_none=True, config=True,
                                       help="how the kernel gets its registration info (default: stdin when remote, else file)")
    allowed_peers = List(Unicode(), config=True, help="addresses a remote kernel may register from (empty: any)")
    preferred_ports = Bool(False, config=True, help="the kernel binds a registration file's preferred_ports "
                           "(kernelkit kernels): restarts re-bind the previous ports through the handshake")

    _launch: PendingLaunch | None = None
    _stderr_tail = None
    _classic = False  # this start is on a classic connection file (a foreign kernel back on its ports)

    async def pre_launch(self, **kwargs):
        """Register the launch, write the registration file, build the command.

        Unlike LocalProvisioner, no ports are picked and no connection file is
        written here: the manager writes it from what launch_kernel returns.
        """
        km = self.parent
        extra_arguments = kwargs.pop("extra_arguments", [])
        encryption = kwargs.pop("transport_encryption", None)
        self._close_launch()
        self._classic = False
        if km is None:
            options = {}
            curve = None
        elif self.launch_prefix:
            # a signal would reach the local ssh, not the kernel
            self.kernel_spec.interrupt_mode = "message"
            # the manager's ip and curve keys are this host's; the kernel picks its own
            options = {"key": km.session.key, "signature_scheme": km.session.signature_scheme, "ip": self.kernel_ip, "transport": km.transport}
            if self._wants_curve(km, encryption):
                options["encryption"] = "curve"
            curve = None
            previous = _previous_ports(km)
            if previous and self.preferred_ports:
                # the remote kernel binds them first (whether they are free is for it to find out)
                options["preferred_ports"] = previous
            if previous and "encryption" in options and km.curve_secretkey:
                # a restart: the kernel's previous keys, which every client made before holds
                curve = km.curve_publickey, km.curve_secretkey
        else:
            if km.transport == "tcp" and not is_local_ip(km.ip):
                raise RuntimeError(f"Can only launch a kernel on a local interface. This one is not: {km.ip}. Valid addresses: {local_ips()}")
            # the manager's key, so clients sharing its Session keep working across restarts
            options = {"key": km.session.key, "signature_scheme": km.session.signature_scheme, "ip": km.ip, "transport": km.transport}
            curve = self._curve_keys(km, encryption)
            previous = _previous_ports(km)
            if previous and self.preferred_ports:
                options["preferred_ports"] = previous
            elif previous and _all_free(km.transport, km.ip, previous):
                return await self._pre_launch_classic(km, extra_arguments, **kwargs)
            elif previous:
                log.info("kernel restart: a previous port is taken, so the kernel starts through a fresh handshake")
        self._launch = PendingLaunch(dialect=self.dialect, curve=curve, **options, **self._remote_options())
        if km is None or self.launch_prefix:
            # a remote command is the remote host's: no local paths, no python -> sys.executable
            cmd = self.launch_prefix + self._launch.command(self.kernel_spec.argv + extra_arguments)
        else:
            cmd = self._format_cmd(km, extra_arguments)
        return await KernelProvisionerBase.pre_launch(self, cmd=cmd, **kwargs)

    async def _pre_launch_classic(self, km, extra_arguments, **kwargs):
        """Start on the manager's connection file (the previous ports), as LocalProvisioner does."""
        self._classic = True
        km.write_connection_file()  # kept across the restart: already there, with those ports
        self.connection_info = km.get_connection_info()
        cmd = km.format_kernel_cmd(extra_arguments=extra_arguments)
        return await KernelProvisionerBase.pre_launch(self, cmd=cmd, **kwargs)

    def _format_cmd(self, km, extra_arguments) -> list:
        # format_kernel_cmd fills {connection_file} from km.connection_file; point
        # that at the registration file for the call, so every other substitution
        # ({resource_dir}, {prefix}, launch args, python -> sys.executable) stays
        # exactly jupyter_client's
        self._launch.command(self.kernel_spec.argv)  # ValueError if argv does not fit registration_via
        # no file (stdin, env): a stand-in path (the manager makes it absolute), then "-"
        path = self._launch.path or os.path.join(os.sep, f"kernelkit-no-file-{self._launch.expected.kernel_id}")
        saved = km.connection_file
        km.connection_file = path
        try:
            cmd = km.format_kernel_cmd(extra_arguments=extra_arguments)
        finally:
            km.connection_file = saved
        if self._launch.path is None:
            cmd = [a.replace(path, self._launch.file_argument or "") for a in cmd]
        return cmd

    def _remote_options(self) -> dict:
        """PendingLaunch's options for a kernel on another host (none when local)."""
        if not self.launch_prefix:
            return {"registration_via": self.registration_via or "file"}
        return {"remote": True, "registration_ip": self.registration_ip, "registration_via": self.registration_via or "stdin",
                "allowed_peers": tuple(self.allowed_peers)}

    @staticmethod
    def _wants_curve(km, requested) -> bool:
        """Whether the manager's policy asks for CurveZMQ (as LocalProvisioner)."""
        if not hasattr(km, "_transport_encryption_policy"):
            return False
        policy = km._transport_encryption_policy(requested if requested is not None else km.transport_encryption)
        return policy != "disabled" and (policy == "required" or km._kernel_supports_curve_encryption())

    @classmethod
    def _curve_keys(cls, km, requested):
        """CurveZMQ server keys for a local kernel, by the manager's policy."""
        if not cls._wants_curve(km, requested):
            return None
        if km.curve_publickey is None:
            km.curve_publickey, km.curve_secretkey = zmq.curve_keypair()
        return km.curve_publickey, km.curve_secretkey

    async def launch_kernel(self, cmd, **kwargs):
        """Start the process and wait for its registration; returns connection info
        with the kernel's own ports. On failure the process is killed and
        HandshakeError says why (with the kernel's last stderr lines)."""
        if self._classic:
            return await super().launch_kernel(cmd, **kwargs)
        launch = self._launch
        if launch is None:
            raise RuntimeError("launch_kernel without pre_launch")
        self.process = None  # not alive until registered
        try:
            process = launch.spawn(cmd, **self._scrub_kwargs(kwargs))
            self._stderr_tail = launch.stderr_tail
            self.pid = process.pid
            try:
                self.pgid = os.getpgid(self.pid)
            except OSError:
                self.pgid = None
            self.cwd = kwargs.get("cwd") or os.getcwd()
            self.connection_info = await launch.async_wait(self.registration_timeout)
            _note_ports_not_kept(launch.expected.registration.get("preferred_ports"), self.connection_info)
            _keep_ports_across_restarts(self.parent)
        except BaseException:
            launch.abort()
            raise
        finally:
            self._close_launch()
        # the manager's process only now (see the module's docstring): the manager
        # records these ports in this same step, no await between, so whoever sees
        # "alive" (jupyter_server connects a reconnecting websocket then) sees them
        self.process = process
        return self.connection_info

    def _close_launch(self) -> None:
        if self._launch is not None:
            self._launch.close()
            self._launch = None

    async def cleanup(self, restart: bool = False) -> None:
        # no cached ports to return (LocalProvisioner's cleanup): the kernel picked them.
        # A shutdown during a start ends the kernel that has not registered yet
        # (the manager sees no process to signal or wait for: not alive yet).
        if self._launch is not None:
            self._launch.abort()
            self._launch = None

    @property
    def stderr_tail(self) -> list:
        """The last lines the kernel wrote to stderr (for diagnostics)."""
        return list(self._stderr_tail or ())

    async def get_provisioner_info(self) -> dict:
        info = await super().get_provisioner_info()
        info["dialect"] = self.dialect
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.dialect = provisioner_info.get("dialect", self.dialect)
