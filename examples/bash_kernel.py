"""A bash kernel: one long-lived bash, each cell run in it (state carries over).

Output streams to the cell line by line as bash writes it (stderr merged
into stdout). ``ask PROMPT`` in a cell asks the frontend for a line (an
input request) and prints it; ``x=$(ask "name? ")`` keeps it. An interrupt
sends SIGINT to what the cell is running; the cell then ends with
KeyboardInterrupt. Tab completion: commands for the first word, then files.

Run it:  python examples/bash_kernel.py -f CONNECTION_OR_REGISTRATION_FILE
"""

import os
import shlex
import signal
import subprocess
import uuid

from kernelkit import ExecutionError, Kernel

# bash reads each cell (NUL-terminated) from fd 3, runs it, then prints the
# marker and the exit status. ``ask`` prints a request line the kernel answers
# on bash's stdin. An INT trap keeps bash alive when a command is interrupted.
LOOP = r"""
ask() { printf '%s%s\n' "$KK_ASK" "$1" >&2; IFS= read -r kk_answer; printf '%s\n' "$kk_answer"; }
trap 'kk_interrupted=1' INT
while IFS= read -r -d '' kk_cell <&3; do
    kk_interrupted=0
    eval "$kk_cell" 2>&1 </dev/fd/4
    printf '\n%s %s\n' "$KK_DONE" "$?"
done
"""


class BashKernel(Kernel):
    implementation = "kernelkit-bash"
    implementation_version = "1.0"
    banner = "bash (kernelkit example): ask PROMPT reads a line from the frontend"
    language_info = {"name": "bash", "mimetype": "text/x-sh", "file_extension": ".sh", "codemirror_mode": "shell"}

    def start(self):
        token = uuid.uuid4().hex
        self.done, self.ask = f"__kk_done_{token}", f"__kk_ask_{token}:"
        cells_r, self.cells = os.pipe()
        self.answers_r, self.answers = os.pipe()
        env = {**os.environ, "KK_DONE": self.done, "KK_ASK": self.ask, "PAGER": "cat"}
        self.bash = subprocess.Popen(
            ["bash", "--noprofile", "--norc", "-c", f"exec 3<&{cells_r} 4<&{self.answers_r}; {LOOP}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=(cells_r, self.answers_r), env=env, start_new_session=True,
        )
        os.close(cells_r)
        self.out = self.bash.stdout

    def stop(self):
        self.bash.kill()

    def run(self, code):
        """Run ``code`` in bash; yield its output lines, then its exit status (an int)."""
        os.write(self.cells, code.encode() + b"\0")
        for raw in iter(self.out.readline, b""):
            line = raw.decode("utf-8", "replace")
            if line.startswith(self.done):
                yield int(line.split()[1])
                return
            yield line
        raise ExecutionError("BashExited", "bash ended", ["bash ended; restart the kernel"])

    def execute(self, code, request):
        blank = ""  # newlines held back: bash prints one before its marker that is not the cell's
        try:
            for item in self.run(code):
                if isinstance(item, int):
                    status = item
                    break
                if item.startswith(self.ask):
                    answer = self.input(item[len(self.ask):].rstrip("\n"))
                    os.write(self.answers, answer.encode() + b"\n")
                elif item == "\n":
                    blank += item
                else:
                    self.stream(blank + item)
                    blank = ""
        except KeyboardInterrupt:
            os.killpg(self.bash.pid, signal.SIGINT)  # what the cell runs (bash traps it)
            for item in self.run_rest():
                pass
            raise
        if blank[1:]:
            self.stream(blank[1:])
        if status != 0 and not request.silent:
            raise ExecutionError("BashError", f"exit status {status}", [f"exit status {status}"])

    def run_rest(self):
        """The rest of an interrupted cell's output, up to its marker (dropped)."""
        for raw in iter(self.out.readline, b""):
            if raw.decode("utf-8", "replace").startswith(self.done):
                return
            yield raw

    def complete(self, code, cursor_pos, request):
        word = code[:cursor_pos].split()[-1] if code[:cursor_pos].strip() and not code[:cursor_pos].endswith(" ") else ""
        first = not code[:cursor_pos - len(word)].strip()
        lines = [x for x in self.run(f"compgen {'-c' if first else '-f'} -- {shlex.quote(word)} | sort -u") if isinstance(x, str)]
        matches = [m.rstrip("\n") for m in lines if m.strip()]
        return {"matches": matches, "cursor_start": cursor_pos - len(word), "cursor_end": cursor_pos, "metadata": {}}


if __name__ == "__main__":
    BashKernel.main()
