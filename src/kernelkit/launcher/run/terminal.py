"""What ``kernelkit run`` shows: cell output on stdout, its own lines on stderr.

Colour follows the usual conventions: ``--color auto`` (the default) colours a
stream only when it is a terminal and ``NO_COLOR`` is unset or empty (and TERM is
not ``dumb``); ``always`` and ``never`` decide for both streams. Without colour,
ANSI sequences the kernel put in tracebacks or output are removed from what is
shown (the saved notebook keeps them, as Jupyter does).
"""

import os
import re
import sys

# CSI sequences (colours, cursor moves) and OSC sequences (titles, hyperlinks)
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
# what Python prints for an object without a repr of its own: not worth showing
# when the output has another form (IPython's Markdown, HTML ... objects)
_DEFAULT_REPR = re.compile(r"^<[\w.]+(?: object)?(?: at 0x[0-9a-fA-F]+)?>$")
_RED, _GREEN, _YELLOW, _BOLD, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[1m", "\x1b[0m"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def wants_color(choice: str, stream) -> bool:
    if choice in ("always", "never"):
        return choice == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def best_text(data: dict):
    """The text form of a display or result: Markdown, else the plain repr, else
    the names of the formats it has (``[image/png]``); None if it has none."""
    if "text/markdown" in data:
        return data["text/markdown"].rstrip("\n")
    plain = data.get("text/plain")
    others = sorted(k for k in data if k != "text/plain")
    if plain is not None and not (others and _DEFAULT_REPR.match(plain.strip())):
        return plain
    return f"[{', '.join(others)}]" if others else None


def error_text(content: dict) -> str:
    return "\n".join(content.get("traceback") or [f"{content.get('ename')}: {content.get('evalue')}"])


class Terminal:
    """The two streams and what goes on them.

    ``cells``: show each cell's progress and output (one notebook at a time);
    ``quiet``: only failures and the final lines.
    """

    def __init__(self, color: str = "auto", quiet: bool = False, cells: bool = True, out=None, err=None):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.color_out = wants_color(color, self.out)
        self.color_err = wants_color(color, self.err)
        self.quiet = quiet
        self.cells = cells and not quiet

    # --- our own lines (stderr)
    def _paint(self, text: str, colour: str) -> str:
        return f"{colour}{text}{_RESET}" if self.color_err else text

    def red(self, text: str) -> str:
        return self._paint(text, _RED)

    def green(self, text: str) -> str:
        return self._paint(text, _GREEN)

    def yellow(self, text: str) -> str:
        return self._paint(text, _YELLOW)

    def bold(self, text: str) -> str:
        return self._paint(text, _BOLD)

    def _line(self, text: str) -> None:
        print(text if self.color_err else strip_ansi(text), file=self.err, flush=True)

    def progress(self, text: str) -> None:
        """A cell starting or ending: only while cells are shown."""
        if self.cells:
            self._line(text)

    def info(self, text: str) -> None:
        """What ran and where it went: not with --quiet."""
        if not self.quiet:
            self._line(text)

    def always(self, text: str) -> None:
        """Failures and the summary: always shown."""
        self._line(text)

    # --- what the kernel sent (stdout; a cell's stderr stream to stderr)
    def _write(self, stream, text: str, color: bool) -> None:
        stream.write(text if color else strip_ansi(text))
        stream.flush()

    def cell_message(self, msg: dict) -> None:
        if not self.cells:
            return
        kind, c = msg["msg_type"], msg["content"]
        if kind == "stream":
            to_err = c.get("name") == "stderr"
            self._write(self.err if to_err else self.out, c.get("text", ""), self.color_err if to_err else self.color_out)
        elif kind in ("execute_result", "display_data", "update_display_data"):
            text = best_text(c.get("data") or {})
            if text is not None:
                self._write(self.out, text + "\n", self.color_out)
        elif kind == "error":
            self._write(self.out, error_text(c) + "\n", self.color_out)
