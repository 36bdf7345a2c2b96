"""The life of a request: arrival, announce, run, reply, idle, abort.

An execute, top to bottom:

1. ``arrive`` (I/O thread): the request is validated and routed by its
   header's ``subshell_id`` to a shell's queue. If the main shell is idle it
   is announced at once (``announce``: busy, then the execute is counted and
   its execute_input sent), so those leave while the main thread wakes up.
2. ``run_shell`` (the shell's thread) takes it and calls ``handle``.
3. ``handle``: announce (unless done on arrival), then ``_execute`` runs
   ``Kernel.execute`` with the interrupt gate armed; an exception becomes an
   ``error`` message and an error reply. Output is flushed, the reply sent,
   then idle.
4. After a failed execute with ``stop_on_error``, ``run_shell`` answers the
   executes that had arrived by then ``aborted`` (``abort_queued``).

An interrupt, top to bottom: ``arrive`` puts it in the control queue;
``run_control`` (control thread) calls ``handle``, which calls
``Kernel.interrupt()`` first (the FIFO that busy goes through may be full of
the output being interrupted), then sends busy, the reply, idle.

Every change of a request's state (kernel/request.py: arrived, announced,
running, replied or aborted, idle) is made here.

The kernel's own handlers come from its declared table
(``Kernel.message_handlers``); the message types of the lifecycle's own table
(``handlers.LIFECYCLE_HANDLERS``) are served here and call the kernel's
public methods.
"""

import logging
import queue
import threading

from ..logs import LogLimiter
from ..wire.channels import CONTROL, SHELL, STDIN
from ..wire.errors import InvalidContent
from ..wire.requests import validate
from .errors import RequestError, SubshellDeleted, SubshellsNotSupported, UnknownSubshell, describe_exception, wrong_return
from .handlers import LIFECYCLE_HANDLERS
from .request import ABORTED, ANNOUNCED, IDLE, REPLIED, RUNNING, Request
from .services import Services
from .shells import NUDGE, STOP, Shells, ShellQueue

log = logging.getLogger("kernelkit.kernel")

# the supported_features entry by which a kernel offers subshells
SUBSHELLS = "kernel subshells"
COMM_MESSAGES = frozenset({"comm_open", "comm_msg", "comm_close"})


class Lifecycle:
    """Runs every request of one kernel through busy, handler, reply, idle."""

    def __init__(self, sender, stdin, gate):
        self.sender = sender
        self.outbound = sender.outbound
        self.stdin = stdin
        self.gate = gate
        gate.on_idle_interrupt = self._interrupt_announced
        self.shells = Shells()
        self.kernel = None  # set by attach; until then requests wait in their queues
        self.handlers: dict = {}
        self.control_queue: queue.SimpleQueue = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.on_stop = None  # set by the app: called once when shutdown is requested
        self._stop_after = None
        self._arrived = 0  # arrival number of the last request (I/O thread)
        self._limiter = LogLimiter()
        self._local = threading.local()  # .request: the request this thread handles
        self._own = {msg_type: getattr(self, name) for msg_type, name in LIFECYCLE_HANDLERS.items()}

    def attach(self, kernel) -> None:
        """Connect the kernel, call its ``start()``, then serve it."""
        kernel._bind(Services(self))
        handlers = {msg_type: getattr(kernel, name) for msg_type, name in type(kernel).message_handlers.items()}
        handlers.update(self._own)
        self.handlers = handlers
        if not getattr(kernel.idle, "waits_on_queue", False):
            # the kernel runs its own loop between requests (Kernel.idle)
            self.shells.main.wake_on_put()
        try:
            kernel.start()
        except BaseException:
            kernel._unbind()
            raise
        self.kernel = kernel

    # -- arrival (on the I/O thread: must not block) ----------------------------
    def arrive(self, channel: str, msg) -> None:
        if channel == STDIN:
            self.stdin.deliver(msg)
            return
        req = self._number(Request(msg, channel))
        try:
            validate(msg)
        except InvalidContent as e:
            req.invalid = e
        if channel == CONTROL or req.invalid is not None:
            self.control_queue.put(req)
            return
        shell = self.shells.get(msg.header.get("subshell_id"))
        if shell is not self.shells.main and msg.msg_type in COMM_MESSAGES:
            if shell is None:
                # a comm belongs to the kernel, not to a subshell: JupyterLab sends
                # a comm's last messages (comm_close) on the subshell it has just
                # deleted, and dropping them would leave the comm open
                log.debug("%s for unknown subshell_id %r: run on the main shell", msg.msg_type, msg.header.get("subshell_id"))
                shell = self.shells.main
            elif self.kernel is not None and self.kernel.comms_follow_main_shell and not self._main_runs_a_cell_alone():
                shell = self.shells.main  # (Kernel.comms_follow_main_shell)
        if shell is None:
            req.invalid = UnknownSubshell(f"unknown subshell_id {msg.header.get('subshell_id')!r}")
            self.control_queue.put(req)  # answered at once, not behind running code
            return
        req.shell = shell
        if shell is self.shells.main:
            # Nothing running or queued in the main shell (every request put
            # there is granted first), so this one runs next: announce it here
            # and now. Its busy (and execute_input) leave while the main
            # thread wakes up and runs it, instead of with its reply.
            if self.kernel is not None and not self.outbound.lazy_active and not self.stopping.is_set() and msg.msg_type in self.handlers:
                if msg.msg_type == "kernel_info_request" and self._answer_kernel_info_now(req):
                    return
                self.announce(req)
                # busy and execute_input leave before the main thread is
                # woken: pyzmq lets go of the GIL for every frame it sends,
                # so sent after, they would hand the GIL back and forth with
                # the waking main thread (and wait for most of the cell)
                self.outbound.send_now()
            self.outbound.grant_lazy()
        shell.put(req)

    def arrive_invalid(self, channel: str, msg, error) -> None:
        """A request whose content could not be parsed: an error reply."""
        if channel in (SHELL, CONTROL) and msg.msg_type.endswith("_request"):
            self.control_queue.put(self._number(Request(msg, channel, invalid=error)))

    def _number(self, req: Request) -> Request:
        self._arrived += 1
        req.arrival = self._arrived
        return req

    def _main_runs_a_cell_alone(self) -> bool:
        """The main shell runs (or has announced) an execute and nothing is
        queued behind it: a comm message beside it is what subshells are for."""
        main = self.shells.main
        req = main.current or main.announced
        return req is not None and req.msg_type == "execute_request" and not main.put_back and main.queue.empty()

    def _answer_kernel_info_now(self, req: Request) -> bool:
        """Answer a kernel_info_request on the I/O thread, when the main shell
        is idle and the reply is plain attributes (the base class's
        kernel_info, no code of the kernel's): busy, reply and idle leave in
        the order the main thread would send them, without waking it. A
        kernel_info that fails falls back to the main thread's error reply."""
        kernel = self.kernel
        if not getattr(kernel.kernel_info, "from_attributes", False):
            return False  # computed by the kernel: it runs where handlers run
        try:
            content = kernel.kernel_info()
        except Exception:
            return False
        content.setdefault("status", "ok")
        self.answer(req, content)
        return True

    # -- what runs where --------------------------------------------------------
    @property
    def current_request(self) -> Request | None:
        """The request this thread handles, else the main shell's."""
        return getattr(self._local, "request", None) or self.shells.main.current

    def request_on_this_thread(self) -> Request | None:
        return getattr(self._local, "request", None)

    # -- one request --------------------------------------------------------------
    def announce(self, req: Request) -> None:
        """What a request says as it starts: busy and, for an execute, its
        count and execute_input. Done once: on the thread that runs it or,
        when the main shell is idle, on the I/O thread as it arrives."""
        req.state = ANNOUNCED
        if req.shell is self.shells.main:
            self.shells.main.announced = req
        self.sender.status("busy", req)
        if req.msg_type == "execute_request":
            c = req.content
            silent = bool(c.get("silent", False))
            counter = self.count_owner(req)
            if bool(c.get("store_history", True)) and not silent:
                counter.execution_count += 1
            # silent or unstored runs report the count of the last stored one
            req.execution_count = counter.execution_count
            if not silent:
                self.sender.publish("execute_input", {"code": c["code"], "execution_count": req.execution_count}, parent=req)

    def handle(self, req: Request) -> None:
        """busy, then the handler and its reply, then idle."""
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
                self.kernel.interrupt()
            except Exception as e:
                log.exception("interrupt failed")
                req.invalid = e
                return self.handle(req)
        handler = self.handlers.get(req.msg_type)
        if handler is None:
            self._limiter.warn(
                ("unknown", req.channel, req.msg_type), f"{req.channel}: ignored unknown message type {req.msg_type!r}", log
            )
            return
        if not req.announced:
            self.announce(req)
        previous = getattr(self._local, "request", None)
        self._local.request = req
        req.state = RUNNING
        try:
            content = handler(req)
            if content is not None and not isinstance(content, dict):
                # (the base class's wrappers are named _<method>_request)
                raise wrong_return(self.kernel, handler.__name__.lstrip("_").removesuffix("_request"), content)
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
                self.kernel.flush_output()
        except Exception:
            log.exception("flushing output failed")
        if content is not None:
            content.setdefault("status", "ok")
            self.sender.reply(req, content)
        req.state = REPLIED
        self.sender.status("idle", req)
        req.state = IDLE
        if req is self._stop_after:
            self.request_stop()

    def answer(self, req: Request, content: dict | None, state: str = REPLIED) -> None:
        """busy (unless the request was announced), ``content`` as its reply
        (None: no reply), idle: a request answered without a handler
        (invalid, aborted, or kernel_info from plain attributes)."""
        if not req.announced:
            req.state = ANNOUNCED
            self.sender.status("busy", req)
        if content is not None:
            self.sender.reply(req, content)
        req.state = state
        self.sender.status("idle", req)
        req.state = IDLE

    def count_owner(self, req: Request):
        """Who counts this request's executions: its subshell, or the kernel."""
        shell = req.shell
        return shell if shell is not None and not shell.is_main else self.kernel

    def _interrupt_announced(self) -> bool:
        """SIGINT while the main thread runs nothing interruptible (on the main
        thread): if the client has seen the main shell's next request start
        (busy, even execute_input) and it has not begun to run, the interrupt
        is for it. True if there was one."""
        req = self.shells.main.announced
        if req is None:
            return False
        req.interrupted = True
        return True

    # -- the lifecycle's own message types (handlers.LIFECYCLE_HANDLERS) ----------
    def _execute(self, req: Request) -> dict:
        c = req.content
        reply = {"execution_count": req.execution_count, "user_expressions": {}, "payload": []}
        began = False
        try:
            try:
                self.gate.arm()
                if req.interrupted:  # since it was announced (_interrupt_announced)
                    raise KeyboardInterrupt
                began = True
                extra = self.kernel.execute(c["code"], req)
                if extra is not None and not isinstance(extra, dict):
                    raise wrong_return(self.kernel, "execute", extra)
            finally:
                self.gate.disarm()
        except (Exception, KeyboardInterrupt) as e:
            if began:
                err = describe_exception(e)
            else:  # the cell did not run: no traceback of the kernel's own
                err = {"ename": "KeyboardInterrupt", "evalue": "", "traceback": ["KeyboardInterrupt: interrupted before the cell started"]}
            if not c.get("silent", False):
                self.kernel.flush_output()  # output before the error leaves first
                self.sender.publish("error", err, parent=req)
            reply.update(status="error", **err)
        else:
            if extra:
                reply.update(extra)
            reply.setdefault("status", "ok")
        if reply["status"] == "error" and c.get("stop_on_error", True) and req.shell is not None:
            # the executes that arrived before this reply is sent are answered
            # "aborted" after it; one sent after the client saw the reply runs
            req.shell.abort_through = self._arrived
        return reply

    def _kernel_info(self, req: Request) -> dict:
        return self.kernel.kernel_info()

    def _interrupt(self, req: Request) -> dict:
        return {}  # handle() called Kernel.interrupt() before busy

    def _shutdown(self, req: Request) -> dict:
        restart = bool(req.content.get("restart", False))
        self.kernel.shutdown(restart)
        self.stop_after(req)
        return {"restart": restart}

    def stop_after(self, req: Request) -> None:
        """Stop once ``req`` is answered and its idle sent."""
        self._stop_after = req

    def _offers_subshells(self) -> None:
        if SUBSHELLS not in self.kernel.supported_features:
            raise SubshellsNotSupported(f"this kernel ({self.kernel.implementation}) does not support subshells")

    def _create_subshell(self, req: Request) -> dict:
        self._offers_subshells()
        return {"subshell_id": self.shells.create(self.run_shell).subshell_id}

    def _delete_subshell(self, req: Request) -> dict:
        """Stop routing to the subshell at once; answer what is queued in it
        with an error (comm messages excepted: they still run); let its
        running request finish; then its thread ends."""
        self._offers_subshells()
        shell = self.shells.remove(req.content.get("subshell_id"))
        self._refuse_queued(shell, at_delete=True)
        shell.put(STOP)
        return {}

    def _list_subshells(self, req: Request) -> dict:
        self._offers_subshells()
        return {"subshell_id": self.shells.subshell_ids()}

    def _refuse_queued(self, shell: ShellQueue, at_delete: bool = False) -> None:
        """Answer the requests queued in a deleted subshell (also those the
        I/O thread routed just before the deletion) with SubshellDeleted.
        Comm messages are not refused: a comm is the kernel's, not the
        subshell's, and JupyterLab sends a comm's last messages (comm_close)
        on a subshell it then deletes. They run on the subshell's own thread,
        as they would have: at the delete (control thread) they are put back
        for it, and it runs them before its STOP."""
        kept = []
        while True:
            req = shell.take_nowait()
            if req is None:
                break
            if req is STOP:
                continue
            if req.msg_type in COMM_MESSAGES:
                if at_delete:
                    kept.append(req)
                else:
                    self._run_on(shell, req)
                continue
            req.invalid = SubshellDeleted(f"subshell {shell.subshell_id} was deleted before this request ran")
            self.handle(req)
        for req in kept:
            shell.put(req)

    # -- loops ----------------------------------------------------------------------
    def run_shell(self, shell: ShellQueue) -> None:
        """Serve one shell's requests in order until stopped (the main shell
        on the main thread; a subshell on its own thread)."""
        get = shell.take
        main = shell.is_main
        if main:
            self.outbound.lazy_ident = threading.get_ident()
            if shell.waker is not None:
                get = self._take_after_idle
        while not self.stopping.is_set():
            try:
                req = get()
            except KeyboardInterrupt:  # defensive: the gate is not armed here
                continue
            if req is STOP:
                if not main:
                    self._refuse_queued(shell)
                break
            self._run_on(shell, req)
            if shell.abort_through is not None:
                self.abort_queued(shell, shell.abort_through)
                shell.abort_through = None

    def _run_on(self, shell: ShellQueue, req: Request) -> None:
        """Handle ``req`` as ``shell``'s current request (its output is this
        request's, not an ended one's)."""
        shell.current = req
        try:
            self.handle(req)
        finally:
            shell.current = None
            if shell.is_main:
                self._main_request_done(req)

    def _take_after_idle(self):
        """(main shell, a kernel with its own loop) The next request; until
        there is one, the main thread runs ``Kernel.idle``, which returns as
        soon as the waker is readable."""
        shell = self.shells.main
        waker = shell.waker
        while True:
            req = shell.take_nowait()
            if req is not None:
                return req
            waker.clear()
            waker.waiting = True  # from now on a put wakes us...
            try:
                req = shell.take_nowait()  # ...and one put just before is seen here
                if req is not None:
                    return req
                if self.kernel.idle(waker) is False:
                    # nothing to run in the loop: wait on the queue itself
                    # (the fastest wake-up) until a request or a nudge
                    waker.on_queue = True  # (before waiting ends: a nudge always sees one)
                    waker.waiting = False  # (a put needs no write to the waker now)
                    try:
                        req = shell.take()
                    finally:
                        waker.on_queue = False
                    if req is not NUDGE:
                        return req
            except KeyboardInterrupt:  # defensive: the gate is not armed here
                continue
            except Exception:
                log.exception("the kernel's idle loop failed; waiting for the next request without it")
                waker.waiting = False
                req = shell.take()
                while req is NUDGE:
                    req = shell.take()
                return req
            finally:
                waker.waiting = False

    def abort_queued(self, shell: ShellQueue, through: int) -> None:
        """After a failed execute with stop_on_error: answer the executes that
        arrived up to ``through`` with ``aborted``; other requests run."""
        while True:
            req = shell.take_nowait()
            if req is None:
                return
            if req is STOP or req.arrival > through:
                # put it back at the front: it must run next, in order
                shell.put_back.appendleft(req)
                return
            if req.msg_type == "execute_request":
                self.answer(req, {"status": "aborted", "execution_count": self.count_owner(req).execution_count}, ABORTED)
            else:
                self.handle(req)
            if shell.is_main:
                self._main_request_done(req)

    def _main_request_done(self, req: Request) -> None:
        if self.shells.main.announced is req:
            self.shells.main.announced = None
        self.outbound.lazy_done()  # (then the I/O thread may announce the next one)

    def run_control(self) -> None:
        # control's replies and status never wait behind iopub backpressure
        self.outbound.never_wait()
        while True:
            req = self.control_queue.get()
            if req is STOP:
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
        self.shells.stop_all()
        self.control_queue.put(STOP)
        # (announced counts too: a cell whose busy and execute_input the I/O
        # thread has sent may not have reached the main thread yet; it then
        # ends with KeyboardInterrupt as it begins instead of running)
        if self.shells.main.has_request:
            self.gate.interrupt_main()
        if self.on_stop is not None:
            self.on_stop()
