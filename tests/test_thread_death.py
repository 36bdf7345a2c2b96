"""A kernel thread that dies ends the process: exit code 1 and the traceback
on stderr at once, never a kernel whose heartbeat answers while its sockets
are deaf."""

import time

import pytest

# Each cell breaks one kernel thread from inside (the exec test kernel hands
# cells the Kernel); what it raises must reach stderr.
KILLERS = {
    # the I/O thread is handed a message for a channel it has no socket for
    "io": "kernel._runtime.outbound.send('no-such-channel', [b'x'])",
    # the control loop's next wait fails
    "control": (
        "class Broken:\n"
        "    def get(self):\n"
        "        raise RuntimeError('control-thread-broken')\n"
        "q = kernel._runtime.control_queue\n"
        "kernel._runtime.control_queue = Broken()\n"
        "q.put(None)\n"
    ),
    # a subshell's thread is handed something that is not a request
    "subshell": (
        "sid = kernel._runtime.create_subshell()\n"
        "kernel._runtime.shells[sid].queue.put('subshell-thread-broken')\n"
    ),
    # so is the main shell, after this cell
    "main": "kernel._runtime.main_shell.queue.put('main-shell-broken')",
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
