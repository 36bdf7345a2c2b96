"""stdout and stderr of a kernel's code as batched ``stream`` messages.

``CapturedOutput`` puts an ``OutStream`` in ``sys.stdout`` and ``sys.stderr``
for every kernel whose class keeps ``capture_output`` (kernel/base.py): what
a handler prints reaches its request's iopub stream, as under ipykernel.

Writes are collected and sent when the batch is big enough, when it is old
enough (a flusher thread), when output for another cell starts, or when the
kernel flushes (before input prompts, displays, replies and idle). So a print
loop becomes a few large messages instead of one per line, and ordering with
everything else is kept.

Output written to file descriptors 1 and 2 (C extensions, ``os.system``,
subprocesses) can be captured through pipes into the same streams
(``FdCapture``; the Python kernel does).
"""

import codecs
import io
import os
import select
import sys
import threading
import time

from .. import threads

# A batch is sent when it holds this many characters ...
MAX_BATCH_CHARS = 32 * 1024
# ... or when its oldest write is this old (seconds).
MAX_BATCH_AGE = 0.05


class OutStream(io.TextIOBase):
    """A text stream whose writes become ``stream`` messages."""

    def __init__(self, name: str, send, parent_of_writer, flusher):
        super().__init__()
        self.name = name
        self._send = send  # send(name, text, parent)
        self._parent_of_writer = parent_of_writer  # () -> Request | None
        self._flusher = flusher
        self._lock = threading.RLock()
        self._parts: list[str] = []
        self._size = 0
        self._parent = None
        self._since = 0.0

    # io.TextIOBase API
    # (ipykernel's values: code compares them, e.g. ``encoding == "UTF-8"``;
    # text is sent as it is, so there are no encoding errors to handle)
    @property
    def encoding(self):
        return "UTF-8"

    @property
    def errors(self):
        return None

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self):
        # C code and subprocesses inherit fd 1/2, which are captured
        return 1 if self.name == "stdout" else 2

    def write(self, text) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not text:
            return 0
        parent = self._parent_of_writer()
        with self._lock:
            if self._parts and parent is not self._parent:
                self._flush_locked()
            first = not self._parts
            if first:
                self._parent = parent
                self._since = time.monotonic()
            self._parts.append(text)
            self._size += len(text)
            if self._size >= MAX_BATCH_CHARS:
                self._flush_locked()
            elif first:
                self._flusher.wake()
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self._parts:  # (nothing this thread wrote is waiting: no lock needed)
            return
        with self._lock:
            if self._parts:
                self._flush_locked()

    def _flush_locked(self) -> None:
        text = "".join(self._parts)
        parent = self._parent
        self._parts = []
        self._size = 0
        self._parent = None
        self._send(self.name, text, parent)

    def due(self) -> float | None:
        """When the current batch must be sent (monotonic), or None if empty."""
        return self._since + MAX_BATCH_AGE if self._parts else None


class CapturedOutput:
    """``sys.stdout`` and ``sys.stderr`` as two OutStreams and their flusher,
    until ``close()`` puts back what was there.

    ``send(name, text, parent)`` publishes a batch; ``parent_of_writer()``
    names the request the writing thread works for. In a forked child (which
    has neither the flusher nor the I/O thread) the two write straight to
    file descriptors 1 and 2 instead."""

    def __init__(self, send, parent_of_writer):
        self._saved = (sys.stdout, sys.stderr)
        flusher = Flusher()
        self.stdout = OutStream("stdout", send, parent_of_writer, flusher)
        self.stderr = OutStream("stderr", send, parent_of_writer, flusher)
        flusher.add(self.stdout)
        flusher.add(self.stderr)
        flusher.start()
        self._active = True
        # (a fork hook cannot be unregistered: close() switches it off)
        os.register_at_fork(after_in_child=lambda: self._active and self._in_forked_child())
        sys.stdout, sys.stderr = self.stdout, self.stderr

    def flush(self) -> None:
        self.stdout.flush()
        self.stderr.flush()

    def close(self) -> None:
        """Send what is buffered; put back the streams that were there."""
        if not self._active:
            return
        self._active = False
        self.flush()
        if sys.stdout is self.stdout:
            sys.stdout = self._saved[0]
        if sys.stderr is self.stderr:
            sys.stderr = self._saved[1]

    @staticmethod
    def _in_forked_child() -> None:
        # (os.fork, multiprocessing's fork start method): fds 1 and 2 are the
        # pipes the kernel reads into the running cell, if it captures them,
        # else where the kernel's own output goes
        sys.stdout = _fd_writer(1)
        sys.stderr = _fd_writer(2)


def _fd_writer(fd: int):
    """Line-buffered text output on a file descriptor: a line is one write,
    so children writing at once do not mix their lines; the rest is written
    at exit or flush, as on a terminal."""
    return open(fd, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)


class Flusher(threading.Thread):
    """Sends batches that have waited MAX_BATCH_AGE."""

    def __init__(self):
        super().__init__(name=threads.name("output-flusher"), daemon=True)
        self._cond = threading.Condition()
        self._streams: list[OutStream] = []

    def add(self, stream: OutStream) -> None:
        self._streams.append(stream)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def run(self) -> None:
        while True:
            with self._cond:
                # decide under the condition so that a wake() cannot slip in
                # between looking and waiting; flush outside it (flushing
                # takes the stream's lock, which writers hold when waking us)
                while True:
                    now = time.monotonic()
                    dues = [(s.due(), s) for s in self._streams]
                    ready = [s for d, s in dues if d is not None and d <= now]
                    if ready:
                        break
                    pending = [d for d, _ in dues if d is not None]
                    self._cond.wait(min(pending) - now if pending else None)
            for stream in ready:
                stream.flush()


class FdCapture:
    """Redirects a file descriptor into an OutStream through a pipe.

    A reader thread forwards bytes as they come; ``flush`` also takes what is
    in the pipe right now, under the same lock, so bytes written to the fd
    before a flush are in the stream after it.
    """

    def __init__(self, fd: int, stream: OutStream):
        self.fd = fd
        self.stream = stream
        self.saved = os.dup(fd)  # the original, for the kernel's own logging
        self._read_end, write_end = os.pipe()
        os.set_blocking(self._read_end, False)
        os.dup2(write_end, fd)
        os.close(write_end)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._lock = threading.Lock()
        # flush runs before every reply: asking whether the pipe holds
        # anything is cheaper than a read that fails
        self._pending = select.poll()
        self._pending.register(self._read_end, select.POLLIN)
        self._thread = threading.Thread(target=self._run, name=threads.name(f"fd{fd}-reader"), daemon=True)
        self._thread.start()

    def _drain_locked(self) -> bool:
        """Move what the pipe holds into the stream; False once every write
        end is closed (the fd was given back)."""
        while True:
            try:
                data = os.read(self._read_end, 65536)
            except BlockingIOError:
                return True
            if not data:
                return False
            text = self._decoder.decode(data)
            if text:
                self.stream.write(text)

    def _run(self) -> None:
        while True:
            try:
                select.select([self._read_end], [], [])
            except (OSError, ValueError):
                return
            with self._lock:
                if not self._drain_locked():
                    return

    def flush(self) -> None:
        with self._lock:  # also serialises the poll object (not thread-safe)
            if self._pending.poll(0):  # bytes written to the fd are waiting
                self._drain_locked()
