"""The Python kernel's process-wide patches: every global it replaces, and why.

(``sys.stdout`` and ``sys.stderr``, and what they become in a forked child,
are the kernel core's, as for every kernel that captures output:
kernel/outstream.py's ``CapturedOutput``.)

| what is replaced | by | why | installed |
|---|---|---|---|
| file descriptors 1 and 2, and the stream of the ``kernelkit`` logger's handler | pipes read into those streams; the real stderr | output of C code and subprocesses reaches the cell too, the kernel's own log does not (``capture_fds``; the root logger is user code's: untouched) | start |
| ``signal.default_int_handler`` | the kernel's SIGINT handler (a bound method that raises KeyboardInterrupt while a request runs, as Python's does, and defers it inside the kernel's send path) | ``signal.getsignal(SIGINT) is signal.default_int_handler`` during a cell, as on ipykernel: ``asyncio.run`` and trio then install their Ctrl-C handling, and put back (by that name) the kernel's handler, not one without its deferral | start |
| ``threading.Thread.start`` | records the request that started the thread | a thread's output goes to the cell that started it | start |
| ``builtins.input``, ``getpass.getpass`` | an ``input_request`` on stdin | ``input()`` works from a notebook | start |
| ``asyncio.run`` | the same, run with the kernel's loop unmarked for its duration | in a cell the kernel's asyncio loop counts as running (so ``create_task`` works, aioloop.py), and ``asyncio.run`` would refuse to start; it runs as in a script instead (ipykernel refuses) | asyncio is first imported (at start if it already is) |
| ``sys.displayhook`` | the IPython shell's | a cell's last value is an ``execute_result`` | the shell is made |
| ``pdb.Pdb``, ``pdb.set_trace``, IPython's ``debugger.Pdb`` and ``set_trace`` | IPython's ``InterruptiblePdb``; its ``set_trace``, which returns at once (one line on stderr) when the request does not allow stdin | an interrupt at its prompt leaves the debugger, as in ipykernel; a leftover ``breakpoint()`` must not fail a pipeline (nbclient, papermill: no stdin) | pdb or IPython's debugger is first imported (as the shell is made, if one already is) |
| ``TERM``, ``CLICOLOR``, ``FORCE_COLOR``, ``CLICOLOR_FORCE``, ``PAGER``, ``GIT_PAGER``, ``MPLBACKEND``, ``PLOTLY_RENDERER`` | ``xterm-color``, ``1``, ``1``, ``1``, ``cat``, ``cat`` (as ipykernel's ``init_environment``, whatever was set), matplotlib-inline, ``plotly_mimetype`` (the last two only if unset) | colour from ``ls``, pytest, rich in the kernel and its subprocesses, no pager, as under ipykernel; inline figures; what plotly picks for ipykernel | the shell is made |
| ``comm.create_comm``, ``comm.get_comm_manager`` | this kernel's | ipywidgets and other comm users talk through this kernel | the shell is made; again after ``ipykernel.comm`` is imported |
| ``sys.meta_path`` | one-shot import hooks (importhooks.py) | the kernel's asyncio loop made as asyncio is first imported (start); the pdb row above and the two below, run as their module is first imported (the shell is made) | start; the shell is made |
| ``sys.modules["ipykernel.zmqshell"]`` (ipykernel not installed) | ``kernelkit.python.shell`` | ``tqdm.autonotebook`` picks notebook bars only when it is there | ``tqdm.autonotebook`` is imported |
| ``PYDEVD_DISABLE_FILE_VALIDATION`` (if unset) | ``1`` | debugpy's warning about frozen modules would land in the cell | the debugger starts |
| ``sys.breakpointhook`` | Python's own (importing debugpy replaced it), the debugger's while a client is attached | ``breakpoint()``: the visual debugger while one is attached, else pdb, with no frame of ours between (pdb would stop in it) | the debugger starts; each attach and disconnect |

Each goes through ``Patches``, which remembers what it replaced; ``undo``
(the kernel's ``stop``) puts everything back, newest first.
"""

import builtins
import getpass
import os
import signal
import sys
import threading

_MISSING = object()


class Patches:
    def __init__(self):
        self._undo: list = []  # how to put each back, oldest first
        self._breakpointhook_set = False

    def _set(self, owner, name: str, value) -> None:
        original = getattr(owner, name, _MISSING)
        self._undo.append(lambda: delattr(owner, name) if original is _MISSING else setattr(owner, name, original))
        setattr(owner, name, value)

    def _set_item(self, mapping, key, value, if_unset: bool = False) -> None:
        if if_unset and key in mapping:
            return
        original = mapping.get(key, _MISSING)
        self._undo.append(lambda: mapping.pop(key, None) if original is _MISSING else mapping.__setitem__(key, original))
        mapping[key] = value

    def undo(self) -> None:
        """Put back everything replaced, newest first."""
        while self._undo:
            self._undo.pop()()
    # -- at start --------------------------------------------------------------
    def default_int_handler(self, handler) -> None:
        """``handler`` (the kernel's SIGINT handler, installed) is what
        ``signal.default_int_handler`` names."""
        self._set(signal, "default_int_handler", handler)

    def captured_fd(self, fd: int, saved: int) -> None:
        """``fd`` now writes into a pipe (kernel/outstream.py's FdCapture); ``saved`` is
        what it was. (Undone, the pipe's reader sees its end and stops.)"""
        self._undo.append(lambda: os.dup2(saved, fd))

    def log_streams(self, stream) -> None:
        import logging

        for handler in logging.getLogger("kernelkit").handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.flush()
                self._set(handler, "stream", stream)

    def asyncio_run(self, only_marked) -> None:
        """``only_marked()``: the kernel's loop is marked running on this
        thread (a cell runs) but does not run: asyncio.run may run its own."""
        import asyncio

        original = asyncio.run

        def run(main, **kwargs):
            if not only_marked():
                return original(main, **kwargs)
            marked = asyncio._get_running_loop()
            policy = asyncio.get_event_loop_policy()
            asyncio._set_running_loop(None)
            try:
                return original(main, **kwargs)
            finally:  # (asyncio.run leaves no event loop set)
                policy.set_event_loop(marked)
                asyncio._set_running_loop(marked)

        run.__doc__ = original.__doc__
        run.__wrapped__ = original
        self._set(asyncio, "run", run)

    def thread_parents(self, parent_of_writer, attr: str) -> None:
        original_start = threading.Thread.start

        def start(thread, *args, **kwargs):
            setattr(thread, attr, parent_of_writer())
            return original_start(thread, *args, **kwargs)

        self._set(threading.Thread, "start", start)

    def input(self, ask) -> None:
        def input(prompt=""):  # noqa: A001 - replaces the builtin
            return ask(str(prompt))

        def getpass_(prompt="Password: ", stream=None):
            return ask(str(prompt), password=True)

        self._set(builtins, "input", input)
        self._set(getpass, "getpass", getpass_)

    # -- as the IPython shell is made --------------------------------------------
    def displayhook(self, hook) -> None:
        self._set(sys, "displayhook", hook)

    def interruptible_pdb(self, stdin_allowed) -> None:
        """``stdin_allowed()``: whether the running request allows input
        (pdb's prompt is an input_request). Done as pdb or IPython's
        debugger is first imported (by ``breakpoint()``, ``%debug``, user
        code; now if it already is): a kernel that never debugs does not
        load them (0.4 MB, 10 ms of the first cell)."""
        if "pdb" in sys.modules or "IPython.core.debugger" in sys.modules:
            self._interruptible_pdb(stdin_allowed)
            return
        import importlib

        from .importhooks import ImportHooks

        def pdb_imported():
            # (by IPython's debugger, which is still being imported: its own hook follows)
            if "IPython.core.debugger" not in sys.modules:
                importlib.import_module("IPython.core.debugger")

        self.import_hooks(ImportHooks({}, {"pdb": pdb_imported, "IPython.core.debugger": lambda: self._interruptible_pdb(stdin_allowed)}))

    def _interruptible_pdb(self, stdin_allowed) -> None:
        import pdb

        from IPython.core import debugger

        interruptible = getattr(debugger, "InterruptiblePdb", None)
        if interruptible is None:
            return
        ipython_set_trace = debugger.set_trace

        def set_trace(frame=None, *args, **kwargs):
            if not stdin_allowed():
                print("breakpoint skipped: this frontend does not allow input (pdb needs it)", file=sys.stderr)
                sys.stderr.flush()  # (before what the cell prints next)
                return None
            # (breakpoint() calls this from C: the caller's frame is the user's)
            return ipython_set_trace(frame or sys._getframe(1), *args, **kwargs)

        self._set(debugger, "Pdb", interruptible)
        self._set(debugger, "set_trace", set_trace)
        self._set(pdb, "Pdb", interruptible)
        self._set(pdb, "set_trace", set_trace)

    def notebook_environment(self) -> None:
        env = os.environ
        for name, value in (("TERM", "xterm-color"), ("CLICOLOR", "1"), ("FORCE_COLOR", "1"), ("CLICOLOR_FORCE", "1"), ("PAGER", "cat"), ("GIT_PAGER", "cat")):
            self._set_item(env, name, value)
        self._set_item(env, "MPLBACKEND", "module://matplotlib_inline.backend_inline", if_unset=True)
        self._set_item(env, "PLOTLY_RENDERER", "plotly_mimetype", if_unset=True)

    def comms(self, create_comm, get_comm_manager) -> None:
        import comm

        self._set(comm, "create_comm", create_comm)
        self._set(comm, "get_comm_manager", get_comm_manager)

    def import_hooks(self, finder) -> None:
        """``finder`` leaves sys.meta_path itself once its hooks have run."""
        sys.meta_path.insert(0, finder)
        self._undo.append(lambda: finder in sys.meta_path and sys.meta_path.remove(finder))

    def module_alias(self, name: str, module) -> None:
        self._set_item(sys.modules, name, module)

    # -- as the debugger starts ----------------------------------------------------
    def debugpy_environment(self) -> None:
        self._set_item(os.environ, "PYDEVD_DISABLE_FILE_VALIDATION", "1", if_unset=True)

    def breakpointhook(self, hook) -> None:
        """(Switched at each attach and disconnect; undone to what was there first.)"""
        if self._breakpointhook_set:
            sys.breakpointhook = hook
        else:
            self._breakpointhook_set = True
            self._set(sys, "breakpointhook", hook)

