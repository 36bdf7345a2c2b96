"""JSON for message parts: orjson when installed (it is several times
faster), with the stdlib's results and errors."""

import base64
import json
from datetime import date, datetime

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
    return json.dumps(obj, default=_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


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


def loads(data):
    if isinstance(data, str):
        return _decode(data)
    if type(data) is not bytes:
        data = bytes(data)
    if orjson is not None and _LONG_RUN not in data.translate(_DIGIT_OR_NOT):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # the stdlib accepts a little more (NaN, lone surrogates) and words the error
    # Message parts are UTF-8 (the spec): decoding them here skips
    # json.loads' encoding detection, which costs as much as the parse.
    return _decode(data.decode("utf-8"))
