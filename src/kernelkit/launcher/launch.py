"""Start one kernel through the handshake: registration file, process, wait.

:class:`PendingLaunch` is the part shared by :func:`launch_kernel` and the
jupyter_client provisioner: it registers the launch with a
:class:`~.registration.RegistrationService`, writes the registration file,
starts the process and waits for the kernel to report its ports, failing fast
when the process exits first.
"""

import asyncio
import collections
import concurrent.futures
import json
import os
import secrets
import signal
import logging
import subprocess
import tempfile
import threading
import uuid
from dataclasses import dataclass, field

from jupyter_client.launcher import launch_kernel as _popen_kernel
from jupyter_core.paths import jupyter_runtime_dir, secure_write

from ..startup.endpoints import ipc_path
from ..startup.files import PORT_KEYS
from ..startup.sources import ENV_VAR, STDIN
from ..wire.signing import DEFAULT_SCHEME
from . import remote as remote_launch
from .registration import LOOPBACK, HandshakeError, RegistrationService, remove_if_exists, shared_service

log = logging.getLogger("kernelkit.launcher")

DEFAULT_TIMEOUT = 30.0
STDERR_TAIL_LINES = 20
_WILDCARDS = remote_launch.WILDCARDS


def _new_key() -> str:
    return secrets.token_hex(32)


def write_registration_file(data: dict, name: str, directory: str | None = None) -> str:
    """Write ``data`` as JSON, readable by the owner only; returns the path.

    In ``directory`` (the Jupyter runtime dir); where that cannot be written
    (missing and not makeable, read-only, full), in the system's temporary
    directory with a warning, as jupyter_client's KernelManager puts a
    connection file it has no path for. HandshakeError names both when neither
    can be written. A file that could not be written whole is removed.
    """
    directory = directory or jupyter_runtime_dir()
    text = json.dumps(data, indent=1)
    path = os.path.join(directory, f"kernelkit-registration-{name}.json")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        _write_whole(path, lambda: secure_write(path), text)  # 0600 from creation: the key is never readable by others
        return path
    except OSError as e:
        problem = f"{directory}: {e.strerror or e}"
    fallback = tempfile.gettempdir()
    try:
        fd, path = tempfile.mkstemp(prefix="kernelkit-registration-", suffix=".json")  # 0600, a name nobody can guess
        _write_whole(path, lambda: os.fdopen(fd, "w", encoding="utf-8"), text)
    except OSError as e:
        raise HandshakeError(f"cannot write the registration file ({problem}; {fallback}: {e.strerror or e}): "
                             f"free some space or set JUPYTER_RUNTIME_DIR to a writable directory") from None
    log.warning("cannot write the registration file in the Jupyter runtime dir (%s); using %s", problem, path)
    return path


def _write_whole(path: str, opener, text: str) -> None:
    """Write ``text`` through ``opener()``; on failure (a full disk fails at the
    close) remove what was made, so no empty or partial file is left."""
    try:
        with opener() as f:
            f.write(text)
    except BaseException:
        remove_if_exists(path)
        raise


def kill_and_reap(proc: subprocess.Popen) -> None:
    """SIGKILL the process's group (its own session: the kernel and what it
    started) if it still runs, and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
    proc.wait()


def _text(value) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class PendingLaunch:
    """One kernel from "registration file written" to "registered".

    Use: ``command(argv)`` (or fill ``path`` in yourself), ``spawn(cmd)``,
    ``wait(timeout)`` / ``await async_wait(timeout)``, and always ``close()``
    (removes the file, stops waiting); ``abort()`` also kills the process.
    """

    def __init__(self, *, key=None, signature_scheme=DEFAULT_SCHEME, dialect="B", ip=None, transport="tcp",
                 curve=None, service: RegistrationService | None = None, forward_stderr=True, runtime_dir=None,
                 remote=False, registration_ip=None, registration_via="file", encryption=None, allowed_peers=(),
                 preferred_ports=None):
        remote_launch.check_launch(dialect=dialect, remote=remote, registration_ip=registration_ip,
                                   registration_via=registration_via, encryption=encryption)
        runtime_dir = runtime_dir or jupyter_runtime_dir()
        self._own_service = None
        if transport == "ipc":
            # ip is the path prefix of the kernel's sockets (<ip>-<n>); the runtime dir is private (0700)
            try:
                os.makedirs(runtime_dir, mode=0o700, exist_ok=True)
            except OSError as e:
                raise HandshakeError(f"cannot make the Jupyter runtime dir {runtime_dir} for ipc sockets: {e.strerror or e}: "
                                     "set JUPYTER_RUNTIME_DIR to a writable directory") from None
            ip = ip or os.path.join(runtime_dir, f"kernelkit-{uuid.uuid4().hex[:12]}")  # short: sun_path holds 107 bytes
        elif ip is None:
            ip = remote_launch.BIND_ALL if remote else LOOPBACK
        if service is None:
            if transport == "ipc" and dialect.upper() == "A":
                # dialect A registers where the kernel binds: a service of its own at the kernel's prefix
                service = self._own_service = RegistrationService(ip, "ipc")
            elif transport == "ipc":
                service = shared_service(os.path.join(runtime_dir, f"kernelkit-registration-{os.getpid()}"), "ipc")
            else:
                # dialect A registers on the address the kernel binds; dialect B has registration_ip
                reg_ip = registration_ip or (ip if dialect.upper() == "A" and ip not in _WILDCARDS else LOOPBACK)
                service = shared_service(reg_ip, curve=encryption == "curve")
        elif encryption and service.publickey is None:
            raise ValueError("encryption 'curve' needs a CURVE registration service (RegistrationService(ip, curve=True))")
        self.service = service
        self.ip = ip or LOOPBACK
        self.registration_via = registration_via
        try:
            self.expected = service.expect(key or _new_key(), signature_scheme, dialect, self.ip, transport)
        except BaseException:
            self._close_own_service()
            raise
        self.expected.allowed_peers = tuple(allowed_peers)
        if encryption:
            # the kernel makes its keys, unless given some (a restart keeping
            # the keys its clients hold); the registration socket is CURVE either way
            self.expected.wants_own_keys = curve is None
            self.expected.registration["encryption"] = encryption
        # CurveZMQ server keys ride in the registration file like in a connection file
        self.curve = {} if curve is None else {"curve_publickey": _text(curve[0]), "curve_secretkey": _text(curve[1])}
        self.expected.registration.update(self.curve)
        if preferred_ports:
            # ports to bind first (a restart keeping its clients); see kernelkit.startup.files
            self.expected.registration["preferred_ports"] = {name: int(p) for name, p in preferred_ports.items()}
        self.path = None  # stdin and env: no file
        if registration_via == "file":
            try:
                self.path = write_registration_file(self.expected.registration, self.expected.kernel_id, runtime_dir)
            except BaseException:
                self.close()
                raise
        self.forward_stderr = forward_stderr
        self.process: subprocess.Popen | None = None
        self.stderr_tail: collections.deque = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._watcher: threading.Thread | None = None

    @property
    def dialect(self) -> str:
        return self.expected.dialect

    @property
    def file_argument(self) -> str | None:
        """What ``{connection_file}`` stands for: the file, or ``-`` (stdin)."""
        return STDIN if self.registration_via == "stdin" else self.path

    def command(self, argv) -> list:
        """``argv`` with ``{connection_file}`` replaced by the registration file
        (``-`` when the registration goes on stdin; none for ``env``)."""
        named = any("{connection_file}" in a for a in argv)
        if self.registration_via == "env":
            if named:
                raise ValueError(f"with registration_via 'env' the kernel reads ${ENV_VAR}: drop -f {{connection_file}} from its command")
            return list(argv)
        if not named:
            raise ValueError("the kernel command must contain {connection_file} (where the registration file goes)")
        return [a.replace("{connection_file}", self.file_argument) for a in argv]

    def registration_text(self) -> str:
        """The registration info as one line of JSON (stdin, env)."""
        return json.dumps(self.expected.registration, separators=(",", ":"))

    def spawn(self, cmd: list, **popen_kwargs) -> subprocess.Popen:
        """Start the kernel (own session, like jupyter_client), teeing its stderr
        unless the caller chose where it goes (``stderr=...``)."""
        read_fd = write_fd = None
        if "stderr" not in popen_kwargs:
            read_fd, write_fd = os.pipe()
            popen_kwargs["stderr"] = write_fd
        if self.registration_via == "env":
            popen_kwargs["env"] = {**(popen_kwargs.get("env") or os.environ), ENV_VAR: self.registration_text()}
        elif self.registration_via == "stdin":
            popen_kwargs["stdin"] = subprocess.PIPE  # held open: its end tells the kernel we are gone
        try:
            self.process = _popen_kernel(cmd, **popen_kwargs)
        except OSError as e:
            if read_fd is not None:
                os.close(read_fd)
            raise HandshakeError(f"cannot start the kernel {cmd[0]!r}: {e.strerror or e}") from None
        finally:
            if write_fd is not None:
                os.close(write_fd)
        self._watcher = threading.Thread(target=self._watch, args=(read_fd,), name=f"kernelkit-stderr-{self.process.pid}", daemon=True)
        self._watcher.start()
        if self.registration_via == "stdin":
            remote_launch.send_registration(self.process, self.registration_text())
        return self.process

    def _watch(self, read_fd: int | None) -> None:
        """Tee the kernel's stderr; when it closes, reap the process and fail the
        launch if the kernel had not registered (fail fast, not at the timeout)."""
        if read_fd is not None:
            with open(read_fd, "rb") as stream:
                for line in stream:
                    self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())
                    if self.forward_stderr:
                        try:
                            os.write(2, line)
                        except OSError:
                            pass
        code = self.process.wait()
        self.service.fail(self.expected, self._error(f"kernel {_describe_exit(code)} before registering"))

    def _error(self, summary: str) -> HandshakeError:
        tail = [line for line in self.stderr_tail if line.strip()]
        if tail:
            summary += f": {tail[-1].strip()}"
        return HandshakeError(summary, tail)

    def _timed_out(self, timeout: float) -> HandshakeError:
        code = self.process.poll() if self.process else None
        if code is not None:
            return self._error(f"kernel {_describe_exit(code)} before registering")
        return self._error(f"kernel did not register within {timeout:g} s (does it take a registration file? dialect {self.dialect})")

    def _connection_info(self, ports: dict) -> dict:
        reg = self.expected.registration
        ip = remote_launch.client_address(self.ip, self.expected.peer_address)
        info = {"transport": reg["transport"], "ip": ip, "key": self.expected.session.signer.key, "signature_scheme": reg["signature_scheme"]}
        info.update(ports)
        info.update(self.curve)
        info.update(self.expected.reported_keys)  # encryption 'curve': the kernel's own
        return info

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> dict:
        """Block until the kernel registers; returns jupyter_client connection info."""
        try:
            return self._connection_info(self.expected.future.result(timeout))
        except concurrent.futures.TimeoutError:
            raise self._timed_out(timeout) from None
        except concurrent.futures.CancelledError:
            raise HandshakeError("the launch was abandoned") from None

    async def async_wait(self, timeout: float = DEFAULT_TIMEOUT) -> dict:
        """As :meth:`wait`, for asyncio callers."""
        waiter = asyncio.wrap_future(self.expected.future)
        # a caller that gives up (timeout, cancelled) leaves the outcome to nobody:
        # retrieve it, so asyncio does not log "exception was never retrieved"
        waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
        # asyncio.wait, not wait_for: a timeout must not cancel the shared future
        await asyncio.wait({waiter}, timeout=timeout)
        if not waiter.done():
            raise self._timed_out(timeout)
        if waiter.cancelled():
            raise HandshakeError("the launch was abandoned")
        return self._connection_info(waiter.result())

    def abort(self) -> None:
        """Kill the kernel's process group (if running) and close."""
        if self.process is not None:
            kill_and_reap(self.process)
        self.close()

    def close(self) -> None:
        """Stop waiting and remove the registration file (the kernel read it at start)."""
        self.service.forget(self.expected)
        self._close_own_service()
        if self.path is not None:
            remove_if_exists(self.path)

    def _close_own_service(self) -> None:
        if self._own_service is not None:
            self._own_service.close()
            self._own_service = None


@dataclass
class LaunchedKernel:
    """A registered kernel: its process and the connection info for clients
    (``BlockingKernelClient().load_connection_info(k.connection_info)``)."""

    process: subprocess.Popen
    connection_info: dict
    stderr_tail: collections.deque = field(repr=False)

    def kill(self) -> None:
        """Kill the kernel's process group, reap it, remove its ipc sockets' paths."""
        kill_and_reap(self.process)
        info = self.connection_info
        if info.get("transport") == "ipc":
            for name in PORT_KEYS:
                remove_if_exists(ipc_path(info["ip"], info[name]))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def kernel_command(argv=None, kernel_name=None, env=None):
    """The command template and environment for an argv or a kernelspec name."""
    env = dict(os.environ if env is None else env)
    if (argv is None) == (kernel_name is None):
        raise ValueError("give exactly one of argv and kernel_name")
    if argv is not None:
        return list(argv), env
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name=kernel_name)
    env.update(km.kernel_spec.env or {})  # NoSuchKernel if unknown
    # jupyter_client's own substitutions ({resource_dir}, {prefix}, python ->
    # sys.executable); {connection_file} stays for PendingLaunch.command
    km.connection_file = placeholder = os.path.join(os.sep, "kernelkit-connection-file")
    formatted = os.path.realpath(placeholder)
    return [arg.replace(formatted, "{connection_file}") for arg in km.format_kernel_cmd()], env


def _prepare(argv, kernel_name, env, **options):
    cmd, env = kernel_command(argv, kernel_name, env)
    pending = PendingLaunch(**options)
    try:
        return pending, pending.command(cmd), env
    except BaseException:
        pending.close()
        raise


def launch_kernel(argv=None, *, kernel_name=None, timeout=DEFAULT_TIMEOUT, env=None, cwd=None, **options) -> LaunchedKernel:
    """Start a kernel from ``argv`` (with ``{connection_file}``) or a kernelspec
    name, and wait until it has registered its ports.

    ``options``: ``dialect`` ("B" default, or "A"), ``ip``, ``transport``
    ("tcp" default, or "ipc": sockets at ``<ip>-<n>``, by default in the
    Jupyter runtime dir), ``key``, ``signature_scheme``, ``curve`` (public,
    secret), ``preferred_ports`` (``{"shell_port": n, ...}``: bound first if
    free, e.g. a restart's previous ports), ``service``, ``forward_stderr``,
    ``runtime_dir``; for a kernel on another host (``argv`` like
    ``["ssh", HOST, "python", "-m", "kernelkit.python", "-f",
    "{connection_file}"]``): ``remote=True``, ``registration_ip`` (this host's
    address the kernel can reach), ``registration_via`` ("file" default,
    "stdin": ``-f -``, "env"), ``encryption="curve"`` (the kernel makes its
    own keys; with ``curve`` too, it uses those), ``allowed_peers`` (addresses it may register from); see
    :mod:`kernelkit.launcher.remote`.
    Raises HandshakeError (process died, with its last stderr lines; timeout;
    unusable registration); the process is killed then.
    """
    pending, cmd, env = _prepare(argv, kernel_name, env, **options)
    try:
        pending.spawn(cmd, env=env, cwd=cwd)
        info = pending.wait(timeout)
    except BaseException:
        pending.abort()
        raise
    pending.close()
    return LaunchedKernel(pending.process, info, pending.stderr_tail)


async def async_launch_kernel(argv=None, *, kernel_name=None, timeout=DEFAULT_TIMEOUT, env=None, cwd=None, **options) -> LaunchedKernel:
    """:func:`launch_kernel` for asyncio callers."""
    pending, cmd, env = _prepare(argv, kernel_name, env, **options)
    try:
        pending.spawn(cmd, env=env, cwd=cwd)
        info = await pending.async_wait(timeout)
    except BaseException:
        pending.abort()
        raise
    pending.close()
    return LaunchedKernel(pending.process, info, pending.stderr_tail)
