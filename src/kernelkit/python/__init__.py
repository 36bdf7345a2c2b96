"""The bundled Python kernel: IPython's InteractiveShell on kernelkit.

Start it with ``python -m kernelkit.python -f FILE``. Heavy imports (IPython)
happen in ``kernelkit.python.shell``, loaded when the kernel is created.
"""
