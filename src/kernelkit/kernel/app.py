"""Start a kernel process: read the file, bind, handshake, run, shut down."""

import argparse
import logging
import os
import signal
import sys
import threading

import zmq

from ..io import Heartbeat, IOThread, Outbound, fatal
from ..startup import RegistrationInfo, StartupError
from ..startup.keys import make_own_keys
from ..startup.sources import ENV_VAR, STDIN, read_info, watch_launcher_pipe
from ..startup.bind import bind_sockets
from ..startup.handshake import DEFAULT_TIMEOUT, register
from ..wire import Session
from .lifecycle import Lifecycle
from .sending import Sender
from .interrupt import InterruptGate
from .stdin import StdinRouter

log = logging.getLogger("kernelkit")

# After shutdown is requested, the process exits within this many seconds
# even if user code will not let go of the main thread.
EXIT_DEADLINE = 5.0


def _arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=os.path.basename(sys.argv[0]) or "kernel", description="Run a kernelkit kernel.")
    p.add_argument("-f", "--file", dest="file", metavar="FILE",
                   help=f"connection file or registration file; '-': one line of JSON on stdin; none: ${ENV_VAR}")
    p.add_argument(
        "--registration-timeout",
        type=float,
        default=float(os.environ.get("KERNELKIT_REGISTRATION_TIMEOUT", DEFAULT_TIMEOUT)),
        metavar="SECONDS",
        help=f"how long to wait for the launcher's receipt (default {DEFAULT_TIMEOUT:g})",
    )
    p.add_argument("--log-level", default=os.environ.get("KERNELKIT_LOG_LEVEL", "WARNING"), help="DEBUG, INFO, WARNING, ERROR")
    return p


class KernelApp:
    def __init__(self, kernel_class, info, label: str, registration_timeout: float = DEFAULT_TIMEOUT):
        self.kernel_class = kernel_class
        self.info = info
        self.label = label
        self.registration_timeout = registration_timeout
        self.ports: dict = {}

    def start(self) -> None:
        """Bind (picking ports if registering) and hand the ports to the launcher.
        Raises StartupError with every socket closed."""
        fatal.install()  # from here on, a kernel thread that dies ends the process
        reg = self.info if isinstance(self.info, RegistrationInfo) else None
        conn = reg.connection if reg else self.info
        self.ctx = zmq.Context()
        # the heartbeat gets a context of its own so its I/O threads never
        # wait on the kernel's
        self.hb_ctx = zmq.Context()
        try:
            if reg is not None:
                make_own_keys(reg)  # asked for: CURVE without a shared filesystem
            self.session = Session(conn.key, conn.signature_scheme)
            sockets, self.ports = bind_sockets(self.ctx, self.hb_ctx, conn, self.label)
            if reg is not None:
                try:
                    register(self.ctx, self.session, reg, self.ports, self.registration_timeout)
                except BaseException:
                    for s in sockets.values():
                        s.close(linger=0)
                    raise
        except BaseException:
            self.ctx.term()
            self.hb_ctx.term()
            raise
        self.heartbeat = Heartbeat(self.hb_ctx, sockets.pop("hb"))
        self.heartbeat.start()
        self.outbound = Outbound(self.ctx)
        self.gate = InterruptGate()
        stdin = StdinRouter(self.session, self.outbound, self.gate.critical)
        self.lifecycle = Lifecycle(Sender(self.session, self.outbound, self.gate.critical), stdin, self.gate)
        # SIGINT interrupts the whole kernel: subshell prompts too
        self.gate.on_signal = stdin.cancel_other_threads
        self.io = IOThread(self.ctx, self.session, sockets, self.outbound, self.lifecycle.arrive, self.lifecycle.arrive_invalid)
        self.outbound.connect()
        self.io.start()

    def run(self) -> int:
        """Make the kernel and serve until shutdown. Returns the exit code."""
        lifecycle = self.lifecycle
        self.gate.install()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: lifecycle.request_stop())
        try:
            kernel = self.kernel_class()
            lifecycle.attach(kernel)  # calls kernel.start()
        except Exception:
            log.exception("the kernel could not be started")
            self.close()
            return 1
        lifecycle.on_stop = self._arm_deadline
        control = threading.Thread(target=lifecycle.run_control, name="kernelkit-control", daemon=True)
        control.start()
        try:
            lifecycle.run_shell(lifecycle.shells.main)
        except Exception as e:  # a bug: no handler exception gets this far
            fatal.die("main shell", e)
        else:
            try:
                kernel.stop()
            except Exception:
                log.exception("the kernel's stop() failed")
        finally:
            self.close()
        return 0

    def _arm_deadline(self) -> None:
        t = threading.Timer(EXIT_DEADLINE, self._force_exit)
        t.daemon = True
        t.start()

    @staticmethod
    def _force_exit():
        log.warning("shutdown: the main thread did not return in time; exiting")
        os._exit(0)

    def close(self) -> None:
        """Send what is queued (the shutdown reply, the last idle), then close."""
        marker = self.outbound.stop()
        if not marker.event.wait(EXIT_DEADLINE):
            log.warning("shutdown: could not deliver every queued message")
        self.io.join(EXIT_DEADLINE)
        self.outbound.close()
        self.heartbeat.stop()
        if not self.io.is_alive():
            self.ctx.term()  # waits for the linger: queued replies leave
        self.hb_ctx.term()


def main(kernel_class, argv=None) -> int:
    p = _arg_parser()
    args, extra = p.parse_known_args(argv)
    try:  # arguments the core does not know are the kernel class's (e.g. IPython's --Class.trait=value)
        kernel_class.accept_arguments(extra)
    except ValueError as e:
        p.error(str(e))
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="[%(name)s %(levelname)s] %(message)s",
        stream=sys.stderr,
    )
    try:
        info, label = read_info(args.file)
        app = KernelApp(kernel_class, info, label, args.registration_timeout)
        app.start()
    except StartupError as e:
        print(f"kernel did not start: {e}", file=sys.stderr)
        return 1
    if args.file == STDIN:
        # the launcher holds stdin open: its end means the launcher is gone
        watch_launcher_pipe(app.lifecycle.request_stop)
    return app.run()
