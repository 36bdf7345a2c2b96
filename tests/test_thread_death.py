"""A kernel thread that dies ends the process: exit code 1 and the traceback
on stderr at once, never a kernel whose heartbeat answers while its sockets
are deaf."""

import time

import pytest

# Each cell breaks one kernel thread from inside (the exec test kernel hands
# cells the Kernel; its services lead to the machinery); what it raises must
# reach stderr.
_LIFECYCLE = "lc = kernel._services._lifecycle\n"
KILLERS = {
    # the I/O thread is handed a message for a channel it has no socket for
    "io": _LIFECYCLE + "lc.outbound.send('no-such-channel', [b'x'])",
    # the control loop's next wait fails
    "control": _LIFECYCLE + (
        "class Broken:\n"
        "    def get(self):\n"
        "        raise RuntimeError('control-thread-broken')\n"
        "q = lc.control_queue\n"
        "lc.control_queue = Broken()\n"
        "q.put(None)\n"
    ),
    # a subshell's thread is handed something that is not a request
    "subshell": _LIFECYCLE + "lc.shells.create(lc.run_shell).queue.put('subshell-thread-broken')\n",
    # so is the main shell, after this cell
    "main": _LIFECYCLE + "lc.shells.main.queue.put('main-shell-broken')",
}
EXPECTED = {
    "io": ("kernelkit-io", "KeyError"),
    "control": ("kernelkit-control", "control-thread-broken"),
    "subshell": ("kernelkit-subshell", "AttributeError"),
    "main": ("main shell", "AttributeError"),
}


@pytest.mark.parametrize("which", list(KILLERS))
def test_a_dying_kernel_thread_ends_the_process(kernel, which):
    proc, kc = kernel
    kc.execute(KILLERS[which])
    start = time.monotonic()
    rc = proc.wait(10)
    took = time.monotonic() - start
    stderr = proc.stderr
    assert rc == 1, stderr
    where, what = EXPECTED[which]
    assert "kernelkit: the " in stderr and where in stderr, stderr
    assert "Traceback" in stderr and what in stderr, stderr
    assert took < 1.0, f"the process took {took:.2f} s to exit"


def test_the_python_kernel_says_why_too(tmp_path):
    """The bundled Python kernel replaces sys.stderr and captures file
    descriptor 2 for cell output; the dying words still reach the real stderr."""
    import sys

    from support import start_kernel

    proc, kc = start_kernel(tmp_path, argv=[sys.executable, "-m", "kernelkit.python"])
    try:
        kc.execute("get_ipython().kernel._services._lifecycle.outbound.send('no-such-channel', [b'x'])")
        assert proc.wait(10) == 1, proc.stderr
        stderr = proc.stderr
        assert "kernelkit: the thread kernelkit-io died" in stderr and "KeyError" in stderr, stderr
    finally:
        kc.stop_channels()
        proc.kill()
