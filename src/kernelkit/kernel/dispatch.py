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
import uuid
from collections import deque

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
    if isinstance(exc, RequestError):
        return {"ename": type(exc).__name__, "evalue": str(exc), "traceback": []}
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {"ename": type(exc).__name__, "evalue": str(exc), "traceback": [line.rstrip("\n") for line in tb]}


class RequestError(Exception):
    """The request cannot be served as asked (the client's doing, not a bug):
    an error reply without a traceback, and no traceback in the log."""


class UnknownSubshell(RequestError, LookupError):
    """A request named a subshell_id that does not exist (or was deleted)."""


class SubshellDeleted(RequestError, RuntimeError):
    """The subshell was deleted before this queued request started."""


class ShellQueue:
    """Requests for one shell (the main shell or a subshell), run in order on
    one thread: the main thread for the main shell, a thread of its own for
    each subshell."""

    def __init__(self, subshell_id=None):
        self.subshell_id = subshell_id
        # SimpleQueue: put and get are single C calls (this is the hand-off
        # from the I/O thread on every request)
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        # requests taken out and put back in front (see Runtime.abort_queued)
        self.put_back: deque = deque()
        self.current: Request | None = None
        self.thread: threading.Thread | None = None
        # a subshell counts its own executions (JEP 91); the main shell's
        # count is Kernel.execution_count
        self.execution_count = 0
        # after a failed execute with stop_on_error: executes that arrived
        # up to this arrival number are answered "aborted"
        self.abort_through: int | None = None

    def take(self):
        """The next request (waits until there is one)."""
        if self.put_back:
            req = self.take_nowait()
            if req is not None:
                return req
        return self.queue.get()

    def take_nowait(self):
        """The next request, or None if there is none now."""
        try:
            return self.put_back.popleft()
        except IndexError:  # the usual case; also safe if two threads race
            pass
        try:
            return self.queue.get_nowait()
        except queue.Empty:
            return None


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
        self.control_queue: queue.SimpleQueue = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.topic_prefix = f"kernel.{session.session_id}.".encode()
        self._topics: dict = {}  # msg_type -> iopub topic
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
        req = self._arrive(Request(msg, channel))
        try:
            validate(msg)
        except InvalidContent as e:
            req.invalid = e
        if channel == CONTROL or req.invalid is not None:
            self.control_queue.put(req)
            return
        shell = self.shells.get(msg.header.get("subshell_id"))
        if shell is None:
            req.invalid = UnknownSubshell(f"unknown subshell_id {msg.header.get('subshell_id')!r}")
            self.control_queue.put(req)  # answered at once, not behind running code
            return
        req.shell = shell
        if shell is self.main_shell:
            # Nothing running or queued in the main shell (every request put
            # there is granted first), so this one runs next: announce it here
            # and now. Its busy (and execute_input) leave while the main
            # thread wakes up and runs it, instead of with its reply.
            kernel = self.kernel  # (None until the kernel has been made)
            if kernel is not None and not self.outbound.lazy_active and not self.stopping.is_set() and msg.msg_type in kernel._handlers:
                if msg.msg_type == "kernel_info_request" and self._answer_kernel_info(req):
                    return
                self.announce(req)
            self.outbound.grant_lazy()
        shell.queue.put(req)

    def _answer_kernel_info(self, req: Request) -> bool:
        """Answer a kernel_info_request here, on the I/O thread, when the
        main shell is idle and the reply is the base class's (plain
        attributes, no code of the kernel's): busy, reply and idle leave in
        the order the main thread would send them, without waking it."""
        content = self.kernel._kernel_info_anywhere()
        if content is None:
            return False
        content.setdefault("status", "ok")
        self.answer(req, content)
        return True

    def on_invalid(self, channel: str, msg, error) -> None:
        if channel in (SHELL, CONTROL) and msg.msg_type.endswith("_request"):
            self.control_queue.put(self._arrive(Request(msg, channel, invalid=error)))

    def _arrive(self, req: Request) -> Request:
        self._arrived += 1
        req.arrival = self._arrived
        return req

    # -- sending ----------------------------------------------------------------
    @property
    def current_request(self) -> Request | None:
        return getattr(self._local, "request", None) or self.main_shell.current

    def request_on_this_thread(self) -> Request | None:
        """The request this thread is handling, if any (no fallback)."""
        return getattr(self._local, "request", None)

    # -- subshells (JEP 91) -------------------------------------------------------
    def create_subshell(self) -> str:
        shell = ShellQueue(uuid.uuid4().hex)
        shell.thread = threading.Thread(
            target=self.run_shell, args=(shell,), name=f"kernelkit-subshell-{shell.subshell_id[:8]}", daemon=True
        )
        shell.thread.start()
        self.shells[shell.subshell_id] = shell  # routable once its thread runs
        return shell.subshell_id

    def delete_subshell(self, subshell_id) -> ShellQueue:
        """Stop routing to the subshell at once; answer what is queued in it
        with an error; let its running request finish; then its thread ends."""
        if subshell_id is None or subshell_id not in self.shells:
            raise UnknownSubshell(f"unknown subshell_id {subshell_id!r}")
        shell = self.shells.pop(subshell_id)
        self._refuse_queued(shell)
        shell.queue.put(_STOP)
        return shell

    def _refuse_queued(self, shell: ShellQueue) -> None:
        """Answer the requests queued in a deleted subshell (also those the
        I/O thread routed just before the deletion) with SubshellDeleted."""
        while True:
            req = shell.take_nowait()
            if req is None:
                return
            if req is not _STOP:
                req.invalid = SubshellDeleted(f"subshell {shell.subshell_id} was deleted before this request ran")
                self.handle(req)

    def list_subshells(self) -> list:
        return [sid for sid in self.shells if sid is not None]

    def send(self, channel: str, msg_type: str, content, parent: Request | None, metadata=None, buffers=None) -> None:
        if channel == IOPUB:
            topic = self._topics.get(msg_type)
            if topic is None:
                topic = self._topics[msg_type] = self.topic_prefix + msg_type.encode()
            identities = (topic,)
        else:
            identities = parent.message.identities
        frames = self.session.frames(msg_type, content, parent.message if parent else None, metadata, identities, buffers)
        with self.gate.critical:  # an interrupt must not cut the FIFO's bookkeeping in half
            self.outbound.send(channel, frames, lazy=True)

    def publish(self, msg_type: str, content, parent: Request | None = None, metadata=None, buffers=None) -> None:
        self.send(IOPUB, msg_type, content, parent or self.current_request, metadata, buffers)

    def status(self, state: str, parent: Request | None) -> None:
        self.send(IOPUB, "status", {"execution_state": state}, parent)

    def reply(self, req: Request, content: dict, metadata=None) -> None:
        self.send(req.channel, req.reply_type, content, req, metadata)

    # -- handling ---------------------------------------------------------------
    def announce(self, req: Request) -> None:
        """What a request says as it starts: busy, and for an execute the
        execute_input with the count it runs under. Done once, on the thread
        that runs it or, when the main shell is idle, on the I/O thread as
        the request arrives."""
        req.announced = True
        self.status("busy", req)
        if req.msg_type == "execute_request":
            self.kernel._announce_execute(req)

    def answer(self, req: Request, content: dict | None) -> None:
        """busy (unless the request was announced), ``content`` as its reply
        (None: no reply), idle: a request answered without its handler
        (invalid, aborted, or kernel_info from plain attributes)."""
        if not req.announced:
            req.announced = True
            self.status("busy", req)
        if content is not None:
            self.reply(req, content)
        self.status("idle", req)

    def handle(self, req: Request) -> None:
        """busy, then the handler and its reply, then idle."""
        kernel = self.kernel
        if req.invalid is not None:
            err = req.invalid
            if not req.has_reply:
                # (a comm message for an unknown subshell, or with unusable
                # content): logged, and busy and idle as for any message
                self._limiter.warn(("invalid", req.channel, req.msg_type), f"{req.channel}: ignored {req.msg_type}: {err}", log)
                self.answer(req, None)
                return
            content = {"status": "error", "ename": type(err).__name__, "evalue": str(err), "traceback": []}
            if req.msg_type == "execute_request":
                content["execution_count"] = self.count_owner(req).execution_count
            self.answer(req, content)
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
        if not req.announced:
            self.announce(req)
        previous = getattr(self._local, "request", None)
        self._local.request = req
        try:
            content = handler(req)
        except (Exception, KeyboardInterrupt) as e:
            if isinstance(e, RequestError):
                log.info("%s: %s", req.msg_type, e)
            elif not isinstance(e, KeyboardInterrupt):
                log.exception("%s handler failed", req.msg_type)
            content = {"status": "error", **describe_exception(e)}
        finally:
            self._local.request = previous
        try:
            # all output of a request leaves before its reply (not on control:
            # buffered output there is a running cell's, and flushing it could
            # wait for a writer held up by a slow subscriber)
            if req.channel != CONTROL:
                kernel.flush_output()
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
        shell = req.shell
        if shell is not None:
            shell.abort_through = self._arrived

    def stop_after_reply(self, req: Request) -> None:
        """Shut down once ``req`` has been answered and its idle sent."""
        self._stop_after = req

    def count_owner(self, req: Request):
        """Who counts this request's executions: its subshell, or the kernel."""
        shell = req.shell
        return shell if shell is not None and shell.subshell_id is not None else self.kernel

    def abort(self, req: Request) -> None:
        self.answer(req, {"status": "aborted", "execution_count": self.count_owner(req).execution_count})

    # -- loops --------------------------------------------------------------------
    def run_shell(self, shell: ShellQueue) -> None:
        get = shell.take
        main = shell is self.main_shell
        if main:
            self.outbound.lazy_ident = threading.get_ident()
        while not self.stopping.is_set():
            try:
                req = get()
            except KeyboardInterrupt:  # defensive: the gate is not armed here
                continue
            if req is _STOP:
                if shell.subshell_id is not None:
                    self._refuse_queued(shell)
                break
            shell.current = req
            try:
                self.handle(req)
            finally:
                shell.current = None
                if main:
                    self.outbound.lazy_done()
            if shell.abort_through is not None:
                self.abort_queued(shell, shell.abort_through)
                shell.abort_through = None

    def abort_queued(self, shell: ShellQueue, through: int) -> None:
        """After a failed execute with stop_on_error: answer the executes that
        arrived up to ``through`` with ``aborted``; other requests run."""
        while True:
            req = shell.take_nowait()
            if req is None:
                return
            if req is _STOP or req.arrival > through:
                # put it back at the front: it must run next, in order
                shell.put_back.appendleft(req)
                return
            if req.msg_type == "execute_request":
                self.abort(req)
            else:
                self.handle(req)
            if shell is self.main_shell:
                self.outbound.lazy_done()

    def run_control(self) -> None:
        # control's replies and status never wait behind iopub backpressure
        self.outbound.never_wait()
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
