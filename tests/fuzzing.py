"""Hypothesis strategies for hostile messages, and a live kernel to aim them at.

Shared by tests/test_fuzz.py (seeded, a few hundred cases) and
bench/fuzz_kernel.py (as many as asked, with a report).
"""

import json
import time

import zmq
from hypothesis import strategies as st

from kernelkit.wire import DELIMITER, jsonutil
from kernelkit.wire.requests import HEADER_FIELDS
from rawkernel import RawKernel, recv

# -- JSON values, including what UTF-8 cannot hold -------------------------------

LONE_SURROGATES = ["\ud800", "\udfff", "\udc80"]
texts = st.one_of(
    st.text(max_size=12),
    st.builds(lambda a, s: a + s, st.text(max_size=4), st.sampled_from(LONE_SURROGATES)),
)
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond 64 bits too
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    json_leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=12
)


@st.composite
def deep_json(draw) -> bytes:
    """Arrays or objects nested around the 1024-level limit."""
    depth = draw(st.integers(1000, 1100))
    if draw(st.booleans()):
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


# -- message parts ----------------------------------------------------------------

# what a kernel serves, and more (shutdown_request is left out: a valid one
# rightly ends the kernel; input code is left out: nobody would answer it)
MSG_TYPES = [
    "execute_request", "kernel_info_request", "complete_request", "inspect_request", "is_complete_request",
    "history_request", "comm_info_request", "comm_open", "comm_msg", "comm_close", "interrupt_request",
    "create_subshell_request", "delete_subshell_request", "list_subshell_request", "input_reply",
    "frobnicate_request", "",
]
CODE = ["1", "x = 1", "kernel.stream('out')", "1/0", "\ud800", "kernel.display_data({'text/plain': 'd'})", "time.sleep(0.01)"]
CONTENT_FIELDS = [
    "code", "silent", "store_history", "user_expressions", "allow_stdin", "stop_on_error", "cursor_pos",
    "detail_level", "hist_access_type", "n", "comm_id", "target_name", "data", "value", "subshell_id", "restart",
]


def part_bytes(obj_strategy):
    """A part as bytes: JSON of an object (usually), or anything."""
    return st.one_of(
        obj_strategy.map(jsonutil.dumps),
        obj_strategy.map(jsonutil.dumps),
        obj_strategy.map(jsonutil.dumps),
        deep_json(),
        st.binary(max_size=40),
        json_values.map(jsonutil.dumps),
    )


@st.composite
def headers(draw) -> dict:
    h = {
        "msg_id": draw(st.one_of(st.uuids().map(lambda u: u.hex), json_values)),
        "msg_type": draw(st.one_of(st.sampled_from(MSG_TYPES), json_values)),
    }
    for name in draw(st.lists(st.sampled_from(HEADER_FIELDS[2:] + ("zzz",)), max_size=4, unique=True)):
        h[name] = draw(st.one_of(texts, json_values))
    return h


@st.composite
def contents(draw) -> dict:
    c = {}
    if draw(st.booleans()):
        c["code"] = draw(st.sampled_from(CODE))
    for name in draw(st.lists(st.sampled_from(CONTENT_FIELDS), max_size=5, unique=True)):
        c[name] = draw(json_values)
    return c


parents = st.one_of(st.just({}), st.fixed_dictionaries({"msg_id": json_values}), st.dictionaries(texts, json_values, max_size=3))


@st.composite
def message_parts(draw) -> list:
    """The four signed parts of a message, each possibly hostile."""
    header = draw(part_bytes(headers()))
    if draw(st.booleans()):  # keep the header usable, so the rest gets read
        header = jsonutil.dumps(draw(headers()))
    return [header, draw(part_bytes(parents)), draw(part_bytes(st.dictionaries(texts, json_values, max_size=3))), draw(part_bytes(contents()))]


@st.composite
def message_frames(draw, signer) -> list:
    """Frames as a client could send them: correctly signed, mostly."""
    parts = draw(message_parts())
    signature = signer.sign(parts)
    how = draw(st.sampled_from(["signed"] * 8 + ["unsigned", "bad signature", "no delimiter", "short", "buffers"]))
    if how == "unsigned":
        signature = b""
    elif how == "bad signature":
        signature = signature[::-1]
    frames = [DELIMITER, signature, *parts]
    if how == "no delimiter":
        frames = frames[1:]
    elif how == "short":
        frames = frames[: draw(st.integers(1, 5))]  # (ZeroMQ sends no empty message)
    elif how == "buffers":
        frames += draw(st.lists(st.binary(max_size=20), min_size=1, max_size=3))
    return frames


subscription_frames = st.lists(
    st.one_of(st.binary(max_size=20), st.builds(lambda t: b"\x00" + t, st.binary(max_size=300))), min_size=1, max_size=2
)

# -- a live kernel under fire --------------------------------------------------------


class LiveTarget:
    """An exec test kernel with a raw socket per channel and an XSUB on iopub."""

    CHANNELS = ("shell", "control", "stdin")

    def __init__(self, tmp_path):
        self.rk = RawKernel(tmp_path)
        self.sub = self.rk.start_and_wait()
        self.socks = {ch: self.rk.dealer(ch) for ch in self.CHANNELS}
        self.socks["iopub"] = self.rk.socket(zmq.XSUB, "iopub")
        self.sent = 0

    @property
    def pid(self):
        return self.rk.proc.proc.pid

    def send(self, channel: str, frames: list) -> None:
        self.socks[channel].send_multipart(frames)
        self.sent += 1

    def drain(self) -> None:
        for s in (*self.socks.values(), self.sub):
            while s.poll(0):
                s.recv_multipart()

    def answers(self, timeout: float = 10.0) -> float | None:
        """Seconds the kernel took to answer kernel_info on control, or None
        (no answer within ``timeout``, or the process is gone)."""
        control = self.socks["control"]
        start = time.monotonic()
        msg_id = self.rk.send(control, "kernel_info_request")
        while time.monotonic() - start < timeout:
            r = recv(self.rk, control, timeout - (time.monotonic() - start))
            if r is None:
                break
            if r.parent_id == msg_id:
                return time.monotonic() - start
        return None

    def alive(self) -> bool:
        return self.rk.proc.proc.poll() is None

    def rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/statm") as f:
            return int(f.read().split()[1]) * 4096 / 1e6

    def stderr(self) -> str:
        return self.rk.stderr_after_exit()

    def close(self) -> None:
        self.rk.close()


def describe(frames) -> str:
    """A short, printable account of frames (for reports)."""
    return json.dumps([f[:80].decode("utf-8", "replace") for f in frames])[:400]
