"""Read a connection file (client-picked ports) or a registration file (handshake).

Telling them apart (PROTOCOL.md): all five ports present: connection file.
Otherwise ``kernel_id`` or ``registration_ip`` present: registration dialect B.
Otherwise ``registration_port``: dialect A.

A registration file (either dialect) may name ``preferred_ports``, an object
with any of the five ``<channel>_port`` keys (integers 1-65535): the kernel
binds those first and picks a fresh port only for one that is taken, then
registers what it bound. A launcher restarting a kernel uses it to keep the
kernel's previous ports, so existing clients carry on. Kernels that do not
know the field ignore it (unknown fields are tolerated).
"""

import json
from dataclasses import dataclass, field

import zmq

from ..wire.channels import CHANNELS, PORT_KEYS, port_key
from ..wire.errors import UnknownSignatureScheme
from ..wire.signing import DEFAULT_SCHEME, digest_for_scheme
from .errors import StartupError
from .keys import is_z85_key

TRANSPORTS = ("tcp", "ipc")


@dataclass
class ConnectionInfo:
    """Where to bind. ``ports`` maps channel name to port (0: pick one)."""

    transport: str = "tcp"
    ip: str = "127.0.0.1"
    key: bytes = b""
    signature_scheme: str = DEFAULT_SCHEME
    ports: dict = field(default_factory=lambda: {c: 0 for c in CHANNELS})
    kernel_name: str = ""
    curve_publickey: bytes | None = None
    curve_secretkey: bytes | None = None

    def as_dict(self) -> dict:
        """The classic connection-file dict for these ports (what kernelkit.gateway reports)."""
        d = {
            "transport": self.transport,
            "ip": self.ip,
            "key": self.key.decode("utf-8"),
            "signature_scheme": self.signature_scheme,
            "kernel_name": self.kernel_name,
        }
        d.update({f"{c}_port": p for c, p in self.ports.items()})
        return d


@dataclass
class RegistrationInfo:
    """A registration file: the kernel picks ports and reports them."""

    dialect: str  # "A" (REQ + handshake_request) or "B" (DEALER + signed content frame)
    connection: ConnectionInfo  # what to bind (ports all 0)
    registration_ip: str
    registration_port: int
    kernel_id: str = ""
    # "curve": the kernel makes its own CurveZMQ key pair (startup/keys.py)
    encryption: str = ""
    # the launcher's CURVE key: the registration connection is encrypted
    registration_publickey: bytes | None = None
    # fields the kernel adds to its handshake content (its public key)
    reported: dict = field(default_factory=dict)
    preferred_ports: dict = field(default_factory=dict)  # channel -> port to bind first


def _fail(path, what: str):
    raise StartupError(f"{path}: {what}")


def as_port(value) -> int | None:
    """A port number from a file or a handshake, or None if it is not one.

    Dialect B peers (xeus) write ports as strings of ASCII digits; accept both.
    """
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        return None
    return value


def _port(path, data, key):
    raw = data.get(key)
    value = as_port(raw.strip() if isinstance(raw, str) else raw)  # files may pad with spaces
    if value is None:
        _fail(path, f"{key} must be a port number (0-65535), got {data.get(key)!r}")
    return value


def _preferred_ports(path, data) -> dict:
    raw = data.get("preferred_ports")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        _fail(path, f"preferred_ports must be an object of <channel>_port numbers, got {raw!r}")
    unknown = sorted(k for k in raw if k not in PORT_KEYS)
    if unknown:
        _fail(path, f"preferred_ports: unknown key(s) {', '.join(map(repr, unknown))} (expected: {', '.join(PORT_KEYS)})")
    preferred = {}
    for key, value in raw.items():
        # integers only, and never 0: a preferred port is one the launcher knows
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            _fail(path, f"preferred_ports: {key} must be a port number (1-65535), got {value!r}")
        preferred[key[: -len("_port")]] = value
    return preferred


def _string(path, data, key, default=None):
    if key not in data:
        if default is None:
            _fail(path, f"missing field {key!r}")
        return default
    value = data[key]
    if not isinstance(value, str):
        _fail(path, f"{key} must be a string, got {value!r}")
    return value


def parse(data, path="<connection info>"):
    """Turn a decoded file into ConnectionInfo or RegistrationInfo."""
    if not isinstance(data, dict):
        _fail(path, f"expected a JSON object, got {type(data).__name__}")
    transport = _string(path, data, "transport", "tcp")
    if transport not in TRANSPORTS:
        _fail(path, f"unknown transport {transport!r} (expected one of: {', '.join(TRANSPORTS)})")
    scheme = _string(path, data, "signature_scheme", DEFAULT_SCHEME)
    try:
        digest_for_scheme(scheme)
    except UnknownSignatureScheme as e:
        _fail(path, str(e))
    key = _string(path, data, "key", "").encode("utf-8")
    curve = {}
    for name in ("curve_publickey", "curve_secretkey"):
        if data.get(name):
            value = data[name]
            if not isinstance(value, str) or len(value) != 40:
                _fail(path, f"{name} must be a 40-character Z85 string")
            curve[name] = value.encode("ascii")
    if len(curve) == 1:
        _fail(path, "curve_publickey and curve_secretkey must be given together")
    conn = ConnectionInfo(
        transport=transport,
        ip=data.get("ip") if isinstance(data.get("ip"), str) else "",
        key=key,
        signature_scheme=scheme,
        kernel_name=data.get("kernel_name") if isinstance(data.get("kernel_name"), str) else "",
        curve_publickey=curve.get("curve_publickey"),
        curve_secretkey=curve.get("curve_secretkey"),
    )
    present = [k for k in PORT_KEYS if k in data]
    if len(present) == len(PORT_KEYS):
        conn.ip = _string(path, data, "ip", "127.0.0.1")
        conn.ports = {c: _port(path, data, port_key(c)) for c in CHANNELS}
        return conn
    if "kernel_id" in data or "registration_ip" in data:
        dialect = "B"
    elif "registration_port" in data:
        dialect = "A"
    elif present:
        missing = ", ".join(k for k in PORT_KEYS if k not in data)
        _fail(path, f"missing field(s) {missing} (a connection file needs all five ports)")
    else:
        _fail(path, "neither a connection file (five *_port fields) nor a registration file (registration_port)")
    if "registration_port" not in data:
        _fail(path, "missing field 'registration_port'")
    reg_port = _port(path, data, "registration_port")
    if reg_port == 0:
        _fail(path, "registration_port must not be 0")
    if dialect == "B":
        reg_ip = _string(path, data, "registration_ip", "") or conn.ip or "127.0.0.1"
        conn.ip = conn.ip or reg_ip
        kernel_id = _string(path, data, "kernel_id", "")
    else:
        conn.ip = conn.ip or _string(path, data, "ip")
        reg_ip = conn.ip
        kernel_id = ""
    return RegistrationInfo(
        dialect, conn, reg_ip, reg_port, kernel_id, preferred_ports=_preferred_ports(path, data), **_encryption_fields(path, data)
    )


def _encryption_fields(path, data) -> dict:
    """``encryption`` and ``registration_publickey`` of a registration file."""
    encryption = data.get("encryption") or ""
    if encryption not in ("", "curve"):
        _fail(path, f"unknown encryption {encryption!r} (expected 'curve')")
    if encryption and not zmq.has("curve"):
        _fail(path, "encryption 'curve' asked for, but this libzmq has no CURVE support")
    reg_key = data.get("registration_publickey") or None
    if reg_key is not None and not is_z85_key(reg_key):
        _fail(path, "registration_publickey must be a 40-character Z85 string")
    return {"encryption": encryption, "registration_publickey": reg_key and reg_key.encode("ascii")}


def load_file(path: str):
    """Read ``path``; StartupError (one line naming the file) on any problem."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        _fail(path, "no such file")
    except IsADirectoryError:
        _fail(path, "is a directory, not a connection file")
    except OSError as e:
        _fail(path, f"cannot read: {e.strerror or e}")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        _fail(path, f"not valid JSON ({e})")
    return parse(data, path)
