"""What a received message must hold: the fields of its header and parent
header (checked by ``Session.parse``) and the content of each request
(``validate``, used to answer bad requests). Pure: no sockets.

Only the types are checked, of the fields the kernel reads; unknown fields
and unknown message types are tolerated, and ``null`` counts as absent.
"""

from .errors import InvalidContent

# header fields that must be strings when present (msg_id and msg_type must
# also be present and non-empty: Session.parse checks that first);
# subshell_id null means the main shell
HEADER_FIELDS = ("msg_id", "msg_type", "session", "username", "date", "version", "subshell_id")
# a parent header names the message it answers (the only field read; a
# reply echoes its request's header as parent, whatever else that holds)
PARENT_FIELDS = ("msg_id",)


def bad_fields(fields: tuple, part: dict) -> list:
    """The names among ``fields`` whose value in ``part`` is neither a string nor null."""
    return [name for name in fields if (v := part.get(name)) is not None and type(v) is not str]


def describe_bad_fields(where: str, part: dict, names: list) -> str:
    return "; ".join(f"{where} field {n!r} must be a string, got {type(part[n]).__name__}" for n in names)

# msg_type -> {field: (types, required)}
_FIELDS = {
    "execute_request": {
        "code": (str, True),
        "silent": (bool, False),
        "store_history": (bool, False),
        "user_expressions": (dict, False),
        "allow_stdin": (bool, False),
        "stop_on_error": (bool, False),
    },
    "complete_request": {"code": (str, True), "cursor_pos": (int, False)},
    "inspect_request": {"code": (str, True), "cursor_pos": (int, False), "detail_level": (int, False)},
    "is_complete_request": {"code": (str, True)},
    "history_request": {
        "hist_access_type": (str, False),
        "output": (bool, False),
        "raw": (bool, False),
        "n": (int, False),
        "unique": (bool, False),
        "session": (int, False),
        "start": (int, False),
        "stop": (int, False),
        "pattern": (str, False),
    },
    "comm_info_request": {"target_name": (str, False)},
    "shutdown_request": {"restart": (bool, False)},
    "comm_open": {"comm_id": (str, True), "target_name": (str, True), "data": (dict, False)},
    "comm_msg": {"comm_id": (str, True), "data": (dict, False)},
    "comm_close": {"comm_id": (str, True), "data": (dict, False)},
    "input_reply": {"value": (str, True)},
}

_TYPE_NAMES = {str: "a string", bool: "a boolean", int: "an integer", dict: "an object"}


def validate(msg) -> None:
    """Raise InvalidContent (carrying ``msg``) if a known field has the wrong type.

    Unknown fields are tolerated; ``null`` counts as absent for optional fields.
    """
    fields = _FIELDS.get(msg.msg_type)
    if not fields:
        return
    content = msg.content
    for name, (kind, required) in fields.items():
        value = content.get(name)
        if value is None:
            if required:
                raise InvalidContent(f"{msg.msg_type} content has no {name!r}", msg)
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidContent(
                f"{msg.msg_type} field {name!r} must be {_TYPE_NAMES[kind]}, got {type(value).__name__}", msg
            )
    if msg.msg_type == "history_request":
        access = content.get("hist_access_type", "tail")
        if access not in ("range", "tail", "search"):
            raise InvalidContent(f"history_request hist_access_type must be range, tail or search, got {access!r}", msg)
