"""kernelkit: a framework for Jupyter kernels.

The kernel core (this package minus ``launcher``) depends on pyzmq only.
"""

__version__ = "0.1.0"

from .kernel.base import Kernel, Request  # noqa: E402

__all__ = ["Kernel", "Request", "__version__"]
