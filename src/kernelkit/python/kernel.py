"""The bundled Python kernel."""

import functools
import importlib.util
import logging
import os
import sys
import threading

from .._version import __version__
from ..kernel.base import Kernel, StdinNotAllowed, handler
from ..kernel.outstream import FdCapture
from .aioloop import CELL, KernelLoop
from .guiloops import GuiLoops
from .patches import Patches

log = logging.getLogger("kernelkit.python")

# attribute a started thread carries: the request that was running when it started
_PARENT_ATTR = "_kernelkit_parent"


def _language_version() -> str:
    return ".".join(str(p) for p in sys.version_info[:3])


def _default_ipython_banner() -> str:
    """IPython's default banner, without importing IPython (over 100 ms at
    launch): its version is read from its release module's text. (The
    shell's own banner replaces it once the shell is made.)"""
    import importlib.util
    import re

    version = "?"
    spec = importlib.util.find_spec("IPython")
    if spec is not None and spec.submodule_search_locations:
        try:
            with open(os.path.join(spec.submodule_search_locations[0], "core", "release.py"), encoding="utf-8") as f:
                text = f.read()
        except OSError:
            text = ""
        parts = {name: re.findall(rf"^_version_{name} = (.+)$", text, re.M) for name in ("major", "minor", "patch", "extra")}
        if all(parts.values()):  # (the last assignment counts: extra is set twice)
            version = "{}.{}.{}{}".format(*(p[-1].split("#")[0].strip().strip("'\"") for p in parts.values()))
    return (
        f"Python {sys.version.splitlines()[0]}\n"
        "Type 'copyright', 'credits' or 'license' for more information\n"
        f"IPython {version} -- An enhanced Interactive Python. Type '?' for help.\n"
    )


class PythonKernel(Kernel):
    implementation = "kernelkit"
    # IPython's shell is safe to run from several threads (each cell on its own)
    supported_features = ("iopub_welcome", "kernel subshells")
    # a widget callback must not draw beside a cell that draws (pyplot is
    # process-wide): comm messages on a subshell wait for the main shell
    # unless a cell runs there alone (README: "Comms and subshells")
    comms_follow_main_shell = True
    implementation_version = __version__
    language_info = {
        "name": "python",
        "version": _language_version(),
        "mimetype": "text/x-python",
        "file_extension": ".py",
        "pygments_lexer": f"ipython{sys.version_info[0]}",
        "codemirror_mode": {"name": "ipython", "version": sys.version_info[0]},
        "nbconvert_exporter": "python",
    }
    # ipykernel's, then ours
    help_links = [
        {"text": "Python Reference", "url": f"https://docs.python.org/{sys.version_info[0]}.{sys.version_info[1]}"},
        {"text": "IPython Reference", "url": "https://ipython.readthedocs.io/en/stable/"},
        {"text": "NumPy Reference", "url": "https://docs.scipy.org/doc/numpy/reference/"},
        {"text": "SciPy Reference", "url": "https://docs.scipy.org/doc/scipy/reference/"},
        {"text": "Matplotlib Reference", "url": "https://matplotlib.org/contents.html"},
        {"text": "SymPy Reference", "url": "http://docs.sympy.org/latest/index.html"},
        {"text": "pandas Reference", "url": "https://pandas.pydata.org/pandas-docs/stable/"},
        {"text": "kernelkit", "url": "https://pypi.org/project/kernelkit/"},
    ]
    #: IPython's arguments from the command line (``--Class.trait=value``,
    #: ``--profile`` ...), applied when the shell is made
    ipython_argv: list = []

    def __init__(self, capture_fds: bool = True):
        super().__init__()
        self._shell = None
        self._shell_lock = threading.Lock()
        self.patches = Patches()  # every process-wide patch (patches.py)
        self._capture_fds = capture_fds
        self._captures: list[FdCapture] = []
        self._debugger = None  # made by the first debug_request (debugger.py)
        if importlib.util.find_spec("debugpy") is not None:
            self.supported_features = (*self.supported_features, "debugger")
        self._banner = None
        self._told = None  # (running cell, ended cell) of the last late-output note
        self.asyncio = KernelLoop()  # runs between cells and during top-level await (aioloop.py)
        self.gui = GuiLoops(self.asyncio)  # %gui: a toolkit's events processed on that loop

    @classmethod
    def accept_arguments(cls, argv):
        cls.ipython_argv = list(argv)  # checked as the shell is made (a bad one is a warning there)

    @property
    def banner(self):
        """IPython's banner: the shell's once it exists (its configuration may
        change it), before that IPython's default one."""
        if self._banner is None:
            self._banner = _default_ipython_banner()
        return self._banner

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        # (sys.stdout and sys.stderr are the core's: capture_output)
        if self._capture_fds and self._output is not None:
            self._capture_fds_1_and_2()
        self.patches.thread_parents(self._parent_of_writer, _PARENT_ATTR)
        self.patches.input(self.ask)
        if self._services.sigint_handler is not None:
            # (libraries test getsignal(SIGINT) against this name: see patches.py)
            self.patches.default_int_handler(self._services.sigint_handler)
        # the asyncio loop is made as asyncio is first imported (aioloop.py)
        if "asyncio" in sys.modules:
            self._asyncio_imported()
        else:
            from .importhooks import ImportHooks

            self.patches.import_hooks(ImportHooks({}, {"asyncio": self._asyncio_imported}))

    def _asyncio_imported(self) -> None:
        self.patches.asyncio_run(self.asyncio.loop_is_only_marked)
        self.asyncio.adopt()

    def idle(self, wake) -> bool | None:
        """Between cells the main thread runs the asyncio loop (the core's hook).
        Its False (nothing to run) must reach the lifecycle: dropped, the main
        thread called ``idle`` again at once, spinning a core while idle."""
        return self.asyncio.idle(wake)

    def stop(self) -> None:
        self.asyncio.close()
        self.patches.undo()

    def _capture_fds_1_and_2(self) -> None:
        """Output of C code and subprocesses joins print()'s streams."""
        try:
            sys.__stdout__ and sys.__stdout__.flush()
            sys.__stderr__ and sys.__stderr__.flush()
            out = FdCapture(1, self._output.stdout)
            err = FdCapture(2, self._output.stderr)
        except OSError as e:
            log.warning("cannot capture file descriptors 1 and 2: %s", e)
        else:
            self._captures = [out, err]
            for capture in self._captures:
                self.patches.captured_fd(capture.fd, capture.saved)
            # the kernel's own log keeps going to the real stderr
            real_stderr = os.fdopen(os.dup(err.saved), "w", buffering=1, encoding="utf-8", errors="replace")
            self.patches.log_streams(real_stderr)

    def ask(self, prompt: str, password: bool = False) -> str:
        """input() and getpass(): IPython's StdinNotImplementedError when the
        request does not allow stdin, which IPython's own magics (%reset,
        %save ...) catch."""
        try:
            return self.input(prompt, password)
        except StdinNotAllowed:
            from IPython.core.error import StdinNotImplementedError

            # (ipykernel's words: nbclient's tests compare them)
            raise StdinNotImplementedError("raw_input was called, but this frontend does not support input requests.") from None

    def stdin_allowed(self) -> bool:
        """Whether the request this thread runs lets the kernel ask for input."""
        request = self.current_request
        return request is not None and request.allow_stdin

    def stop_after_this_request(self) -> None:
        """End the kernel once the request running on this thread is answered
        (exit() and quit())."""
        self._services.stop_after(self._services.request_on_this_thread() or self.current_request)

    def _parent_of_writer(self):
        # hot path (every write): the base class's rule, plus tasks and GUI
        # callbacks on the main thread while the asyncio loop runs
        services = self._services
        if threading.get_ident() == self._main_ident:
            if self.asyncio.running:  # a task writes: for the cell that made it
                cell = CELL.get()  # (else a GUI callback: the last cell, as ipykernel)
                return cell if cell is not None else self.asyncio.last_cell
            return services.main_request or services.current_request
        # a subshell's thread writes for the request it runs
        return services.request_on_this_thread() or self._parent_of_other_thread()

    def _parent_of_other_thread(self):
        # a thread user code started writes for the request that started it,
        # also after that ended (JupyterLab shows it in that cell)
        parent = getattr(threading.current_thread(), _PARENT_ATTR, None)
        return self.current_request if parent is None else parent

    def _send_stream(self, name: str, text: str, parent) -> None:
        # the running cell is read before the output leaves: a client that
        # sees it may send its next cell at once, which must get no copy
        running = self._services.main_request
        super()._send_stream(name, text, parent)
        if parent is not None and parent.shell is not None and parent.shell.current is not parent:
            self._copy_to_running_cell(name, text, parent, running)

    def _copy_to_running_cell(self, name: str, text: str, ended, running) -> None:
        """Output of a thread whose cell has ended went to that cell (where
        JupyterLab shows it); while another cell runs it goes there too: the
        kernel cannot tell whether a client still listens to an ended cell,
        and nbclient and papermill do not (they save the notebook without
        it). Whose the copy is goes where no saved notebook keeps it: the
        copy's message metadata (``copied_from``) and, once per pair of
        cells, the kernel's log; the cell's text is the user's only."""
        if running is None or running is ended or running.msg_type != "execute_request" or running.content.get("silent"):
            return
        count = ended.execution_count
        if self._told != (running, ended):
            self._told = (running, ended)
            where = f"cell [{count}]" if count is not None else f"request {ended.msg_id}"
            log.warning("output of a thread started by %s, which has ended, is also sent to the running cell [%s]", where, running.execution_count)
        metadata = {"copied_from": {"msg_id": ended.msg_id, "execution_count": count}}
        self._services.publish("stream", {"name": name, "text": text}, metadata, parent=running)

    def flush_output(self) -> None:
        for capture in self._captures:
            capture.flush()
        super().flush_output()

    @property
    def shell(self):
        """IPython's InteractiveShell, created on first use (keeps start fast)."""
        if self._shell is None:
            with self._shell_lock:  # the main shell and subshells may race here
                if self._shell is None:
                    from .comms import install_comms
                    from .compat import install_import_hooks
                    from .shell import make_shell

                    install_comms(self)  # (start-up code may make comms)
                    shell = make_shell(self, self.ipython_argv)
                    self._shell = shell
                    self._banner = shell.banner
                    # (importing ipykernel's kernel may replace comm's factories)
                    install_import_hooks(self, lambda: install_comms(self))
        return self._shell

    # -- what libraries use of ipykernel's kernel object (get_ipython().kernel) --
    def get_parent(self, channel=None) -> dict:
        """The request this thread works for, as a message dict ({} if none):
        the running request on a shell or subshell thread, the starting
        request on a thread user code started."""
        from .compat import parent_of

        return parent_of(self._parent_of_writer())

    def get_parent_header(self, channel=None) -> dict:
        return self.get_parent(channel).get("header", {})

    def request_for(self, parent):
        """The parent Runtime.send takes, for a message or header dict."""
        from .compat import request_like

        return request_like(parent, self._parent_of_writer())

    # (made on first use: the compat module is not imported otherwise)
    @functools.cached_property
    def session(self):
        from .compat import KernelSession

        return KernelSession(self)

    @functools.cached_property
    def iopub_socket(self):
        from .compat import IOPub

        return IOPub()

    @property
    def comm_manager(self):
        from .comms import manager

        return manager()

    @property
    def comm_lock(self):
        """Held while a comm handler runs: take it in a cell around state that
        comm handlers share (pyplot, a widget's state) to keep them out."""
        from .comms import comm_lock

        return comm_lock

    @property
    def log(self):
        return log

    @property
    def io_loop(self):
        """A tornado IOLoop on the kernel's asyncio loop (as ipykernel's
        ``kernel.io_loop``): callbacks added to it run between cells."""
        from tornado.ioloop import IOLoop
        from tornado.platform.asyncio import AsyncIOLoop

        loop = self.asyncio.get()
        existing = IOLoop._ioloop_for_asyncio.get(loop)  # (tornado's map: one IOLoop per asyncio loop)
        return existing if existing is not None else AsyncIOLoop(asyncio_loop=loop, make_current=False)

    # -- requests ---------------------------------------------------------------
    def execute(self, code, request):
        shell = self.shell
        if self._debugger is not None:
            self._debugger.before_cell()
        c = request.content
        silent = bool(c.get("silent", False))
        store_history = bool(c.get("store_history", True)) and not silent
        if request.subshell_id is None:
            # IPython numbers the cell with its own counter: keep it ours
            # (a trait: setting it costs a validation, so only on change)
            count = request.execution_count if store_history else self.execution_count + 1
            if shell.execution_count != count:
                shell.execution_count = count
        else:
            # a subshell has its own count (the request carries it); IPython's
            # history and counter belong to the main shell
            store_history = False
        shell.last_error = None
        main = request.subshell_id is None and threading.get_ident() == self._main_ident
        cell = CELL.set(request)  # (tasks the cell makes remember it)
        if main:
            self.asyncio.last_cell = request
            self.asyncio.mark_running()
        try:
            result = shell.run_cell(code, store_history=store_history, silent=silent)
        finally:
            if main:
                self.asyncio.unmark_running()
            CELL.reset(cell)
        if main:
            said = self.asyncio.after_cell()
            if said is not None:
                print(f"kernelkit: {said}", file=sys.stderr)
        if request.subshell_id is None and store_history and shell.execution_count != request.execution_count + 1:
            shell.execution_count = request.execution_count + 1
        reply = {}
        if not result.success:
            err = shell.last_error or {
                "ename": type(result.error_in_exec or result.error_before_exec).__name__,
                "evalue": str(result.error_in_exec or result.error_before_exec),
                "traceback": [],
            }
            reply.update(status="error", **err)
        expressions = c.get("user_expressions") or {}
        reply["user_expressions"] = shell.user_expressions(expressions) if expressions else {}
        payload = shell.payload_manager.read_payload()
        if payload:  # clearing is a trait assignment: only when there is something
            shell.payload_manager.clear_payload()
        reply["payload"] = payload or []  # (not the manager's own empty list)
        return reply

    def complete(self, code, cursor_pos, request):
        from IPython.core.completer import provisionalcompleter, rectify_completions

        with provisionalcompleter():
            completions = list(rectify_completions(code, self.shell.Completer.completions(code, cursor_pos)))
        types = [
            {"start": c.start, "end": c.end, "text": c.text, "type": c.type, "signature": c.signature}
            for c in completions
        ]
        start, end = (completions[0].start, completions[0].end) if completions else (cursor_pos, cursor_pos)
        return {
            "matches": [c.text for c in completions],
            "cursor_start": start,
            "cursor_end": end,
            "metadata": {"_jupyter_types_experimental": types},
        }

    def inspect(self, code, cursor_pos, detail_level, request):
        from IPython.utils.tokenutil import token_at_cursor

        name = token_at_cursor(code, cursor_pos)
        try:
            data = self.shell.object_inspect_mime(name, detail_level=detail_level)
        except KeyError:
            return {"found": False, "data": {}, "metadata": {}}
        if not self.shell.enable_html_pager:
            data.pop("text/html", None)
        return {"found": True, "data": data, "metadata": {}}

    def is_complete(self, code, request):
        status, indent = self.shell.input_transformer_manager.check_complete(code)
        reply = {"status": status}
        if status == "incomplete":
            reply["indent"] = " " * (indent or 0)
        return reply

    def history(self, request):
        c = request.content
        hm = self.shell.history_manager
        raw, output = bool(c.get("raw", True)), bool(c.get("output", False))
        access = c.get("hist_access_type", "tail")
        if access == "tail":
            rows = hm.get_tail(c.get("n") or 10, raw=raw, output=output, include_latest=True)
        elif access == "range":
            rows = hm.get_range(c.get("session") or 0, c.get("start") or 1, c.get("stop"), raw=raw, output=output)
        else:
            rows = hm.search(c.get("pattern") or "*", raw=raw, output=output, n=c.get("n"), unique=bool(c.get("unique")))
        # IPython reports the current session as 0 in ranges: use its real
        # number, as tail and search do
        current = hm.session_number
        return {"history": [[current if s == 0 else s, line, entry] for s, line, entry in rows]}

    def comm_info(self, target_name, request):
        from .comms import comm_info

        return {"comms": comm_info(target_name)}

    def comm_open(self, comm_id, target_name, data, request):
        from .comms import dispatch

        self.shell  # comms need the shell's namespace (ipywidgets)
        dispatch("comm_open", request)

    def comm_msg(self, comm_id, data, request):
        from .comms import dispatch

        dispatch("comm_msg", request)

    def comm_close(self, comm_id, data, request):
        from .comms import dispatch

        dispatch("comm_close", request)

    @handler("debug_request")
    def debug_request(self, request):
        """A DAP request on control: its debug_reply content (a DAP response;
        the logic is in debugger.py, imported here on first use)."""
        if self._debugger is None:
            # the shell first: it is made, and IPython imported, under the
            # shell lock; debugger.py imports IPython too, and two threads
            # importing it at once (JupyterLab's debugInfo racing the first
            # cell) made the cell fail with a circular ImportError
            self.shell
            from .debugger import Debugger

            self._debugger = Debugger(self)
        return self._debugger.handle(request.content, request.message.header.get("session"))

    def interrupt(self):
        if self._debugger is not None:
            # a thread stopped at a breakpoint resumes, then takes the interrupt
            self._debugger.resume_for_interrupt()
        super().interrupt()

    def shutdown(self, restart):
        if self._debugger is not None:
            self._debugger.close()  # stopped threads resume; debugpy is left
        if self._shell is not None:
            self._shell.history_manager.end_session()
