"""The kernel's own log, and log limiting.

The kernel logs through the ``kernelkit`` logger, which has a handler of its
own and does not propagate: the root logger is user code's, as it is under
ipykernel (``logging.warning`` in a cell shows in the cell,
``logging.basicConfig`` in a cell takes effect), and the kernel's lines never
reach a cell through a handler user code puts on root.

Log limiting: a hostile or broken client can send thousands of bad messages a
second; the kernel says so once a second with a count, instead of filling its
log.
"""

import logging
import sys
import time

log = logging.getLogger("kernelkit")
FORMAT = "[%(name)s %(levelname)s] %(message)s"


def configure(level: str) -> None:
    """The kernel process's own log: to stderr, at ``level`` (a name:
    'debug', 'INFO' ...; unknown names mean WARNING)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    log.addHandler(handler)
    log.setLevel(getattr(logging, str(level).upper(), logging.WARNING))
    log.propagate = False


class LogLimiter:
    """At most one log line per ``interval`` per kind of problem, with a count of the rest."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self._last: dict = {}
        self._suppressed: dict = {}

    def warn(self, key, text: str, logger=None, level: int = logging.WARNING) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        extra = self._suppressed.pop(key, 0)
        self._last[key] = now
        (logger or log).log(level, "%s%s", text, f" ({extra} more like it suppressed)" if extra else "")
