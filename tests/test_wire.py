"""Pure unit tests for kernelkit.wire: framing, signing, replay guard, errors, headers.

No processes, no sockets: frames are built and parsed in memory.
"""

import hashlib
import hmac
from datetime import datetime

import pytest

from kernelkit.wire import (
    DELIMITER,
    PROTOCOL_VERSION,
    BadSignature,
    InvalidContent,
    InvalidJSON,
    Message,
    MissingDelimiter,
    MissingHeaderField,
    MissingSignature,
    NotAnObject,
    ReplayedSignature,
    Session,
    Signer,
    TooFewFrames,
    UnknownSignatureScheme,
    WireError,
)
from kernelkit.wire import errors as wire_errors
from kernelkit.wire import signing
from kernelkit.wire.requests import validate

KEY = b"a-secret-key"
IDENTS = [b"client-identity-1", b"\x00\x01binary-ident"]

# Index of each part in frames built without identities:
# [DELIMITER, signature, header, parent_header, metadata, content, buffers...]
SIG, HEADER, PARENT, METADATA, CONTENT = 1, 2, 3, 4, 5
SIGNED_NAMES = {HEADER: "header", PARENT: "parent_header", METADATA: "metadata", CONTENT: "content"}


def pair(key=KEY, scheme="hmac-sha256"):
    """A sending and a receiving Session sharing a key, like two peers."""
    return Session(key, scheme, username="alice"), Session(key, scheme, username="bob")


def signed(session, parts, identities=()):
    """Frames for four arbitrary (possibly malformed) parts, correctly signed."""
    parts = list(parts)
    return [*identities, DELIMITER, session.signer.sign(parts), *parts]


GOOD_HEADER = b'{"msg_id":"m1","msg_type":"execute_request","session":"s","username":"u","date":"2024-01-01T00:00:00+00:00","version":"5.5"}'


# ---------------------------------------------------------------- round trip


def test_round_trip_preserves_everything():
    tx, rx = pair()
    parent = tx.message("execute_request", {"code": "1"})
    msg = tx.message("execute_reply", {"status": "ok", "execution_count": 3, "text": "h\u00e9llo \u2603"}, parent, {"m": [1, 2]})
    msg.buffers = [b"\x00\x01\x02", b"", b"raw bytes \xff"]
    frames = tx.serialize(msg, IDENTS)

    assert frames[: len(IDENTS)] == IDENTS
    assert frames[len(IDENTS)] == DELIMITER
    out = rx.parse(frames)
    assert out.identities == IDENTS
    assert out.header == msg.header
    assert out.parent_header == parent.header
    assert out.metadata == {"m": [1, 2]}
    assert out.content == msg.content
    assert [bytes(b) for b in out.buffers] == msg.buffers
    assert out.msg_type == "execute_reply"
    assert out.msg_id == msg.header["msg_id"]


def test_round_trip_identities_default_to_message_identities():
    tx, rx = pair()
    msg = tx.message("status", {"execution_state": "idle"})
    msg.identities = [b"topic-or-ident"]
    out = rx.parse(tx.serialize(msg))
    assert out.identities == [b"topic-or-ident"]
    # explicit identities win over msg.identities
    msg2 = tx.message("status", {"execution_state": "busy"})
    msg2.identities = [b"ignored"]
    assert rx.parse(tx.serialize(msg2, [b"x", b"y"])).identities == [b"x", b"y"]


def test_round_trip_without_identities_and_empty_parts():
    tx, rx = pair()
    frames = tx.frames("kernel_info_request")
    assert frames[0] == DELIMITER
    assert frames[PARENT] == b"{}" and frames[METADATA] == b"{}" and frames[CONTENT] == b"{}"
    out = rx.parse(frames)
    assert out.identities == []
    assert out.parent_header == {} and out.metadata == {} and out.content == {}
    assert out.buffers == []


def test_round_trip_buffers_of_any_bytes_like_type():
    tx, rx = pair()
    frames = tx.frames("comm_msg", {"comm_id": "c"}, buffers=[bytearray(b"ab"), memoryview(b"cd"), b"ef"])
    assert all(isinstance(f, bytes) for f in frames)
    assert rx.parse(frames).buffers == [b"ab", b"cd", b"ef"]


def test_parse_accepts_frame_objects_with_bytes_attribute():
    class FakeFrame:  # stands in for zmq.Frame
        def __init__(self, b):
            self.bytes = b

    tx, rx = pair()
    frames = tx.frames("execute_request", {"code": "x"}, identities=[b"id"], buffers=[b"buf"])
    out = rx.parse([FakeFrame(f) for f in frames])
    assert out.identities == [b"id"]
    assert out.content == {"code": "x"}
    assert out.buffers == [b"buf"]


def test_round_trip_preserves_integers_beyond_64_bits():
    # jupyter_client (stdlib json) sends such ints verbatim; they must not turn into floats.
    tx, rx = pair()
    big = 2**70
    content = {"big": big, "neg": -(2**65), "small": 7}
    out = rx.parse(tx.frames("execute_result", content))
    assert out.content == content
    assert isinstance(out.content["big"], int)


def test_str_key_equals_bytes_key():
    a = Session("clé", "hmac-sha256")
    b = Session("clé".encode("utf-8"), "hmac-sha256")
    b.parse(a.frames("x"))  # verifies
    parts = [b"{}", b"{}", b"{}", b"{}"]
    assert a.signer.sign(parts) == b.signer.sign(parts)


# ------------------------------------------------------------------ signing


def test_signature_is_lowercase_hex_hmac_over_the_four_parts_in_order():
    tx, _ = pair()
    frames = tx.frames("x", {"a": 1}, parent={"msg_id": "p", "msg_type": "y"}, metadata={"k": "v"}, identities=[b"id"], buffers=[b"buf"])
    sig = frames[2]
    parts = frames[3:7]
    expected = hmac.new(KEY, b"".join(parts), hashlib.sha256).hexdigest().encode("ascii")
    assert sig == expected
    assert sig == sig.lower()
    # identities, delimiter and buffers are not part of it
    other = hmac.new(KEY, b"id" + DELIMITER + b"".join(parts) + b"buf", hashlib.sha256).hexdigest().encode()
    assert sig != other


def test_changing_a_buffer_still_verifies():
    tx, rx = pair()
    frames = tx.frames("comm_msg", {"comm_id": "c"}, buffers=[b"original", b"second"])
    frames[-2] = b"tampered"
    frames.append(b"an extra buffer")
    out = rx.parse(frames)
    assert out.buffers == [b"tampered", b"second", b"an extra buffer"]


def test_changing_identities_still_verifies():
    tx, rx = pair()
    frames = tx.frames("x", {}, identities=[b"one"])
    frames[0] = b"another"
    assert rx.parse(frames).identities == [b"another"]


@pytest.mark.parametrize("index", [HEADER, PARENT, METADATA, CONTENT], ids=lambda i: SIGNED_NAMES[i])
def test_changing_a_signed_part_fails(index):
    tx, rx = pair()
    frames = tx.frames("x", {"a": 1}, parent={"msg_id": "p", "msg_type": "y"}, metadata={"k": "v"}, buffers=[b"b"])
    # a still-valid JSON object, so only the signature can object
    frames[index] = frames[index][:-1] + b',"evil":1}' if frames[index] != b"{}" else b'{"evil":1}'
    with pytest.raises(BadSignature):
        rx.parse(frames)


@pytest.mark.parametrize("index", [HEADER, PARENT, METADATA, CONTENT], ids=lambda i: SIGNED_NAMES[i])
def test_reordering_signed_bytes_between_parts_fails(index):
    # the same bytes concatenated differently (moved across a frame boundary) must fail too
    tx, rx = pair()
    frames = tx.frames("x", {"a": 1}, parent={"msg_id": "p", "msg_type": "y"}, metadata={"k": "v"})
    nxt = index + 1 if index < CONTENT else HEADER
    frames[index], frames[nxt] = frames[nxt], frames[index]
    with pytest.raises(BadSignature):
        rx.parse(frames)


def test_wrong_key_fails():
    tx = Session(b"key-one")
    rx = Session(b"key-two")
    with pytest.raises(BadSignature):
        rx.parse(tx.frames("x"))


def test_wrong_scheme_fails():
    tx = Session(KEY, "hmac-sha256")
    rx = Session(KEY, "hmac-sha512")
    with pytest.raises(BadSignature):
        rx.parse(tx.frames("x"))


def test_empty_key_means_empty_signature_and_no_verification():
    tx = Session(b"")
    rx = Session(b"")
    frames = tx.frames("x", {"a": 1})
    assert frames[SIG] == b""
    assert rx.parse(frames).content == {"a": 1}
    # any signature at all is accepted
    frames[SIG] = b"garbage-signature"
    frames[CONTENT] = b'{"a":2}'
    assert rx.parse(frames).content == {"a": 2}
    # and the same frames twice are not a replay when nothing is verified
    assert rx.parse(frames).content == {"a": 2}
    assert tx.signer.sign([b"{}"] * 4) == b""


def test_keyed_receiver_rejects_unsigned_message():
    tx = Session(b"")
    rx = Session(KEY)
    with pytest.raises(MissingSignature):
        rx.parse(tx.frames("x"))


def _usable_with_hmac(name):
    try:
        hmac.new(b"k", b"m", name).hexdigest()
    except (ValueError, TypeError):
        return False
    return True


@pytest.mark.parametrize("name", ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"])
def test_common_hmac_schemes_work(name):
    tx, rx = pair(scheme=f"hmac-{name}")
    frames = tx.frames("x", {"a": 1})
    expected = hmac.new(KEY, b"".join(frames[HEADER : CONTENT + 1]), name).hexdigest().encode()
    assert frames[SIG] == expected
    assert rx.parse(frames).content == {"a": 1}
    # and a different scheme does not verify it
    other = Session(KEY, "hmac-md5" if name != "md5" else "hmac-sha256")
    with pytest.raises(BadSignature):
        other.parse(frames)


@pytest.mark.parametrize("name", sorted(hashlib.algorithms_available))
def test_every_hash_hashlib_knows_works_or_is_rejected_as_unknown(name):
    """A scheme either signs and verifies, or is refused up front with UnknownSignatureScheme.

    Never accepted at construction only to fail later (PROTOCOL: reject unknown schemes
    with a clear error at startup).
    """
    scheme = f"hmac-{name}"
    if _usable_with_hmac(name):
        tx, rx = pair(scheme=scheme)
        frames = tx.frames("x", {"a": 1})
        assert frames[SIG] == hmac.new(KEY, b"".join(frames[HEADER : CONTENT + 1]), name).hexdigest().encode()
        assert rx.parse(frames).content == {"a": 1}
    else:
        with pytest.raises(UnknownSignatureScheme):
            signing.digest_for_scheme(scheme)
        with pytest.raises(UnknownSignatureScheme):
            Session(KEY, scheme)


@pytest.mark.parametrize("scheme", ["hmac-nope", "sha256", "", "hmac-", "hmac", "HMAC-SHA256x", "md5", None])
def test_unknown_schemes_raise(scheme):
    with pytest.raises(UnknownSignatureScheme):
        Session(KEY, scheme)
    with pytest.raises(UnknownSignatureScheme):
        Signer(KEY, scheme)
    # refused even without a key: the configuration is wrong either way
    with pytest.raises(UnknownSignatureScheme):
        Session(b"", scheme)


def test_unknown_scheme_error_names_the_scheme():
    with pytest.raises(UnknownSignatureScheme) as ei:
        Session(KEY, "hmac-nope")
    assert "hmac-nope" in str(ei.value)
    assert "\n" not in str(ei.value)


def test_default_scheme_is_hmac_sha256():
    s = Session(KEY)
    assert s.signer.scheme == "hmac-sha256"
    parts = [b"{}"] * 4
    assert s.signer.sign(parts) == hmac.new(KEY, b"{}" * 4, hashlib.sha256).hexdigest().encode()


# ----------------------------------------------------- constant-time compare


def test_verification_uses_constant_time_compare(monkeypatch):
    calls = []
    real = signing.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signing, "compare_digest", spy)
    tx, rx = pair()
    good = tx.frames("x")
    rx.parse(good)
    assert calls and calls[-1][1] == good[SIG]
    bad = tx.frames("y")
    bad[SIG] = b"0" * len(bad[SIG])
    with pytest.raises(BadSignature):
        rx.parse(bad)
    assert len(calls) == 2


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:-1],  # shorter
        lambda s: s + b"0",  # longer
        lambda s: s.upper(),  # not lowercase hex
        lambda s: s[:-1] + (b"0" if s[-1:] != b"0" else b"1"),  # last char differs
        lambda s: (b"0" if s[:1] != b"0" else b"1") + s[1:],  # first char differs
        lambda s: b"\xff" * len(s),  # not even ASCII
        lambda s: b"x",
    ],
    ids=["shorter", "longer", "uppercase", "last-char", "first-char", "non-ascii", "one-byte"],
)
def test_any_other_signature_fails(mangle):
    tx, rx = pair()
    frames = tx.frames("x", {"code": "print(1)"})
    mangled = mangle(frames[SIG])
    assert mangled != frames[SIG]
    frames[SIG] = mangled
    with pytest.raises(BadSignature):
        rx.parse(frames)


# ------------------------------------------------------------- replay guard


def test_same_frames_parsed_twice_is_a_replay():
    tx, rx = pair()
    frames = tx.frames("execute_request", {"code": "rm -rf"})
    rx.parse(frames)
    with pytest.raises(ReplayedSignature):
        rx.parse(list(frames))
    # still refused on a third attempt (the first rejection did not forget it)
    with pytest.raises(ReplayedSignature):
        rx.parse(frames)


def test_replay_with_different_identities_or_buffers_is_still_a_replay():
    tx, rx = pair()
    frames = tx.frames("x", identities=[b"a"], buffers=[b"1"])
    rx.parse(frames)
    again = [b"b", *frames[1:-1], b"2"]
    with pytest.raises(ReplayedSignature):
        rx.parse(again)


def test_check_replay_false_does_not_reject_or_remember():
    tx, rx = pair()
    frames = tx.frames("x")
    rx.parse(frames, check_replay=False)
    rx.parse(frames, check_replay=False)
    rx.parse(frames)  # first checked parse: fine
    with pytest.raises(ReplayedSignature):
        rx.parse(frames)


def test_distinct_messages_are_not_replays():
    tx, rx = pair()
    for i in range(200):
        rx.parse(tx.frames("x", {"i": i}))


def test_bad_signature_is_not_remembered():
    tx, rx = pair()
    frames = tx.frames("x")
    bad = list(frames)
    bad[CONTENT] = b'{"x":1}'
    with pytest.raises(BadSignature):
        rx.parse(bad)
    rx.parse(frames)  # the genuine message is still accepted once


def test_replay_window_is_bounded():
    tx = Session(KEY)
    rx = Session(KEY)
    rx.signer = Signer(KEY, "hmac-sha256", replay_window=2)
    a, b, c = (tx.frames("x", {"n": n}) for n in range(3))
    rx.parse(a)
    rx.parse(b)
    with pytest.raises(ReplayedSignature):
        rx.parse(a)  # still in the window
    rx.parse(c)  # pushes a out of the window
    with pytest.raises(ReplayedSignature):
        rx.parse(b)
    with pytest.raises(ReplayedSignature):
        rx.parse(c)
    # fell out of the window, and is still refused: it is not newer than the
    # newest message of its session the window forgot (itself)
    with pytest.raises(ReplayedSignature, match="not newer than one of its session"):
        rx.parse(a)
    rx.parse(tx.frames("x", {"n": 3}))  # newer ones are accepted


def _dated(session: Session, date: str, n: int = 0) -> list:
    msg = session.message("x", {"n": n})
    msg.header["date"] = date
    return session.serialize(msg, [])


def test_replays_beyond_the_window_are_refused_by_date_per_session_whatever_the_clocks():
    """A small window; two senders whose clocks are an hour apart (dates are
    compared within a session only). Messages the window has forgotten are
    refused when replayed; each sender's own new messages are accepted."""
    ahead, behind = Session(KEY), Session(KEY)
    rx = Session(KEY)
    rx.signer = Signer(KEY, "hmac-sha256", replay_window=4)
    sent = {ahead: [], behind: []}
    for n in range(10):
        for tx, hour in ((ahead, 13), (behind, 12)):
            frames = _dated(tx, f"2026-12-07T{hour}:00:{n:02d}.000001Z", n)
            rx.parse(frames)
            sent[tx].append(frames)
    for tx in (ahead, behind):
        for frames in sent[tx][:8]:  # forgotten by the window
            with pytest.raises(ReplayedSignature):
                rx.parse(frames)
        for frames in sent[tx][8:]:  # still in it
            with pytest.raises(ReplayedSignature, match="already used"):
                rx.parse(frames)
    # the sender an hour behind goes on (its dates are older than the other's)
    rx.parse(_dated(behind, "2026-12-07T12:00:59+00:00", 99))
    # a message without a readable date is judged by the window alone
    rx.parse(_dated(behind, "not a date", 100))


def test_messages_dated_before_not_before_are_refused():
    """The kernel sets not_before to its start minus CLOCK_SKEW: a message
    signed before a restart (which keeps the key) is refused; a sender whose
    clock is behind by less than CLOCK_SKEW is not."""
    import time
    from datetime import timezone

    tx, rx = pair()
    start = time.time()
    rx.signer.not_before = start - signing.CLOCK_SKEW

    def at(t):
        return datetime.fromtimestamp(t, timezone.utc).isoformat()

    with pytest.raises(ReplayedSignature, match="before the kernel started"):
        rx.parse(_dated(tx, at(start - signing.CLOCK_SKEW - 60)))
    rx.parse(_dated(tx, at(start - signing.CLOCK_SKEW + 60), 1))
    rx.parse(_dated(tx, at(start - signing.CLOCK_SKEW + 60).replace("+00:00", ""), 2))  # no zone: UTC


def test_replay_memory_does_not_grow_beyond_window():
    tx = Session(KEY)
    signer = Signer(KEY, "hmac-sha256", replay_window=5)
    for n in range(50):
        frames = tx.frames("x", {"n": n})
        signer.verify(frames[SIG], frames[HEADER : CONTENT + 1])
    assert len(signer._seen) <= 5
    assert len(signer._order) <= 5


def test_default_replay_window_is_large():
    assert signing.REPLAY_WINDOW >= 1 << 10
    tx, rx = pair()
    first = tx.frames("x", {"n": -1})
    rx.parse(first)
    for n in range(1000):
        rx.parse(tx.frames("x", {"n": n}))
    with pytest.raises(ReplayedSignature):
        rx.parse(first)


# ------------------------------------------------------------- named errors


def test_all_errors_are_wire_errors():
    for name in ("TooFewFrames", "MissingDelimiter", "MissingSignature", "BadSignature", "ReplayedSignature",
                 "InvalidJSON", "NotAnObject", "MissingHeaderField", "InvalidContent"):
        cls = getattr(wire_errors, name)
        assert issubclass(cls, WireError) and issubclass(cls, ValueError)
    assert issubclass(UnknownSignatureScheme, ValueError)


def test_error_classes_are_all_covered_here():
    # every error defined in errors.py must be exercised by a test in this file
    defined = {n for n, v in vars(wire_errors).items() if isinstance(v, type) and issubclass(v, Exception)}
    covered = {"WireError", "TooFewFrames", "MissingDelimiter", "MissingSignature", "BadSignature",
               "ReplayedSignature", "InvalidJSON", "NotAnObject", "MissingHeaderField", "InvalidContent",
               "UnknownSignatureScheme"}
    assert defined == covered


@pytest.mark.parametrize("n_after", [0, 1, 2, 3, 4])
def test_too_few_frames(n_after):
    tx, rx = pair()
    full = tx.frames("x", identities=[b"id"])
    frames = full[: 2 + n_after]  # identity, delimiter, then n_after frames
    with pytest.raises(TooFewFrames) as ei:
        rx.parse(frames)
    assert str(ei.value)


def test_too_few_frames_is_checked_before_signature():
    rx = Session(KEY)
    with pytest.raises(TooFewFrames):
        rx.parse([DELIMITER, b"", b"{}", b"{}", b"{}"])


@pytest.mark.parametrize("frames", [[], [b"a", b"b"], [b"sig", GOOD_HEADER, b"{}", b"{}", b"{}"], [b"<IDS|MSG", b"", b"{}", b"{}", b"{}", b"{}"]])
def test_missing_delimiter(frames):
    with pytest.raises(MissingDelimiter) as ei:
        Session(KEY).parse(frames)
    assert str(ei.value)


def test_missing_signature():
    tx, rx = pair()
    frames = tx.frames("x")
    frames[SIG] = b""
    with pytest.raises(MissingSignature) as ei:
        rx.parse(frames)
    assert str(ei.value)


def test_bad_signature():
    tx, rx = pair()
    frames = tx.frames("x")
    frames[SIG] = hmac.new(b"other", b"".join(frames[HEADER : CONTENT + 1]), hashlib.sha256).hexdigest().encode()
    with pytest.raises(BadSignature) as ei:
        rx.parse(frames)
    assert str(ei.value)


def test_replayed_signature():
    tx, rx = pair()
    frames = tx.frames("x")
    rx.parse(frames)
    with pytest.raises(ReplayedSignature) as ei:
        rx.parse(frames)
    assert str(ei.value)


@pytest.mark.parametrize("key", [KEY, b""], ids=["signed", "unsigned"])
@pytest.mark.parametrize(
    "header",
    [b"", b"{", b"not json", b'{"msg_id": "m", }', b"\xff\xfe{}", b'{"msg_id":"\xff","msg_type":"x"}', b'{"msg_id":"m\xc3","msg_type":"x"}'],
    ids=["empty", "truncated", "text", "trailing-comma", "bad-utf8-start", "bad-utf8-inside", "truncated-utf8"],
)
def test_invalid_json_header(key, header):
    s = Session(key)
    frames = signed(s, [header, b"{}", b"{}", b"{}"])
    with pytest.raises(InvalidJSON) as ei:
        s.parse(frames)
    assert ei.value.part == "header"
    assert "header" in str(ei.value)
    assert "\n" not in str(ei.value)
    assert not isinstance(ei.value, InvalidContent)


@pytest.mark.parametrize("header,kind", [(b'["msg_id","m"]', "list"), (b'"str"', "str"), (b"42", "int"), (b"null", "NoneType"), (b"true", "bool")])
def test_header_not_an_object(header, kind):
    s = Session(KEY)
    with pytest.raises(NotAnObject) as ei:
        s.parse(signed(s, [header, b"{}", b"{}", b"{}"]))
    assert ei.value.part == "header"
    assert "header" in str(ei.value)
    assert kind in str(ei.value)


@pytest.mark.parametrize(
    "header,field",
    [
        (b'{"msg_type":"x"}', "msg_id"),
        (b'{"msg_id":"m"}', "msg_type"),
        (b"{}", "msg_id"),
        (b'{"msg_id":"","msg_type":"x"}', "msg_id"),
        (b'{"msg_id":null,"msg_type":"x"}', "msg_id"),
        (b'{"msg_id":5,"msg_type":"x"}', "msg_id"),
        (b'{"msg_id":"m","msg_type":""}', "msg_type"),
        (b'{"msg_id":"m","msg_type":["x"]}', "msg_type"),
    ],
)
def test_missing_header_field(header, field):
    s = Session(KEY)
    with pytest.raises(MissingHeaderField) as ei:
        s.parse(signed(s, [header, b"{}", b"{}", b"{}"]))
    assert ei.value.field == field
    assert field in str(ei.value)


def test_minimal_header_is_enough_and_unknown_fields_are_tolerated():
    s = Session(KEY)
    header = b'{"msg_id":"m","msg_type":"some_future_request","new_field":{"x":1}}'
    out = s.parse(signed(s, [header, b'{"unknown":1}', b'{"meta":true}', b'{"what":"ever"}']))
    assert out.msg_type == "some_future_request"
    assert out.header["new_field"] == {"x": 1}
    assert out.content == {"what": "ever"}


@pytest.mark.parametrize("index", [PARENT, METADATA, CONTENT], ids=lambda i: SIGNED_NAMES[i])
@pytest.mark.parametrize("bad", [b"not json", b"\xff\xfe", b"[1, 2]", b"null", b'"s"', b""], ids=["text", "bad-utf8", "list", "null", "string", "empty"])
def test_invalid_content_carries_header_and_identities(index, bad):
    s = Session(KEY)
    parts = [GOOD_HEADER, b"{}", b"{}", b'{"code":"1"}']
    parts[index - HEADER] = bad
    frames = signed(s, parts, identities=IDENTS)
    frames.append(b"buffer")
    with pytest.raises(InvalidContent) as ei:
        s.parse(frames)
    err = ei.value
    assert isinstance(err.message, Message)
    assert err.message.header["msg_id"] == "m1"
    assert err.message.header["msg_type"] == "execute_request"
    assert err.message.msg_type == "execute_request"
    assert err.message.identities == IDENTS
    assert err.message.content == {}
    assert err.message.buffers == [b"buffer"]
    assert SIGNED_NAMES[index] in str(err)
    assert "\n" not in str(err)


def test_invalid_content_is_a_wire_error_but_not_raised_for_bad_header():
    s = Session(KEY)
    with pytest.raises(WireError) as ei:
        s.parse(signed(s, [b"[]", b"[]", b"[]", b"[]"]))
    assert type(ei.value) is NotAnObject


def test_signature_checked_before_json():
    # a tampered, malformed frame is a BadSignature, never a JSON error
    tx, rx = pair()
    frames = tx.frames("x")
    frames[HEADER] = b"not json"
    with pytest.raises(BadSignature):
        rx.parse(frames)


# -------------------------------------------------------------------- headers


def test_msg_ids_are_unique_across_many_messages_and_sessions():
    a, b = Session(KEY), Session(KEY)
    ids = [a.header("x")["msg_id"] for _ in range(2000)]
    ids += [b.message("x").header["msg_id"] for _ in range(2000)]
    ids += [a.message("y", parent=a.message("z")).header["msg_id"] for _ in range(100)]
    assert len(set(ids)) == len(ids)
    assert all(isinstance(i, str) and i for i in ids)


def test_session_id_stable_within_and_different_between_sessions():
    a, b = Session(KEY), Session(KEY)
    sa = {a.header("x")["session"] for _ in range(50)} | {a.message("y").header["session"]}
    assert sa == {a.session_id}
    assert b.header("x")["session"] == b.session_id
    assert a.session_id != b.session_id
    assert isinstance(a.session_id, str) and a.session_id


def test_header_has_all_required_fields():
    s = Session(KEY, username="carol")
    h = s.header("kernel_info_reply")
    assert {"msg_id", "msg_type", "username", "session", "date", "version"} <= set(h)
    assert h["msg_type"] == "kernel_info_reply"
    assert h["username"] == "carol"
    assert all(isinstance(h[k], str) for k in ("msg_id", "msg_type", "username", "session", "date", "version"))
    assert "subshell_id" not in h


def test_default_username_is_a_string():
    assert isinstance(Session(KEY).header("x")["username"], str)


def test_date_is_iso8601_with_timezone():
    tx, rx = pair()
    for h in (tx.header("x"), rx.parse(tx.frames("y")).header):
        d = datetime.fromisoformat(h["date"])
        assert d.tzinfo is not None
        assert d.utcoffset() is not None


def test_version_is_5_5_or_newer():
    def as_tuple(v):
        return tuple(int(x) for x in v.split("."))

    h = Session(KEY).header("x")
    assert h["version"] == PROTOCOL_VERSION
    assert as_tuple(h["version"]) >= (5, 5)


@pytest.mark.parametrize("as_message", [True, False], ids=["Message", "dict"])
def test_subshell_id_copied_from_parent(as_message):
    s = Session(KEY)
    parent_header = {"msg_id": "p", "msg_type": "execute_request", "subshell_id": "sub-42"}
    parent = Message(parent_header) if as_message else parent_header
    msg = s.message("execute_reply", {"status": "ok"}, parent)
    assert msg.header["subshell_id"] == "sub-42"
    assert msg.parent_header == parent_header
    # and survives the wire
    out = Session(KEY).parse(s.serialize(msg))
    assert out.header["subshell_id"] == "sub-42"
    assert out.parent_header["subshell_id"] == "sub-42"


@pytest.mark.parametrize("parent", [None, {}, {"msg_id": "p", "msg_type": "x"}, {"msg_id": "p", "msg_type": "x", "subshell_id": None}])
def test_no_subshell_id_without_one_in_parent(parent):
    msg = Session(KEY).message("reply", {}, parent)
    assert "subshell_id" not in msg.header
    assert msg.parent_header == (parent or {})


def test_header_explicit_subshell_id():
    assert Session(KEY).header("x", subshell_id="s1")["subshell_id"] == "s1"


@pytest.mark.parametrize("msg_type", ["status", 'a "quoted" type\\', "t\u00ebst-\u2603", "tab\there"])
@pytest.mark.parametrize("username", ["carol", 'd"q\\b', "j\u00fcrgen \U0001f600"])
@pytest.mark.parametrize("subshell_id", [None, "sub-1", 'odd "id"\n'])
def test_headers_written_as_text_carry_every_field_exactly(msg_type, username, subshell_id):
    """Headers are written as JSON text: every field must come back exactly,
    whatever the strings hold, in frames() and in header()."""
    s = Session(KEY, username=username)
    parent = {"msg_id": "p", "msg_type": "x"} if subshell_id is None else {"msg_id": "p", "msg_type": "x", "subshell_id": subshell_id}
    want = {"msg_type": msg_type, "username": username, "session": s.session_id, "version": PROTOCOL_VERSION}
    if subshell_id is not None:
        want["subshell_id"] = subshell_id
    ids = set()
    for _ in range(2):  # the second time from the cache
        for got in (Session(KEY).parse(s.frames(msg_type, {"a": 1}, parent)).header, s.header(msg_type, subshell_id)):
            assert set(got) == set(want) | {"msg_id", "date"}
            assert {k: got[k] for k in want} == want
            assert got["msg_id"].startswith(s.session_id + "_")
            ids.add(got["msg_id"])
    assert len(ids) == 4


def test_dates_are_utc_with_microseconds_and_current():
    from datetime import timezone

    s = Session(KEY)
    for _ in range(200):
        before = datetime.now(timezone.utc)
        text = Session(KEY).parse(s.frames("x")).header["date"]
        after = datetime.now(timezone.utc)
        assert len(text) == len("2024-01-01T00:00:00.000000+00:00"), text
        assert text.endswith("+00:00")
        assert before <= datetime.fromisoformat(text) <= after


JSON_SAMPLES = [
    b'{}', b'[]', b'{"a": 1, "b": [1.5, -0.0, 1e5, 2E-3, true, false, null]}',
    b'{"n": 9223372036854775807, "m": -9223372036854775808, "u": 18446744073709551615}',
    b'{"big": 123456789012345678901234567890, "neg": -98765432109876543210}',
    b'[1234567890123456789]', b'{"s": "12345678901234567890 in a string"}',
    b'{"e": "\\u00e9\\u2603\\ud83d\\ude00", "raw": "\xc3\xa9\xe2\x98\x83"}',
    b'{"lone": "\\ud800"}', b'{"nan": NaN, "inf": Infinity, "ninf": -Infinity}',
    b'{"dup": 1, "dup": 2}', b'{"f": 1.7976931348623157e308, "tiny": 5e-324, "over": 1e400}',
    b' \n{"ws" :\t[ 1 , 2 ] }\n', b'{"deep": ' + b"[" * 200 + b"]" * 200 + b"}",
]
JSON_BAD = [b"", b"{", b'{"a": }', b"{'a': 1}", b'{"a": 1,}', b"\xff\xfe", b'{"a": "\xff"}', b"[1] x", b"01"]


@pytest.fixture(params=["orjson", "stdlib only"])
def jsonutil(request, monkeypatch):
    from kernelkit.wire import jsonutil

    if request.param == "stdlib only":
        monkeypatch.setattr(jsonutil, "orjson", None)
    else:
        assert jsonutil.orjson is not None, "orjson is not installed (pip install -e '.[test]' installs it)"
    return jsonutil


@pytest.mark.parametrize("text", JSON_SAMPLES)
def test_loads_gives_what_the_stdlib_gives(text, jsonutil):
    import json
    import math

    def same(a, b):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
            return math.isnan(b)
        if type(a) is not type(b):
            return False
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b

    want = json.loads(text.decode("utf-8"))
    for data in (text, bytearray(text), memoryview(text), text.decode("utf-8")):
        assert same(jsonutil.loads(data), want), data


@pytest.mark.parametrize("text", JSON_BAD)
def test_loads_rejects_what_the_stdlib_rejects_with_its_error(text, jsonutil):
    import json

    with pytest.raises((ValueError, UnicodeDecodeError)) as want:
        json.loads(text.decode("utf-8"))
    with pytest.raises(type(want.value)) as got:
        jsonutil.loads(text)
    assert str(got.value) == str(want.value)


# ----------------------------------------------------------- interop (no I/O)


@pytest.mark.parametrize("scheme", ["hmac-sha256", "hmac-md5", "hmac-sha1", "hmac-sha512"])
def test_interop_with_jupyter_client_session(scheme):
    jc_session = pytest.importorskip("jupyter_client.session")
    jc = jc_session.Session(key=KEY, signature_scheme=scheme, username="jc")
    kk = Session(KEY, scheme)

    # jupyter_client -> kernelkit
    msg = jc.msg("execute_request", {"code": "1+1", "silent": False})
    frames = jc.serialize(msg, ident=[b"jc-ident"])
    out = kk.parse(frames)
    assert out.identities == [b"jc-ident"]
    assert out.msg_type == "execute_request"
    assert out.content == {"code": "1+1", "silent": False}
    assert out.header["msg_id"] == msg["header"]["msg_id"]

    # kernelkit -> jupyter_client
    reply = kk.frames("execute_reply", {"status": "ok", "execution_count": 1}, parent=out, identities=out.identities)
    idents, rest = jc.feed_identities(reply)
    assert idents == [b"jc-ident"]
    back = jc.deserialize(rest)
    assert back["msg_type"] == "execute_reply"
    assert back["content"] == {"status": "ok", "execution_count": 1}
    assert back["parent_header"]["msg_id"] == msg["header"]["msg_id"]


# ------------------------------------------------------------ request checks


def _req(msg_type, content):
    return Message({"msg_id": "m", "msg_type": msg_type}, content=content)


@pytest.mark.parametrize(
    "content",
    [
        {},
        {"silent": False},
        {"code": None},
        {"code": 5},
        {"code": ["print(1)"]},
        {"code": b"x"},
        {"code": "1", "silent": "yes"},
        {"code": "1", "silent": 0},
        {"code": "1", "silent": 1},
        {"code": "1", "store_history": "true"},
        {"code": "1", "user_expressions": []},
        {"code": "1", "allow_stdin": 1},
        {"code": "1", "stop_on_error": "no"},
    ],
)
def test_execute_request_invalid(content):
    msg = _req("execute_request", content)
    with pytest.raises(InvalidContent) as ei:
        validate(msg)
    assert ei.value.message is msg
    assert "execute_request" in str(ei.value)


def test_execute_request_invalid_names_the_field():
    with pytest.raises(InvalidContent, match="code"):
        validate(_req("execute_request", {}))
    with pytest.raises(InvalidContent, match="silent"):
        validate(_req("execute_request", {"code": "", "silent": "no"}))


@pytest.mark.parametrize(
    "content",
    [
        {"code": ""},
        {"code": "1", "silent": True, "store_history": False, "user_expressions": {"a": "1"}, "allow_stdin": True, "stop_on_error": False},
        {"code": "1", "some_future_field": [1, 2, 3], "another": None},
        {"code": "1", "silent": None, "user_expressions": None},
    ],
)
def test_execute_request_valid_and_unknown_fields_tolerated(content):
    validate(_req("execute_request", content))


def test_unknown_message_types_tolerated():
    validate(_req("some_future_request", {"code": 5, "anything": object()}))


@pytest.mark.parametrize("access", ["bogus", "", "TAIL", 5, ["tail"]])
def test_history_request_bad_access_type(access):
    msg = _req("history_request", {"hist_access_type": access, "output": False, "raw": True})
    with pytest.raises(InvalidContent) as ei:
        validate(msg)
    assert ei.value.message is msg
    assert "hist_access_type" in str(ei.value)


@pytest.mark.parametrize("access", ["range", "tail", "search", None])
def test_history_request_good_access_types(access):
    content = {"output": False, "raw": True, "n": 10, "unique": False}
    if access is not None:
        content["hist_access_type"] = access
    validate(_req("history_request", content))


@pytest.mark.parametrize(
    "msg_type,content",
    [
        ("complete_request", {"code": "x", "cursor_pos": "1"}),
        ("complete_request", {"code": "x", "cursor_pos": True}),
        ("inspect_request", {"cursor_pos": 1}),
        ("is_complete_request", {"code": 1}),
        ("history_request", {"hist_access_type": "tail", "n": "10"}),
        ("shutdown_request", {"restart": "yes"}),
        ("comm_open", {"comm_id": "c"}),
        ("comm_msg", {"comm_id": "c", "data": []}),
        ("input_reply", {}),
    ],
)
def test_other_requests_invalid(msg_type, content):
    with pytest.raises(InvalidContent):
        validate(_req(msg_type, content))


@pytest.mark.parametrize("key_len", [1, 32, 64, 65, 200])
def test_hmac_sha256_signatures_match_hmac_on_either_hash(key_len):
    """Small messages are signed on the interpreter's own SHA-256 and large ones
    on OpenSSL's (see signing.py): every signature is the one hmac makes, on
    both sides of the switch and after it."""
    key = bytes(range(key_len % 256)) * (key_len // 256 + 1)
    key = key[:key_len]
    signer = Signer(key)
    for size in (0, 1, 63, 64, 550, signing.BUILTIN_MAX, signing.BUILTIN_MAX + 1, 100_000, 550):  # (and after the switch)
        data = bytes(i % 251 for i in range(size))
        expected = hmac.new(key, data, "sha256").hexdigest().encode()
        assert signer.sign([data[:7], data[7:]]) == expected, size
        signer.verify(expected, [data], check_replay=False)


@pytest.mark.parametrize("what", ["large", "many"])
def test_the_kernel_core_leaves_openssl_until_a_large_message_or_many(what):
    """Signing a few small messages maps no libcrypto (3.4 MB resident in a
    kernel); a large message, or many, load it."""
    then = "s.frames('stream', {'name': 'stdout', 'text': 'x' * 5000})" if what == "large" else (
        f"for _ in range({signing.BUILTIN_MESSAGES // 2}): s.parse(s.frames('status', {{}}))"
    )
    code = (
        "import sys\n"
        "from kernelkit.wire import Session\n"
        "s = Session(b'key')\n"
        "s.parse(s.frames('status', {'execution_state': 'idle'}))\n"
        "print('_hashlib' in sys.modules)\n"
        f"{then}\n"
        "print('_hashlib' in sys.modules)\n"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


def test_an_interpreter_without_its_own_sha256_signs_on_openssl(monkeypatch):
    monkeypatch.setattr(signing, "_builtin_sha256", None)
    signer = Signer(b"key")
    assert signer.sign([b"x"]) == hmac.new(b"key", b"x", "sha256").hexdigest().encode()
