"""Log limiting: at most one line per second per kind of problem.

A hostile or broken client can send thousands of bad messages a second; the
kernel says so once a second with a count, instead of filling its log.
"""

import logging
import time

log = logging.getLogger("kernelkit")


class LogLimiter:
    """At most one log line per ``interval`` per kind of problem, with a count of the rest."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self._last: dict = {}
        self._suppressed: dict = {}

    def warn(self, key, text: str, logger=None) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        extra = self._suppressed.pop(key, 0)
        self._last[key] = now
        (logger or log).warning("%s%s", text, f" ({extra} more like it suppressed)" if extra else "")
