"""``python -m kernelkit.gateway``: a kernelkit kernel started by gateway_provisioners.

Takes launch_ipykernel.py's arguments (each also from the environment variable
the provisioners' container images read: RESPONSE_ADDRESS, PUBLIC_KEY,
KERNEL_ID, PORT_RANGE, TRANSPORT_ENCRYPTION, KERNEL_CLASS_NAME), binds the
kernel's five sockets and the comm port in the port range, sends the encrypted
connection info to the response address and runs the kernel in this process.
Bad input is one line on stderr and exit code 1, with nothing left bound.
"""

import argparse
import functools
import importlib
import importlib.util
import logging
import os
import sys
import uuid

import zmq

from .. import logs
from ..kernel.app import KernelApp
from ..kernel.base import Kernel
from ..startup import ConnectionInfo, StartupError
from ..startup.handshake import RECEIPT_TIMEOUT

log = logging.getLogger("kernelkit.gateway")

# what the provisioners' spec installers write; kernelkit's Python kernel serves it
IPYKERNEL_CLASS = "ipykernel.ipkernel.IPythonKernel"
PYTHON_KERNEL = "kernelkit.python.kernel:PythonKernel"
# the kernel's five ports and the comm port
PORTS_NEEDED = 6


def _env(*names, default=None):
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return default


def _arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kernelkit.gateway", description=__doc__.split("\n\n")[0])
    # nargs="?": a provisioner's empty value (no transport encryption) vanishes
    # when ssh joins the argv into one shell line; the flag then comes alone
    option = functools.partial(p.add_argument, nargs="?", const="")
    option("--response-address", default=_env("RESPONSE_ADDRESS", "EG_RESPONSE_ADDRESS"), metavar="IP:PORT")
    option("--public-key", default=_env("PUBLIC_KEY", "EG_PUBLIC_KEY"), metavar="KEY")
    option("--kernel-id", default=_env("KERNEL_ID"), metavar="ID")
    option("--port-range", default=_env("PORT_RANGE", "EG_PORT_RANGE", default="0..0"), metavar="LOW..HIGH")
    option("--transport-encryption", default=_env("TRANSPORT_ENCRYPTION", default=""), metavar="auto|required")
    option("--kernel-class-name", default=_env("KERNEL_CLASS_NAME", default=IPYKERNEL_CLASS), metavar="MODULE:CLASS",
           help=f"a kernelkit.Kernel subclass (default: kernelkit's Python kernel, also for {IPYKERNEL_CLASS})")
    # launch_ipykernel.py's Spark options: accepted, kernelkit makes no Spark context
    option("--spark-context-initialization-mode", default=_env("KERNEL_SPARK_CONTEXT_INIT_MODE", default="none"))
    option("--cluster-type", default="none")
    p.add_argument("--ip", default="0.0.0.0", help="where the kernel binds (default every interface)")
    p.add_argument("--response-timeout", type=float, default=os.environ.get("KERNELKIT_RESPONSE_TIMEOUT", str(RECEIPT_TIMEOUT)),
                   metavar="SECONDS", help=f"how long the response address may take to accept (default {RECEIPT_TIMEOUT:g})")
    p.add_argument("--log-level", default=os.environ.get("KERNELKIT_LOG_LEVEL", "WARNING"))
    return p


def parse_response_address(text) -> tuple[str, int]:
    host, sep, port = (text or "").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise StartupError(f"--response-address {text!r}: expected IP:PORT (the provisioner's {{response_address}})")
    return host, int(port)


def parse_port_range(text) -> tuple[int, int] | None:
    """(low, high), both included; None for no range (equal bounds, e.g. 0..0,
    as gateway_provisioners reads them)."""
    low, sep, high = (text or "").partition("..")
    if not sep or not low.isdigit() or not high.isdigit():
        raise StartupError(f"--port-range {text!r}: expected LOW..HIGH, e.g. 40000..40999 (0..0: any port)")
    low, high = int(low), int(high)
    if low == high:
        return None
    if low > high:
        raise StartupError(f"--port-range {text!r}: inverted; the lower port comes first")
    if low < 1 or high > 65535:
        raise StartupError(f"--port-range {text!r}: ports are 1..65535")
    if high - low + 1 < PORTS_NEEDED:
        raise StartupError(f"--port-range {text!r}: holds {high - low + 1} ports; a kernel needs {PORTS_NEEDED} (five channels and the comm port)")
    return low, high


def encryption_wanted(policy) -> bool:
    """auto and required: CurveZMQ keys made here (pyzmq always has curve in
    its wheels; without it, 'auto' goes on unencrypted, as the stock launcher does)."""
    policy = (policy or "").strip().lower()
    if policy in ("", "disabled") or (policy.startswith("{") and policy.endswith("}")):
        return False
    if policy not in ("auto", "required"):
        log.warning("--transport-encryption %r: not auto or required; starting without transport encryption", policy)
        return False
    if not zmq.has("curve"):
        if policy == "required":
            raise StartupError("--transport-encryption required: this libzmq has no CurveZMQ support")
        log.warning("--transport-encryption auto: this libzmq has no CurveZMQ support; starting unencrypted")
        return False
    return True


def load_kernel_class(name: str):
    if name in ("", IPYKERNEL_CLASS):
        name = PYTHON_KERNEL
    module_name, sep, attr = name.partition(":")
    if not sep:
        module_name, _, attr = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise StartupError(f"--kernel-class-name {name!r}: cannot import it ({e})") from None
    if not (isinstance(cls, type) and issubclass(cls, Kernel)):
        raise StartupError(f"--kernel-class-name {name!r}: not a kernelkit.Kernel subclass")
    return cls


class GatewayLaunch:
    """What the kernel tells the provisioner once its sockets are bound."""

    def __init__(self, args, address, port_range, public_key, conn: ConnectionInfo):
        self.args = args
        self.address = address
        self.port_range = port_range
        self.public_key = public_key
        self.conn = conn
        self.comm_socket = None

    def announce(self, ports: dict) -> None:
        from .listener import bind_comm_socket
        from .payload import encrypt, send

        self.comm_socket = bind_comm_socket(self.args.ip, self.port_range)
        try:
            info = {**self.conn.as_dict(), **{f"{c}_port": p for c, p in ports.items()}}
            if self.conn.curve_secretkey:
                info["curve_publickey"] = self.conn.curve_publickey.decode("ascii")
                info["curve_secretkey"] = self.conn.curve_secretkey.decode("ascii")
            info.update(pid=os.getpid(), pgid=os.getpgid(0), comm_port=self.comm_socket.getsockname()[1], kernel_id=self.args.kernel_id)
            send(self.address, encrypt(info, self.public_key), self.args.response_timeout)
        except BaseException:
            self.comm_socket.close()
            raise
        log.info("connection info sent to %s:%d; comm port %d", *self.address, info["comm_port"])


def prepare(argv=None):
    """Check every argument before anything is bound: ``(app, launch)``."""
    args, extra = _arg_parser().parse_known_args(argv)
    logs.configure(args.log_level)  # (not the root logger: that is user code's)
    for flag in ("response_address", "public_key", "kernel_id"):
        if not getattr(args, flag):
            raise StartupError(f"--{flag.replace('_', '-')} is required (or set {flag.upper()})")
    address = parse_response_address(args.response_address)
    port_range = parse_port_range(args.port_range)
    if importlib.util.find_spec("Cryptodome") is None:
        raise StartupError("the launch protocol's encryption needs pycryptodomex: pip install 'kernelkit[gateway]'")
    from .payload import load_public_key

    public_key = load_public_key(args.public_key)
    if args.spark_context_initialization_mode not in ("", "none"):
        log.warning("--spark-context-initialization-mode %s: kernelkit makes no Spark context", args.spark_context_initialization_mode)
    kernel_class = load_kernel_class(args.kernel_class_name)
    try:
        kernel_class.accept_arguments(extra)
    except ValueError as e:
        raise StartupError(str(e)) from None
    conn = ConnectionInfo(transport="tcp", ip=args.ip, key=str(uuid.uuid4()).encode("ascii"))
    if encryption_wanted(args.transport_encryption):
        conn.curve_publickey, conn.curve_secretkey = zmq.curve_keypair()
    launch = GatewayLaunch(args, address, port_range, public_key, conn)
    # the provisioner decides when this kernel ends (comm port, shutdown), not
    # the process that started it: over ssh that is a shell that exits at once
    app = KernelApp(kernel_class, conn, f"kernel {args.kernel_id}", port_range=port_range, announce=launch.announce,
                    watch_parent=False)
    return app, launch


def main(argv=None) -> int:
    try:
        app, launch = prepare(argv)
        app.start()
    except StartupError as e:
        print(f"kernel did not start: {e}", file=sys.stderr)
        return 1
    from .listener import CommListener

    listener = CommListener(launch.comm_socket, app.lifecycle.request_stop)
    listener.start()
    try:
        return app.run()
    finally:
        listener.close()


if __name__ == "__main__":
    sys.exit(main())
