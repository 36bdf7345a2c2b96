"""The Jupyter wire protocol as pure functions and data: no sockets here."""

from .errors import (
    BadSignature,
    InvalidContent,
    InvalidJSON,
    MissingDelimiter,
    MissingHeaderField,
    MissingSignature,
    NotAnObject,
    ReplayedSignature,
    TooFewFrames,
    UnknownSignatureScheme,
    WireError,
)
from .message import Message
from .session import DELIMITER, PROTOCOL_VERSION, Session
from .signing import Signer

__all__ = [
    "BadSignature",
    "DELIMITER",
    "InvalidContent",
    "InvalidJSON",
    "Message",
    "MissingDelimiter",
    "MissingHeaderField",
    "MissingSignature",
    "NotAnObject",
    "PROTOCOL_VERSION",
    "ReplayedSignature",
    "Session",
    "Signer",
    "TooFewFrames",
    "UnknownSignatureScheme",
    "WireError",
]
