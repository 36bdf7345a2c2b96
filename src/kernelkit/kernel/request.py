"""A request as handlers see it."""


class Request:
    """One incoming shell or control request.

    ``message`` is the parsed wire message; ``channel`` is where it came from
    (the reply goes back there, with the same identities).
    """

    __slots__ = ("message", "channel", "execution_count", "invalid", "arrival", "shell", "announced")

    def __init__(self, message, channel: str, invalid: Exception | None = None):
        self.message = message
        self.channel = channel
        self.execution_count = None
        # set when the header was readable but the content was not
        self.invalid = invalid
        # arrival number, assigned by the I/O thread (orders aborts)
        self.arrival = 0
        # the ShellQueue it was routed to (None for control requests)
        self.shell = None
        # busy (and for an execute, execute_input) has been sent
        self.announced = False

    @property
    def content(self) -> dict:
        return self.message.content

    @property
    def header(self) -> dict:
        return self.message.header

    @property
    def msg_type(self) -> str:
        return self.message.msg_type

    @property
    def msg_id(self) -> str:
        return self.message.msg_id

    @property
    def subshell_id(self):
        return self.message.header.get("subshell_id")

    @property
    def allow_stdin(self) -> bool:
        # the spec's default is True; only execute_request carries the flag
        return bool(self.message.content.get("allow_stdin", True)) and self.msg_type == "execute_request"

    @property
    def has_reply(self) -> bool:
        """Requests are answered; comm_open/comm_msg/comm_close and other messages are not."""
        return self.msg_type.endswith("_request")

    @property
    def reply_type(self) -> str:
        t = self.msg_type
        return t[: -len("_request")] + "_reply" if t.endswith("_request") else t + "_reply"

    def __repr__(self):
        return f"<Request {self.msg_type} {self.msg_id} on {self.channel}>"
