"""The answer to the response address: connection info, encrypted as
gateway_provisioners' ResponseManager decrypts it (launcher payload version 1).

The info is AES-128-ECB encrypted (PKCS#7 padding) under a fresh key; that key
is RSA-encrypted (PKCS#1 v1.5) to the provisioner's public key, which comes as
base64 DER (a PEM without its header lines). The whole is base64 of the JSON
``{"version": 1, "key": b64(wrapped key), "conn_info": b64(encrypted info)}``,
sent as the only thing on one TCP connection.
"""

import base64
import binascii
import json
import socket

from ..startup import StartupError

PAYLOAD_VERSION = 1


def load_public_key(text: str):
    """The provisioner's RSA key, or StartupError saying what is wrong with it."""
    from Cryptodome.PublicKey import RSA

    try:
        der = base64.b64decode(text, validate=True)
        key = RSA.import_key(der)
    except (binascii.Error, ValueError, IndexError, TypeError) as e:
        raise StartupError(f"--public-key: not an RSA public key in base64 DER, as the provisioner passes it ({e})") from None
    if key.has_private():
        raise StartupError("--public-key: this is a private key; pass the provisioner's public key")
    return key


def encrypt(info: dict, public_key) -> bytes:
    from Cryptodome.Cipher import AES, PKCS1_v1_5
    from Cryptodome.Random import get_random_bytes
    from Cryptodome.Util.Padding import pad

    aes_key = get_random_bytes(16)
    sealed = AES.new(aes_key, AES.MODE_ECB).encrypt(pad(json.dumps(info).encode("utf-8"), 16))
    wrapped = PKCS1_v1_5.new(public_key).encrypt(aes_key)
    payload = {
        "version": PAYLOAD_VERSION,
        "key": base64.b64encode(wrapped).decode("ascii"),
        "conn_info": base64.b64encode(sealed).decode("ascii"),
    }
    return base64.b64encode(json.dumps(payload).encode("utf-8"))


def send(address: tuple[str, int], payload: bytes, timeout: float) -> None:
    """Deliver ``payload`` on one connection; StartupError (one line) if the
    response address does not take it within ``timeout`` seconds."""
    host, port = address
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
    except OSError as e:
        why = f"no answer within {timeout:g} s" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise StartupError(f"cannot send the connection info to the response address {host}:{port}: {why}") from None
