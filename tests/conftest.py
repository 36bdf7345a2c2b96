import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import start_kernel  # noqa: E402  (test modules import it from support)


@pytest.fixture
def kernel(tmp_path):
    """A running exec test kernel and a connected BlockingKernelClient."""
    proc, kc = start_kernel(tmp_path)
    yield proc, kc
    kc.stop_channels()
    proc.kill()
