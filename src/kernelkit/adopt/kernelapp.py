"""``ipykernel.kernelapp`` as an adopted kernel sees it: ``IPKernelApp``, whose
``launch_instance(kernel_class=...)`` runs that kernel on kernelkit's core.

kernelkit's own options (``-f FILE``, ``--registration-timeout`` ...) go to
the core; the rest is traitlets' command line, as under ipykernel:
``--Class.trait=value`` into ``config`` (the kernel's ``parent``) and other
words into ``extra_args`` (metakernel runs them as files).
"""

import sys

from traitlets import Type
from traitlets.config import Application

from ..kernel import app as core_app
from .bridge import adopt
from .kernelbase import Kernel, not_provided


class IPKernelApp(Application):
    name = "ipykernel-on-kernelkit"
    description = "Runs a kernel built on ipykernel's Kernel on kernelkit's core."
    kernel_class = Type(Kernel, klass=Kernel, help="the kernel's class").tag(config=True)

    def initialize(self, argv=None):
        argv = list(sys.argv[1:] if argv is None else argv)
        core_args, rest = core_app._arg_parser().parse_known_args(argv)
        self._core_argv = _core_argv(core_args)
        self.parse_command_line(rest)
        self.log  # (made now, on the real stderr: print() goes to iopub once the kernel runs)

    def start(self):
        raise SystemExit(core_app.main(adopt(self.kernel_class, self), self._core_argv))

    @classmethod
    def launch_instance(cls, argv=None, **kwargs):
        app = cls.instance(**kwargs)
        app.initialize(argv)
        app.start()


def _core_argv(args) -> list:
    argv = [] if args.file is None else ["-f", args.file]
    argv += ["--registration-timeout", str(args.registration_timeout), "--iopub-tcp-timeout", str(args.iopub_tcp_timeout)]
    return argv + ["--log-level", str(args.log_level)]


def launch_new_instance(argv=None, **kwargs):
    IPKernelApp.launch_instance(argv, **kwargs)


def __getattr__(name):
    raise not_provided("ipykernel.kernelapp", name)
