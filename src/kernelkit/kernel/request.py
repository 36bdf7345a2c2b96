"""A request as handlers see it, and the record of where it is in its life.

A request's states, in order (kernel/lifecycle.py makes every transition):

| state | reached when |
|---|---|
| ARRIVED | the I/O thread has parsed it and put it in a queue |
| ANNOUNCED | its busy (and for an execute, its count and execute_input) is queued: on the I/O thread as it arrives if the main shell is idle, else on the thread that runs it |
| RUNNING | its handler runs |
| REPLIED | its reply (or none, for a message without one) is queued |
| ABORTED | answered ``aborted`` without running (after a failed execute with stop_on_error) |
| IDLE | its idle is queued: the end |

``interrupted``: an interrupt came after it was announced and before it ran;
it then ends with KeyboardInterrupt as it begins, instead of running.
"""

ARRIVED, ANNOUNCED, RUNNING, REPLIED, ABORTED, IDLE = "arrived", "announced", "running", "replied", "aborted", "idle"


class Request:
    """One incoming shell or control request.

    ``message`` is the parsed wire message; ``channel`` is where it came from
    (the reply goes back there, with the same identities).
    """

    __slots__ = ("message", "channel", "execution_count", "invalid", "arrival", "shell", "state", "interrupted")

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
        self.state = ARRIVED
        self.interrupted = False

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
    def silent(self) -> bool:
        """execute_request: run without output, without counting (the spec's default: False)."""
        return bool(self.message.content.get("silent", False))

    @property
    def store_history(self) -> bool:
        """execute_request: record the cell and count it (default: not silent)."""
        return bool(self.message.content.get("store_history", not self.silent))

    @property
    def user_expressions(self) -> dict:
        """execute_request: expressions to evaluate after the cell ({name: code})."""
        return self.message.content.get("user_expressions") or {}

    @property
    def stop_on_error(self) -> bool:
        """execute_request: on error, abort the executes queued behind it (default: True)."""
        return bool(self.message.content.get("stop_on_error", True))

    @property
    def cell_id(self):
        """The frontend's id for the cell (JupyterLab's ``cellId`` in the metadata), or None."""
        meta = self.message.metadata
        return meta.get("cellId") if isinstance(meta, dict) else None

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

    @property
    def announced(self) -> bool:
        """Its busy has been sent."""
        return self.state is not ARRIVED

    def __repr__(self):
        return f"<Request {self.msg_type} {self.msg_id} on {self.channel}, {self.state}>"
