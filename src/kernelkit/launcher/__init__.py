"""The launcher side of kernelkit: start kernels through the handshake (JEP 66).

- :class:`RegistrationService`: one ROUTER socket serving the handshakes of many
  kernels at once, in both dialects.
- :func:`launch_kernel` / :func:`async_launch_kernel`: start a kernel from an
  argv or a kernelspec and wait until it registered its ports.
- :class:`HandshakeProvisioner` (``kernelkit.launcher.provisioner``): the
  jupyter_client provisioner ``kernelkit-handshake``.
- ``kernelkit run`` (``kernelkit.launcher.run``): execute notebooks, each on its own kernel.

Needs the ``launcher`` extra (jupyter_client; nbclient and papermill for ``kernelkit run``).
"""

from .launch import LaunchedKernel, PendingLaunch, async_launch_kernel, launch_kernel
from .registration import HandshakeError, RegistrationService, shared_service

__all__ = [
    "HandshakeError",
    "LaunchedKernel",
    "PendingLaunch",
    "RegistrationService",
    "async_launch_kernel",
    "launch_kernel",
    "shared_service",
]
