"""Pure unit tests for kernelkit.startup.files: connection and registration files.

No processes, no sockets: files are written to tmp_path and read back.
"""

import json

import pytest

from kernelkit.startup import StartupError
from kernelkit.startup.files import CHANNELS, ConnectionInfo, RegistrationInfo, load_file, parse

PUB = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"  # 40-char Z85 strings (shape only)
SEC = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"

CLASSIC = {
    "transport": "tcp",
    "ip": "127.0.0.1",
    "key": "a0436f6c-1916-498b-8eb9-e81ab9368e84",
    "signature_scheme": "hmac-sha256",
    "shell_port": 50001,
    "iopub_port": 50002,
    "stdin_port": 50003,
    "control_port": 50004,
    "hb_port": 50005,
    "kernel_name": "python3",
}

DIALECT_A = {
    "transport": "tcp",
    "signature_scheme": "hmac-sha256",
    "ip": "127.0.0.1",
    "key": "secret-a",
    "registration_port": 40123,
}

DIALECT_B = {
    "kernel_id": "0d6e6a3b-1a43-4b9e-9a4c-2f3c1d1b0c9a",
    "transport": "tcp",
    "registration_ip": "127.0.0.2",
    "registration_port": 40124,
    "signature_scheme": "hmac-sha256",
    "key": "secret-b",
}


def write(tmp_path, data, name="conn.json"):
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    elif isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def load_error(path):
    with pytest.raises(StartupError) as ei:
        load_file(path)
    return str(ei.value)


def check_one_line(msg, path, *words):
    assert "\n" not in msg and "\r" not in msg, msg
    assert str(path) in msg, msg
    rest = msg.replace(str(path), "")  # the words must be in the text, not just in the path
    for w in words:
        assert w.lower() in rest.lower(), (w, msg)


# ---------------------------------------------------------- connection files


def test_classic_connection_file(tmp_path):
    info = load_file(write(tmp_path, CLASSIC))
    assert isinstance(info, ConnectionInfo)
    assert not isinstance(info, RegistrationInfo)
    assert info.ports == {"shell": 50001, "iopub": 50002, "stdin": 50003, "control": 50004, "hb": 50005}
    assert set(info.ports) == set(CHANNELS)
    assert info.transport == "tcp"
    assert info.ip == "127.0.0.1"
    assert info.key == CLASSIC["key"].encode()
    assert isinstance(info.key, bytes)
    assert info.signature_scheme == "hmac-sha256"
    assert info.kernel_name == "python3"
    assert info.curve_publickey is None and info.curve_secretkey is None


def test_file_written_by_jupyter_client(tmp_path):
    connect = pytest.importorskip("jupyter_client.connect")
    ports = dict(shell_port=51001, iopub_port=51002, stdin_port=51003, control_port=51004, hb_port=51005)
    fname, cfg = connect.write_connection_file(str(tmp_path / "jc.json"), key=b"jc-key", kernel_name="k", **ports)
    info = load_file(fname)
    assert isinstance(info, ConnectionInfo)
    assert info.ports == {"shell": 51001, "iopub": 51002, "stdin": 51003, "control": 51004, "hb": 51005}
    assert info.key == b"jc-key"
    assert info.signature_scheme == cfg["signature_scheme"]
    assert info.ip == cfg["ip"]


@pytest.mark.parametrize("scheme", ["hmac-md5", "hmac-sha1", "hmac-sha512"])
def test_connection_file_other_schemes(tmp_path, scheme):
    info = load_file(write(tmp_path, {**CLASSIC, "signature_scheme": scheme}))
    assert info.signature_scheme == scheme


def test_connection_file_defaults(tmp_path):
    data = {k: v for k, v in CLASSIC.items() if k.endswith("_port")}
    info = load_file(write(tmp_path, data))
    assert isinstance(info, ConnectionInfo)
    assert info.transport == "tcp"
    assert info.ip == "127.0.0.1"
    assert info.key == b""
    assert info.signature_scheme == "hmac-sha256"
    assert info.kernel_name == ""


def test_connection_file_ipc_transport(tmp_path):
    info = load_file(write(tmp_path, {**CLASSIC, "transport": "ipc", "ip": str(tmp_path / "kernel")}))
    assert info.transport == "ipc"
    assert info.ip == str(tmp_path / "kernel")


def test_connection_file_with_curve_keys(tmp_path):
    info = load_file(write(tmp_path, {**CLASSIC, "curve_publickey": PUB, "curve_secretkey": SEC}))
    assert info.curve_publickey == PUB.encode("ascii")
    assert info.curve_secretkey == SEC.encode("ascii")


def test_connection_file_unknown_fields_tolerated(tmp_path):
    info = load_file(write(tmp_path, {**CLASSIC, "some_future_field": {"x": 1}, "jupyter_session": "/nb.ipynb"}))
    assert info.ports["hb"] == 50005


def test_five_ports_win_over_registration_fields(tmp_path):
    info = load_file(write(tmp_path, {**CLASSIC, "registration_port": 40000, "kernel_id": "k"}))
    assert isinstance(info, ConnectionInfo)
    assert info.ports["shell"] == 50001


# ------------------------------------------------------- registration files


def test_registration_dialect_a(tmp_path):
    info = load_file(write(tmp_path, DIALECT_A))
    assert isinstance(info, RegistrationInfo)
    assert info.dialect == "A"
    assert info.registration_port == 40123
    assert info.registration_ip == "127.0.0.1"
    assert info.kernel_id == ""
    conn = info.connection
    assert isinstance(conn, ConnectionInfo)
    assert conn.ip == "127.0.0.1"
    assert conn.key == b"secret-a"
    assert conn.signature_scheme == "hmac-sha256"
    assert conn.transport == "tcp"
    assert conn.ports == {c: 0 for c in CHANNELS}


def test_registration_dialect_a_needs_ip(tmp_path):
    path = write(tmp_path, {k: v for k, v in DIALECT_A.items() if k != "ip"})
    check_one_line(load_error(path), path, "'ip'")


def test_registration_dialect_b_int_port(tmp_path):
    info = load_file(write(tmp_path, DIALECT_B))
    assert isinstance(info, RegistrationInfo)
    assert info.dialect == "B"
    assert info.registration_port == 40124
    assert isinstance(info.registration_port, int)
    assert info.registration_ip == "127.0.0.2"
    assert info.kernel_id == DIALECT_B["kernel_id"]
    # ip absent: bind on the registration ip
    assert info.connection.ip == "127.0.0.2"
    assert info.connection.key == b"secret-b"
    assert info.connection.ports == {c: 0 for c in CHANNELS}


def test_registration_dialect_b_string_port_xeus_style(tmp_path):
    data = {**DIALECT_B, "registration_port": "40124", "ip": "0.0.0.0"}
    info = load_file(write(tmp_path, data))
    assert info.dialect == "B"
    assert info.registration_port == 40124
    assert isinstance(info.registration_port, int)
    assert info.registration_ip == "127.0.0.2"
    assert info.connection.ip == "0.0.0.0"  # xeus: ip is where to bind


def test_registration_dialect_b_ip_absent_falls_back_to_registration_ip(tmp_path):
    data = {**DIALECT_B, "registration_ip": "10.1.2.3"}
    assert "ip" not in data
    info = load_file(write(tmp_path, data))
    assert info.connection.ip == "10.1.2.3"
    assert info.registration_ip == "10.1.2.3"


def test_registration_dialect_b_only_kernel_id(tmp_path):
    data = {k: v for k, v in DIALECT_B.items() if k != "registration_ip"}
    data["ip"] = "127.0.0.5"
    info = load_file(write(tmp_path, data))
    assert info.dialect == "B"
    assert info.registration_ip == "127.0.0.5"
    assert info.connection.ip == "127.0.0.5"


def test_registration_dialect_b_only_registration_ip(tmp_path):
    data = {k: v for k, v in DIALECT_B.items() if k != "kernel_id"}
    info = load_file(write(tmp_path, data))
    assert info.dialect == "B"
    assert info.kernel_id == ""
    assert info.registration_ip == "127.0.0.2"


def test_registration_dialect_b_missing_registration_port(tmp_path):
    path = write(tmp_path, {k: v for k, v in DIALECT_B.items() if k != "registration_port"})
    check_one_line(load_error(path), path, "registration_port")


def test_parse_accepts_decoded_dicts_directly():
    assert parse(dict(DIALECT_A)).dialect == "A"
    assert parse(dict(DIALECT_B)).dialect == "B"
    assert isinstance(parse(dict(CLASSIC)), ConnectionInfo)


def test_parse_error_names_given_path():
    with pytest.raises(StartupError) as ei:
        parse({**CLASSIC, "transport": "udp"}, "/some/where/kernel-1.json")
    check_one_line(str(ei.value), "/some/where/kernel-1.json", "udp")


# --------------------------------------------------------------------- errors


def test_error_missing_file(tmp_path):
    path = str(tmp_path / "does-not-exist.json")
    check_one_line(load_error(path), path, "no such file")


def test_error_directory(tmp_path):
    path = str(tmp_path / "adir")
    (tmp_path / "adir").mkdir()
    check_one_line(load_error(path), path, "directory")


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"shell_port": 1,}', b"not json at all", b'{"key": "\xff\xfe"}', b"{'single': 'quotes'}", b'{"a": 1}\n{"b": 2}\n'],
    ids=["empty", "truncated", "trailing-comma", "text", "bad-utf8", "single-quotes", "two-docs"],
)
def test_error_invalid_json(tmp_path, raw):
    path = write(tmp_path, raw)
    check_one_line(load_error(path), path, "json")


@pytest.mark.parametrize("data", [[1, 2, 3], "a string", 42, None, True], ids=["list", "string", "number", "null", "bool"])
def test_error_not_an_object(tmp_path, data):
    path = write(tmp_path, json.dumps(data))  # a str is written as raw text
    check_one_line(load_error(path), path, "object")


def test_parse_not_an_object():
    with pytest.raises(StartupError) as ei:
        parse([CLASSIC], "x.json")
    check_one_line(str(ei.value), "x.json", "object")


@pytest.mark.parametrize("missing", ["shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"])
def test_error_partial_connection_file_names_missing_port(tmp_path, missing):
    data = {k: v for k, v in CLASSIC.items() if k != missing}
    path = write(tmp_path, data)
    check_one_line(load_error(path), path, missing)


def test_error_partial_connection_file_names_all_missing_ports(tmp_path):
    data = {k: v for k, v in CLASSIC.items() if k not in ("stdin_port", "hb_port")}
    path = write(tmp_path, data)
    check_one_line(load_error(path), path, "stdin_port", "hb_port")


def test_error_neither_kind_of_file(tmp_path):
    path = write(tmp_path, {"transport": "tcp", "ip": "127.0.0.1", "key": "k"})
    check_one_line(load_error(path), path, "registration_port")


@pytest.mark.parametrize("port", [65536, 70000, -1, 10**12])
@pytest.mark.parametrize("key", ["shell_port", "hb_port"])
def test_error_port_out_of_range(tmp_path, key, port):
    path = write(tmp_path, {**CLASSIC, key: port})
    check_one_line(load_error(path), path, key, str(port))


@pytest.mark.parametrize(
    "port",
    ["abc", "12a", "", " ", "-5", "65536", "5e3", 1.5, 5555.0, True, False, None, [5555], {"port": 5555}, "\u00b2", "\u00b9\u00b2"],
    ids=["abc", "12a", "empty", "space", "neg-str", "too-big-str", "exp", "float", "int-float", "true", "false", "null", "list", "dict", "superscript2", "superscript12"],
)
def test_error_port_not_a_number(tmp_path, port):
    path = write(tmp_path, {**CLASSIC, "iopub_port": port})
    check_one_line(load_error(path), path, "iopub_port")


@pytest.mark.parametrize("port", ["abc", 70000, -1, True, "\u00b2"], ids=["abc", "big", "neg", "bool", "superscript2"])
@pytest.mark.parametrize("base", [DIALECT_A, DIALECT_B], ids=["A", "B"])
def test_error_bad_registration_port(tmp_path, base, port):
    path = write(tmp_path, {**base, "registration_port": port})
    check_one_line(load_error(path), path, "registration_port")


@pytest.mark.parametrize("transport", ["udp", "inproc", "TCP", "", "epgm"])
def test_error_unknown_transport(tmp_path, transport):
    path = write(tmp_path, {**CLASSIC, "transport": transport})
    check_one_line(load_error(path), path, "transport", repr(transport))


def test_error_unknown_transport_in_registration_file(tmp_path):
    path = write(tmp_path, {**DIALECT_B, "transport": "udp"})
    check_one_line(load_error(path), path, "udp")


@pytest.mark.parametrize("scheme", ["hmac-nope", "sha256", "", "hmac-", "md5"])
def test_error_unknown_signature_scheme(tmp_path, scheme):
    path = write(tmp_path, {**CLASSIC, "signature_scheme": scheme})
    check_one_line(load_error(path), path, "signature_scheme", repr(scheme))


@pytest.mark.parametrize("scheme", ["hmac-shake_128", "hmac-shake_256"])
def test_error_scheme_hashlib_knows_but_hmac_cannot_use(tmp_path, scheme):
    # hashlib.new() accepts these, but an HMAC over them cannot be built: the kernel would
    # crash later with an obscure ValueError. Reject at startup like any unknown scheme.
    path = write(tmp_path, {**CLASSIC, "signature_scheme": scheme})
    check_one_line(load_error(path), path, scheme)


def test_error_unknown_signature_scheme_in_registration_file(tmp_path):
    path = write(tmp_path, {**DIALECT_A, "signature_scheme": "hmac-nope"})
    check_one_line(load_error(path), path, "hmac-nope")


@pytest.mark.parametrize(
    "curve,word",
    [
        ({"curve_publickey": PUB}, "curve_secretkey"),
        ({"curve_secretkey": SEC}, "curve_publickey"),
        ({"curve_publickey": PUB, "curve_secretkey": ""}, "curve_secretkey"),
    ],
    ids=["public-only", "secret-only", "secret-empty"],
)
def test_error_curve_key_without_the_other(tmp_path, curve, word):
    path = write(tmp_path, {**CLASSIC, **curve})
    check_one_line(load_error(path), path, word)


@pytest.mark.parametrize("bad", [PUB[:-1], PUB + "x", 12345, ["x"]], ids=["short", "long", "number", "list"])
def test_error_curve_key_wrong_shape(tmp_path, bad):
    path = write(tmp_path, {**CLASSIC, "curve_publickey": bad, "curve_secretkey": SEC})
    check_one_line(load_error(path), path, "curve_publickey")


@pytest.mark.parametrize("port", [0, "0"], ids=["int", "str"])
@pytest.mark.parametrize("base", [DIALECT_A, DIALECT_B], ids=["A", "B"])
def test_error_registration_port_zero(tmp_path, base, port):
    path = write(tmp_path, {**base, "registration_port": port})
    check_one_line(load_error(path), path, "registration_port")


@pytest.mark.parametrize(
    "field,value",
    [("transport", 5), ("signature_scheme", None), ("key", 123), ("ip", ["127.0.0.1"])],
)
def test_error_string_fields_of_wrong_type(tmp_path, field, value):
    path = write(tmp_path, {**CLASSIC, field: value})
    check_one_line(load_error(path), path, field)


@pytest.mark.parametrize("field,value", [("registration_ip", 5), ("kernel_id", 5)])
def test_error_dialect_b_string_fields_of_wrong_type(tmp_path, field, value):
    path = write(tmp_path, {**DIALECT_B, field: value})
    check_one_line(load_error(path), path, field)


def test_error_message_is_one_line_even_for_multiline_json(tmp_path):
    raw = '{\n  "shell_port": 1,\n  "iopub_port": \n}\n'
    path = write(tmp_path, raw)
    check_one_line(load_error(path), path, "json")


def test_error_message_escapes_newlines_in_values(tmp_path):
    path = write(tmp_path, {**CLASSIC, "transport": "tcp\nudp"})
    check_one_line(load_error(path), path, "transport")
    path = write(tmp_path, {**CLASSIC, "signature_scheme": "hmac-\nsha256"}, name="b.json")
    check_one_line(load_error(path), path, "signature_scheme")
