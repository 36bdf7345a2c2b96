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

from .. import __version__ as _kernelkit_version
from ..wire import PROTOCOL_VERSION
from .dispatch import ExecutionError, describe_exception
from .request import Request
from .stdin import StdinNotAllowed

__all__ = ["ExecutionError", "Kernel", "Request", "StdinNotAllowed"]


class Kernel:
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
    supported_features: tuple = ("iopub_welcome", "kernel subshells")

    def __init__(self):
        #: Stored executions so far; the next stored execute gets count + 1.
        self.execution_count = 0
        self._runtime = None
        self._handlers = {
            "execute_request": self._on_execute,
            "kernel_info_request": self._on_kernel_info,
            "complete_request": self._on_complete,
            "inspect_request": self._on_inspect,
            "is_complete_request": self._on_is_complete,
            "history_request": lambda req: self.history(req),
            "comm_info_request": lambda req: self.comm_info(req.content.get("target_name"), req),
            "comm_open": self._on_comm("comm_open"),
            "comm_msg": self._on_comm("comm_msg"),
            "comm_close": self._on_comm("comm_close"),
            "interrupt_request": self._on_interrupt,
            "shutdown_request": self._on_shutdown,
            "create_subshell_request": self._on_create_subshell,
            "delete_subshell_request": self._on_delete_subshell,
            "list_subshell_request": self._on_list_subshell,
        }

    # ------------------------------------------------------------------ start
    @classmethod
    def main(cls, argv=None) -> None:
        """Run this kernel from the command line (``-f CONNECTION_OR_REGISTRATION_FILE``)."""
        from .app import main

        raise SystemExit(main(cls, argv))

    def _attach(self, runtime) -> None:
        self._runtime = runtime

    # --------------------------------------------------------- to override
    def execute(self, code: str, request: Request) -> dict | None:
        """Run ``code``. Publish output with the helpers; raise to report an
        error (``ExecutionError`` for a precise ename/evalue/traceback).
        May return extra reply fields, e.g. ``{"user_expressions": {...}, "payload": [...]}``."""
        raise NotImplementedError("this kernel does not execute code")

    def complete(self, code: str, cursor_pos: int, request: Request) -> dict:
        return {"matches": [], "cursor_start": cursor_pos, "cursor_end": cursor_pos, "metadata": {}}

    def inspect(self, code: str, cursor_pos: int, detail_level: int, request: Request) -> dict:
        return {"found": False, "data": {}, "metadata": {}}

    def is_complete(self, code: str, request: Request) -> dict:
        return {"status": "unknown"}

    def history(self, request: Request) -> dict:
        return {"history": []}

    def comm_info(self, target_name: str | None, request: Request) -> dict:
        return {"comms": {}}

    def comm_open(self, comm_id: str, target_name: str, data: dict, request: Request) -> None:
        """A frontend opened a comm. The default knows no targets and closes it."""
        self.publish("comm_close", {"comm_id": comm_id, "data": {}})

    def comm_msg(self, comm_id: str, data: dict, request: Request) -> None:
        pass

    def comm_close(self, comm_id: str, data: dict, request: Request) -> None:
        pass

    def interrupt(self) -> None:
        """Called (on the control thread) for ``interrupt_request``. The default
        interrupts the main thread exactly as SIGINT would, and cancels every
        input prompt a subshell is waiting on (KeyboardInterrupt there). Code
        running in a subshell is not interrupted otherwise: Python cannot
        safely raise in another thread in the middle of what it is doing."""
        self._runtime.gate.interrupt_main()
        self._runtime.stdin.cancel_other_threads()

    def shutdown(self, restart: bool) -> None:
        """Called before the shutdown reply; release what you hold."""

    def kernel_info(self) -> dict:
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

    # -------------------------------------------------------------- helpers
    @property
    def current_request(self) -> Request | None:
        """The request being handled on this thread (else the main shell's)."""
        return self._runtime.current_request

    def publish(self, msg_type: str, content: dict, metadata=None, buffers=None, parent: Request | None = None):
        """Send any iopub message, parented to the current request.

        Buffered stream output is flushed first, so it leaves before the
        display, error or status that the code produced after it."""
        if msg_type != "stream":
            self.flush_output()
        self._runtime.publish(msg_type, content, parent, metadata, buffers)

    def flush_output(self) -> None:
        """Send any output the kernel has buffered. Called before every
        non-stream iopub message, before an input_request and before each
        reply; kernels that batch output (see kernelkit.python) override it."""

    def stream(self, text: str, name: str = "stdout") -> None:
        self.publish("stream", {"name": name, "text": text})

    def display_data(self, data: dict, metadata: dict | None = None, display_id: str | None = None) -> None:
        content = {"data": data, "metadata": metadata or {}, "transient": {}}
        if display_id is not None:
            content["transient"]["display_id"] = display_id
        self.publish("display_data", content)

    def update_display_data(self, data: dict, display_id: str, metadata: dict | None = None) -> None:
        self.publish("update_display_data", {"data": data, "metadata": metadata or {}, "transient": {"display_id": display_id}})

    def execute_result(self, data: dict, metadata: dict | None = None) -> None:
        req = self.current_request
        count = req.execution_count if req is not None and req.execution_count is not None else self.execution_count
        self.publish("execute_result", {"data": data, "metadata": metadata or {}, "execution_count": count})

    def error(self, ename: str, evalue: str, traceback: list | None = None) -> None:
        self.publish("error", {"ename": ename, "evalue": evalue, "traceback": list(traceback or [])})

    def clear_output(self, wait: bool = False) -> None:
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
        rt = self._runtime
        self.flush_output()  # the prompt must not overtake output printed before it
        rt.gate.arm()
        try:
            return rt.stdin.ask(req, prompt, password)
        finally:
            rt.gate.disarm()

    # ------------------------------------------------------------ dispatch
    def _announce_execute(self, req: Request) -> None:
        """Count the execute and send its execute_input (see Runtime.announce:
        possibly on the I/O thread, while the main shell is idle)."""
        rt = self._runtime
        c = req.content
        silent = bool(c.get("silent", False))
        counter = rt.count_owner(req)  # the kernel, or the request's subshell
        if bool(c.get("store_history", True)) and not silent:
            counter.execution_count += 1
        # silent or unstored runs report the count of the last stored one
        req.execution_count = counter.execution_count
        if not silent:
            rt.publish("execute_input", {"code": c["code"], "execution_count": req.execution_count}, req)

    def _on_execute(self, req: Request) -> dict:
        rt = self._runtime
        c = req.content
        code = c["code"]
        silent = bool(c.get("silent", False))
        reply = {"execution_count": req.execution_count, "user_expressions": {}, "payload": []}
        try:
            rt.gate.arm()
            try:
                extra = self.execute(code, req)
            finally:
                rt.gate.disarm()
        except (Exception, KeyboardInterrupt) as e:
            err = describe_exception(e)
            if not silent:
                self.publish("error", err, parent=req)
            reply.update(status="error", **err)
        else:
            if extra:
                reply.update(extra)
            reply.setdefault("status", "ok")
        if reply["status"] == "error" and c.get("stop_on_error", True):
            # the executes queued behind this one are answered "aborted",
            # after this reply
            rt.abort_after(req)
        return reply

    def _on_kernel_info(self, req: Request) -> dict:
        return self.kernel_info()

    def _kernel_info_anywhere(self) -> dict | None:
        """kernel_info's reply content, if any thread may build it: the base
        class's kernel_info, which only reads the attributes above. None when
        the kernel computes it (an override runs on the main thread, as every
        handler does) or it fails (the main thread then reports the error)."""
        # (overridden in a subclass or on the instance: the bound method's
        # function is another one)
        if (
            getattr(self.kernel_info, "__func__", None) is not Kernel.kernel_info
            or getattr(self._handlers.get("kernel_info_request"), "__func__", None) is not Kernel._on_kernel_info
        ):
            return None
        try:
            return self.kernel_info()
        except Exception:
            return None

    def _on_complete(self, req: Request) -> dict:
        code = req.content["code"]
        pos = req.content.get("cursor_pos")
        return self.complete(code, len(code) if pos is None else pos, req)

    def _on_inspect(self, req: Request) -> dict:
        code = req.content["code"]
        pos = req.content.get("cursor_pos")
        return self.inspect(code, len(code) if pos is None else pos, int(req.content.get("detail_level") or 0), req)

    def _on_is_complete(self, req: Request) -> dict:
        return self.is_complete(req.content["code"], req)

    def _on_comm(self, kind: str):
        def handle(req: Request):
            c = req.content
            if kind == "comm_open":
                self.comm_open(c["comm_id"], c["target_name"], c.get("data") or {}, req)
            else:
                getattr(self, kind)(c["comm_id"], c.get("data") or {}, req)
            return None  # comm messages have no reply

        return handle

    def _on_interrupt(self, req: Request) -> dict:
        return {}  # the runtime called interrupt() before busy

    def _on_create_subshell(self, req: Request) -> dict:
        return {"subshell_id": self._runtime.create_subshell()}

    def _on_delete_subshell(self, req: Request) -> dict:
        self._runtime.delete_subshell(req.content.get("subshell_id"))
        return {}

    def _on_list_subshell(self, req: Request) -> dict:
        return {"subshell_id": self._runtime.list_subshells()}

    def _on_shutdown(self, req: Request) -> dict:
        restart = bool(req.content.get("restart", False))
        self.shutdown(restart)
        self._runtime.stop_after_reply(req)
        return {"restart": restart}
