"""Fuzzing, seeded and bounded (well under a minute): the wire codec in
memory, then a live kernel's sockets. bench/fuzz_kernel.py runs the same
strategies for longer."""

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzing import LiveTarget, deep_json, describe, json_values, message_frames, subscription_frames
from kernelkit.wire import InvalidContent, Session, WireError, jsonutil
from kernelkit.wire.requests import HEADER_FIELDS

# seeded (derandomize), no example database, no per-example deadline on a
# shared 2-core machine
FUZZ = settings(derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SESSION = Session(b"fuzz-key")


# -- the codec ---------------------------------------------------------------------


# as a kernel process does (kernel/app.py): the stdlib path then reaches MAX_DEPTH
sys.setrecursionlimit(max(sys.getrecursionlimit(), jsonutil.RECURSION_LIMIT))


@settings(FUZZ, max_examples=300)
@given(frames=message_frames(SESSION.signer))
def test_parse_accepts_well_typed_messages_and_names_every_problem(frames):
    """parse returns a message whose fields the kernel may read as they are,
    or raises a WireError (InvalidContent carrying a usable message)."""
    try:
        msg = SESSION.parse(frames, check_replay=False)
    except InvalidContent as e:
        msg = e.message
    except WireError:
        return
    assert type(msg.msg_id) is str and msg.msg_id and type(msg.msg_type) is str and msg.msg_type
    for name in HEADER_FIELDS:
        assert msg.header.get(name) is None or type(msg.header[name]) is str, (name, describe(frames))
    assert isinstance(msg.parent_header, dict) and isinstance(msg.metadata, dict) and isinstance(msg.content, dict)
    assert msg.parent_header.get("msg_id") is None or type(msg.parent_header["msg_id"]) is str


@settings(FUZZ, max_examples=300)
@given(value=json_values)
def test_every_value_survives_dumps_and_loads(value):
    """Lone surrogates and integers beyond 64 bits included: written as
    valid UTF-8 JSON, read back the same."""
    data = jsonutil.dumps(value)
    data.decode("utf-8")  # valid UTF-8, always
    assert jsonutil.loads(data) == value


@settings(FUZZ, max_examples=300)
@given(data=st.one_of(json_values.map(jsonutil.dumps), deep_json(), st.binary(max_size=30)))
def test_orjson_and_the_stdlib_accept_the_same_documents(data):
    """With or without orjson: the same value, or a ValueError (never
    RecursionError); nesting beyond MAX_DEPTH is refused by both."""
    if jsonutil.orjson is None:
        pytest.skip("orjson is not installed (pip install -e '.[test]' installs it)")
    results = []
    for path in (jsonutil.loads, lambda d: jsonutil._stdlib_loads(d.decode("utf-8"))):
        try:
            results.append(("ok", path(data)))
        except ValueError:  # (UnicodeDecodeError included)
            results.append(("refused", None))
    assert results[0] == results[1], (data[:60], results)


@settings(FUZZ, max_examples=60)
@given(depth=st.integers(1000, 1100), kind=st.sampled_from(["array", "object", "in a string"]))
def test_the_depth_limit_is_the_same_on_both_paths(depth, kind):
    if kind == "array":
        text = "[" * depth + "]" * depth
    elif kind == "object":
        text = '{"a":' * depth + "1" + "}" * depth
    else:  # brackets inside strings do not nest
        text = '["' + "[" * 2000 + '", ' * 1 + "[" * (depth - 1) + "]" * (depth - 1) + "]"
    accepted = depth <= jsonutil.MAX_DEPTH
    for path in (jsonutil.loads, jsonutil._stdlib_loads):
        try:
            path(text.encode() if path is jsonutil.loads else text)
        except ValueError as e:
            assert not accepted, f"{kind} {depth} deep refused: {e}"
        else:
            assert accepted, f"{kind} {depth} deep accepted"


# -- a live kernel -------------------------------------------------------------------


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    t = LiveTarget(tmp_path_factory.mktemp("fuzz"))
    yield t
    t.close()


@pytest.mark.timeout(120)
@settings(FUZZ, max_examples=400, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(channel=st.sampled_from(["shell", "shell", "control", "stdin", "iopub"]), data=st.data())
def test_a_live_kernel_survives_hostile_messages(target, channel, data):
    """Whatever arrives, signed or not, on any socket: the kernel keeps
    answering control, and it is still the same process."""
    if channel == "iopub":
        frames = data.draw(subscription_frames)
    else:
        frames = data.draw(message_frames(target.rk.session.signer))
    target.send(channel, frames)
    took = target.answers()
    assert took is not None, f"no kernel_info reply on control after {describe(frames)} on {channel}:\n{target.stderr()}"
    assert target.alive()
    target.drain()
