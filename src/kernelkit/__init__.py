"""kernelkit: a framework for Jupyter kernels.

The kernel core (this package minus ``launcher`` and ``python``) depends on
pyzmq only. ``import kernelkit`` loads nothing else: ``Kernel``, ``Request``
and ``handler`` are imported when first used, so ``import kernelkit.wire``
costs the wire protocol alone.
"""

from ._version import __version__

__all__ = ["ExecutionError", "Kernel", "Request", "StdinNotAllowed", "__version__", "handler"]

_AUTHOR_API = {"ExecutionError", "Kernel", "Request", "StdinNotAllowed", "handler"}


def __getattr__(name):
    if name in _AUTHOR_API:
        from .kernel import base

        value = getattr(base, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kernelkit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _AUTHOR_API)
