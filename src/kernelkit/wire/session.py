"""Build and parse message frames for one kernel process (no sockets).

Frames: ``[identities..., b"<IDS|MSG>", signature, header, parent_header,
metadata, content, buffers...]``. The signature covers the four JSON frames
exactly as sent; identities and buffers are not signed.
"""

import getpass
import itertools
import os
import uuid
from datetime import datetime, timezone

from . import jsonutil
from .errors import (
    InvalidContent,
    InvalidJSON,
    MissingDelimiter,
    MissingHeaderField,
    NotAnObject,
    TooFewFrames,
    WireError,
)
from .message import Message
from .signing import DEFAULT_SCHEME, Signer

DELIMITER = b"<IDS|MSG>"
PROTOCOL_VERSION = "5.5"
_EMPTY = b"{}"
_REQUIRED_HEADER = ("msg_id", "msg_type")


# the process id in message ids, kept current in a forked child (user code
# may fork) without a system call per message
_pid = os.getpid()


def _refresh_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)


def _username() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return os.environ.get("USER", "kernel")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _json_object(part: str, data) -> dict:
    if data == _EMPTY:  # most metadata and many parents and contents
        return {}
    try:
        value = jsonutil.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidJSON(part, str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    if not isinstance(value, dict):
        raise NotAnObject(part, type(value).__name__)
    return value


class Session:
    """Message factory and parser bound to one key and one session id.

    A new ``Session`` (and so a new session id) is made per process, so a
    restarted kernel has a new session.
    """

    def __init__(self, key: bytes | str = b"", signature_scheme: str = DEFAULT_SCHEME, *, username: str | None = None):
        self.signer = Signer(key, signature_scheme)
        self.session_id = uuid.uuid4().hex
        self.username = username if username is not None else _username()
        self._counter = itertools.count(1)

    # -- building -------------------------------------------------------
    def header(self, msg_type: str, subshell_id=None) -> dict:
        h = {
            "msg_id": f"{self.session_id}_{_pid}_{next(self._counter)}",
            "msg_type": msg_type,
            "username": self.username,
            "session": self.session_id,
            "date": now_iso(),
            "version": PROTOCOL_VERSION,
        }
        if subshell_id is not None:
            h["subshell_id"] = subshell_id
        return h

    @staticmethod
    def _parent(parent: "Message | dict | None") -> tuple:
        """(parent header dict, its bytes as received or None)."""
        if isinstance(parent, Message):
            return parent.header, parent.raw_header
        return parent or {}, None

    def message(self, msg_type: str, content=None, parent: Message | dict | None = None, metadata=None) -> Message:
        parent_header, parent_raw = self._parent(parent)
        subshell = parent_header.get("subshell_id") if parent_header else None
        msg = Message(self.header(msg_type, subshell), parent_header, metadata or {}, content if content is not None else {})
        msg.parent_raw = parent_raw
        return msg

    def serialize(self, msg: Message, identities=None) -> list[bytes]:
        return self._signed_frames(
            msg.header, msg.parent_header, msg.parent_raw, msg.metadata, msg.content,
            identities if identities is not None else msg.identities, msg.buffers,
        )

    def frames(self, msg_type: str, content=None, parent: Message | dict | None = None, metadata=None, identities=None, buffers=None) -> list[bytes]:
        """Build and serialize in one step; returns the frames to send.

        The same bytes as ``serialize(message(...))``, without the Message in
        between: this is the path every message the kernel sends takes.
        """
        parent_header, parent_raw = self._parent(parent)
        header = self.header(msg_type, parent_header.get("subshell_id") if parent_header else None)
        return self._signed_frames(header, parent_header, parent_raw, metadata, content, identities, buffers)

    def _signed_frames(self, header, parent_header, parent_raw, metadata, content, identities, buffers) -> list[bytes]:
        dumps = jsonutil.dumps
        parts = [
            dumps(header),
            # a reply echoes its request's header bytes rather than encoding them again
            parent_raw or (dumps(parent_header) if parent_header else _EMPTY),
            dumps(metadata) if metadata else _EMPTY,
            dumps(content) if content else _EMPTY,
        ]
        frames = list(identities) if identities else []
        frames.append(DELIMITER)
        frames.append(self.signer.sign(parts))
        frames += parts
        if buffers:
            frames.extend(bytes(b) for b in buffers)
        return frames

    # -- parsing --------------------------------------------------------
    def parse(self, frames: list, *, check_replay: bool = True) -> Message:
        """Parse and verify frames; raise a specific WireError when malformed.

        When the header is readable but the content is not, raises
        InvalidContent carrying the message so a reply can still be sent.
        """
        if not all(type(f) is bytes for f in frames):  # zmq.Frame, bytearray, memoryview
            frames = [f.bytes if hasattr(f, "bytes") else bytes(f) for f in frames]
        try:
            idx = frames.index(DELIMITER)
        except ValueError:
            raise MissingDelimiter("no <IDS|MSG> delimiter frame") from None
        identities = frames[:idx]
        rest = frames[idx + 1 :]
        if len(rest) < 5:
            raise TooFewFrames(f"expected signature and 4 message frames after the delimiter, got {len(rest)}")
        signature, parts, buffers = rest[0], rest[1:5], rest[5:]
        self.signer.verify(signature, parts, check_replay=check_replay)
        header = _json_object("header", parts[0])
        for name in _REQUIRED_HEADER:
            if not isinstance(header.get(name), str) or not header.get(name):
                raise MissingHeaderField(name)
        msg = Message(header, {}, {}, {}, buffers, identities, parts[0])
        try:
            msg.parent_header = _json_object("parent_header", parts[1])
            msg.metadata = _json_object("metadata", parts[2])
            msg.content = _json_object("content", parts[3])
        except WireError as e:
            raise InvalidContent(str(e), msg) from None
        return msg
