"""A kernel written against ipykernel's Kernel API only (no kernelkit import):
run as ``python -m ipyapi`` on ipykernel, or ``python -m kernelkit.adopt ipyapi``
on kernelkit. Each cell is a command that exercises one part of the API."""

import asyncio
import logging
import sys
import time

import comm
from ipykernel.kernelbase import Kernel
from traitlets import Unicode


class ApiKernel(Kernel):
    implementation = "ipyapi"
    implementation_version = "1.0"
    language_info = {"name": "ipyapi", "mimetype": "text/plain", "file_extension": ".txt"}
    greeting = Unicode("hello").tag(config=True)

    @property
    def banner(self):
        return f"ipyapi {self.language_version}"

    @property
    def language_version(self):
        return "0.1"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.comms = []
        self.comm_manager = comm.get_comm_manager()
        self.comm_manager.register_target("ipyapi", self._comm_opened)
        for msg_type in ("comm_open", "comm_msg", "comm_close"):
            self.shell_handlers[msg_type] = getattr(self.comm_manager, msg_type)
        self.files = list(self.parent.extra_args) if self.parent is not None else []

    def _comm_opened(self, c, msg):
        c.on_msg(lambda m: c.send({"echo": m["content"]["data"]}))
        c.send({"opened": msg["content"]["data"]})

    def out(self, text):
        self.send_response(self.iopub_socket, "stream", {"name": "stdout", "text": text})

    async def do_execute(self, code, silent, store_history=True, user_expressions=None, allow_stdin=False, *,
                         cell_meta=None, cell_id=None):
        self._allow_stdin = allow_stdin  # (as metakernel does: ipykernel's base class does not set it)
        cmd, _, arg = code.partition(" ")
        if cmd == "args":
            self.out(repr([silent, store_history, user_expressions, allow_stdin, cell_id, (cell_meta or {}).get("tag")]))
        elif cmd == "count":
            self.out(str(self.execution_count))
        elif cmd == "print":
            print(arg)
            print("to stderr", file=sys.stderr)
        elif cmd == "session":
            self.session.send(self.iopub_socket, "display_data", {"data": {"text/plain": arg}, "metadata": {}},
                              parent=self.get_parent())
        elif cmd == "parent":
            p = self.get_parent()
            self.out(f"{p['header']['msg_type']} {p['header']['msg_id']}")
        elif cmd == "input":
            self.out("got " + self.raw_input("say: "))
        elif cmd == "password":
            self.out("secret " + self.getpass("pw: "))
        elif cmd == "log":
            self.log.warning("ipyapi log line: %s", arg)
            self.out(type(self.log).__name__)
        elif cmd == "sleep":  # blocking, as bash_kernel waits for bash
            try:
                self.out("sleeping")  # (the test interrupts once it sees this)
                time.sleep(float(arg))
            except KeyboardInterrupt:
                self.out("interrupted")
                return {"status": "abort", "execution_count": self.execution_count}
        elif cmd == "asleep":
            self.out("sleeping")
            await asyncio.sleep(float(arg))
        elif cmd == "config":
            self.out(f"{self.greeting} {self.files}")
        elif cmd == "missing":
            return self.shell_streams  # not provided on kernelkit
        elif cmd == "fail":
            raise ValueError(arg)
        elif cmd == "error":
            content = {"ename": "Oops", "evalue": arg, "traceback": [arg]}
            self.send_response(self.iopub_socket, "error", content)
            return {"status": "error", "execution_count": self.execution_count, **content}
        elif cmd == "bad":
            return ["not", "a", "dict"]
        else:
            self.out(code)
        return {"status": "ok", "execution_count": self.execution_count, "payload": [], "user_expressions": {}}

    def do_complete(self, code, cursor_pos):  # (sync, as older kernels write it)
        words = ["apple", "apricot", "banana"]
        prefix = code[:cursor_pos].split(" ")[-1]
        return {"status": "ok", "matches": [w for w in words if w.startswith(prefix)],
                "cursor_start": cursor_pos - len(prefix), "cursor_end": cursor_pos, "metadata": {}}

    async def do_inspect(self, code, cursor_pos, detail_level=0, omit_sections=()):
        return {"status": "ok", "found": True, "data": {"text/plain": f"{code}@{cursor_pos}/{detail_level}"}, "metadata": {}}

    def do_is_complete(self, code):
        return {"status": "incomplete" if code.endswith("\\") else "complete", **({"indent": ""} if code.endswith("\\") else {})}

    async def do_history(self, hist_access_type, output, raw, session=None, start=None, stop=None, n=None,
                         pattern=None, unique=False):
        return {"status": "ok", "history": [[0, 1, f"{hist_access_type} n={n}"]]}

    def do_shutdown(self, restart):
        logging.getLogger("ipyapi").warning("do_shutdown restart=%s", restart)
        return {"status": "ok", "restart": restart}
