"""IPython's InteractiveShell, wired to a kernelkit kernel.

Results, displays, tracebacks, payloads and comms go out as Jupyter
messages through the kernel's helpers (and so through the one outbound FIFO).
"""

import contextlib
import logging
import os
import re
import sys
import threading
from pathlib import Path

from IPython.core.autocall import ZMQExitAutocall
from IPython.core.builtin_trap import BuiltinTrap
from IPython.core.display_trap import DisplayTrap
from IPython.core.displayhook import DisplayHook
from IPython.core.error import StdinNotImplementedError
from IPython.core.displaypub import DisplayPublisher
from IPython.core.inputtransformer2 import (
    EscapedCommand,
    HelpEnd,
    MagicAssign,
    SystemAssign,
    TransformerManager,
    classic_prompt,
    ipython_prompt,
    leading_empty_lines,
    leading_indent,
)
from IPython.core.interactiveshell import InteractiveShell
from traitlets import Any, Instance, Type, default

from . import config
from .cellfiles import CellFileCompiler

log = logging.getLogger("kernelkit.python")

# the kernelkit package: frames in it are the kernel's, not the user's
_KERNELKIT_DIR = str(Path(__file__).resolve().parent.parent) + os.sep
# exceptions the kernel raises into user code on purpose (an interrupt, input
# that cannot be asked for): their tracebacks end at the user's line
_RAISED_BY_KERNEL = (KeyboardInterrupt, StdinNotImplementedError)


def _per_thread(doc: str) -> property:
    """An attribute with one value per thread (None until set): subshells run
    cells at the same time through the one shell and its displayhook."""
    values = threading.local()
    return property(lambda self: getattr(values, "value", None), lambda self, value: setattr(values, "value", value), doc=doc)


class KernelDisplayHook(DisplayHook):
    """``execute_result`` for the value of a cell's last expression."""

    # one cell must not publish (or drop) another's value, nor fill in (or
    # find cleared, mid-call) another cell's ExecutionResult
    exec_result = _per_thread("the ExecutionResult of the cell this thread runs (IPython's run_cell sets and clears it)")
    _formatted = _per_thread("the value being displayed: (data, metadata)")

    def start_displayhook(self):
        super().start_displayhook()
        self._formatted = None

    def write_output_prompt(self):
        pass

    def write_format_data(self, format_dict, md_dict=None):
        self._formatted = (format_dict, md_dict or {})

    def finish_displayhook(self):
        formatted = self._formatted
        if formatted is not None:
            data, metadata = formatted
            self.shell.kernel.execute_result(data, metadata)
        self._formatted = None
        self._is_active = False


# IPython's builtin and display traps count the cells inside them and undo
# their change when the last one leaves; subshells enter and leave at the
# same time, and an unlocked count loses steps (a cell then fails with
# KeyError: 'exit' as a trap removes builtins twice)
_TRAP_LOCK = threading.RLock()


class _LockedTrap:
    def __enter__(self):
        with _TRAP_LOCK:
            return super().__enter__()

    def __exit__(self, *exc):
        with _TRAP_LOCK:
            return super().__exit__(*exc)


class KernelBuiltinTrap(_LockedTrap, BuiltinTrap):
    pass


class KernelDisplayTrap(_LockedTrap, DisplayTrap):
    pass


class KernelDisplayPublisher(DisplayPublisher):
    """``display_data``, ``update_display_data`` and ``clear_output``."""

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        kernel = self.shell.kernel
        content = {"data": data, "metadata": metadata or {}, "transient": transient or {}}
        kernel.publish("update_display_data" if update else "display_data", content)

    def clear_output(self, wait=False):
        self.shell.kernel.clear_output(wait)


# IPython's own token transformers and what each needs in a line: an escape
# as the line's first character (%magic, !cmd, ?obj, ,f, ;f, /f), "?" as its
# last (obj?), or "=" followed by "%" or "!" (a = %magic, a = !cmd). A line
# that ends in a backslash continues elsewhere: it is not looked into.
_IPYTHON_TOKEN_TRANSFORMERS = [MagicAssign, SystemAssign, EscapedCommand, HelpEnd]
_LINE_START_ESCAPES = frozenset("%!?,;/")
_LINE_END_MARKS = frozenset("?\\")
_ASSIGNED_ESCAPE = re.compile(r"=\s*[%!]")


def may_hold_ipython_syntax(lines: list) -> bool:
    """False only if no IPython token transformer can match these lines."""
    for line in lines:
        code = line.strip()
        if code and (
            code[0] in _LINE_START_ESCAPES
            or code[-1] in _LINE_END_MARKS
            or (("%" in code or "!" in code) and _ASSIGNED_ESCAPE.search(code))
        ):
            return True
    return False


# IPython's cleanup transforms, in its order; and a line textwrap.dedent may
# empty even when it removes no margin: whitespace alone (spaces and tabs up to
# Python 3.13; since 3.14, anything str.isspace, such as the \r of a \r\n line)
_IPYTHON_CLEANUP = [leading_empty_lines, leading_indent, classic_prompt, ipython_prompt]
_WHITESPACE_ONLY_LINE = re.compile(r"^[^\S\n]+$", re.MULTILINE)


class KernelTransformerManager(TransformerManager):
    """IPython's static input transformations, minus the cost of finding out
    that plain Python has nothing to transform.

    IPython tokenizes every cell in pure Python to look for magics, shell
    escapes and help syntax: about 1 ms for a 50-line cell. A cell with no
    line that such syntax could start, end or be assigned in is returned as
    it is, which is what the tokenizing would conclude (``%`` as an operator,
    ``!=``, a ``?`` inside a string do not count). If anyone changes the
    token transformers, the full path runs.

    Two cleanup transforms get the same treatment (about 0.2 ms of a 50-line
    cell): ``leading_indent`` dedents the whole cell, which changes nothing
    when the first line is not indented and no line is whitespace alone; and
    IPython 9's doctest-aware ``classic_prompt`` marks every line's quoting
    before it looks for a ``>>>`` prompt, which a cell without ``>>>`` cannot
    hold. If anyone changes the cleanup transforms, they all run.
    """

    def transform_cell(self, cell: str) -> str:
        if self.cleanup_transforms != _IPYTHON_CLEANUP:
            return super().transform_cell(cell)
        if not cell.endswith("\n"):
            cell += "\n"
        lines = leading_empty_lines(cell.splitlines(keepends=True))
        if not lines or lines[0][0] in " \t\n" or _WHITESPACE_ONLY_LINE.search(cell):
            lines = leading_indent(lines)
        if not getattr(classic_prompt, "doctest", False) or ">>>" in cell:
            lines = classic_prompt(lines)
        lines = ipython_prompt(lines)
        for transform in self.line_transforms:
            lines = transform(lines)
        return "".join(self.do_token_transforms(lines))

    def do_token_transforms(self, lines):
        if self.token_transformers == _IPYTHON_TOKEN_TRANSFORMERS and not may_hold_ipython_syntax(lines):
            return lines
        return super().do_token_transforms(lines)


class ZMQInteractiveShell(InteractiveShell):
    """IPython's shell in a Jupyter kernel. Named as ipykernel's is: rich and
    plotly look at the class name to tell a notebook from a terminal, and
    ``c.ZMQInteractiveShell...`` configuration applies (as does
    ``c.InteractiveShell...``)."""

    displayhook_class = KernelDisplayHook
    display_pub_class = KernelDisplayPublisher
    kernel = Any()
    input_transformer_manager = Instance(KernelTransformerManager, ())
    # each cell is compiled under a real file name (the debugger's rule)
    compiler_class = Type(CellFileCompiler)
    # exit(keep_kernel=False) / quit(): set by IPython's ZMQExitAutocall
    keepkernel_on_exit = None

    @default("exiter")
    def _exiter_default(self):
        return ZMQExitAutocall(self)

    last_error = _per_thread("the error of the cell this thread ran last, for its execute_reply")

    def init_builtins(self):
        super().init_builtins()
        self.builtin_trap = KernelBuiltinTrap(shell=self)

    def init_displayhook(self):
        super().init_displayhook()
        self.display_trap = KernelDisplayTrap(hook=self.displayhook)

    def init_environment(self):
        super().init_environment()
        self.kernel.patches.notebook_environment()  # (python/patches.py says why)

    def init_hooks(self):
        super().init_hooks()
        self.set_hook("show_in_pager", self._page_payload)

    def _page_payload(self, _shell, data, start=0, screen_lines=0, pager_cmd=None):
        if isinstance(data, str):
            data = {"text/plain": data}
        self.payload_manager.write_payload({"source": "page", "data": data, "start": start})

    def _showtraceback(self, etype, evalue, stb):
        error = {"ename": str(etype.__name__), "evalue": str(evalue), "traceback": list(stb)}
        self.last_error = error
        self.kernel.error(**error)

    def should_run_async(self, raw_cell, *, transformed_cell=None, preprocessing_exc_tuple=None):
        # IPython compiles the transformed cell once more to look for
        # top-level await; a cell without the words cannot need it
        if transformed_cell is not None and "await" not in transformed_cell and "async" not in transformed_cell:
            return False
        return super().should_run_async(
            raw_cell, transformed_cell=transformed_cell, preprocessing_exc_tuple=preprocessing_exc_tuple
        )

    @contextlib.contextmanager
    def _tee(self, channel):
        # IPython 9 wraps sys.stdout/stderr during each cell to keep every
        # write in its history's outputs: about 3 us per write, and memory
        # that grows with everything a session ever printed. The notebook
        # keeps the output; the kernel does not.
        yield

    def set_next_input(self, text, replace=False):
        self.payload_manager.write_payload({"source": "set_next_input", "text": text, "replace": replace})

    def ask_exit(self):
        """exit() / quit(): the kernel ends after this request's reply (as
        ipykernel's does; JupyterLab then restarts it), unless keep_kernel."""
        keep = bool(self.keepkernel_on_exit)
        self.keepkernel_on_exit = None
        self.payload_manager.write_payload({"source": "ask_exit", "keepkernel": keep})
        self.exit_now = not keep
        if not keep:
            self.kernel.stop_after_this_request()

    # ipykernel's shell API for the request being served (libraries send
    # with ``parent=get_ipython().parent_header``; ipywidgets' Output widget
    # calls get_parent and set_parent): the kernel's, per calling thread
    @property
    def parent_header(self) -> dict:
        return self.kernel.get_parent()

    def get_parent(self) -> dict:
        return self.kernel.get_parent()

    def set_parent(self, parent) -> None:
        """Output already follows the request the calling thread works for."""

    def _get_exc_info(self, exc_tuple=None):
        etype, value, tb = super()._get_exc_info(exc_tuple)
        asyncio = sys.modules.get("asyncio")  # (not imported: no task was cancelled)
        if asyncio is not None and etype is asyncio.CancelledError and getattr(_current_task(), "kernelkit_interrupted", False):
            # an interrupt while the cell awaited: the loop cancelled the cell (aioloop.py)
            etype, value = KeyboardInterrupt, KeyboardInterrupt()
            value.__traceback__ = tb
        if issubclass(etype, _RAISED_BY_KERNEL):
            _cut_kernel_frames(tb)
        return etype, value, tb

    def enable_gui(self, gui=None):
        """``%gui``, ``%matplotlib tk``: the toolkit runs on the kernel's asyncio loop (guiloops.py)."""
        self.kernel.gui.enable(gui)


def _current_task():
    import asyncio

    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


def _cut_kernel_frames(tb) -> None:
    """End the traceback at the last frame that is not kernelkit's (the
    interrupt handler, the input prompt): the user sees their own line."""
    last_user = None
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_KERNELKIT_DIR):
            last_user = tb
        tb = tb.tb_next
    if last_user is not None:
        last_user.tb_next = None


def make_shell(kernel, argv) -> ZMQInteractiveShell:
    """The shell, configured from ``argv`` and IPython's config files, with
    InteractiveShellApp's start-up steps run (extensions, exec_lines, ...)."""
    app = config.load(argv)
    try:
        shell = ZMQInteractiveShell.instance(parent=app, profile_dir=app.profile_dir, kernel=kernel)
    except Exception as e:  # a value of the wrong type, found as the shell takes it
        log.warning("ignored the IPython configuration (starting with defaults): %s: %s", type(e).__name__, config.one_line(e))
        app.config = config.Config()
        shell = ZMQInteractiveShell.instance(parent=app, profile_dir=app.profile_dir, kernel=kernel)
    kernel.patches.displayhook(shell.displayhook)
    kernel.patches.interruptible_pdb(kernel.stdin_allowed)
    # top-level await runs on the kernel's asyncio loop (aioloop.py)
    shell.loop_runner = kernel.asyncio.run_cell_coroutine
    app.shell = shell
    app.init_path()
    app.init_gui_pylab()
    app.init_extensions()
    app.init_code()
    return shell
