"""IPython configuration, read the way ipykernel reads it.

The command line's ``--Class.trait=value`` arguments (and IPython's aliases
and flags: ``--profile``, ``--matplotlib``, ``--ext``, ``-c`` ...), then the
profile's ``ipython_config.py`` and ``ipython_kernel_config.py`` (and the
same files in Jupyter's and the system's config dirs), all through IPython's
and traitlets' own loaders. The application is named ``IPKernelApp`` like
ipykernel's, so existing files that say ``c.IPKernelApp.exec_lines = [...]``
apply, and libraries that look for it in ``get_ipython().config`` (tqdm.auto)
find a kernel.

Loaded when the shell is made (the first request that needs it), not at
launch. A bad option or a file that fails to load is one warning line in the
kernel's log; the kernel then runs with what did load (or the defaults).
"""

import contextlib
import io
import logging
import traceback

from IPython.core.application import BaseIPythonApplication, base_aliases, base_flags
from IPython.core.shellapp import InteractiveShellApp, shell_aliases, shell_flags
from traitlets.config import Config

log = logging.getLogger("kernelkit.python.config")


class IPKernelApp(BaseIPythonApplication, InteractiveShellApp):
    """Holds the configuration and runs InteractiveShellApp's start-up steps
    (extensions, ``exec_lines``, startup files, ``%matplotlib``); it is not a
    process entry point (kernelkit's own app starts the process)."""

    name = "ipython-kernel"  # so the profile's ipython_kernel_config.py is read
    aliases = {**base_aliases, **shell_aliases}
    flags = {**base_flags, **shell_flags}

    def init_crash_handler(self):
        pass  # the kernel reports errors itself; keep sys.excepthook

    def init_shell(self):
        pass  # the kernel makes the shell (make_shell)


def load(argv: list) -> IPKernelApp:
    """The configured application for ``argv`` (the arguments the kernel
    core did not know)."""
    app = IPKernelApp(log=log)
    with _quiet(app) as said:
        try:
            app.parse_command_line(argv)
        except (Exception, SystemExit) as e:  # argparse and traitlets exit on a bad option
            log.warning("ignored the options %s: %s", " ".join(argv), said() or one_line(e))
            app = IPKernelApp(log=log)
    cl_config = app.config.copy()
    app.raise_config_file_errors = True  # (for us to report in one line)
    try:
        app.init_profile_dir()
        app.init_config_files()
        app.load_config_file()
    except Exception as e:
        log.warning("ignored the IPython configuration files: %s%s: %s", _config_file_of(e), type(e).__name__, one_line(e))
        app.config = Config()
    app.update_config(cl_config)  # the command line wins over the files, as in IPython
    if "IPKernelApp" not in app.config:  # (what tqdm.auto looks for)
        app.config["IPKernelApp"] = Config()
    return app


@contextlib.contextmanager
def _quiet(app):
    """What argparse prints and traitlets logs while parsing (several lines,
    and stderr is the running cell's): kept for one warning line instead."""
    text = io.StringIO()
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    quiet = logging.getLogger(f"{log.name}.parse")
    quiet.propagate = False
    quiet.addHandler(handler)
    app.log = quiet

    def said() -> str:  # traitlets' messages and argparse's last line ("error: ...")
        return " ".join(" ".join(records + text.getvalue().strip().splitlines()[-1:]).split())

    try:
        with contextlib.redirect_stderr(text):
            yield said
    finally:
        quiet.removeHandler(handler)
        app.log = log


def _config_file_of(e: BaseException) -> str:
    """'FILE: ' for the config file an error was raised in, if it shows."""
    if isinstance(e, SyntaxError) and e.filename:
        return f"{e.filename}: "
    files = [f.filename for f in traceback.extract_tb(e.__traceback__) if f.filename.endswith("_config.py")]
    return f"{files[-1]}: " if files else ""


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
