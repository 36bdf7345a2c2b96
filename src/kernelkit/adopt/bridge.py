"""The kernelkit kernel that serves an ipykernel-style kernel: each request
becomes the ``do_*`` call ipykernel would make, with ipykernel's arguments."""

import asyncio
import inspect
import threading
import traceback

from ..kernel.base import Kernel, Request
from ..kernel.errors import ExecutionError
from ..python.compat import IOPub, KernelSession, parent_of, request_like
from ..python.patches import Patches
from . import kernelbase


class AdoptedKernel(Kernel):
    """Runs one instance of ``ipykernel_class`` (made in ``start()``).

    Subclassed per kernel by ``adopt(ipykernel_class, app)``. No subshells:
    a wrapper kernel's backend (a bash process, a Scheme interpreter) serves
    one request at a time."""

    ipykernel_class = None  # the kernel's class (a subclass of kernelbase.Kernel)
    app = None  # the IPKernelApp that launched it (the kernel's ``parent``)
    supported_features = ("iopub_welcome",)

    def __init__(self):
        super().__init__()
        self.wrapped = None
        self.iopub_socket = IOPub()
        self._loops = threading.local()
        self.patches = Patches()  # comm's factories, undone at stop (print(): the core's capture_output)

    # ---------------------------------------------------------------- start
    def start(self) -> None:
        self.ipykernel_session = KernelSession(self)
        self._install_comms()
        kernelbase._binding.kernel = self
        try:
            make = self.ipykernel_class.instance
            self.wrapped = make(parent=self.app, log=self.app.log) if self.app is not None else make()
        finally:
            kernelbase._binding.kernel = None
        self._take_kernel_info()

    def stop(self) -> None:
        self.patches.undo()

    def _take_kernel_info(self) -> None:
        """kernel_info's fields, read once from the kernel (``banner`` and
        ``language_version`` may be properties that run a program)."""
        w = self.wrapped
        if type(w).kernel_info is not kernelbase.Kernel.kernel_info:  # the kernel computes it
            self.kernel_info = lambda: {**self._call("kernel_info", lambda: w.kernel_info), "supported_features": list(self.supported_features)}
            return
        self.implementation = w.implementation
        self.implementation_version = w.implementation_version
        self.language_info = dict(w.language_info)
        self.banner = w.banner
        self.help_links = list(w.help_links)

    def _install_comms(self) -> None:
        try:
            from ..python.comms import install_comms
        except ImportError:  # no ``comm`` package: no comms
            return
        install_comms(self)

    def write_stream(self, content) -> bool:
        """A ``stream`` message the kernel sends: batched with print()'s
        output of the same name (a line-by-line kernel's output becomes a
        few large messages, in order with what it prints). False: not a
        plain stdout/stderr stream, to be published as it is."""
        if not isinstance(content, dict) or content.keys() != {"name", "text"} or not isinstance(content["text"], str):
            return False
        output = self._output
        out = output.stdout if content["name"] == "stdout" else output.stderr if content["name"] == "stderr" else None
        if out is None:
            return False
        # (the class's write: metakernel replaces sys.stdout.write with its
        # own, which sends a stream message, which would come back here)
        type(out).write(out, content["text"])
        return True

    # ------------------------------------------------------ what the layer uses
    def parent_message(self) -> dict:
        return parent_of(self.current_request)

    def request_for(self, parent):
        """The parent kernelkit publishes under, for a message or header dict."""
        return request_like(parent, self.current_request)

    def _call(self, method: str, call):
        """Run one ``do_*`` call (awaited if it is a coroutine) and check that
        it gave a dict. An exception escaping it keeps the kernel's frames only."""
        try:
            result = call()
            if inspect.isawaitable(result):
                result = self._loop().run_until_complete(result)
        except ExecutionError:
            raise
        except (Exception, KeyboardInterrupt) as e:
            tb = e.__traceback__.tb_next if e.__traceback__ is not None else None  # (drop this frame)
            lines = traceback.format_exception(type(e), e, tb)
            raise ExecutionError(type(e).__name__, str(e), [line.rstrip("\n") for line in lines]) from None
        if result is None:
            return {}
        if not isinstance(result, dict):
            raise TypeError(f"{type(self.wrapped).__name__}.{method} returned {type(result).__name__}, not a dict of reply content")
        return result

    def _loop(self) -> asyncio.AbstractEventLoop:
        """One event loop per thread (the main thread's and the control thread's)."""
        loop = getattr(self._loops, "loop", None)
        if loop is None:
            loop = self._loops.loop = asyncio.new_event_loop()
            if threading.current_thread() is threading.main_thread():
                asyncio.set_event_loop(loop)
        return loop

    # ------------------------------------------------------------- requests
    def execute(self, code: str, request: Request) -> dict:
        c = request.content
        w = self.wrapped
        kwargs = {
            "code": code,
            "silent": bool(c.get("silent", False)),
            "store_history": c.get("store_history", not c.get("silent", False)),
            "user_expressions": c.get("user_expressions", {}),
            "allow_stdin": bool(c.get("allow_stdin", False)),
        }
        meta = request.message.metadata
        accepted = _cell_parameters(w.do_execute)
        if "cell_meta" in accepted:
            kwargs["cell_meta"] = meta
        if "cell_id" in accepted:
            kwargs["cell_id"] = meta.get("cellId") if isinstance(meta, dict) else None
        reply = self._call("do_execute", lambda: w.do_execute(**kwargs))
        reply.pop("execution_count", None)  # kernelkit's count is the one sent
        return reply

    def complete(self, code, cursor_pos, request):
        return self._call("do_complete", lambda: self.wrapped.do_complete(code, cursor_pos))

    def inspect(self, code, cursor_pos, detail_level, request):
        omit = set(request.content.get("omit_sections", []))
        return self._call("do_inspect", lambda: self.wrapped.do_inspect(code, cursor_pos, detail_level, omit))

    def is_complete(self, code, request):
        return self._call("do_is_complete", lambda: self.wrapped.do_is_complete(code))

    def history(self, request):
        return self._call("do_history", lambda: self.wrapped.do_history(**request.content))

    def shutdown(self, restart: bool) -> None:
        if self.wrapped is not None:
            self._call("do_shutdown", lambda: self.wrapped.do_shutdown(restart))

    # comms: the kernel's own shell_handlers if it set them (metakernel), else comm's manager
    def _comm(self, msg_type: str, request: Request) -> bool:
        handler = self.wrapped.shell_handlers.get(msg_type) if self.wrapped is not None else None
        if handler is None:
            return False
        self._call(msg_type, lambda: handler(None, None, parent_of(request)))
        return True

    def comm_open(self, comm_id, target_name, data, request):
        if not self._comm("comm_open", request):
            super().comm_open(comm_id, target_name, data, request)

    def comm_msg(self, comm_id, data, request):
        self._comm("comm_msg", request)

    def comm_close(self, comm_id, data, request):
        self._comm("comm_close", request)

    def comm_info(self, target_name, request):
        try:
            from ..python.comms import comm_info
        except ImportError:
            return {"comms": {}}
        return {"comms": comm_info(target_name)}


def _cell_parameters(method) -> set:
    """Which of ``cell_meta`` / ``cell_id`` ``do_execute`` takes (ipykernel
    passes them only then)."""
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return {"cell_meta", "cell_id"}
    return {"cell_meta", "cell_id"} & set(params)


def adopt(ipykernel_class, app=None) -> type:
    """The kernelkit kernel class serving ``ipykernel_class``."""
    return type(f"Adopted{ipykernel_class.__name__}", (AdoptedKernel,), {"ipykernel_class": ipykernel_class, "app": app})
