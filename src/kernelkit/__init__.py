"""kernelkit: a framework for Jupyter kernels.

The kernel core (this package minus ``launcher``) depends on pyzmq only.
"""

from ._version import __version__
from .kernel.base import Kernel, Request, handler

__all__ = ["Kernel", "Request", "__version__", "handler"]
