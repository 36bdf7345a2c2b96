"""SIGINT, and interrupt_request, as a KeyboardInterrupt in the code being run.

User code runs on the main thread, where Python delivers signals. The
handler raises KeyboardInterrupt only while the main thread is running a
request or waiting for input ("armed"); an interrupt that arrives while the
kernel is idle is logged and ignored, so it cannot break the request loop.
Between the two is a request the client has seen start (the I/O thread sent
its busy and execute_input as it arrived) that the main thread has not begun
to run: an interrupt then is for that request, which ends with a
KeyboardInterrupt as it begins instead of running (``on_idle_interrupt``
marks it; kernel/lifecycle.py).

Inside a critical section (the kernel's own send path: queue and lock
bookkeeping that an exception must not cut in half) the interrupt is
deferred and raised when the section ends, so nothing is lost or wedged.

User code may replace the SIGINT handler (``signal.signal``; pdb's
``continue`` does, to stop at the next interrupt): it has the signal for as
long as its request runs, as under ipykernel, and the gate takes it back when
the main thread's request ends (``disarm``), so the next cell's interrupt is a
KeyboardInterrupt again, not a pdb prompt or a handler left over from an
earlier cell.

Python runs a signal handler only at its next check: a SIGINT that lands
just before a blocking call (``time.sleep``, a lock wait) would wait for the
call to end. So a watcher thread also sees every SIGINT (through
``signal.set_wakeup_fd``); if the handler has not run 50 ms later while the
gate is armed, it sends the main thread SIGURG (a no-op handler) every 50 ms
for up to a second: the blocking call returns with EINTR, Python runs the
pending SIGINT handler, and the call is retried or interrupted. The kicks
are not SIGINTs, so they never raise a second KeyboardInterrupt. While not
armed, the watcher kicks the main thread once, at once, so the handler runs
while the request it may be meant for is current: a SIGINT that arrived
while idle is not taken for the next request (one sent less than a thread
wake-up before a request arrives still may be).
"""

import _signal  # getsignal without signal.py's Handlers-enum lookup (see disarm)
import logging
import os
import select
import signal
import threading
import time

from .. import threads

KICK_INTERVAL = 0.05
MAX_KICKS = 20
KICK_SIGNAL = signal.SIGURG  # ignored by default; ours has a no-op handler

log = logging.getLogger("kernelkit.kernel")
# Python's own (the Python kernel names the kernel's handler
# signal.default_int_handler: a forked child must get the real one)
_DEFAULT_INT_HANDLER = signal.default_int_handler


class InterruptGate:
    def __init__(self):
        self._armed = 0
        self._depth = 0  # critical-section nesting on the main thread
        self._deferred = False
        self._main = threading.main_thread()
        self._main_ident = self._main.ident  # (compared on every send)
        self._installed = False
        self._handled = 0  # runs of the SIGINT handler
        self.critical = _CriticalSection(self)
        # called on the watcher thread for every SIGINT (the runtime cancels
        # subshell prompts, which the signal cannot reach)
        self.on_signal = None
        # set by the lifecycle: called (on the main thread) for an interrupt
        # while not armed; True if it was for a request announced, not yet run
        self.on_idle_interrupt = None
        # called on the watcher thread for a SIGTERM (when SIGTERM has a Python handler)
        self.on_terminate = None

    @property
    def handler(self):
        """The kernel's SIGINT handler, None if not installed (embedded)."""
        return self._handler if self._installed else None

    def install(self) -> None:
        if threading.current_thread() is not self._main:
            return
        self._handler = self._on_sigint  # (one bound method: compared after every request)
        signal.signal(signal.SIGINT, self._handler)
        self._installed = True
        os.register_at_fork(after_in_child=_default_signals)
        try:
            signal.signal(KICK_SIGNAL, lambda *_: None)
            # (a pipe, not a socketpair: the socket module is 4-5 ms of launch)
            self._wake_r, wake_w = os.pipe()
            os.set_blocking(wake_w, False)
            signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
            self._wake_w = wake_w  # kept open
        except (OSError, ValueError) as e:
            log.warning("interrupts may be delayed by blocking calls: %s", e)
            return
        threads.start(self._watch, "interrupt")

    def _on_sigint(self, signum, frame):
        self._handled += 1
        if not self._armed:
            if self.on_idle_interrupt is None or not self.on_idle_interrupt():
                log.info("interrupt of the main shell while idle: nothing to interrupt there")
        elif self._depth:
            self._deferred = True
        else:
            raise KeyboardInterrupt

    def _watch(self) -> None:
        waiting_for = None  # handler runs counted when we saw a SIGINT it has not run for yet
        kicks, next_kick = 0, 0.0
        while True:
            timeout = None if waiting_for is None else max(0.0, next_kick - time.monotonic())
            readable, _, _ = select.select([self._wake_r], [], [], timeout)
            signals = os.read(self._wake_r, 4096) if readable else b""
            if signal.SIGTERM in signals and self.on_terminate is not None:
                self.on_terminate()
            if signal.SIGINT in signals:
                if self.on_signal is not None:
                    self.on_signal()
                if not self._armed:
                    # the handler must run now, while the request it may be
                    # for is current: a signal delivered to another thread
                    # would leave it pending until the main thread next wakes
                    signal.pthread_kill(self._main.ident, KICK_SIGNAL)
                elif waiting_for is None:
                    waiting_for, kicks = self._handled, 0
                    next_kick = time.monotonic() + KICK_INTERVAL  # give the handler its chance first
            if waiting_for is None:
                continue
            if self._handled != waiting_for or not self._armed or kicks >= MAX_KICKS:
                waiting_for = None
            elif time.monotonic() >= next_kick:
                kicks += 1
                next_kick = time.monotonic() + KICK_INTERVAL
                signal.pthread_kill(self._main.ident, KICK_SIGNAL)

    def arm(self) -> None:
        """From now on an interrupt raises KeyboardInterrupt on the main thread.
        Call it inside the ``try`` whose ``finally`` disarms."""
        # only the main thread receives signals, so only it arms the gate
        if threading.get_ident() == self._main_ident:
            self._armed += 1

    def disarm(self) -> None:
        if threading.get_ident() == self._main_ident:
            self._armed = max(0, self._armed - 1)
            if not self._armed:
                # an interrupt meant for this request must not hit the next
                self._deferred = False
                # (_signal's getsignal: signal.getsignal looks the handler up
                # in an enum first, which for a method raises and catches a
                # ValueError, about 3 us on every request)
                if self._installed and _signal.getsignal(signal.SIGINT) is not self._handler:
                    log.debug("SIGINT handler replaced by the request's code: taken back")
                    signal.signal(signal.SIGINT, self._handler)

    def interrupt_main(self) -> None:
        """Interrupt the main thread exactly as a SIGINT from outside would."""
        if self._installed:
            signal.pthread_kill(self._main.ident, signal.SIGINT)
        else:  # no handler of ours (embedded): let Python raise it
            import _thread

            _thread.interrupt_main()


def _default_signals() -> None:
    """In a child that user code forked (multiprocessing's fork pools): it is
    not the kernel, so signals act there as in any Python process (the SIGTERM
    of Pool.terminate ends a worker) and none reaches the kernel's watcher."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, _DEFAULT_INT_HANDLER)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(KICK_SIGNAL, signal.SIG_DFL)
    except (OSError, ValueError):  # (not the main thread: nothing was installed here)
        pass


class _CriticalSection:
    """``with gate.critical:`` defers interrupts on the main thread (a class,
    not a generator: it is on every send)."""

    __slots__ = ("_gate",)

    def __init__(self, gate):
        self._gate = gate

    def __enter__(self):
        gate = self._gate
        if threading.get_ident() == gate._main_ident:
            gate._depth += 1
            return True
        return False

    def __exit__(self, *exc):
        gate = self._gate
        if threading.get_ident() == gate._main_ident:
            gate._depth -= 1
            if not gate._depth and gate._deferred and gate._armed:
                gate._deferred = False
                if exc[0] is None:
                    raise KeyboardInterrupt
        return False
