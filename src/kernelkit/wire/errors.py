"""One named error for every way a message can be malformed.

Each carries a short human sentence; the I/O layer logs it in one line.
"""


class WireError(ValueError):
    """A message that cannot be accepted as it arrived."""


class TooFewFrames(WireError):
    """Fewer frames after the delimiter than signature + four JSON parts."""


class MissingDelimiter(WireError):
    """No ``<IDS|MSG>`` frame separates identities from the message."""


class MissingSignature(WireError):
    """A key is configured but the signature frame is empty."""


class BadSignature(WireError):
    """The signature does not match the HMAC of the four signed frames."""


class ReplayedSignature(WireError):
    """The signature was already seen recently: a replayed message."""


class InvalidJSON(WireError):
    """A signed frame is not valid UTF-8 JSON."""

    def __init__(self, part: str, detail: str):
        super().__init__(f"{part} is not valid JSON: {detail}")
        self.part = part


class NotAnObject(WireError):
    """A signed frame is JSON, but not a JSON object."""

    def __init__(self, part: str, kind: str):
        super().__init__(f"{part} must be a JSON object, got {kind}")
        self.part = part


class MissingHeaderField(WireError):
    """The header lacks a field every message must have."""

    def __init__(self, field: str):
        super().__init__(f"header has no {field!r}")
        self.field = field


class InvalidContent(WireError):
    """The header is readable but the content is not.

    Carries the parsed message (with ``content`` set to ``{}``) so that the
    kernel can still answer the request with an error reply.
    """

    def __init__(self, detail: str, message):
        super().__init__(detail)
        self.message = message


class UnknownSignatureScheme(ValueError):
    """A ``signature_scheme`` that is not ``hmac-<hash known to hashlib>``."""
