"""Start a kernelkit kernel by gateway_provisioners' launch protocol.

gateway_provisioners (Enterprise Gateway's provisioners: Kubernetes, Docker,
YARN, ssh) start a launcher with ``--response-address``, ``--public-key``,
``--kernel-id``, ``--port-range`` and ``--transport-encryption``, and expect
the kernel's connection info back at the response address, encrypted to the
public key, plus a "comm port" where they send signals, liveness polls and
shutdown. ``python -m kernelkit.gateway`` is that launcher, run in the kernel's
own process: the kernel binds its five ports once in the range (no helper that
binds, closes and hands the numbers over), then answers the response address.

``payload`` makes the encrypted answer (pycryptodomex, kernelkit[gateway]);
``listener`` serves the comm port; ``__main__`` reads the arguments.
"""
