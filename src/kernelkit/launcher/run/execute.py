"""Running one notebook on its own kernel, and recording every failure in it.

Cells are numbered once: cell N is the Nth code cell that runs, which is also
its ``In [N]``; errors add the notebook's cell id. A failure leaves its trace in
the saved notebook: the kernel's error output, or one we add (``CellTimeoutError``
with the limit, ``DeadKernelError``, ``RunStopped``), with papermill's per-cell
metadata saying which cell failed; the notebook is saved up to there.
"""

import asyncio
import math
import os
import time
from dataclasses import dataclass, field

from . import parameters
from .notebooks import write_notebook
from .terminal import error_text, plural, strip_ansi

PROG = "kernelkit run"


@dataclass
class Options:
    timeout: float = None  # seconds per cell, None: no limit
    startup_timeout: float = 60.0
    allow_errors: bool = False
    cwd: str = None  # None: the notebook's folder, as in Jupyter
    save: bool = True
    params: dict = field(default_factory=dict)
    answers: tuple = ()  # for input(), in order


@dataclass
class Result:
    path: str
    output: str  # where it was written; None when not saved
    exit: int = 0  # 0 ran, 1 a cell failed, 2 the kernel did not start, 130 stopped
    seconds: float = 0.0
    cells: int = 0  # code cells that ran
    failed_cell: str = ""  # "cell 2 (id 5c1f...)"
    reason: str = ""  # one line: "ZeroDivisionError: division by zero"
    ename: str = ""  # the error's name: "ZeroDivisionError", "CellTimeoutError" ...
    details: str = ""  # the traceback, without colours

    @property
    def status(self) -> str:
        return {0: "ok", 1: "failed", 2: "not started", 130: "stopped"}[self.exit]

    def line(self) -> str:
        """What went wrong, in one line (empty when nothing did)."""
        return f"{self.failed_cell}: {self.reason}" if self.failed_cell else self.reason


def _first_line(source: str, width: int = 60) -> str:
    line = next((ln for ln in source.splitlines() if ln.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def _error_output(ename: str, evalue: str):
    from nbformat.v4 import new_output

    return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _client_class():
    from nbclient import NotebookClient

    class RunClient(NotebookClient):
        """nbclient, numbering the cells that run, timing them as papermill does
        and showing their progress and output as it arrives."""

        def __init__(self, nb, km, terminal, **kw):
            super().__init__(nb, km=km, **kw)
            self.terminal = terminal
            skip = self.skip_cells_with_tag
            to_run = [i for i, c in enumerate(nb.cells)
                      if c.cell_type == "code" and c.source.strip() and skip not in c.metadata.get("tags", [])]
            self.numbers = {index: n for n, index in enumerate(to_run, 1)}
            self.current = None  # index of the running cell
            self.ran = 0
            self.cell_timeout = None

        def cell_label(self, index) -> str:
            cell_id = self.nb.cells[index].get("id")
            return f"cell {self.numbers[index]}" + (f" (id {cell_id})" if cell_id else "")

        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            if cell_index not in self.numbers:
                return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            n, total = self.numbers[cell_index], len(self.numbers)
            self.current = cell_index
            self.terminal.progress(f"[{n}/{total}] {_first_line(cell.source)}")
            parameters.cell_started(cell)
            start, failed = time.perf_counter(), True
            try:
                result = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
                failed = False
                return result
            finally:
                self.ran += 1
                parameters.cell_ended(cell, time.perf_counter() - start, failed)
                if not failed:
                    self.terminal.progress(f"[{n}/{total}] done in {time.perf_counter() - start:.2f} s")

        def _get_timeout(self, cell):
            # nbclient's own trait holds whole seconds only
            return self.cell_timeout

        def process_message(self, msg, cell, cell_index):
            self.terminal.cell_message(msg)
            return super().process_message(msg, cell, cell_index)

    return RunClient


class NotebookRun:
    """One notebook, its kernel, its result."""

    def __init__(self, path, nb, output, kernel, options: Options, terminal):
        self.path, self.nb, self.output = path, nb, output
        self.kernel, self.options, self.terminal = kernel, options, terminal
        self.km = None
        self.client = None
        self.interrupts = 0
        self.stopping = False
        self.unanswered = None  # the prompt of an input() that had no answer left

    def interrupt(self) -> bool:
        """First Ctrl-C: interrupt the running cell (True if one was running)."""
        if self.client is None or self.client.current is None or self.km is None:
            return False
        self.interrupts += 1
        asyncio.ensure_future(self.km.interrupt_kernel())
        return True

    async def _answer_input(self, answers: list) -> None:
        """Answer the kernel's input requests in order; interrupt the cell when none is left."""
        kc = self.client.kc
        while True:
            msg = await kc.get_stdin_msg()
            if msg["msg_type"] != "input_request":
                continue
            prompt = msg["content"].get("prompt", "")
            if answers:
                answer = answers.pop(0)
                if self.terminal.cells and not msg["content"].get("password"):
                    self.terminal.cell_message({"msg_type": "stream", "content": {"name": "stdout", "text": f"{prompt}{answer}\n"}})
                kc.input(answer)
            else:
                self.unanswered = prompt
                await self.km.interrupt_kernel()

    async def run(self) -> Result:
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

        from ..registration import HandshakeError
        from .kernels import quiet_log

        opts, nb = self.options, self.nb
        result = Result(self.path, None)
        self.km = km = self.kernel.manager()
        self.client = client = _client_class()(
            nb, km, self.terminal, startup_timeout=math.ceil(opts.startup_timeout), allow_errors=opts.allow_errors,
            log=quiet_log(),
        )
        client.cell_timeout = opts.timeout
        started = time.perf_counter()
        self.terminal.progress(f"{PROG}: {self.path}: {plural(len(client.numbers), 'code cell')} on {km.kernel_spec.display_name}")
        answerer = None
        try:
            try:
                await km.start_kernel(cwd=opts.cwd or os.path.dirname(os.path.abspath(self.path)))
                await client.async_start_new_kernel_client()
                info = await client.async_wait_for_reply(client.kc.kernel_info())
                if info and "language_info" in info["content"]:
                    nb.metadata["language_info"] = info["content"]["language_info"]
            except HandshakeError as e:
                return self._not_started(result, e.summary)
            except OSError as e:  # a kernelspec's program that is not there (jupyter_client's own launcher)
                return self._not_started(result, f"cannot start {e.filename or 'the kernel'}: {e.strerror or e}")
            except (RuntimeError, TimeoutError) as e:  # e.g. "Kernel didn't respond in N seconds"
                return self._not_started(result, (str(e).strip() or type(e).__name__).splitlines()[0])
            except asyncio.CancelledError:
                return self._not_started(result, "stopped while the kernel was starting", 130)
            if opts.answers:
                client.kc.allow_stdin = True
                answerer = asyncio.ensure_future(self._answer_input(list(opts.answers)))
            parameters.run_started(nb)
            try:
                client.reset_execution_trackers()
                for index, cell in enumerate(nb.cells):
                    await client.async_execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                client.set_widgets_metadata()
            except CellTimeoutError:
                self._failed(result, "CellTimeoutError", f"the cell did not finish within the {opts.timeout:g} s limit (--timeout)")
            except DeadKernelError:
                # nbclient reports our cancellation (second Ctrl-C) as a dead kernel too
                if self.stopping:
                    self._failed(result, "RunStopped", "kernelkit run was stopped (Ctrl-C) while this cell ran", 130)
                else:
                    self._failed(result, "DeadKernelError", "the kernel died while running this cell")
            except CellExecutionError as e:
                self._cell_error(result, e)
            except asyncio.CancelledError:
                self._failed(result, "RunStopped", "kernelkit run was stopped (Ctrl-C) while this cell ran", 130)
        finally:
            if answerer is not None:
                answerer.cancel()
            if client.kc is not None:
                client.kc.stop_channels()
            if km.has_kernel:
                await km.shutdown_kernel(now=True)
        result.seconds = time.perf_counter() - started
        result.cells = client.ran
        parameters.run_ended(nb, result.seconds, result.exit != 0)
        if opts.save:
            write_notebook(nb, self.output)
            result.output = self.output
        return result

    def _not_started(self, result, why, status=2) -> Result:
        result.exit, result.reason = status, f"the kernel did not start: {why}" if status == 2 else why
        result.ename = "KernelNotStarted" if status == 2 else "RunStopped"
        return result

    def _failed(self, result, ename, evalue, status=1) -> None:
        """A failure the kernel could not report itself: an error output in the running cell."""
        index = self.client.current
        result.exit, result.ename, result.reason = status, ename, f"{ename}: {evalue}"
        result.details = result.reason
        if index is None:
            return
        result.failed_cell = self.client.cell_label(index)
        self.nb.cells[index].outputs.append(_error_output(ename, evalue))

    def _cell_error(self, result, e) -> None:
        index = self.client.current
        result.exit, result.failed_cell = 1, self.client.cell_label(index)
        result.ename = e.ename or "error"  # bash_kernel's errors have no ename
        if self.unanswered is not None:
            result.ename = "InputNotAnswered"
            result.reason = (f"input() asked for more answers than given ({len(self.options.answers)}; "
                             f"prompt {self.unanswered!r}): add --input TEXT or a line to --stdin-file")
        elif self.interrupts:
            result.exit, result.reason = 130, "interrupted (Ctrl-C)"
        else:
            result.reason = f"{result.ename}: {e.evalue}"
        errors = [o for o in self.nb.cells[index].outputs if o.get("output_type") == "error"]
        result.details = strip_ansi(error_text(errors[-1])) if errors else result.reason
