"""Start a kernel process: read the file, bind, handshake, run, shut down."""

import argparse
import logging
import os
import signal
import sys
import threading
import time
import traceback

import zmq

from .. import logs, threads
from ..io import Heartbeat, IOThread, Outbound, fatal, flow
from ..io.flow import IOPUB_TCP_TIMEOUT
from ..io.peers import Peers
from ..startup import RegistrationInfo, StartupError
from ..startup.keys import KeyHolders, admit_key_holders, make_own_keys
from ..startup.sources import ENV_VAR, STDIN, read_info, watch_launcher_pipe
from ..startup.bind import bind_sockets
from ..startup.handshake import RECEIPT_TIMEOUT, register
from ..wire import Session, jsonutil
from ..wire.signing import CLOCK_SKEW
from ..wire.channels import HB, IOPUB
from .lifecycle import Lifecycle
from .sending import Sender
from .interrupt import InterruptGate
from .parent import ParentWatch
from .stdin import StdinRouter

log = logging.getLogger("kernelkit")

# After shutdown is requested, the process exits within this many seconds
# even if user code will not let go of the main thread.
EXIT_DEADLINE = 5.0
# SIGTERM or the parent's death: what is queued gets this long to leave (the
# running request is not interrupted and sends nothing more), then the process ends.
END_DEADLINE = 1.0


def _arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=os.path.basename(sys.argv[0]) or "kernel", description="Run a kernelkit kernel.")
    p.add_argument("-f", "--file", dest="file", metavar="FILE",
                   help=f"connection file or registration file; '-': one line of JSON on stdin; none: ${ENV_VAR}")
    p.add_argument(
        "--registration-timeout",
        type=float,
        # (a string default goes through type=float too: a bad value is a usage error)
        default=os.environ.get("KERNELKIT_REGISTRATION_TIMEOUT", str(RECEIPT_TIMEOUT)),
        metavar="SECONDS",
        help=f"how long to wait for the launcher's receipt (default {RECEIPT_TIMEOUT:g})",
    )
    p.add_argument(
        "--iopub-tcp-timeout",
        type=float,
        default=os.environ.get("KERNELKIT_IOPUB_TCP_TIMEOUT", str(IOPUB_TCP_TIMEOUT)),
        metavar="SECONDS",
        help="disconnect an iopub subscriber whose TCP window stays shut this long while output "
        f"waits for it (default {IOPUB_TCP_TIMEOUT:g}; 0: never)",
    )
    p.add_argument("--log-level", default=os.environ.get("KERNELKIT_LOG_LEVEL", "WARNING"), help="DEBUG, INFO, WARNING, ERROR")
    return p


class KernelApp:
    def __init__(
        self,
        kernel_class,
        info,
        label: str,
        registration_timeout: float = RECEIPT_TIMEOUT,
        iopub_tcp_timeout: float = IOPUB_TCP_TIMEOUT,
        port_range: tuple[int, int] | None = None,
        announce=None,
        watch_parent: bool = True,
    ):
        self.kernel_class = kernel_class
        # (low, high): picked ports come from this range (a cluster's firewall rules)
        self.port_range = port_range
        # announce(ports): tells a launcher other than a registration file's
        # where the kernel is (kernelkit.gateway); StartupError if it cannot
        self.announce = announce
        # False: something other than the parent process decides when the kernel ends
        self.watch_parent = watch_parent
        self.info = info
        self.label = label
        self.registration_timeout = registration_timeout
        self.iopub_tcp_timeout = iopub_tcp_timeout
        self.ports: dict = {}
        self._closing = threading.Lock()
        self._closed = False
        self._ending = threading.Lock()
        self._zap: list = []  # the heartbeat's ZAP handler with CURVE (startup/keys.py)
        self.peers = None  # the kernel's context's ZAP handler (io/peers.py)

    def start(self) -> None:
        """Bind (picking ports if registering), start the I/O thread, make the
        kernel and run its ``start()``, then hand the ports to the launcher:
        a kernel that cannot start never registers, and the launcher reports
        why. Raises StartupError with every socket closed."""
        fatal.install()  # from here on, a kernel thread that dies ends the process
        # the stdlib JSON path accepts MAX_DEPTH levels, as orjson does
        sys.setrecursionlimit(max(sys.getrecursionlimit(), jsonutil.RECURSION_LIMIT))
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
            # ZAP, before any socket that asks binds: CURVE's rule, and
            # iopub's connections told apart (io/peers.py)
            holders = KeyHolders({conn.curve_publickey}) if conn.curve_secretkey else None
            if holders is not None:
                self._zap = [admit_key_holders(self.hb_ctx, holders)]
            self.peers = Peers(self.ctx, holders.admits if holders else None)
            options = flow.socket_options(conn.transport, self.iopub_tcp_timeout)
            sockets, self.ports = bind_sockets(
                self.ctx, self.hb_ctx, conn, self.label, reg.preferred_ports if reg else None, options, self.port_range,
                before_bind={IOPUB: self.peers.watch},
            )
        except BaseException:
            if self.peers is not None:
                self.peers.close()
            self._stop_zap()
            self.ctx.term()
            self.hb_ctx.term()
            raise
        # replays from before this process (a restart keeps the key) are refused
        self.session.signer.not_before = time.time() - CLOCK_SKEW
        self.heartbeat = Heartbeat(self.hb_ctx, sockets.pop(HB))
        self.heartbeat.start()
        self.outbound = Outbound(self.ctx)
        self.gate = InterruptGate()
        stdin = StdinRouter(self.session, self.outbound, self.gate.critical)
        self.lifecycle = Lifecycle(Sender(self.session, self.outbound, self.gate.critical), stdin, self.gate)
        # SIGINT interrupts the whole kernel: subshell prompts too
        self.gate.on_signal = stdin.cancel_other_threads
        self.io = IOThread(self.ctx, self.session, sockets, self.outbound, self.lifecycle.arrive, self.lifecycle.arrive_invalid, self.peers)
        self.outbound.connect()
        self.io.start()
        self._handle_signals()
        try:
            self.kernel = self.kernel_class()
            self.lifecycle.attach(self.kernel)  # calls kernel.start()
        except Exception as e:
            log.debug("the kernel's start() failed", exc_info=True)
            self.close()
            raise StartupError(_start_failed(self.kernel_class, e)) from None
        if reg is not None or self.announce is not None:
            try:
                if reg is not None:
                    register(self.ctx, self.session, reg, self.ports, self.registration_timeout)
                else:
                    self.announce(self.ports)
            except BaseException:
                self._stop_kernel()
                self.close()
                raise

    def _handle_signals(self) -> None:
        """SIGINT, SIGTERM and the parent's death, from before ``start()``."""
        self.gate.install()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)
            # the gate's watcher also sees a SIGTERM that lands just before a
            # blocking call, which would delay this handler until the call returns
            self.gate.on_terminate = lambda: self.end_now("SIGTERM")
        if self.watch_parent:
            ParentWatch(lambda reason: self.end_now(reason, exit_code=1)).start()

    def run(self) -> int:
        """Serve until shutdown. Returns the exit code."""
        lifecycle = self.lifecycle
        lifecycle.on_stop = self._arm_deadline
        threads.start(lifecycle.run_control, "control")
        try:
            lifecycle.run_shell(lifecycle.shells.main)
        except Exception as e:  # a bug: no handler exception gets this far
            fatal.die("main shell", e)
        else:
            self._stop_kernel()
        finally:
            self.close()
        return 0

    def _stop_kernel(self) -> None:
        try:
            self.kernel.stop()
        except Exception:
            log.exception("the kernel's stop() failed")
        self.kernel._unbind()  # (the process's own streams are back for its last words)

    def _arm_deadline(self) -> None:
        t = threading.Timer(EXIT_DEADLINE, self._force_exit)
        t.daemon = True
        t.start()

    @staticmethod
    def _force_exit():
        log.warning("shutdown: the main thread did not return in time; exiting")
        os._exit(0)

    def _on_sigterm(self, signum, frame) -> None:
        # a second SIGTERM while ending kills at once, as it would ipykernel
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self.end_now("SIGTERM")

    def end_now(self, reason: str, exit_code: int = 128 + signal.SIGTERM) -> None:
        """End the process promptly (SIGTERM, parent gone), from a thread of
        its own: the running request is not interrupted, so it gets no error
        reply; what is queued gets END_DEADLINE to leave, the sockets close,
        and the process exits with ``exit_code`` (143 = 128 + SIGTERM, the
        shell's convention, by default)."""
        if not self._ending.acquire(blocking=False):
            return
        log.info("%s: ending the kernel", reason)
        threads.start(self._end, "end", exit_code)

    def _end(self, exit_code) -> None:
        self.lifecycle.stopping.set()  # queued requests do not start
        try:
            self.close(END_DEADLINE)
        except Exception:
            log.exception("ending: closing failed")
        sys.stderr.flush()
        os._exit(exit_code)

    def close(self, deadline: float = EXIT_DEADLINE) -> None:
        """Send what is queued (the shutdown reply, the last idle), then close.
        A second caller (shutdown and SIGTERM at once) waits for the first."""
        with self._closing:
            if self._closed:
                return
            marker = self.outbound.stop()
            if not marker.event.wait(deadline):
                log.warning("shutdown: could not deliver every queued message")
            self.io.join(deadline)
            self.outbound.close()
            self.heartbeat.stop()
            self._stop_zap()
            if not self.io.is_alive():
                _term(self.ctx, deadline)  # waits for the linger: queued replies leave
            _term(self.hb_ctx, deadline)
            self._closed = True

    def _stop_zap(self) -> None:
        for auth in self._zap:
            auth.stop()
        self._zap = []


def _start_failed(kernel_class, e: Exception) -> str:
    """One line: what the kernel's start() raised, and where."""
    where = ""
    tb = traceback.extract_tb(e.__traceback__)
    if tb:
        frame = tb[-1]
        where = f" ({os.path.basename(frame.filename)}, line {frame.lineno})"
    return f"{kernel_class.__name__} could not start: {type(e).__name__}: {e}{where}"


def _term(ctx: zmq.Context, timeout: float) -> None:
    """ctx.term(), for at most ``timeout`` seconds: a socket that kernel code
    opened and never closed must not keep the process alive."""
    threads.start(ctx.term, "term").join(timeout)


def main(kernel_class, argv=None) -> int:
    p = _arg_parser()
    args, extra = p.parse_known_args(argv)
    try:  # arguments the core does not know are the kernel class's (e.g. IPython's --Class.trait=value)
        kernel_class.accept_arguments(extra)
    except ValueError as e:
        p.error(str(e))
    logs.configure(args.log_level)  # (not the root logger: that is user code's)
    try:
        info, label = read_info(args.file)
        app = KernelApp(kernel_class, info, label, args.registration_timeout, args.iopub_tcp_timeout)
        app.start()
    except StartupError as e:
        print(f"kernel did not start: {e}", file=sys.stderr)
        return 1
    if args.file == STDIN:
        # the launcher holds stdin open: its end means the launcher is gone
        watch_launcher_pipe(app.lifecycle.request_stop)
    return app.run()
