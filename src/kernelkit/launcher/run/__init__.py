"""``kernelkit run NOTEBOOK.ipynb [NOTEBOOK ...]``: execute notebooks, each on its
own kernel (the notebook's, see ``kernels``), showing each cell's progress and
output as it runs (one notebook) or a line per notebook and a summary table
(several, ``-j N`` at a time).

The executed notebook goes to ``-o OUT`` (``-o DIR`` for several) or, by default,
next to the input as ``NAME.out.ipynb``: the input is never overwritten unless
asked (``-o NAME.ipynb``).

Exit status: 0 every notebook ran; 1 a cell failed, timed out or the kernel died
(the notebook is written with what ran); 2 bad input (nothing runs, nothing is
written) or a kernel that did not start; 130 Ctrl-C: the first interrupts the
running cells, a second stops the run (what ran is written). With several
notebooks, the most serious of these.
"""

import argparse
import asyncio
import logging
import math
import os
import signal
import sys
import time

from .execute import PROG, NotebookRun, Options, Result
from .notebooks import UsageError, output_paths, read_notebook
from .terminal import Terminal, plural

DEFAULT_STARTUP_TIMEOUT = 60.0


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, exit status 2."""

    def error(self, message):
        print(f"{PROG}: {message} (see {PROG} --help)", file=sys.stderr, flush=True)
        sys.exit(2)


def _seconds(none_ok: bool):
    def parse(text: str):
        if none_ok and text.strip().lower() == "none":
            return None
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of seconds" + (" or 'none'" if none_ok else ""))
        return value
    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive whole number")
    return value


def _parse_args(argv):
    p = _Parser(prog=PROG, description="Execute notebooks, each on its own kernel (the notebook's kernelspec).")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK.ipynb")
    p.add_argument("-o", "--output", metavar="OUT", help="where to write the executed notebook (default: NOTEBOOK.out.ipynb); "
                   "with several notebooks, an existing directory")
    p.add_argument("--kernel", metavar="NAME", help="an installed kernelspec instead of the notebook's; "
                   "'kernelkit' is the bundled Python kernel, always available")
    params = p.add_argument_group("parameters (papermill's)")
    params.add_argument("-p", "--parameters", nargs=2, action="append", metavar=("NAME", "VALUE"),
                        help="a parameter, typed as papermill types it (True, False, None, int, float, else text)")
    params.add_argument("-r", "--parameters-raw", nargs=2, action="append", metavar=("NAME", "VALUE"), help="a parameter kept as text")
    params.add_argument("-y", "--parameters-yaml", action="append", metavar="YAML", help="parameters as a YAML mapping")
    params.add_argument("-f", "--parameters-file", action="append", metavar="FILE", help="parameters from a YAML or JSON file")
    p.add_argument("--allow-errors", action="store_true", help="go on after a cell fails (exit status 0)")
    p.add_argument("--cwd", metavar="DIR", help="the kernel's working directory (default: the notebook's folder)")
    answers = p.add_mutually_exclusive_group()
    answers.add_argument("--input", action="append", metavar="TEXT", help="an answer for input(), in order (repeat it)")
    answers.add_argument("--stdin-file", metavar="FILE", help="answers for input(), one a line ('-': this command's stdin)")
    p.add_argument("--no-save", action="store_true", help="do not write the executed notebook")
    p.add_argument("-q", "--quiet", action="store_true", help="show only failures and the final lines")
    p.add_argument("-j", "--jobs", type=_positive_int, default=1, metavar="N", help="notebooks run at a time (default 1)")
    p.add_argument("--junit-xml", metavar="FILE", help="write a JUnit XML report (one test case per notebook)")
    p.add_argument("--timeout", type=_seconds(True), metavar="S", help="seconds each cell may run, or 'none' (the default)")
    p.add_argument("--startup-timeout", type=_seconds(False), default=DEFAULT_STARTUP_TIMEOUT, metavar="S",
                   help=f"seconds a kernel may take to start (default {DEFAULT_STARTUP_TIMEOUT:g})")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colours: auto (a terminal and no NO_COLOR), always, never")
    p.add_argument("--dialect", choices=("A", "B"), default="B", help="handshake dialect for the bundled kernel (default B)")
    # advanced: run another handshake kernel without installing a kernelspec
    p.add_argument("--kernel-cmd", metavar="CMD", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _answers(args) -> tuple:
    if args.stdin_file is None:
        return tuple(args.input or ())
    try:
        if args.stdin_file == "-":
            text = sys.stdin.read()
        else:
            with open(args.stdin_file, encoding="utf-8") as f:
                text = f.read()
    except OSError as e:
        raise UsageError(f"--stdin-file {args.stdin_file}: cannot read it: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--stdin-file {args.stdin_file}: not a text file") from None
    return tuple(text.splitlines())


def _prepare(args, terminal) -> list:
    """Every check before any kernel starts: the runs, or UsageError."""
    from . import parameters
    from .kernels import choose_kernel, installed_kernels

    if args.cwd is not None and not os.path.isdir(args.cwd):
        raise UsageError(f"--cwd {args.cwd}: no such directory")
    if args.junit_xml and not os.path.isdir(os.path.dirname(os.path.abspath(args.junit_xml))):
        raise UsageError(f"--junit-xml {args.junit_xml}: no such directory")
    options = Options(timeout=args.timeout, startup_timeout=args.startup_timeout, allow_errors=args.allow_errors,
                      cwd=os.path.abspath(args.cwd) if args.cwd else None, save=not args.no_save,
                      params=parameters.collect(args.parameters_file, args.parameters_yaml, args.parameters, args.parameters_raw),
                      answers=_answers(args))
    outputs = output_paths(args.notebooks, None if args.no_save else args.output)
    installed = installed_kernels()
    runs = []
    for path, output in zip(args.notebooks, outputs):
        nb = read_notebook(path)
        kernel = choose_kernel(path, nb, args.kernel, args.kernel_cmd, args.dialect, args.startup_timeout, installed)
        try:
            unknown = parameters.record(nb, options.params, kernel.name, kernel.language, path, None if args.no_save else output)
        except Exception as e:  # papermill: no translator for this language, a value it cannot write
            raise UsageError(f"{path}: cannot inject the parameters: {e}") from None
        if unknown:
            terminal.info(f"{PROG}: {path}: its parameters cell does not set {', '.join(unknown)} (injected all the same, as papermill does)")
        runs.append(NotebookRun(path, nb, output, kernel, options, terminal))
    return runs


async def _run_all(runs, jobs: int, terminal, several: bool) -> list:
    """Run the notebooks, ``jobs`` at a time; Ctrl-C once interrupts the running
    cells, twice stops everything."""
    slots = asyncio.Semaphore(jobs)
    loop = asyncio.get_running_loop()
    presses = 0

    async def one(run):
        try:
            async with slots:
                result = await run.run()
        except asyncio.CancelledError:  # stopped before it began
            return Result(run.path, None, exit=130, reason="not run (stopped)", ename="RunStopped")
        if several:
            _notebook_line(result, terminal)
        return result

    tasks = [asyncio.ensure_future(one(run)) for run in runs]

    def on_sigint():
        nonlocal presses
        presses += 1
        if presses == 1 and [run.interrupt() for run in runs if run.client is not None].count(True):
            terminal.always(f"{PROG}: interrupting the running cell{'s' if several else ''} (Ctrl-C again to stop)")
            return
        for run in runs:
            run.stopping = True
        for task in tasks:
            task.cancel()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _notebook_line(r: Result, terminal) -> None:
    """The one line a notebook gets when several run."""
    if r.exit == 0:
        terminal.info(f"{PROG}: {terminal.green('ok')} {r.path} ({plural(r.cells, 'cell')} in {r.seconds:.2f} s)")
    else:
        terminal.always(f"{PROG}: {terminal.red(r.status)} {r.path}: {r.line()}")


def _final_lines(r: Result, terminal) -> None:
    """The last lines of a single notebook's run."""
    if r.exit == 2 or (r.exit == 130 and not r.failed_cell):
        terminal.always(f"{PROG}: {r.reason}")
        return
    if r.exit == 130:
        terminal.always(f"{PROG}: {'interrupted' if r.reason.startswith('interrupted') else 'stopped'} in {r.failed_cell}")
    elif r.exit:
        terminal.always(f"{PROG}: {terminal.red(r.failed_cell + ' failed')}: {r.reason}")
    where = f"to {r.output}" if r.output else "(not saved: --no-save)"
    if r.exit == 0:
        terminal.info(f"{PROG}: wrote {r.output} ({plural(r.cells, 'cell')} in {r.seconds:.2f} s)" if r.output
                      else f"{PROG}: {plural(r.cells, 'cell')} ran in {r.seconds:.2f} s (not saved: --no-save)")
    else:
        terminal.always(f"{PROG}: wrote what ran {where}" if r.output else f"{PROG}: {where}")


def main(argv=None) -> int:
    from . import report

    args = _parse_args(sys.argv[1:] if argv is None else argv)
    # nbformat imports jsonschema, which builds a grammar for rfc3987_syntax when that is
    # installed (JupyterLab's dependencies bring it): 2 to 7 s on every run, for an "iri"
    # format no notebook schema uses. Our process only; kernels are not affected.
    sys.modules.setdefault("rfc3987_syntax", None)
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    # jupyter_client's launcher logs a failed Popen at length; we say it in one line
    logging.getLogger("traitlets").setLevel(logging.CRITICAL)
    # papermill logs that a language's parameters cell cannot be read; we just do not warn then
    logging.getLogger("papermill").setLevel(logging.ERROR)
    several = len(args.notebooks) > 1
    terminal = Terminal(args.color, args.quiet, cells=not several)
    try:
        runs = _prepare(args, terminal)
    except UsageError as e:
        terminal.always(f"{PROG}: {e}")
        return 2
    started = time.perf_counter()
    try:
        results = asyncio.run(_run_all(runs, args.jobs, terminal, several))
    except KeyboardInterrupt:  # before our handler was in place
        terminal.always(f"{PROG}: stopped")
        return 130
    seconds = time.perf_counter() - started
    if several:
        for line in report.summary_table(results, terminal):
            terminal.always(line)
        terminal.always(f"{PROG}: {report.counts(results)}, in {seconds:.2f} s")
    else:
        _final_lines(results[0], terminal)
    if args.junit_xml:
        report.write_junit(results, args.junit_xml, seconds)
    exits = {r.exit for r in results}
    return next((status for status in (130, 1, 2) if status in exits), 0)


if __name__ == "__main__":
    sys.exit(main())
