"""Routing requests to handlers: busy, handler, reply, idle; shell and control loops.

The shell loop runs on the main thread (user code belongs there: SIGINT and
libraries that insist on the main thread work). Control requests are served
on a thread of their own, so kernel_info, interrupt and shutdown are answered
while the main thread is busy. Shell requests are routed by
``header.subshell_id`` to a ``ShellQueue``; today only the main shell (id
``None``) exists, and a subshell is one more ShellQueue with its own thread.
"""

import logging
import queue
import threading
import traceback

from ..io import CONTROL, IOPUB, SHELL, STDIN, LogLimiter
from ..wire.errors import InvalidContent
from ..wire.requests import validate
from .request import Request

log = logging.getLogger("kernelkit.kernel")

_STOP = object()


class ExecutionError(Exception):
    """Raise from ``Kernel.execute`` to report an error in the user's code
    with exactly this ename, evalue and traceback (a list of lines)."""

    def __init__(self, ename: str, evalue: str, traceback: list | None = None):
        super().__init__(evalue)
        self.ename, self.evalue, self.traceback = ename, evalue, list(traceback or [])


def describe_exception(exc: BaseException) -> dict:
    if isinstance(exc, ExecutionError):
        return {"ename": exc.ename, "evalue": exc.evalue, "traceback": exc.traceback}
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {"ename": type(exc).__name__, "evalue": str(exc), "traceback": [line.rstrip("\n") for line in tb]}


class ShellQueue:
    """Requests for one shell (the main shell or, later, a subshell), in order."""

    def __init__(self, subshell_id=None):
        self.subshell_id = subshell_id
        self.queue: queue.Queue = queue.Queue()
        self.current: Request | None = None
        # after a failed execute with stop_on_error: executes that arrived
        # up to this arrival number are answered "aborted"
        self.abort_through: int | None = None


class Runtime:
    """Connects a Kernel to the I/O thread: sends through the one outbound FIFO,
    receives from the I/O thread's callbacks, runs the request loops."""

    def __init__(self, session, outbound, stdin, gate):
        self.session = session
        self.outbound = outbound
        self.stdin = stdin
        self.gate = gate
        self.kernel = None
        self.main_shell = ShellQueue(None)
        self.shells = {None: self.main_shell}
        self.control_queue: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.topic_prefix = f"kernel.{session.session_id}.".encode()
        self.on_stop = None  # set by the app: called once when shutdown is requested
        self._stop_after = None
        self._arrived = 0  # arrival number of the last request (I/O thread)
        self._limiter = LogLimiter()
        self._local = threading.local()

    # -- from the I/O thread (must not block) -----------------------------
    def on_message(self, channel: str, msg) -> None:
        if channel == STDIN:
            self.stdin.deliver(msg)
            return
        req = Request(msg, channel)
        self._arrived += 1
        req.arrival = self._arrived
        try:
            validate(msg)
        except InvalidContent as e:
            req.invalid = e
        if channel == CONTROL or req.invalid is not None:
            self.control_queue.put(req)
            return
        shell = self.shells.get(msg.header.get("subshell_id"))
        if shell is None:
            req.invalid = LookupError(f"unknown subshell_id {msg.header.get('subshell_id')!r}")
            self.control_queue.put(req)  # answered at once, not behind running code
            return
        shell.queue.put(req)

    def on_invalid(self, channel: str, msg, error) -> None:
        if channel in (SHELL, CONTROL) and msg.msg_type.endswith("_request"):
            req = Request(msg, channel, invalid=error)
            self._arrived += 1
            req.arrival = self._arrived
            self.control_queue.put(req)

    # -- sending ----------------------------------------------------------------
    @property
    def current_request(self) -> Request | None:
        return getattr(self._local, "request", None) or self.main_shell.current

    def send(self, channel: str, msg_type: str, content, parent: Request | None, metadata=None, buffers=None):
        msg = self.session.message(msg_type, content, parent.message if parent else None, metadata)
        if buffers:
            msg.buffers = list(buffers)
        if channel == IOPUB:
            identities = [self.topic_prefix + msg_type.encode()]
        else:
            identities = parent.message.identities
        frames = self.session.serialize(msg, identities)
        with self.gate.critical:  # an interrupt must not cut the FIFO's bookkeeping in half
            self.outbound.send(channel, frames)
        return msg

    def publish(self, msg_type: str, content, parent: Request | None = None, metadata=None, buffers=None):
        return self.send(IOPUB, msg_type, content, parent or self.current_request, metadata, buffers)

    def status(self, state: str, parent: Request | None) -> None:
        self.send(IOPUB, "status", {"execution_state": state}, parent)

    def reply(self, req: Request, content: dict, metadata=None) -> None:
        self.send(req.channel, req.reply_type, content, req, metadata)

    # -- handling ---------------------------------------------------------------
    def handle(self, req: Request) -> None:
        """busy, then the handler and its reply, then idle."""
        kernel = self.kernel
        if req.invalid is not None:
            self.status("busy", req)
            err = req.invalid
            content = {"status": "error", "ename": type(err).__name__, "evalue": str(err), "traceback": []}
            if req.msg_type == "execute_request":
                content["execution_count"] = kernel.execution_count
            self.reply(req, content)
            self.status("idle", req)
            return
        if req.msg_type == "interrupt_request":
            # interrupt first: the FIFO that busy goes through may be full of
            # the very output being interrupted
            try:
                kernel.interrupt()
            except Exception as e:
                log.exception("interrupt failed")
                req.invalid = e
                return self.handle(req)
        handler = kernel._handlers.get(req.msg_type)
        if handler is None:
            self._limiter.warn(
                ("unknown", req.channel, req.msg_type), f"{req.channel}: ignored unknown message type {req.msg_type!r}", log
            )
            return
        self.status("busy", req)
        previous = getattr(self._local, "request", None)
        self._local.request = req
        try:
            content = handler(req)
        except (Exception, KeyboardInterrupt) as e:
            if not isinstance(e, KeyboardInterrupt):
                log.exception("%s handler failed", req.msg_type)
            content = {"status": "error", **describe_exception(e)}
        finally:
            self._local.request = previous
        try:
            kernel.flush_output()  # all output of a request leaves before its reply
        except Exception:
            log.exception("flushing output failed")
        if content is not None:
            content.setdefault("status", "ok")
            self.reply(req, content)
        self.status("idle", req)
        if req is self._stop_after:
            self.request_stop()

    def abort_after(self, req: Request) -> None:
        """Abort the executes that arrived before ``req``'s error reply is
        sent; a request sent after the client saw the reply runs."""
        shell = self.shells.get(req.subshell_id)
        if shell is not None:
            shell.abort_through = self._arrived

    def stop_after_reply(self, req: Request) -> None:
        """Shut down once ``req`` has been answered and its idle sent."""
        self._stop_after = req

    def abort(self, req: Request) -> None:
        self.status("busy", req)
        self.reply(req, {"status": "aborted", "execution_count": self.kernel.execution_count})
        self.status("idle", req)

    # -- loops --------------------------------------------------------------------
    def run_shell(self, shell: ShellQueue) -> None:
        get = shell.queue.get
        while not self.stopping.is_set():
            try:
                req = get()
            except KeyboardInterrupt:  # defensive: the gate is not armed here
                continue
            if req is _STOP:
                break
            shell.current = req
            try:
                self.handle(req)
            finally:
                shell.current = None
            if shell.abort_through is not None:
                self.abort_queued(shell, shell.abort_through)
                shell.abort_through = None

    def abort_queued(self, shell: ShellQueue, through: int) -> None:
        """After a failed execute with stop_on_error: answer the executes that
        arrived up to ``through`` with ``aborted``; other requests run."""
        while True:
            try:
                req = shell.queue.get_nowait()
            except queue.Empty:
                return
            if req is _STOP or req.arrival > through:
                # put it back at the front: it must run next, in order
                with shell.queue.mutex:
                    shell.queue.queue.appendleft(req)
                return
            if req.msg_type == "execute_request":
                self.abort(req)
            else:
                self.handle(req)

    def run_control(self) -> None:
        while True:
            req = self.control_queue.get()
            if req is _STOP:
                return
            try:
                self.handle(req)
            except Exception:
                log.exception("control: failed to handle %r", req)

    def request_stop(self) -> None:
        """Stop the loops: the main shell finishes (or is interrupted out of)
        its current request and returns."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        for shell in self.shells.values():
            shell.queue.put(_STOP)
        self.control_queue.put(_STOP)
        if self.main_shell.current is not None:
            self.gate.interrupt_main()
        if self.on_stop is not None:
            self.on_stop()
