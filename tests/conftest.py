import sys
from pathlib import Path

import pytest
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

sys.path.insert(0, str(Path(__file__).parent))

from support import EXEC_KERNEL, KernelProcess  # noqa: E402


def start_kernel(tmp_path, argv=EXEC_KERNEL, key=b"test-key", env=None, **conn):
    """Start a kernel on a classic connection file; return (process, client)."""
    fname, info = write_connection_file(str(tmp_path / "kernel.json"), key=key, **conn)
    proc = KernelProcess(argv, fname, env=env)
    kc = BlockingKernelClient()
    kc.load_connection_file(fname)
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=20)
    except RuntimeError:
        proc.kill()
        raise AssertionError(f"kernel did not become ready; stderr:\n{proc.stderr}")
    return proc, kc


@pytest.fixture
def kernel(tmp_path):
    """A running exec test kernel and a connected BlockingKernelClient."""
    proc, kc = start_kernel(tmp_path)
    yield proc, kc
    kc.stop_channels()
    proc.kill()
