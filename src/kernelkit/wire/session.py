"""Build and parse message frames for one kernel process (no sockets).

Frames: ``[identities..., b"<IDS|MSG>", signature, header, parent_header,
metadata, content, buffers...]``. The signature covers the four JSON frames
exactly as sent; identities and buffers are not signed.
"""

import getpass
import itertools
import os
import time
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
from .requests import HEADER_FIELDS, PARENT_FIELDS, bad_fields, describe_bad_fields
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


# (second, its "YYYY-MM-DDTHH:MM:SS" in UTC): formatting a datetime costs
# more than the rest of a header, and the second rarely changes
_second = (0, "1970-01-01T00:00:00")


def now_iso() -> str:
    """The current UTC time in ISO 8601, always with six digits of microseconds."""
    global _second
    us = time.time_ns() // 1000  # (integers: a float's rounding could step back a microsecond)
    sec = us // 1_000_000
    cached = _second
    if cached[0] != sec:
        cached = _second = (sec, datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{us % 1_000_000:06d}+00:00"


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
        # frames() writes headers as text; the parts that never change, encoded once
        self._username_json = jsonutil.dumps(self.username).decode()
        self._type_json: dict = {}
        self._topics: dict = {}  # msg_type -> iopub topic

    def single_frame(self, body: bytes) -> list[bytes]:
        """Dialect B's registration messages (JEP 66): one signed frame and no
        header, ``[<IDS|MSG>, signature, body]``."""
        return [DELIMITER, self.signer.sign([body]), body]

    def iopub_topic(self, msg_type: str) -> bytes:
        """The topic an iopub message of this type is sent under:
        ``kernel.<session>.<msg_type>``."""
        topic = self._topics.get(msg_type)
        if topic is None:
            topic = self._topics[msg_type] = f"kernel.{self.session_id}.{msg_type}".encode()
        return topic

    # -- building -------------------------------------------------------
    def header(self, msg_type: str, subshell_id=None) -> dict:
        # the header is written in one place, _header_bytes (frames() sends
        # those bytes); the few callers that want a dict read them back
        return jsonutil.loads(self._header_bytes(msg_type, subshell_id))

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
        subshell_id = parent_header.get("subshell_id") if parent_header else None
        return self._signed_frames(self._header_bytes(msg_type, subshell_id), parent_header, parent_raw, metadata, content, identities, buffers)

    def _header_bytes(self, msg_type: str, subshell_id=None) -> bytes:
        """The header as JSON, written as text: msg_id, msg_type, username,
        session, date, version and, when given, subshell_id (this is on
        every message the kernel sends)."""
        type_json = self._type_json.get(msg_type) if type(msg_type) is str else None
        if type_json is None:  # (header() takes any JSON value, e.g. for tests of bad input)
            type_json = jsonutil.dumps(msg_type).decode()
            if type(msg_type) is str and len(self._type_json) < 256:  # (a kernel's types are few)
                self._type_json[msg_type] = type_json
        sid = self.session_id
        extra = "" if subshell_id is None else ',"subshell_id":' + jsonutil.dumps(subshell_id).decode()
        return (
            f'{{"msg_id":"{sid}_{_pid}_{next(self._counter)}","msg_type":{type_json},"username":{self._username_json},'
            f'"session":"{sid}","date":"{now_iso()}","version":"{PROTOCOL_VERSION}"{extra}}}'
        ).encode()

    def _signed_frames(self, header, parent_header, parent_raw, metadata, content, identities, buffers) -> list[bytes]:
        dumps = jsonutil.dumps
        parts = [
            header if type(header) is bytes else dumps(header),
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

        When msg_id and msg_type are readable but the rest is not (another
        header field, the parent header, metadata or content), raises
        InvalidContent carrying the message, so a reply can still be sent;
        its header then lacks the unusable fields (``raw_header`` is as sent).
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
        self.signer.verify(signature, parts, check_replay=False)
        header = _json_object("header", parts[0])
        for name in _REQUIRED_HEADER:
            if not isinstance(header.get(name), str) or not header.get(name):
                raise MissingHeaderField(name)
        if check_replay:
            self.signer.remember(signature, header)  # (the header's date counts)
        msg = Message(header, {}, {}, {}, buffers, identities, parts[0])
        bad = bad_fields(HEADER_FIELDS, header)
        if bad:
            msg.header = {k: v for k, v in header.items() if k not in bad}
            raise InvalidContent(describe_bad_fields("header", header, bad), msg)
        try:
            parent = _json_object("parent_header", parts[1])
            bad = bad_fields(PARENT_FIELDS, parent)
            if bad:
                raise InvalidContent(describe_bad_fields("parent_header", parent, bad), msg)
            msg.parent_header = parent
            msg.metadata = _json_object("metadata", parts[2])
            msg.content = _json_object("content", parts[3])
        except InvalidContent:
            raise
        except WireError as e:
            raise InvalidContent(str(e), msg) from None
        return msg
