"""JSON for message parts: orjson encodes when installed; the stdlib decodes."""

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


def loads(data):
    # the stdlib, not orjson: orjson turns integers beyond 64 bits into
    # floats. Message parts are UTF-8 (the spec): decoding them here skips
    # json.loads' encoding detection, which costs as much as the parse.
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data).decode("utf-8")
    return _decode(data)
