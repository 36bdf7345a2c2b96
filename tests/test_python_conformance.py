"""jupyter_kernel_test 0.7.0 against the installed kernelkit kernelspec: every sample filled."""

import os
import subprocess
import sys
import tempfile

import jupyter_kernel_test as jkt

_prefix = tempfile.mkdtemp(prefix="kernelkit-spec-")
_ipython_dir = tempfile.mkdtemp(prefix="kernelkit-ipython-")


def setUpModule():
    # install the kernelspec exactly as a user would, into a private prefix
    subprocess.run(
        [sys.executable, "-m", "kernelkit.cli", "install", "--prefix", _prefix, "--name", "kernelkit-conformance"],
        check=True,
        capture_output=True,
    )
    os.environ["JUPYTER_PATH"] = os.path.join(_prefix, "share", "jupyter")
    os.environ["IPYTHONDIR"] = _ipython_dir


class KernelkitPythonTests(jkt.KernelTests):
    kernel_name = "kernelkit-conformance"
    language_name = "python"
    file_extension = ".py"
    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "import ite", "matches": {"itertools"}},
    ]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2"]
    invalid_code_samples = ["import = 7q"]
    code_page_something = "print?"
    code_generate_error = "raise ValueError('boom')"
    code_execute_result = [{"code": "1+2+3", "result": "6"}, {"code": "[n*n for n in range(1, 4)]", "result": "[1, 4, 9]"}]
    code_display_data = [
        {"code": "from IPython.display import HTML, display; display(HTML('<b>test</b>'))", "mime": "text/html"},
        {"code": "from IPython.display import Math, display; display(Math('\\\\frac{1}{2}'))", "mime": "text/latex"},
    ]
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "range", "search")
    code_inspect_sample = "zip"
    code_clear_output = "from IPython.display import clear_output; clear_output()"


class KernelkitIopubWelcomeTests(jkt.IopubWelcomeTests):
    kernel_name = "kernelkit-conformance"
    support_iopub_welcome = True
