"""CurveZMQ keys for kernels that share no filesystem with their launcher.

A registration file with ``"encryption": "curve"`` (and no key pair of its own)
asks the kernel to make its key pair at start: every socket becomes a CURVE
server with it, and the handshake, signed with the HMAC key, reports the public
key. jupyter_client (8.9, 8.10) connects with the server's own key pair, not a
client pair of its own, so its clients need the secret key too: the kernel
reports it only when the registration connection itself is CURVE-encrypted
(``registration_publickey`` in the file), never in the clear.
"""

import logging

import zmq
from zmq.utils import z85

from .. import threads
from ..logs import LogLimiter

log = logging.getLogger("kernelkit.curve")

KEY_LENGTH = 40  # a Z85-encoded CurveZMQ key


def is_z85_key(value) -> bool:
    if not isinstance(value, str) or len(value) != KEY_LENGTH:
        return False
    try:
        z85.decode(value)
    except (ValueError, KeyError):
        return False
    return True


def make_own_keys(reg) -> None:
    """Give ``reg``'s kernel a fresh key pair if its registration asked for one,
    and name what the handshake reports (``reg.reported``)."""
    conn = reg.connection
    if reg.encryption != "curve" or conn.curve_secretkey:
        return
    conn.curve_publickey, conn.curve_secretkey = zmq.curve_keypair()
    reg.reported["curve_publickey"] = conn.curve_publickey.decode("ascii")
    if reg.registration_publickey:
        reg.reported["curve_secretkey"] = conn.curve_secretkey.decode("ascii")


def curve_server(sock, secretkey: bytes, publickey: bytes) -> None:
    """Make ``sock`` (before it binds) a CURVE server with this key pair."""
    sock.curve_secretkey = secretkey
    sock.curve_publickey = publickey
    sock.curve_server = True


def curve_client(sock, serverkey: bytes) -> None:
    """Make ``sock`` a CURVE client of the server whose public key is ``serverkey``
    (with a throwaway client key pair: the server accepts any client key)."""
    sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
    sock.curve_serverkey = serverkey


class KeyHolders:
    """Who may connect with CURVE: the clients whose public key is one of
    ``keys`` (Z85 bytes). ``admits`` is the rule; ``callback`` is it as
    pyzmq's credentials provider."""

    def __init__(self, keys):
        self.keys = frozenset(keys)
        self._limiter = LogLimiter()

    def admits(self, key: bytes) -> bool:
        if key in self.keys:
            return True
        self._limiter.warn("refused", "CURVE: refused a client whose key is not the kernel's (it knows the public key only)")
        return False

    def callback(self, domain, key) -> bool:
        return self.admits(key)


def admit_key_holders(ctx: zmq.Context, holders: KeyHolders):
    """Answer ZAP for ``ctx``'s CURVE servers (start it before they bind):
    admit only ``holders``, the clients that connect with the kernel's own
    key pair (``KeyHolders({publickey})``).

    CURVE alone admits any client that knows the server's public key, and
    iopub needs no HMAC key to read. jupyter_client (8.9, 8.10) connects with
    the connection file's key pair, so holding the secret key (the same file
    that holds the HMAC key) is what admits a client; a client with its own
    key pair is refused during the handshake and gets nothing. Returns the
    authenticator; ``stop()`` it before ``ctx.term()``. (The kernel's own
    context has io/peers.py as its ZAP handler, with the same rule.)"""
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(ctx, log=log)
    auth.start()
    auth.thread.name = threads.name("zap")
    auth.configure_curve_callback("*", holders)
    return auth
