"""Tell the launcher which ports we bound (JEP 66), in the registration file's dialect.

Dialect A (ark): REQ socket, a full signed ``handshake_request`` message with
integer ports; the receipt is a full ``handshake_reply`` with ``status``.
Dialect B (jupyter_client docs, xeus): DEALER socket, one signed content frame
``[<IDS|MSG>, hmac(content), content]`` with ``kernel_id`` and string ports; the
receipt is one signed frame whose content is implementation-defined.
"""

import logging

import zmq

from ..wire import DELIMITER, Session, WireError, jsonutil
from .bind import endpoint
from .errors import StartupError
from .files import RegistrationInfo
from .keys import curve_client

log = logging.getLogger("kernelkit.startup")

DEFAULT_TIMEOUT = 5.0


def _connect(ctx, sock_type, reg: RegistrationInfo):
    sock = ctx.socket(sock_type)
    sock.linger = 0
    conn = reg.connection
    if conn.transport == "tcp" and ":" in reg.registration_ip:
        sock.ipv6 = True
    if reg.registration_publickey:
        curve_client(sock, reg.registration_publickey)
    sock.connect(endpoint(conn.transport, reg.registration_ip, reg.registration_port))
    return sock


def _request_a(session: Session, reg: RegistrationInfo, ports: dict) -> list:
    content = {f"{c}_port": int(p) for c, p in ports.items()}
    content.update(reg.reported)
    return session.frames("handshake_request", content)


def _request_b(session: Session, reg: RegistrationInfo, ports: dict) -> list:
    content = {"kernel_id": reg.kernel_id}
    content.update({f"{c}_port": str(p) for c, p in ports.items()})
    content.update(reg.reported)
    return session.single_frame(jsonutil.dumps(content))


def _check_receipt_a(session: Session, frames: list) -> None:
    try:
        msg = session.parse(frames)
    except WireError as e:
        raise StartupError(f"registration receipt rejected: {e}") from None
    status = msg.content.get("status")
    if status != "ok":
        why = msg.content.get("error") or msg.content.get("evalue") or ""
        raise StartupError(f"launcher refused the registration (status {status!r}{': ' + str(why) if why else ''})")


def _check_receipt_b(session: Session, frames: list) -> None:
    if DELIMITER in frames:
        frames = frames[frames.index(DELIMITER) + 1 :]
    if len(frames) < 2:
        raise StartupError("registration receipt rejected: expected a signature and a content frame")
    signature, body = frames[0], frames[1:]
    try:
        session.signer.verify(signature, body, check_replay=False)
    except WireError as e:
        raise StartupError(f"registration receipt rejected: {e}") from None
    # the content is implementation-defined (xeus: b"ACK"); honour an explicit error
    try:
        content = jsonutil.loads(body[-1])
    except ValueError:
        return
    if isinstance(content, dict) and content.get("status") not in (None, "ok"):
        raise StartupError(f"launcher refused the registration (status {content.get('status')!r})")


def register(ctx: zmq.Context, session: Session, reg: RegistrationInfo, ports: dict, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Send our ports and wait up to ``timeout`` seconds for the receipt.

    Raises StartupError when no receipt comes, the launcher answers with an
    error, or the receipt does not verify. The registration socket is closed
    in every case.
    """
    if reg.dialect == "A":
        sock = _connect(ctx, zmq.REQ, reg)
        frames = _request_a(session, reg, ports)
    else:
        sock = _connect(ctx, zmq.DEALER, reg)
        frames = _request_b(session, reg, ports)
    where = f"{reg.registration_ip}:{reg.registration_port}"
    try:
        sock.send_multipart(frames)
        if not sock.poll(int(timeout * 1000), zmq.POLLIN):
            hint = " (encrypted registration: is registration_publickey the launcher's key?)" if reg.registration_publickey else ""
            raise StartupError(f"no registration receipt from the launcher at {where} within {timeout:g} s{hint}")
        reply = sock.recv_multipart()
        if reg.dialect == "A":
            _check_receipt_a(session, reply)
        else:
            _check_receipt_b(session, reply)
        log.info("registered with the launcher at %s (dialect %s)", where, reg.dialect)
    finally:
        sock.close(linger=0)
