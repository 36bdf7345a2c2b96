import importlib.util
import sys

from .kernel import PythonKernel

if __name__ == "__main__":
    missing = [name for name in ("IPython", "comm") if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"kernel did not start: the Python kernel needs {' and '.join(missing)}: pip install 'kernelkit[python]'",
            file=sys.stderr,
        )
        sys.exit(1)
    PythonKernel.main()
