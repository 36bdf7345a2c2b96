"""What a Kernel's helpers may use of the machinery: publishing, the request
that runs on this thread, input prompts and interrupting. The only object
the author's API (``Kernel``) holds; the machinery calls the kernel, the
kernel calls only this."""


class Services:
    def __init__(self, lifecycle):
        self._lifecycle = lifecycle
        self._stdin = lifecycle.stdin
        self._gate = lifecycle.gate
        self._main = lifecycle.shells.main
        #: publish(msg_type, content, metadata=None, buffers=None, parent=None): an iopub message
        self.publish = lifecycle.sender.publish
        #: the wire Session (its session_id and username)
        self.session = lifecycle.sender.session

    @property
    def current_request(self):
        """The request handled on this thread, else the main shell's."""
        return self._lifecycle.current_request

    def request_on_this_thread(self):
        """The request handled on this thread (no fallback)."""
        return self._lifecycle.request_on_this_thread()

    @property
    def main_request(self):
        """The request the main shell is running, if any."""
        return self._main.current

    def stop_after(self, request) -> None:
        """End the kernel once ``request`` has been answered (reply and idle sent)."""
        self._lifecycle.stop_after(request)

    def ask(self, request, prompt: str, password: bool) -> str:
        """An input_request for ``request``; waits, interruptibly, for the answer."""
        try:
            self._gate.arm()
            return self._stdin.ask(request, prompt, password)
        finally:
            self._gate.disarm()

    @property
    def sigint_handler(self):
        """The kernel's SIGINT handler (None if it has none: embedded)."""
        return self._gate.handler

    def interrupt(self) -> None:
        """Interrupt the main thread as SIGINT would, if the main shell has a
        request (running, or announced to the client), and cancel every input
        prompt a subshell waits on."""
        # (while idle there is nothing to interrupt, and a SIGINT the main
        # thread handles late would land on the next request once it is announced:
        # a client that sends interrupt_request, reads the reply, then executes)
        if self._main.has_request:
            self._gate.interrupt_main()
        self._stdin.cancel_other_threads()
