"""The base class kernel authors subclass.

Override the request methods you support (``execute`` at least); use the
output helpers (``stream``, ``display_data``, ``execute_result``, ...) and
``input`` from inside them. kernelkit does the rest: busy/idle, replies,
execution counts, errors, interrupts, stdin, the handshake and the sockets.

    class EchoKernel(Kernel):
        implementation = "echo"
        language_info = {"name": "echo", "mimetype": "text/plain", "file_extension": ".txt"}

        def execute(self, code, request):
            self.stream(code)

    if __name__ == "__main__":
        EchoKernel.main()
"""

import threading

from .._version import __version__ as _kernelkit_version
from ..wire import PROTOCOL_VERSION
from .errors import ExecutionError
from .handlers import collect, handler
from .request import Request
from .stdin import StdinNotAllowed

__all__ = ["ExecutionError", "Kernel", "Request", "StdinNotAllowed", "handler"]


class Kernel:
    """The base class of a kernelkit kernel: subclass it, set the class
    attributes below, override ``execute`` (and what else the language
    supports), then call ``main()``.

    Threads: every request method runs on the thread of the shell that
    received it: the main thread (so SIGINT and main-thread-only libraries
    work), or a subshell's own thread if the kernel offers subshells.
    ``interrupt`` runs on the control thread; ``start`` and ``stop`` on the
    main thread. Each request method returns the reply's content (a dict;
    ``status: ok`` is added) and gets the ``Request`` last. An exception
    becomes an error reply (and, from ``execute``, an ``error`` message),
    shown from the first frame of the kernel's own code; the kernel goes on.
    ``print()`` in a handler is output of its request (``capture_output``).
    """

    #: ``kernel_info_reply`` fields; override as class attributes. Keep them
    #: plain values: while the kernel is idle, the I/O thread answers a shell
    #: kernel_info_request from them at once. To compute the reply, override
    #: ``kernel_info()``; it then runs on the main thread like any handler.
    implementation = "kernelkit"
    implementation_version = _kernelkit_version
    language_info: dict = {"name": "text", "version": "", "mimetype": "text/plain", "file_extension": ".txt"}
    banner = ""
    help_links: list = []
    protocol_version = PROTOCOL_VERSION
    #: What ``kernel_info`` lists. Subshells (JEP 91) are the kernel's choice:
    #: add ``"kernel subshells"`` only if the kernel's handlers may run on
    #: several threads at once (its state is thread-safe). Without it the
    #: subshell requests get an error reply saying subshells are not supported.
    supported_features: tuple = ("iopub_welcome",)
    #: Comm messages a client sends on a subshell (JupyterLab sends every comm
    #: message on one). False: they run on that subshell's thread (JEP 91),
    #: beside whatever the main shell runs. True: they take their turn on the
    #: main shell, except while it runs a cell with nothing queued behind it,
    #: when they run on the subshell (so widgets answer during a long cell);
    #: the kernel then guards what its comm handlers share (the Python kernel:
    #: ``comm_lock``). README: "Comms and subshells".
    comms_follow_main_shell = False

    #: ``print()`` and ``sys.stdout`` / ``sys.stderr`` writes, from a handler
    #: or any thread, become ``stream`` messages (batched: sent within 50 ms,
    #: and before the request's next display, input prompt or reply), as
    #: under ipykernel: a handler's output goes to the request it handles,
    #: other threads' to the main shell's request. Set False to leave the
    #: process's streams alone (they then go where the kernel's own do);
    #: the kernel then pays nothing for it.
    capture_output: bool = True

    #: ``msg_type -> method name``: the requests this kernel handles besides
    #: the lifecycle's own (execute, kernel_info, interrupt, shutdown,
    #: subshells). Built from the ``@handler`` declarations of the class and
    #: its bases; see kernelkit.kernel.handlers.
    message_handlers: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.message_handlers = collect(cls)

    def __init__(self):
        #: Stored executions so far; the next stored execute gets count + 1.
        self.execution_count = 0
        self._services = None  # kernelkit.kernel.services.Services, once connected
        #: kernelkit.kernel.outstream.CapturedOutput (``.stdout``, ``.stderr``)
        #: once the kernel runs, if ``capture_output``
        self._output = None

    # ------------------------------------------------------------------ start
    @classmethod
    def main(cls, argv=None) -> None:
        """Run this kernel from the command line (``-f CONNECTION_OR_REGISTRATION_FILE``)."""
        from .app import main

        raise SystemExit(main(cls, argv))

    def _bind(self, services) -> None:
        # (called by the lifecycle, once, before start(); not for overriding)
        self._services = services
        self._main_ident = threading.main_thread().ident
        if self.capture_output:
            from .outstream import CapturedOutput

            self._output = CapturedOutput(self._send_stream, self._parent_of_writer)

    def _unbind(self) -> None:
        # (called once after stop(), or after a start() that raised: the
        # process's own streams come back)
        if self._output is not None:
            self._output.close()

    def _parent_of_writer(self) -> Request | None:
        """The request a write to sys.stdout/sys.stderr on this thread is for."""
        # hot path (every write): the main thread's output belongs to the
        # request it is running
        services = self._services
        if threading.get_ident() == self._main_ident:
            return services.main_request or services.current_request
        # a subshell's thread writes for the request it runs
        return services.request_on_this_thread() or self._parent_of_other_thread()

    def _parent_of_other_thread(self) -> Request | None:
        """The parent of output from a thread that handles no request (one the
        kernel started): the main shell's request."""
        return self._services.current_request

    def _send_stream(self, name: str, text: str, parent: Request | None) -> None:
        """Send a batch of captured output."""
        self._services.publish("stream", {"name": name, "text": text}, parent=parent)

    def start(self) -> None:
        """Called once on the main thread when the sockets are bound, before
        the kernel tells the launcher where they are: start what the kernel
        needs (a backend process, hooks). The output helpers work here (with
        no parent request). An exception ends the process before it
        registers, with one line on stderr naming it, which the launcher
        reports (``kernel exited with code 1 before registering: ...``). Its
        time counts against the launcher's wait for the registration."""

    def stop(self) -> None:
        """Called once on the main thread after the last request has been
        answered, before the sockets close."""

    def idle(self, wake) -> bool | None:
        """The main thread while the main shell has no request: override it
        to run the kernel's own event loop between requests (asyncio, a GUI
        toolkit's), so what cells leave scheduled there keeps running.

        Run the loop until ``wake`` is readable (``wake.fileno()``: watch it
        as a file descriptor in the loop, e.g. asyncio's ``add_reader``, Qt's
        ``QSocketNotifier``, Tk's ``createfilehandler``), then return; it
        becomes readable as soon as a request for the main shell arrives, so
        the request is not delayed by a polling interval. Returning early is
        harmless (``idle`` is called again if there is still no request).
        Return ``False`` at once when the loop has nothing to do: the main
        thread then waits on the request queue itself, the fastest wake-up;
        another thread that gives the loop work calls ``wake.nudge()``, which
        brings the main thread back into ``idle``. Interrupts are not raised
        while idle. An exception is logged and the main thread then waits for
        the next request without the loop.

        Not overridden (this default), the main thread blocks on the request
        queue and nothing runs between requests: the fastest path."""
        raise NotImplementedError  # (never called: the lifecycle blocks on the queue instead)

    # the lifecycle blocks on its queue instead of calling the default above
    idle.waits_on_queue = True

    @classmethod
    def accept_arguments(cls, argv: list) -> None:
        """Command-line arguments the kernel core does not know, before the
        kernel is made. Raise ValueError to refuse them (the process exits
        with code 2 and the message); the default refuses any."""
        if argv:
            raise ValueError(f"unrecognized arguments: {' '.join(argv)}")

    # --------------------------------------------------------- to override
    def execute(self, code: str, request: Request) -> dict | None:
        """Run ``code``. Publish output with the helpers; raise to report an
        error (``ExecutionError`` for a precise ename/evalue/traceback).
        May return extra reply fields, e.g. ``{"user_expressions": {...}, "payload": [...]}``."""
        raise NotImplementedError("this kernel does not execute code")

    def complete(self, code: str, cursor_pos: int, request: Request) -> dict:
        """complete_request: completions of ``code`` at ``cursor_pos`` (a
        character offset; the end of the code if the client sent none).
        Returns ``{"matches": [str], "cursor_start": int, "cursor_end": int,
        "metadata": {}}``: the matches replace ``code[cursor_start:cursor_end]``."""
        return {"matches": [], "cursor_start": cursor_pos, "cursor_end": cursor_pos, "metadata": {}}

    def inspect(self, code: str, cursor_pos: int, detail_level: int, request: Request) -> dict:
        """inspect_request (Shift-Tab, ``obj?``): about the name at ``cursor_pos``;
        ``detail_level`` 0 or 1 (more). Returns ``{"found": bool, "data":
        {mime: value}, "metadata": {}}``."""
        return {"found": False, "data": {}, "metadata": {}}

    def is_complete(self, code: str, request: Request) -> dict:
        """is_complete_request (consoles, on Enter): ``{"status": "complete" |
        "incomplete" | "invalid" | "unknown"}``, with ``"indent": str`` for
        ``incomplete`` (what the next line starts with)."""
        return {"status": "unknown"}

    def history(self, request: Request) -> dict:
        """history_request: ``{"history": [(session, line_number, input), ...]}``
        (``(input, output)`` pairs if ``request.content["output"]``); the
        content says ``hist_access_type`` (range, tail, search) and its bounds."""
        return {"history": []}

    def comm_info(self, target_name: str | None, request: Request) -> dict:
        """comm_info_request: ``{"comms": {comm_id: {"target_name": str}}}``,
        the open comms (of ``target_name`` only, if given)."""
        return {"comms": {}}

    def comm_open(self, comm_id: str, target_name: str, data: dict, request: Request) -> None:
        """A frontend opened a comm. The default knows no targets and closes it."""
        self.publish("comm_close", {"comm_id": comm_id, "data": {}})

    def comm_msg(self, comm_id: str, data: dict, request: Request) -> None:
        """A message on an open comm (no reply; answer with ``publish("comm_msg", ...)``)."""

    def comm_close(self, comm_id: str, data: dict, request: Request) -> None:
        """The frontend closed a comm (no reply)."""

    def interrupt(self) -> None:
        """Called (on the control thread) for ``interrupt_request``. The default
        interrupts the main thread exactly as SIGINT would, and cancels every
        input prompt a subshell is waiting on (KeyboardInterrupt there). Code
        running in a subshell is not interrupted otherwise: Python cannot
        safely raise in another thread in the middle of what it is doing."""
        self._services.interrupt()

    def shutdown(self, restart: bool) -> None:
        """shutdown_request, on the control thread, before the reply: release
        what you hold (``restart``: the kernel will be started again). The
        process then ends; ``stop()`` runs on the main thread before it does."""

    def kernel_info(self) -> dict:
        """kernel_info_request: the reply's content, from the class attributes.
        Override only to compute it (it then runs on the main thread, not on
        the I/O thread at once)."""
        return {
            "protocol_version": self.protocol_version,
            "implementation": self.implementation,
            "implementation_version": self.implementation_version,
            "language_info": dict(self.language_info),
            "banner": self.banner,
            "help_links": list(self.help_links),
            "supported_features": list(self.supported_features),
            # (clients older than JEP 92 read this flag)
            **({"debugger": True} if "debugger" in self.supported_features else {}),
        }

    # this one reads attributes only: while the kernel is idle the I/O thread
    # may call it (an override is not marked, so it runs where handlers run)
    kernel_info.from_attributes = True

    # -------------------------------------------------------------- helpers
    @property
    def current_request(self) -> Request | None:
        """The request being handled on this thread (else the main shell's)."""
        return self._services.current_request

    def publish(self, msg_type: str, content: dict, metadata=None, buffers=None, parent: Request | None = None):
        """Send any iopub message, parented to the current request.

        Buffered stream output is flushed first, so it leaves before the
        display, error or status that the code produced after it."""
        if msg_type != "stream":
            self.flush_output()
        elif self._output is not None:  # after what was printed before it
            self._output.flush()
        self._services.publish(msg_type, content, metadata, buffers, parent or self._services.current_request)

    def flush_output(self) -> None:
        """Send any output the kernel has buffered (what was printed, with
        ``capture_output``). Called before every non-stream iopub message,
        before an input_request and before each reply; a kernel that batches
        output of its own overrides it and calls ``super().flush_output()``."""
        if self._output is not None:
            self._output.flush()

    def stream(self, text: str, name: str = "stdout") -> None:
        """Text on the request's ``stdout`` (or ``stderr``): a ``stream`` message.
        Any thread; parented to the request this thread handles."""
        self.publish("stream", {"name": name, "text": text})

    def display_data(self, data: dict, metadata: dict | None = None, display_id: str | None = None) -> None:
        """Rich output (``{mime: value}``, e.g. ``{"text/html": ..., "text/plain": ...}``);
        with ``display_id``, one that ``update_display_data`` can replace later."""
        content = {"data": data, "metadata": metadata or {}, "transient": {}}
        if display_id is not None:
            content["transient"]["display_id"] = display_id
        self.publish("display_data", content)

    def update_display_data(self, data: dict, display_id: str, metadata: dict | None = None) -> None:
        """Replace what an earlier ``display_data(..., display_id=...)`` shows, wherever it is."""
        self.publish("update_display_data", {"data": data, "metadata": metadata or {}, "transient": {"display_id": display_id}})

    def execute_result(self, data: dict, metadata: dict | None = None) -> None:
        """The cell's value (``{mime: value}``), numbered with its execution count (``Out[n]``)."""
        req = self.current_request
        count = req.execution_count if req is not None and req.execution_count is not None else self.execution_count
        self.publish("execute_result", {"data": data, "metadata": metadata or {}, "execution_count": count})

    def error(self, ename: str, evalue: str, traceback: list | None = None) -> None:
        """An ``error`` message without failing the request (to fail it, raise:
        ``ExecutionError(ename, evalue, traceback)`` for exact text)."""
        self.publish("error", {"ename": ename, "evalue": evalue, "traceback": list(traceback or [])})

    def clear_output(self, wait: bool = False) -> None:
        """Clear the cell's output (``wait``: when the next output arrives)."""
        self.publish("clear_output", {"wait": bool(wait)})

    def input(self, prompt: str = "", password: bool = False) -> str:
        """Ask the frontend for a line of input and wait for it.

        Raises StdinNotAllowed when the request did not allow stdin, and
        KeyboardInterrupt when interrupted (SIGINT or interrupt_request); an
        answer arriving after the interrupt is dropped.
        """
        req = self.current_request
        if req is None:
            raise StdinNotAllowed("input() called outside of a request")
        self.flush_output()  # the prompt must not overtake output printed before it
        return self._services.ask(req, prompt, password)

    # ----------------------------------------------- the declared handlers
    # The standard requests, unpacked into the methods above.

    @handler("complete_request")
    def _complete_request(self, req: Request) -> dict:
        code = req.content["code"]
        pos = req.content.get("cursor_pos")
        return self.complete(code, len(code) if pos is None else pos, req)

    @handler("inspect_request")
    def _inspect_request(self, req: Request) -> dict:
        code = req.content["code"]
        pos = req.content.get("cursor_pos")
        return self.inspect(code, len(code) if pos is None else pos, int(req.content.get("detail_level") or 0), req)

    @handler("is_complete_request")
    def _is_complete_request(self, req: Request) -> dict:
        return self.is_complete(req.content["code"], req)

    @handler("history_request")
    def _history_request(self, req: Request) -> dict:
        return self.history(req)

    @handler("comm_info_request")
    def _comm_info_request(self, req: Request) -> dict:
        return self.comm_info(req.content.get("target_name"), req)

    # comm messages have no reply
    @handler("comm_open")
    def _comm_open(self, req: Request) -> None:
        c = req.content
        self.comm_open(c["comm_id"], c["target_name"], c.get("data") or {}, req)

    @handler("comm_msg")
    def _comm_msg(self, req: Request) -> None:
        self.comm_msg(req.content["comm_id"], req.content.get("data") or {}, req)

    @handler("comm_close")
    def _comm_close(self, req: Request) -> None:
        self.comm_close(req.content["comm_id"], req.content.get("data") or {}, req)


Kernel.message_handlers = collect(Kernel)
