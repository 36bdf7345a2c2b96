"""A test kernel that extends the request table: its own message types,
declared with ``@handler``, and the start/stop hooks."""

import os
import threading

from kernelkit import Kernel, handler


class HandlerKernel(Kernel):
    implementation = "handler-test"

    def start(self):
        self.started_on = threading.current_thread().name
        self.stream("from start\n")  # the helpers work here (no parent)

    def stop(self):
        path = os.environ.get("HANDLER_KERNEL_STOP_FILE")
        if path:
            with open(path, "w") as f:
                f.write(f"stopped on {threading.current_thread().name}")

    def execute(self, code, request):
        self.stream(code)

    @handler("echo_request")
    def echo(self, request):
        if request.content.get("fail"):
            raise ValueError("asked to fail")
        self.stream("echoing\n")
        return {"echo": request.content, "thread": threading.current_thread().name, "started_on": self.started_on}

    @handler("note")  # no reply: busy and idle only
    def note(self, request):
        self.stream(f"noted {request.content.get('text')}\n")


class LouderKernel(HandlerKernel):
    implementation = "handler-test-louder"

    def echo(self, request):  # overrides the declared handler by name
        return {"echo": "LOUDER"}

    @handler("note")  # declares the type again: this method now handles it
    def other_note(self, request):
        return {"noted": True}


if __name__ == "__main__":
    (LouderKernel if os.environ.get("HANDLER_KERNEL_LOUDER") else HandlerKernel).main()
