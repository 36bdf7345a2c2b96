"""Kernels built on ipykernel's ``Kernel``, run unchanged on kernelkit's core.

``kernelkit adopt NAME`` (``spec.py``) rewrites an installed kernelspec so that
its ``python -m MODULE`` becomes ``python -m kernelkit.adopt MODULE`` started
through the ``kernelkit-handshake`` provisioner. That entry (``__main__.py``)
puts kernelkit's stand-ins for ``ipykernel``'s modules in ``sys.modules`` of
that one process (``layer.py``), then runs the kernel's own module: its
``IPKernelApp.launch_instance(kernel_class=...)`` (``kernelapp.py``) starts
kernelkit's core with ``AdoptedKernel`` (``bridge.py``), which serves each
request by calling the kernel's ``do_*`` methods on the ipykernel-style
object (``kernelbase.py``). Nothing here is imported by the kernel core.
"""
