"""The parsed form of a Jupyter message."""

from dataclasses import dataclass, field


@dataclass(slots=True)
class Message:
    header: dict
    parent_header: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    content: dict = field(default_factory=dict)
    buffers: list = field(default_factory=list)
    # ZeroMQ routing identities that preceded the delimiter; replies copy them.
    identities: list = field(default_factory=list)
    # the header frame as received (a parsed message), and the parent's
    # (a message built in reply to one): replies echo the bytes instead of
    # encoding the same header again for every message of a request
    raw_header: bytes | None = field(default=None, repr=False, compare=False)
    parent_raw: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def msg_type(self) -> str:
        return self.header.get("msg_type", "")

    @property
    def msg_id(self) -> str:
        return self.header.get("msg_id", "")
