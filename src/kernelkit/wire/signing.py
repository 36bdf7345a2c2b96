"""HMAC signing and verification of the four signed frames, with a replay guard.

HMAC-SHA256, the scheme every Jupyter client uses, starts on the interpreter's
own SHA-256 and moves to OpenSSL's (``hmac``, which maps libcrypto: 3.4 MB
resident in a kernel) with the first message over BUILTIN_MAX bytes or after
BUILTIN_MESSAGES messages. The built-in hash costs about 1.5 us more per small
message (a status, a reply) and 4-6x more on large ones: a kernel that sits
idle, or has run a few small cells, keeps its memory, and one that sends large
output or many messages pays OpenSSL's price per message from then on.
"""

import collections
from _operator import _compare_digest as compare_digest  # (what hmac.compare_digest is without OpenSSL)
from datetime import datetime, timezone
from typing import Iterable

try:
    from _sha2 import sha256 as _builtin_sha256  # Python 3.12+
except ImportError:
    try:
        from _sha256 import sha256 as _builtin_sha256
    except ImportError:  # (an interpreter built without its own hashes: OpenSSL only)
        _builtin_sha256 = None

from .errors import BadSignature, MissingSignature, ReplayedSignature, UnknownSignatureScheme

DEFAULT_SCHEME = "hmac-sha256"
# How many recent signatures the replay guard remembers (jupyter_client uses 2**16).
REPLAY_WINDOW = 1 << 16
# Sessions whose forgotten messages' dates are kept apart (beyond, one date for all).
REPLAY_SESSIONS = 1 << 16
# How far a sender's clock may be behind the kernel's (s) for a message dated
# before the kernel started to be taken as new (Kerberos allows the same 5 min).
CLOCK_SKEW = 300.0
# The largest message (signed bytes) signed on the built-in SHA-256; a larger
# one moves the Signer to OpenSSL for good. A kernel_info reply (about 1.6 kB
# signed) stays below, so connecting clients do not load OpenSSL.
BUILTIN_MAX = 2048
# ... and the most messages it signs or checks (1.5 ms in all): a kernel that
# busy is better served by the faster hash than by 3.4 MB
BUILTIN_MESSAGES = 1000
_HMAC_BLOCK = 64  # SHA-256's block size
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def digest_for_scheme(scheme: str) -> str:
    """Return the hashlib name for ``hmac-<hash>``, or raise UnknownSignatureScheme."""
    if not isinstance(scheme, str) or not scheme.startswith("hmac-") or len(scheme) <= 5:
        raise UnknownSignatureScheme(
            f"signature_scheme {scheme!r} is not supported: expected 'hmac-<hash>', e.g. 'hmac-sha256'"
        )
    name = scheme[5:]
    if name == "sha256":
        return name
    import hmac

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

    __slots__ = ("key", "scheme", "keyed", "_digest", "_hmac", "_builtin", "_builtin_left", "_seen", "_order", "not_before", "_floors", "_floor_all")

    def __init__(self, key: bytes | str = b"", scheme: str = DEFAULT_SCHEME, replay_window: int = REPLAY_WINDOW):
        if isinstance(key, str):
            key = key.encode("utf-8")
        self.key = key
        self.keyed = bool(key)  # (fixed: the hash objects below change while other threads verify)
        self.scheme = scheme
        self._digest = digest_for_scheme(scheme)
        # the keyed HMAC on OpenSSL (None until needed), or on the built-in
        # SHA-256 (None if the scheme is another hash); neither: no key
        self._hmac = self._builtin = None
        self._builtin_left = BUILTIN_MESSAGES  # (counted loosely across threads: a bound, not a count)
        if key and self._digest == "sha256" and _builtin_sha256 is not None:
            self._builtin = _BuiltinHmacSha256(key)
        elif key:
            self._use_openssl()
        # a window of 0 turns the replay guard off
        self._seen: set[bytes] | None = set() if replay_window > 0 else None
        # (signature, session, date as epoch seconds or None), oldest first
        self._order: collections.deque = collections.deque(maxlen=max(replay_window, 1))
        # Beyond the window, dates: a message is refused unless it is newer
        # than every message of its session the window has forgotten (a
        # session's dates come from one clock, so hosts' clock skew does not
        # matter), and, when set, not dated before ``not_before`` (epoch s).
        self.not_before: float | None = None
        self._floors: dict = {}  # session -> newest date forgotten
        self._floor_all = float("-inf")  # the newest of the floors dropped from _floors

    def _use_openssl(self) -> None:
        import hmac

        base = hmac.new(self.key, digestmod=self._digest)
        # OpenSSL's HMAC object, when there is one: copy/update/hexdigest
        # without the Python wrapper (signing is on every message)
        self._hmac = getattr(base, "_hmac", None) or base
        self._builtin = None  # (after _hmac is set: sign() reads them in the other order)

    def sign(self, parts: Iterable[bytes]) -> bytes:
        data = b"".join(parts)
        builtin = self._builtin  # (once: another thread may move to OpenSSL meanwhile)
        if builtin is not None:
            self._builtin_left -= 1
            if len(data) <= BUILTIN_MAX and self._builtin_left >= 0:
                return builtin.hexdigest(data)
            self._use_openssl()
        elif self._hmac is None:
            return b""
        h = self._hmac.copy()
        h.update(data)
        return h.hexdigest().encode("ascii")

    def verify(self, signature: bytes, parts: Iterable[bytes], *, check_replay: bool = True) -> None:
        """Raise a WireError unless ``signature`` signs ``parts`` and is fresh."""
        if not self.keyed:
            return
        if not signature:
            raise MissingSignature("message is unsigned but the connection has a key")
        expected = self.sign(parts)
        if not compare_digest(expected, bytes(signature)):
            raise BadSignature("signature does not match (wrong key or altered message)")
        if check_replay:
            self.remember(expected)

    def remember(self, signature: bytes, header=None) -> None:
        """Raise ReplayedSignature if the message that ``signature`` signed was
        seen before, or may have been and has been forgotten; else remember it.
        ``header`` (a dict): its ``session`` and ``date`` for the rules beyond
        the window (a message without a readable date is judged by the window
        alone)."""
        if self._seen is None or not self.keyed:
            return
        if signature in self._seen:
            raise ReplayedSignature("signature was already used by an earlier message (replay)")
        session = when = None
        if header is not None:
            session, when = header.get("session"), _epoch(header.get("date"))
            if when is not None:
                if self.not_before is not None and when < self.not_before:
                    raise ReplayedSignature(
                        f"message dated {self.not_before + CLOCK_SKEW - when:.0f} s before the kernel started "
                        f"(a replay, or the sender's clock is more than {CLOCK_SKEW:.0f} s behind)"
                    )
                if when <= max(self._floors.get(session, self._floor_all), self._floor_all):
                    raise ReplayedSignature(
                        f"message not newer than one of its session sent {len(self._order)} messages ago or more (replay, or the sender's clock went back)"
                    )
        order = self._order
        if len(order) == order.maxlen:
            old, old_session, old_when = order[0]
            self._seen.discard(old)
            if old_when is not None:
                floors = self._floors
                if old_when > floors.get(old_session, old_when - 1):
                    if old_session not in floors and len(floors) >= REPLAY_SESSIONS:
                        self._floor_all = max(self._floor_all, floors.pop(next(iter(floors))))
                    floors[old_session] = old_when
        order.append((signature, session, when))
        self._seen.add(signature)


class _BuiltinHmacSha256:
    """HMAC-SHA256 (RFC 2104) on the interpreter's own SHA-256: the keyed
    inner and outer hashes are made once, and each message costs two copies."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes):
        if len(key) > _HMAC_BLOCK:
            key = _builtin_sha256(key).digest()
        key = key.ljust(_HMAC_BLOCK, b"\0")
        self._inner = _builtin_sha256(key.translate(_IPAD))
        self._outer = _builtin_sha256(key.translate(_OPAD))

    def hexdigest(self, data: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest().encode("ascii")


def _epoch(date) -> float | None:
    """An ISO 8601 header date as epoch seconds (no zone: UTC), or None."""
    if type(date) is not str:
        return None
    try:
        d = datetime.fromisoformat(date[:-1] + "+00:00" if date.endswith("Z") else date)
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()
