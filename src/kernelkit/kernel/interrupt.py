"""SIGINT, and interrupt_request, as a KeyboardInterrupt in the code being run.

User code runs on the main thread, where Python delivers signals. The
handler raises KeyboardInterrupt only while the main thread is running a
request or waiting for input ("armed"); an interrupt that arrives while the
kernel is idle is logged and ignored, so it cannot break the dispatch loop.

Inside a critical section (the kernel's own send path: queue and lock
bookkeeping that an exception must not cut in half) the interrupt is
deferred and raised when the section ends, so nothing is lost or wedged.

Python runs a signal handler only at its next check: a SIGINT that lands
just before a blocking call (``time.sleep``, a lock wait) would wait for the
call to end. So every SIGINT is also seen by a watcher thread (through
``signal.set_wakeup_fd``), which marks the interrupt pending and sends SIGINT
to the main thread again every 50 ms until the handler has raised. The
handler raises only for a pending interrupt, so the repeats raise once.
"""

import logging
import select
import signal
import socket
import threading

KICK_INTERVAL = 0.05

log = logging.getLogger("kernelkit.kernel")


class InterruptGate:
    def __init__(self):
        self._armed = 0
        self._depth = 0  # critical-section nesting on the main thread
        self._deferred = False
        self._main = threading.main_thread()
        self._installed = False
        self._pending = False  # an interrupt the main thread has not raised yet
        self._kicks = 0  # SIGINTs we sent ourselves, not yet seen by the watcher
        self._lock = threading.Lock()
        self.critical = _CriticalSection(self)
        # called on the watcher thread for every SIGINT from outside (the
        # runtime cancels subshell prompts, which the signal cannot reach)
        self.on_signal = None

    def install(self) -> None:
        if threading.current_thread() is not self._main:
            return
        signal.signal(signal.SIGINT, self._on_sigint)
        self._installed = True
        try:
            self._wake_r, wake_w = socket.socketpair()
            wake_w.setblocking(False)
            signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
            self._wake_w = wake_w  # keep it open
        except (OSError, ValueError) as e:
            log.warning("interrupts may be delayed by blocking calls: %s", e)
            return
        threading.Thread(target=self._watch, name="kernelkit-interrupt", daemon=True).start()

    def _on_sigint(self, signum, frame):
        if not (self._armed and self._pending):
            return  # idle, or a repeat of an interrupt already raised
        if self._depth:
            self._deferred = True
            return
        self._pending = False
        raise KeyboardInterrupt

    def _watch(self) -> None:
        while True:
            timeout = KICK_INTERVAL if self._pending and self._armed else None
            readable, _, _ = select.select([self._wake_r], [], [], timeout)
            if readable:
                for signum in self._wake_r.recv(4096):
                    if signum != signal.SIGINT:
                        continue
                    with self._lock:
                        if self._kicks:
                            self._kicks -= 1  # our own repeat
                            continue
                        if self._armed:
                            self._pending = True
                        else:
                            log.info("interrupt of the main shell while idle: nothing to interrupt there")
                    if self.on_signal is not None:
                        self.on_signal()
            if self._pending and self._armed:
                self._kick()

    def _kick(self) -> None:
        with self._lock:
            self._kicks += 1
        signal.pthread_kill(self._main.ident, signal.SIGINT)

    def arm(self) -> None:
        # only the main thread receives signals, so only it arms the gate
        if threading.current_thread() is self._main:
            self._armed += 1

    def disarm(self) -> None:
        if threading.current_thread() is self._main:
            self._armed = max(0, self._armed - 1)
            if not self._armed:
                # an interrupt meant for this request must not hit the next
                self._deferred = False
                self._pending = False

    def interrupt_main(self) -> None:
        """Interrupt the main thread exactly as a SIGINT from outside would."""
        if self._installed:
            if self._armed:
                self._pending = True
                self._kick()
            else:
                log.info("interrupt while idle: nothing to interrupt")
        else:  # no handler of ours (embedded): let Python raise it
            import _thread

            _thread.interrupt_main()


class _CriticalSection:
    """``with gate.critical:`` defers interrupts on the main thread (a class,
    not a generator: it is on every send)."""

    __slots__ = ("_gate",)

    def __init__(self, gate):
        self._gate = gate

    def __enter__(self):
        gate = self._gate
        if threading.current_thread() is gate._main:
            gate._depth += 1
            return True
        return False

    def __exit__(self, *exc):
        gate = self._gate
        if threading.current_thread() is gate._main:
            gate._depth -= 1
            if not gate._depth and gate._deferred and gate._armed:
                gate._deferred = False
                if exc[0] is None:
                    gate._pending = False
                    raise KeyboardInterrupt
        return False
