"""Kernels on other hosts: what the launcher checks, learns and hands on.

A remote kernel (``ssh HOST python -m kernelkit.python -f -``) shares neither
the launcher's loopback nor its filesystem:

- Its registration info travels on its stdin (or in an environment variable),
  not in a file.
- It binds where the launch says (by default ``0.0.0.0``: every interface of
  its host). The launcher learns the kernel's address from the handshake
  itself: the peer address of the registration connection, which ZeroMQ
  reports with every frame. Clients go there.
- With ``encryption="curve"`` the kernel makes its own CurveZMQ key pair and
  reports it in its signed handshake (startup/keys.py), over a registration
  socket that is itself a CURVE server: the launcher's public key is in the
  registration info.
- Dialect A registers on the kernel's own bind address, so it cannot cross
  hosts: that launch is refused before anything starts.
"""

import ipaddress

import zmq

from ..startup.keys import curve_server, is_z85_key

WILDCARDS = ("", "0.0.0.0", "*", "::")
BIND_ALL = "0.0.0.0"
REGISTRATION_VIA = ("file", "stdin", "env")


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return ip == "localhost"


def check_launch(*, dialect: str, remote: bool, registration_ip, registration_via: str, encryption) -> None:
    """Refuse, with one line (ValueError), a launch that cannot work."""
    if registration_via not in REGISTRATION_VIA:
        raise ValueError(f"registration_via must be one of {', '.join(REGISTRATION_VIA)}, not {registration_via!r}")
    if encryption not in (None, "curve"):
        raise ValueError(f"unknown encryption {encryption!r} (expected 'curve' or None)")
    if encryption and not zmq.has("curve"):
        raise ValueError("encryption 'curve' asked for, but this libzmq has no CURVE support")
    if not remote:
        return
    if dialect.upper() == "A":
        raise ValueError("dialect A registers on the kernel's own bind address, so a kernel on another host cannot "
                         "register with this launcher: use dialect B for remote kernels")
    if registration_via == "file":
        raise ValueError("a kernel on another host cannot read this host's registration file: use registration_via 'stdin' or 'env'")
    if not registration_ip or registration_ip in WILDCARDS or _is_loopback(registration_ip):
        raise ValueError(f"a remote kernel needs registration_ip, an address of this host that the kernel's host can reach "
                         f"(not {registration_ip or 'unset'!r})")


def make_curve_server(sock) -> str:
    """Make ``sock`` (before it binds) a CURVE server with a fresh key pair;
    returns the public key (Z85 text) its clients need."""
    public, secret = zmq.curve_keypair()
    curve_server(sock, secret, public)
    return public.decode("ascii")


def peer_address(frame) -> str | None:
    """The address a received frame came from (tcp), or None (ipc, inproc)."""
    try:
        return frame.get("Peer-Address") or None
    except zmq.ZMQError:
        return None


def check_peer(allowed_peers, peer_address) -> None:
    """ValueError unless the registration came from an allowed address."""
    if allowed_peers and peer_address not in allowed_peers:
        raise ValueError(f"kernel registered from {peer_address or 'an unknown address'}, "
                         f"not from an expected peer ({', '.join(allowed_peers)})")


def reported_keys(content: dict) -> dict:
    """The curve keys a kernel that made its own reports over the encrypted
    registration: its public key, and its secret key, which jupyter_client's
    clients need (they connect with the server's own key pair)."""
    keys = {}
    for name in ("curve_publickey", "curve_secretkey"):
        if not is_z85_key(content.get(name)):
            raise ValueError(f"encryption 'curve' was asked for, but the kernel reported no {name} "
                             "(does it make its own keys? otherwise give it curve_publickey/curve_secretkey)")
        keys[name] = content[name]
    return keys


def client_address(bind_ip: str, peer_address) -> str:
    """Where clients connect: the kernel's bind address, or, when it bound every
    interface, the address its registration came from."""
    if bind_ip in WILDCARDS and peer_address:
        return peer_address
    return bind_ip


def send_registration(process, text: str) -> None:
    """Write the registration line to the kernel's stdin and keep the pipe open
    (the kernel ends when it closes). A kernel (or ssh) that died at once gets
    nothing: the launch reports its exit."""
    try:
        process.stdin.write(text.encode("utf-8") + b"\n")
        process.stdin.flush()
    except (BrokenPipeError, ValueError):
        pass
