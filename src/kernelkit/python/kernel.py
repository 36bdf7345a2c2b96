"""The bundled Python kernel."""

import builtins
import getpass
import logging
import os
import sys
import threading

from .._version import __version__
from ..kernel.base import Kernel
from .outstream import FdCapture, Flusher, OutStream

log = logging.getLogger("kernelkit.python")

# attribute a started thread carries: the request that was running when it started
_PARENT_ATTR = "_kernelkit_parent"


def _language_version() -> str:
    return ".".join(str(p) for p in sys.version_info[:3])


class PythonKernel(Kernel):
    implementation = "kernelkit"
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
    help_links = [
        {"text": "Python Reference", "url": f"https://docs.python.org/{sys.version_info[0]}.{sys.version_info[1]}"},
        {"text": "IPython Reference", "url": "https://ipython.readthedocs.io/en/stable/"},
        {"text": "kernelkit", "url": "https://pypi.org/project/kernelkit/"},
    ]

    def __init__(self, capture_fds: bool = True):
        super().__init__()
        self._shell = None
        self._shell_lock = threading.Lock()
        self._capture_fds = capture_fds
        self._captures: list[FdCapture] = []
        self.banner = f"Python {sys.version.split()[0]} on kernelkit {__version__}"

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        self._main_ident = threading.main_thread().ident
        self._install_streams()
        self._install_thread_parents()
        self._install_input()

    def _install_streams(self) -> None:
        self._flusher = Flusher()
        send = self._send_stream
        self.stdout = OutStream("stdout", send, self._parent_of_writer, self._flusher)
        self.stderr = OutStream("stderr", send, self._parent_of_writer, self._flusher)
        self._flusher.add(self.stdout)
        self._flusher.add(self.stderr)
        self._flusher.start()
        if self._capture_fds:
            try:
                sys.__stdout__ and sys.__stdout__.flush()
                sys.__stderr__ and sys.__stderr__.flush()
                out = FdCapture(1, self.stdout)
                err = FdCapture(2, self.stderr)
            except OSError as e:
                log.warning("cannot capture file descriptors 1 and 2: %s", e)
            else:
                self._captures = [out, err]
                # the kernel's own log keeps going to the real stderr
                real_stderr = os.fdopen(os.dup(err.saved), "w", buffering=1, encoding="utf-8", errors="replace")
                for handler in logging.getLogger().handlers:
                    if isinstance(handler, logging.StreamHandler):
                        handler.setStream(real_stderr)
        sys.stdout, sys.stderr = self.stdout, self.stderr

    def _install_thread_parents(self) -> None:
        """Remember, for every thread started, which request it belongs to,
        so its output goes to the cell that started it."""
        original_start = threading.Thread.start
        kernel = self

        def start(thread, *args, **kwargs):
            setattr(thread, _PARENT_ATTR, kernel._parent_of_writer())
            return original_start(thread, *args, **kwargs)

        threading.Thread.start = start

    def _install_input(self) -> None:
        kernel = self

        def input(prompt=""):  # noqa: A001 - replaces the builtin
            return kernel.input(str(prompt))

        def getpass_(prompt="Password: ", stream=None):
            return kernel.input(str(prompt), password=True)

        builtins.input = input
        getpass.getpass = getpass_

    def _parent_of_writer(self):
        # hot path (every write): the main thread's output belongs to the
        # request it is running
        services = self._services
        if threading.get_ident() == self._main_ident:
            return services.main_request or services.current_request
        # a subshell's thread writes for the request it runs; a thread user
        # code started, for the request that started it
        parent = services.request_on_this_thread() or getattr(threading.current_thread(), _PARENT_ATTR, None)
        return parent if parent is not None else self.current_request

    def _send_stream(self, name: str, text: str, parent) -> None:
        self._services.publish("stream", {"name": name, "text": text}, parent=parent)

    def flush_output(self) -> None:
        for capture in self._captures:
            capture.flush()
        self.stdout.flush()
        self.stderr.flush()

    @property
    def shell(self):
        """IPython's InteractiveShell, created on first use (keeps start fast)."""
        if self._shell is None:
            with self._shell_lock:  # the main shell and subshells may race here
                if self._shell is None:
                    from .comms import install_comms
                    from .shell import make_shell

                    shell = make_shell(self)
                    install_comms(self)
                    self._shell = shell
        return self._shell

    # -- requests ---------------------------------------------------------------
    def execute(self, code, request):
        shell = self.shell
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
        result = shell.run_cell(code, store_history=store_history, silent=silent)
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

    def shutdown(self, restart):
        if self._shell is not None:
            self._shell.history_manager.end_session()
