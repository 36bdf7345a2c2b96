"""The ``kernelkit`` command: each subcommand lives with what it drives.

Subcommands are imported only when used, so ``kernelkit --version`` stays fast
and the kernel core never imports the launcher side.
"""

import importlib
import sys

from . import __version__

SUBCOMMANDS = {
    # name: (module with main(argv) -> int, one-line help)
    "run": ("kernelkit.launcher.run", "execute notebooks, each on its own kernel (papermill parameters, -j N)"),
    "install": ("kernelkit.python.install", "install the kernelkit Python kernelspec"),
    "uninstall": ("kernelkit.python.install", "remove the kernelkit Python kernelspec"),
    "adopt": ("kernelkit.adopt.spec", "run an installed ipykernel-based kernel on kernelkit (--undo: back)"),
}


def _usage() -> str:
    lines = ["usage: kernelkit [--version] COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run 'kernelkit COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"kernelkit {__version__}")
        return 0
    name = argv[0]
    if name not in SUBCOMMANDS:
        print(f"kernelkit: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    entry = getattr(module, "uninstall_main" if name == "uninstall" else "main")
    return entry(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
