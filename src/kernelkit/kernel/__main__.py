"""``python -m kernelkit.kernel MODULE:CLASS [-f FILE] ...``: run any kernelkit
kernel class (what ``kernelkit install --kernel MODULE:CLASS`` writes)."""

import importlib
import sys


def load(target: str):
    """The class named by ``MODULE:CLASS``; ValueError saying what is wrong."""
    module_name, sep, class_name = target.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"{target!r} is not MODULE:CLASS")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import {module_name} ({e}): it must be importable by {sys.executable} (installed, or on PYTHONPATH)") from None
    cls = getattr(module, class_name, None)
    from .base import Kernel

    if not (isinstance(cls, type) and issubclass(cls, Kernel)):
        raise ValueError(f"{target} is not a kernelkit.Kernel subclass")
    return cls


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        print("usage: python -m kernelkit.kernel MODULE:CLASS [-f FILE] [ARGS...]", file=sys.stderr)
        raise SystemExit(2)
    try:
        cls = load(sys.argv[1])
    except ValueError as e:
        print(f"kernel did not start: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    cls.main(sys.argv[2:])


if __name__ == "__main__":
    main()
