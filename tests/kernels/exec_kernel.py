"""A test kernel: runs Python with ``exec`` and exposes the Kernel to the code.

Cells can call ``kernel.stream(...)``, ``kernel.input(...)`` and so on, so the
tests can drive every part of the base class. Not for real use: the bundled
Python kernel is ``kernelkit.python``.
"""

import sys
import time

from kernelkit import Kernel


class ExecKernel(Kernel):
    implementation = "exec-test"
    supported_features = ("iopub_welcome", "kernel subshells")
    language_info = {"name": "python", "version": sys.version.split()[0], "mimetype": "text/x-python", "file_extension": ".py"}

    def __init__(self):
        super().__init__()
        self.ns = {"kernel": self, "time": time}

    def execute(self, code, request):
        try:
            value = eval(compile(code, "<cell>", "eval"), self.ns)
        except SyntaxError:
            exec(compile(code, "<cell>", "exec"), self.ns)
            return None
        if value is not None:
            self.execute_result({"text/plain": repr(value)})
        return None


if __name__ == "__main__":
    ExecKernel.main()
