"""Where the kernel's connection or registration info comes from.

- ``-f FILE``: a file (``files.load_file``).
- ``-f -``: one line of JSON on stdin, for a launcher on another host
  (``ssh HOST python -m kernelkit.python -f -``). The launcher keeps stdin open
  while it wants the kernel: end of file on it means the launcher (or the ssh
  session) is gone, and the kernel ends (:func:`watch_launcher_pipe`).
- no ``-f``: the JSON text in the environment variable ``KERNELKIT_REGISTRATION``
  (a container or pod command); it is removed from the environment, so code the
  kernel runs does not see the key.
"""

import json
import logging
import os

from .. import threads
from .errors import StartupError
from .files import load_file, parse

log = logging.getLogger("kernelkit.startup")

STDIN = "-"
ENV_VAR = "KERNELKIT_REGISTRATION"
STDIN_LABEL = "<stdin>"


def _decode(raw, label: str):
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise StartupError(f"{label}: not valid JSON ({e})") from None
    return parse(data, label)


def _read_line(fd: int) -> bytes:
    """One line from ``fd``, read a byte at a time: nothing after it is consumed,
    so what follows (only ever the end of file) is left for the pipe watch."""
    line = bytearray()
    while True:
        byte = os.read(fd, 1)
        if not byte or byte == b"\n":
            return bytes(line)
        line += byte


def read_info(file: str | None):
    """``(info, label)`` for ``-f FILE``, ``-f -`` or the environment variable;
    StartupError (one line) when there is none or it is unusable."""
    if file == STDIN:
        try:
            raw = _read_line(0)
        except OSError as e:
            raise StartupError(f"{STDIN_LABEL}: cannot read: {e.strerror or e}") from None
        if not raw.strip():
            raise StartupError(f"{STDIN_LABEL}: no registration info (expected one line of JSON before anything else)")
        return _decode(raw, STDIN_LABEL), STDIN_LABEL
    if file is not None:
        return load_file(file), file
    raw = os.environ.pop(ENV_VAR, None)
    if raw is None:
        raise StartupError(f"no connection info: give -f FILE, -f - (JSON on stdin) or set {ENV_VAR}")
    return _decode(raw, f"${ENV_VAR}"), f"${ENV_VAR}"


def watch_launcher_pipe(on_closed) -> None:
    """Call ``on_closed()`` (once, from a daemon thread) when stdin reaches its
    end. The pipe moves to a private descriptor and stdin becomes /dev/null,
    so neither user code nor its subprocesses can read from (or hold) it."""
    fd = os.dup(0)  # not inheritable: subprocesses do not keep the pipe open
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)

    def wait_for_end():
        try:
            while os.read(fd, 4096):
                pass  # a launcher has nothing more to say; anything else is ignored
        except OSError as e:
            log.warning("launcher pipe: %s", e.strerror or e)
        finally:
            os.close(fd)
        log.warning("stdin closed: the launcher (or its ssh session) is gone; the kernel ends")
        on_closed()

    threads.start(wait_for_end, "launcher-pipe")
