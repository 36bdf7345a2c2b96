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
from ..wire.channels import port_key
from .endpoints import endpoint
from .errors import StartupError
from .files import RegistrationInfo
from .keys import curve_client

log = logging.getLogger("kernelkit.startup")

# how long the kernel waits for the launcher's receipt (s); the launcher's own
# wait for a kernel to register is launcher.launch.DEFAULT_TIMEOUT
RECEIPT_TIMEOUT = 5.0


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


def _request_a(session: Session, reg: RegistrationInfo, ports: dict) -> tuple:
    """(its msg_id, the frames)."""
    content = {port_key(c): int(p) for c, p in ports.items()}
    content.update(reg.reported)
    msg = session.message("handshake_request", content)
    return msg.msg_id, session.serialize(msg)


def _request_b(session: Session, reg: RegistrationInfo, ports: dict) -> list:
    content = {"kernel_id": reg.kernel_id}
    content.update({port_key(c): str(p) for c, p in ports.items()})
    content.update(reg.reported)
    return session.single_frame(jsonutil.dumps(content))


def _rejected(why: str) -> StartupError:
    return StartupError(f"registration receipt rejected: {why}")


def _refused(status, why="") -> StartupError:
    return StartupError(f"launcher refused the registration (status {status!r}{': ' + str(why) if why else ''})")


def _check_receipt_a(session: Session, frames: list, request_id: str) -> None:
    """A signed, well-formed handshake_reply to our request, with status ok."""
    try:
        msg = session.parse(frames)
    except WireError as e:  # (bad signature, JSON, UTF-8, depth, field types)
        raise _rejected(str(e)) from None
    if msg.msg_type != "handshake_reply":
        raise _rejected(f"expected a handshake_reply, got {msg.msg_type!r}")
    parent_id = msg.parent_header.get("msg_id")
    if parent_id != request_id:
        raise _rejected(f"it answers {'request ' + repr(parent_id) if parent_id else 'no request'}, not ours ({request_id!r})")
    status = msg.content.get("status")
    if status != "ok":
        raise _refused(status, msg.content.get("error") or msg.content.get("evalue") or "")


def _check_receipt_b(session: Session, frames: list, kernel_id: str) -> None:
    """One signed UTF-8 frame. Its content is implementation-defined (xeus:
    ``ACK``); when it is JSON it must be an object, and its kernel_id and
    status, if any, must be ours and ok."""
    if DELIMITER in frames:
        frames = frames[frames.index(DELIMITER) + 1 :]
    if len(frames) < 2:
        raise _rejected("expected a signature and a content frame")
    signature, body = frames[0], frames[1:]
    try:
        session.signer.verify(signature, body, check_replay=False)
    except WireError as e:
        raise _rejected(str(e)) from None
    try:
        text = body[-1].decode("utf-8")
    except UnicodeDecodeError:
        raise _rejected("its content is not UTF-8") from None
    if not text.lstrip().startswith(("{", "[")):
        return  # an opaque acknowledgement
    try:
        content = jsonutil.loads(text)
    except ValueError as e:
        raise _rejected(f"its content is not valid JSON: {str(e).splitlines()[0]}") from None
    if not isinstance(content, dict):
        raise _rejected(f"its content must be a JSON object, got {type(content).__name__}")
    if content.get("kernel_id") not in (None, kernel_id):
        raise _rejected(f"it is for kernel_id {content['kernel_id']!r}, not ours ({kernel_id!r})")
    if content.get("status") not in (None, "ok"):
        raise _refused(content.get("status"), content.get("error") or "")


def register(ctx: zmq.Context, session: Session, reg: RegistrationInfo, ports: dict, timeout: float = RECEIPT_TIMEOUT) -> None:
    """Send our ports and wait up to ``timeout`` seconds for the receipt.

    Raises StartupError when no receipt comes, the launcher answers with an
    error, or the receipt does not verify. The registration socket is closed
    in every case.
    """
    if reg.dialect == "A":
        sock = _connect(ctx, zmq.REQ, reg)
        request_id, frames = _request_a(session, reg, ports)
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
            _check_receipt_a(session, reply, request_id)
        else:
            _check_receipt_b(session, reply, reg.kernel_id)
        log.info("registered with the launcher at %s (dialect %s)", where, reg.dialect)
    finally:
        sock.close(linger=0)
