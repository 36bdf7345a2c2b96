"""JSON for message parts: orjson when installed (it is several times
faster), with the stdlib's results and errors.

Both paths refuse the same documents: nesting deeper than MAX_DEPTH (orjson's
own limit) is a ValueError, never a RecursionError. Text that UTF-8 cannot
encode (lone surrogates) is written with JSON escapes, which decode back to the
same string.
"""

import base64
import json
import re
from datetime import date, datetime
from itertools import accumulate

try:  # pragma: no cover - depends on the environment
    import orjson
except ImportError:  # pragma: no cover
    orjson = None


def _default(obj):
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        # binary data in JSON is base64 (what IPython's image/png bytes need,
        # as jupyter_client does)
        return base64.b64encode(bytes(obj)).decode("ascii")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    # numpy scalars and similar know how to become Python numbers
    for conv in ("item", "tolist"):
        if hasattr(obj, conv):
            return getattr(obj, conv)()
    return repr(obj)


def _stdlib_dumps(obj) -> bytes:
    try:
        return json.dumps(obj, default=_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        # a lone surrogate (e.g. decoded from "\ud800" in a request): escaped
        # as JSON allows, so the text stays valid UTF-8 and reads back the same
        return json.dumps(obj, default=_default, ensure_ascii=True, separators=(",", ":")).encode("ascii")


if orjson is not None:
    _OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

    def dumps(obj) -> bytes:
        try:
            return orjson.dumps(obj, default=_default, option=_OPTS)
        except TypeError:
            # e.g. ints beyond 64 bits: the stdlib copes
            return _stdlib_dumps(obj)

else:
    dumps = _stdlib_dumps


_decode = json.JSONDecoder().decode
# orjson turns integers beyond 64 bits into floats: text with a run of 19
# digits (a number that long, or just digits in a string) goes to the
# stdlib, which keeps them exact. (Mapping every byte to digit/other and
# searching is several times cheaper than a regular expression.)
_DIGIT_OR_NOT = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_LONG_RUN = b"0" * 19


#: Deepest nesting accepted, with or without orjson (orjson's fixed limit).
MAX_DEPTH = 1024
# Python < 3.12 counts the json decoder's nesting against the recursion limit,
# with the caller's frames: a process that must accept what orjson accepts
# (the kernel: kernel/app.py) raises its limit to this. This module changes
# nothing process-wide.
RECURSION_LIMIT = 3 * MAX_DEPTH


class TooDeep(ValueError):
    def __init__(self):
        super().__init__(f"JSON nested more than {MAX_DEPTH} levels deep")


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}.__getitem__


def _depth(text: str) -> int:
    """How deeply ``text`` nests (strings skipped); only for text with more
    than MAX_DEPTH opening brackets, so the usual message pays two counts."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP, brackets)), default=0)


def _stdlib_loads(text: str):
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise TooDeep()
    try:
        return _decode(text)
    except RecursionError:  # (below RECURSION_LIMIT, or unbalanced text that _depth undercounted)
        raise TooDeep() from None


def loads(data):
    if isinstance(data, str):
        return _stdlib_loads(data)
    if type(data) is not bytes:
        data = bytes(data)
    if orjson is not None and _LONG_RUN not in data.translate(_DIGIT_OR_NOT):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # the stdlib accepts a little more (NaN, lone surrogates) and words the error
    # Message parts are UTF-8 (the spec): decoding them here skips
    # json.loads' encoding detection, which costs as much as the parse.
    return _stdlib_loads(data.decode("utf-8"))
