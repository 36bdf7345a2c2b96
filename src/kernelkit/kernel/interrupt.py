"""SIGINT, and interrupt_request, as a KeyboardInterrupt in the code being run.

User code runs on the main thread, where Python delivers signals. The
handler raises KeyboardInterrupt only while the kernel is running a request
or waiting for input ("armed"); an interrupt that arrives while the kernel is
idle is logged and ignored, so it cannot break the dispatch loop.
"""

import logging
import signal
import threading

log = logging.getLogger("kernelkit.kernel")


class InterruptGate:
    def __init__(self):
        self._armed = 0
        self._main = threading.main_thread()
        self._installed = False

    def install(self) -> None:
        if threading.current_thread() is self._main:
            signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True

    def _on_sigint(self, signum, frame):
        if self._armed:
            raise KeyboardInterrupt
        log.info("interrupt while idle: nothing to interrupt")

    def arm(self) -> None:
        self._armed += 1

    def disarm(self) -> None:
        self._armed = max(0, self._armed - 1)

    def interrupt_main(self) -> None:
        """Interrupt the main thread exactly as a SIGINT from outside would."""
        if self._installed:
            signal.pthread_kill(self._main.ident, signal.SIGINT)
        else:  # no handler of ours (embedded): let Python raise it
            import _thread

            _thread.interrupt_main()
