"""HMAC signing and verification of the four signed frames, with a replay guard."""

import collections
import hmac
from typing import Iterable

from .errors import BadSignature, MissingSignature, ReplayedSignature, UnknownSignatureScheme

DEFAULT_SCHEME = "hmac-sha256"
# How many recent signatures the replay guard remembers (jupyter_client uses 2**16).
REPLAY_WINDOW = 1 << 16


def digest_for_scheme(scheme: str) -> str:
    """Return the hashlib name for ``hmac-<hash>``, or raise UnknownSignatureScheme."""
    if not isinstance(scheme, str) or not scheme.startswith("hmac-") or len(scheme) <= 5:
        raise UnknownSignatureScheme(
            f"signature_scheme {scheme!r} is not supported: expected 'hmac-<hash>', e.g. 'hmac-sha256'"
        )
    name = scheme[5:]
    try:
        # hashlib.new alone accepts XOFs such as shake_128, which HMAC cannot use
        hmac.new(b"k", digestmod=name).hexdigest()
    except (ValueError, TypeError):
        raise UnknownSignatureScheme(
            f"signature_scheme {scheme!r} is not supported: hashlib knows no hash {name!r}"
        ) from None
    return name


class Signer:
    """Signs and verifies messages for one key and scheme.

    An empty key means unsigned messages: ``sign`` returns ``b""`` and
    ``verify`` accepts anything.
    """

    __slots__ = ("key", "scheme", "_hmac", "_seen", "_order")

    def __init__(self, key: bytes | str = b"", scheme: str = DEFAULT_SCHEME, replay_window: int = REPLAY_WINDOW):
        if isinstance(key, str):
            key = key.encode("utf-8")
        self.key = key
        self.scheme = scheme
        digest = digest_for_scheme(scheme)
        base = hmac.new(key, digestmod=digest) if key else None
        # OpenSSL's HMAC object, when there is one: copy/update/hexdigest
        # without the Python wrapper (signing is on every message)
        self._hmac = getattr(base, "_hmac", None) or base
        # a window of 0 turns the replay guard off
        self._seen: set[bytes] | None = set() if replay_window > 0 else None
        self._order: collections.deque[bytes] = collections.deque(maxlen=max(replay_window, 1))

    def sign(self, parts: Iterable[bytes]) -> bytes:
        if self._hmac is None:
            return b""
        h = self._hmac.copy()
        h.update(b"".join(parts))
        return h.hexdigest().encode("ascii")

    def verify(self, signature: bytes, parts: Iterable[bytes], *, check_replay: bool = True) -> None:
        """Raise a WireError unless ``signature`` signs ``parts`` and is fresh."""
        if self._hmac is None:
            return
        if not signature:
            raise MissingSignature("message is unsigned but the connection has a key")
        expected = self.sign(parts)
        if not hmac.compare_digest(expected, bytes(signature)):
            raise BadSignature("signature does not match (wrong key or altered message)")
        if check_replay:
            self._remember(expected)

    def _remember(self, signature: bytes) -> None:
        if self._seen is None:
            return
        if signature in self._seen:
            raise ReplayedSignature("signature was already used by an earlier message (replay)")
        order = self._order
        if len(order) == order.maxlen:
            self._seen.discard(order[0])
        order.append(signature)
        self._seen.add(signature)
