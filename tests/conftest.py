import sys
from pathlib import Path

import pytest
from jupyter_client import KernelManager

sys.path.insert(0, str(Path(__file__).parent))

from support import CHROMEDRIVER, CHROMIUM, ensure_chromium, start_kernel  # noqa: E402  (test modules import it from support)


@pytest.fixture
def rk(tmp_path):
    """An exec test kernel with raw ZeroMQ sockets (rawkernel.RawKernel), not started."""
    from rawkernel import RawKernel

    k = RawKernel(tmp_path)
    try:
        yield k
    finally:
        k.close()


@pytest.fixture
def kernel(tmp_path):
    """A running exec test kernel and a connected BlockingKernelClient."""
    proc, kc = start_kernel(tmp_path)
    yield proc, kc
    kc.stop_channels()
    proc.kill()


@pytest.fixture
def managers():
    """``start(kernel_name, **KernelManager options)`` starts a KernelManager;
    every one started is shut down afterwards."""
    started = []

    def start(name, **kw):
        km = KernelManager(kernel_name=name, **kw)
        started.append(km)
        km.start_kernel()
        return km

    yield start
    for km in started:
        if km.has_kernel:
            km.shutdown_kernel(now=True)


@pytest.fixture
def browser():
    """Headless Chromium under Selenium (the browser tests): Debian's chromium and
    chromium-driver, installed with apt-get when missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium (the 'test' extra)")
    ensure_chromium()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1500,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory):
    """Two hosts joined by a network, sshd on one (tests/netns.py), for a
    test module; skipped where they cannot be had."""
    from netns import make_two_hosts, remove_two_hosts, why_not_available

    reason = why_not_available()
    if reason:
        pytest.skip(f"two hosts over ssh: {reason}")
    hosts = make_two_hosts(tmp_path_factory.mktemp("two-hosts"))
    try:
        yield hosts
    finally:
        remove_two_hosts(hosts)
