"""kernelkit: a framework for Jupyter kernels.

The kernel core (this package minus ``launcher``) depends on pyzmq only.
"""

from ._version import __version__
from .kernel.base import ExecutionError, Kernel, Request, StdinNotAllowed, handler

__all__ = ["ExecutionError", "Kernel", "Request", "StdinNotAllowed", "__version__", "handler"]
