"""``kernelkit run NOTEBOOK.ipynb``: execute a notebook on a kernel started through
the handshake, showing each cell's progress and output as it runs.

By default the kernel is the bundled Python kernel (``python -m kernelkit.python``)
started through the ``kernelkit-handshake`` provisioner: nothing to install.
``--kernel NAME`` uses an installed kernelspec as it is (its own provisioner).
The executed notebook goes to ``-o OUT`` or, by default, next to the input as
``NAME.out.ipynb``: the input is never overwritten unless asked (``-o NAME.ipynb``).

Exit status: 0 all cells ran; 1 a cell failed, timed out or the kernel died
(the notebook is written with what ran); 2 bad input or a kernel that did not
start (nothing is written); 130 Ctrl-C: the first interrupts the running cell,
a second stops the run (what ran is written).
"""

import argparse
import asyncio
import logging
import os
import shlex
import signal
import sys
import time

from ..python import install

PROG = "kernelkit run"
DEFAULT_STARTUP_TIMEOUT = 60.0


class UsageError(Exception):
    """Bad input: one line, exit status 2."""


def _parse_args(argv):
    p = argparse.ArgumentParser(prog=PROG, description="Execute a notebook through the kernel handshake.")
    p.add_argument("notebook", metavar="NOTEBOOK.ipynb")
    p.add_argument("-o", "--output", metavar="OUT.ipynb", help="where to write the executed notebook (default: NOTEBOOK.out.ipynb)")
    p.add_argument("--kernel", metavar="NAME", help="an installed kernelspec (default: the bundled Python kernel)")
    p.add_argument("--timeout", type=float, metavar="S", help="seconds each cell may run (default: no limit)")
    p.add_argument("--startup-timeout", type=float, default=DEFAULT_STARTUP_TIMEOUT, metavar="S",
                   help=f"seconds the kernel may take to start (default {DEFAULT_STARTUP_TIMEOUT:g})")
    p.add_argument("--dialect", choices=("A", "B"), default="B", help="handshake dialect for the default kernel (default B)")
    # advanced: run another handshake kernel without installing a kernelspec
    p.add_argument("--kernel-cmd", metavar="CMD", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _default_output(path: str) -> str:
    root, ext = os.path.splitext(path)
    return f"{root}.out{ext or '.ipynb'}"


def _read_notebook(path: str):
    import nbformat

    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, not a notebook")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:  # nbformat raises many types: not JSON, not a notebook, unknown version
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"{path}: not a Jupyter notebook ({why[:200]})") from None
    if not isinstance(nb.get("cells"), list):
        raise UsageError(f"{path}: not a Jupyter notebook (no cells)")
    return nb


def _handshake_spec(argv, display_name, dialect, startup_timeout):
    from jupyter_client.kernelspec import KernelSpec

    return KernelSpec(
        argv=argv,
        display_name=display_name,
        language="python",
        metadata={"kernel_provisioner": {
            "provisioner_name": "kernelkit-handshake",
            "config": {"dialect": dialect, "registration_timeout": startup_timeout},
        }},
    )


def _kernel_manager(args, nb):
    """An AsyncKernelManager for the chosen kernel; its provisioner comes from the spec."""
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    if args.kernel:
        ksm = KernelSpecManager(log=_quiet_log())
        try:
            ksm.get_kernel_spec(args.kernel)
        except NoSuchKernel:
            names = ", ".join(sorted(ksm.find_kernel_specs())) or "none installed"
            raise UsageError(f"unknown kernel {args.kernel!r} (installed: {names})") from None
        return AsyncKernelManager(kernel_name=args.kernel, kernel_spec_manager=ksm)

    language = (nb.metadata.get("kernelspec") or {}).get("language") or (nb.metadata.get("language_info") or {}).get("name")
    if language and language.lower() != "python" and not args.kernel_cmd:
        raise UsageError(f"{args.notebook} is a {language} notebook; the default kernel runs Python: pass --kernel NAME")
    if args.kernel_cmd:
        argv = shlex.split(args.kernel_cmd)
        if not argv:
            raise UsageError("--kernel-cmd is empty")
        if not any("{connection_file}" in a for a in argv):
            argv += ["-f", "{connection_file}"]
        name = " ".join(os.path.basename(a) for a in argv if a != "-f" and "{connection_file}" not in a)[:60]
        spec = _handshake_spec(argv, name, args.dialect, args.startup_timeout)
    else:
        spec = _handshake_spec(install.kernel_argv(), install.DEFAULT_DISPLAY_NAME, args.dialect, args.startup_timeout)

    class OneSpec(KernelSpecManager):
        """The installed kernelspecs plus ours, which needs no install."""

        def get_kernel_spec(self, kernel_name, *a, **kw):
            return spec if kernel_name == install.DEFAULT_NAME else super().get_kernel_spec(kernel_name, *a, **kw)

    return AsyncKernelManager(kernel_name=install.DEFAULT_NAME, kernel_spec_manager=OneSpec(log=_quiet_log()))


def _quiet_log() -> logging.Logger:
    """For nbclient and jupyter_client: they log what we report ourselves, in one line."""
    log = logging.getLogger("kernelkit.run.jupyter")
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    return log


def _first_line(source: str, width: int = 60) -> str:
    line = next((ln for ln in source.splitlines() if ln.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


class _Terminal:
    """Where progress (stderr) and cell output (stdout) go."""

    def __init__(self):
        self.out = sys.stdout
        self.err = sys.stderr

    def progress(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def output(self, msg: dict) -> None:
        kind, c = msg["msg_type"], msg["content"]
        if kind == "stream":
            stream = self.err if c.get("name") == "stderr" else self.out
            stream.write(c.get("text", ""))
            stream.flush()
        elif kind in ("execute_result", "display_data"):
            data = c.get("data", {})
            text = data.get("text/plain")
            if text is None and data:
                text = f"<{', '.join(sorted(data))}>"
            if text is not None:
                print(text, file=self.out, flush=True)
        elif kind == "error":
            print("\n".join(c.get("traceback") or [f"{c.get('ename')}: {c.get('evalue')}"]), file=self.out, flush=True)


def _client_class():
    from nbclient import NotebookClient

    class ProgressClient(NotebookClient):
        """nbclient, plus a line per cell and its output as it arrives."""

        def __init__(self, nb, km, terminal, **kw):
            super().__init__(nb, km=km, **kw)
            self.terminal = terminal
            self.to_run = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
            self.current = None  # index of the running cell

        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            if cell_index not in self.to_run:
                return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            n = self.to_run.index(cell_index) + 1
            self.current = cell_index
            self.terminal.progress(f"[{n}/{len(self.to_run)}] cell {cell_index + 1}: {_first_line(cell.source)}")
            start = time.perf_counter()
            result = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            self.terminal.progress(f"[{n}/{len(self.to_run)}] done in {time.perf_counter() - start:.2f} s")
            return result

        def output(self, outs, msg, display_id, cell_index):
            self.terminal.output(msg)
            return super().output(outs, msg, display_id, cell_index)

    return ProgressClient


async def _execute(args, nb, km, terminal) -> int:
    """Start the kernel, run every cell, write the notebook; returns the exit status.

    The steps of nbclient's ``execute()``, spelled out so that we own SIGINT:
    a first Ctrl-C interrupts the running cell, a second one stops everything.
    """
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from .registration import HandshakeError

    quiet = _quiet_log()
    km.log = quiet
    client = _client_class()(nb, km, terminal, timeout=args.timeout, startup_timeout=int(args.startup_timeout), log=quiet)
    output = args.output or _default_output(args.notebook)
    started = time.perf_counter()
    interrupts = 0
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def on_sigint():
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1 and client.current is not None:
            terminal.progress(f"{PROG}: interrupting cell {client.current + 1} (Ctrl-C again to stop)")
            asyncio.ensure_future(km.interrupt_kernel())
        else:
            main_task.cancel()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    terminal.progress(f"{PROG}: {args.notebook}: {len(client.to_run)} code cells on {km.kernel_spec.display_name}")
    try:
        try:
            # the notebook's folder is the kernel's working directory, as in Jupyter
            await km.start_kernel(cwd=os.path.dirname(os.path.abspath(args.notebook)))
            await client.async_start_new_kernel_client()
            info = await client.async_wait_for_reply(client.kc.kernel_info())
            if info and "language_info" in info["content"]:
                nb.metadata["language_info"] = info["content"]["language_info"]
        except HandshakeError as e:
            return _fail(f"the kernel did not start: {e.summary}", 2)
        except (RuntimeError, TimeoutError) as e:  # e.g. "Kernel didn't respond in N seconds"
            return _fail(f"the kernel did not start: {(str(e).strip() or type(e).__name__).splitlines()[0]}", 2)
        except asyncio.CancelledError:
            return _fail("stopped while the kernel was starting", 130)
        try:
            client.reset_execution_trackers()
            for index, cell in enumerate(nb.cells):
                await client.async_execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            client.set_widgets_metadata()
            status = 0
        except CellTimeoutError:
            status = _fail(f"cell {client.current + 1} timed out after {args.timeout:g} s", 1)
        except DeadKernelError:
            # nbclient reports our cancellation (second Ctrl-C) as a dead kernel too
            if interrupts > 1:
                status = _fail(f"stopped in cell {client.current + 1}", 130)
            else:
                status = _fail(f"the kernel died while running cell {client.current + 1}", 1)
        except CellExecutionError as e:
            if interrupts:
                status = _fail(f"interrupted in cell {client.current + 1}", 130)
            else:
                status = _fail(f"cell {client.current + 1} failed: {e.ename}: {e.evalue}", 1)
        except asyncio.CancelledError:
            status = _fail(f"stopped in cell {client.current + 1}", 130)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if client.kc is not None:
            client.kc.stop_channels()
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
    _write(nb, output)
    if status == 0:
        terminal.progress(f"{PROG}: wrote {output} ({len(client.to_run)} cells in {time.perf_counter() - started:.2f} s)")
    else:
        terminal.progress(f"{PROG}: wrote what ran to {output}")
    return status


def _write(nb, path):
    import nbformat

    nbformat.write(nb, path)


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return status


def main(argv=None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    # jupyter_client's launcher logs a failed Popen at length; we say it in one line
    logging.getLogger("traitlets").setLevel(logging.CRITICAL)
    try:
        nb = _read_notebook(args.notebook)
        km = _kernel_manager(args, nb)
        output = args.output or _default_output(args.notebook)
        if os.path.isdir(output) or not os.path.isdir(os.path.dirname(os.path.abspath(output))):
            raise UsageError(f"cannot write {output}: no such directory")
    except UsageError as e:
        return _fail(str(e), 2)
    try:
        return asyncio.run(_execute(args, nb, km, _Terminal()))
    except KeyboardInterrupt:  # before our handler was in place
        return _fail("stopped", 130)


if __name__ == "__main__":
    sys.exit(main())
