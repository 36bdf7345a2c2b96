"""IPython's InteractiveShell, wired to a kernelkit kernel.

Results, displays, tracebacks, payloads and comms go out as Jupyter
messages through the kernel's helpers (and so through the one outbound FIFO).
"""

import contextlib
import os
import re
import sys
import threading

from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.inputtransformer2 import EscapedCommand, HelpEnd, MagicAssign, SystemAssign, TransformerManager
from IPython.core.interactiveshell import InteractiveShell
from traitlets import Any, Instance, Type

from .cellfiles import CellFileCompiler


class KernelDisplayHook(DisplayHook):
    """``execute_result`` for the value of a cell's last expression."""

    # the value being displayed, per thread: subshells run cells at the same
    # time through this one hook, and one must not publish (or drop) another's
    _formatted = threading.local()

    def start_displayhook(self):
        super().start_displayhook()
        self._formatted.data = None

    def write_output_prompt(self):
        pass

    def write_format_data(self, format_dict, md_dict=None):
        self._formatted.data = (format_dict, md_dict or {})

    def finish_displayhook(self):
        formatted = getattr(self._formatted, "data", None)
        if formatted is not None:
            data, metadata = formatted
            self.shell.kernel.execute_result(data, metadata)
        self._formatted.data = None
        self._is_active = False


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


class KernelTransformerManager(TransformerManager):
    """IPython's static input transformations, minus the cost of finding out
    that plain Python has nothing to transform.

    IPython tokenizes every cell in pure Python to look for magics, shell
    escapes and help syntax: about 1 ms for a 50-line cell. A cell with no
    line that such syntax could start, end or be assigned in is returned as
    it is, which is what the tokenizing would conclude (``%`` as an operator,
    ``!=``, a ``?`` inside a string do not count). If anyone changes the
    token transformers, the full path runs.
    """

    def do_token_transforms(self, lines):
        if self.token_transformers == _IPYTHON_TOKEN_TRANSFORMERS and not may_hold_ipython_syntax(lines):
            return lines
        return super().do_token_transforms(lines)


class KernelShell(InteractiveShell):
    displayhook_class = KernelDisplayHook
    display_pub_class = KernelDisplayPublisher
    kernel = Any()
    input_transformer_manager = Instance(KernelTransformerManager, ())
    # each cell is compiled under a real file name (the debugger's rule)
    compiler_class = Type(CellFileCompiler)

    # the error of the cell this thread ran last, for its execute_reply
    # (per thread: subshells run cells concurrently)
    _errors = threading.local()

    @property
    def last_error(self):
        return getattr(self._errors, "error", None)

    @last_error.setter
    def last_error(self, error):
        self._errors.error = error

    def init_environment(self):
        super().init_environment()
        env = os.environ
        # a notebook is no terminal: no interactive pagers, but colours are fine
        env["PAGER"] = "cat"
        env["GIT_PAGER"] = "cat"
        env.setdefault("CLICOLOR", "1")
        env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")

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
        self.payload_manager.write_payload({"source": "ask_exit", "keepkernel": False})

    def enable_gui(self, gui=None):
        if gui not in (None, "inline"):
            raise NotImplementedError(f"GUI event loop {gui!r} is not supported by this kernel")


def make_shell(kernel) -> KernelShell:
    shell = KernelShell.instance(kernel=kernel)
    sys.displayhook = shell.displayhook
    return shell
