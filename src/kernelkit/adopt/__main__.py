"""``python -m kernelkit.adopt MODULE [ARGS...]``: run an ipykernel-based
kernel's module (as ``python -m MODULE ARGS...`` would) on kernelkit's core,
with kernelkit's ipykernel layer in place of ipykernel."""

import runpy
import sys

from .layer import install


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        print("usage: python -m kernelkit.adopt MODULE [-f FILE] [ARGS...]", file=sys.stderr)
        raise SystemExit(2)
    module = sys.argv[1]
    install()
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


main()
