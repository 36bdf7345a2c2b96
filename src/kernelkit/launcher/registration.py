"""The launcher's side of the handshake (JEP 66): one ROUTER socket, many kernels.

A :class:`RegistrationService` owns one ROUTER socket and the one thread that
uses it. Launches tell it which kernel they wait for (:meth:`expect`); the
thread answers each kernel's request in the kernel's own dialect and resolves
the launch's future with the reported ports.

Dialect A (REQ peer; ROUTER sees ``[identity, b"", <IDS|MSG>, sig, header,
parent, metadata, content]``): a full ``handshake_request``; the receipt is a
full ``handshake_reply``. The request names no kernel, so it belongs to the
pending launch whose key verifies its signature (each launch has its own key).

Dialect B (DEALER peer; ``[identity, <IDS|MSG>, sig, content]``): one signed
content frame with ``kernel_id``; the receipt is one signed frame, ``ACK``
(what xeus sends).

Every request's peer address (ZeroMQ's ``Peer-Address``) is recorded: a
kernel that bound every interface is reached there, and a launch may name the
only peers it accepts. A service made with ``curve=True`` is a CURVE server and
puts its public key in each registration (``registration_publickey``); see
remote.py.

A request that no pending launch's key verifies is logged and answered with an
unsigned ``error`` (so that kernel gives up at once instead of timing out); the
launches keep waiting for their own kernels. A verified but unusable request
(bad ports) is answered with a signed ``error`` and fails its launch.

The socket is reachable by any local process without the key, so what a peer
can make the launcher hold does not depend on its good will: a message over
MAX_MESSAGE_BYTES disconnects the peer (libzmq drops it unread), at most
REPLY_QUEUE answers wait for a peer that does not read them, the sender's data
is quoted in logs and answers cut to QUOTE_CHARS, and rejections are logged at
most once per LOG_INTERVAL per peer address, with a count of the rest.
"""

import atexit
import concurrent.futures
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field

import zmq

from ..startup.bind import bind_ipc
from ..startup.endpoints import endpoint, ipc_path
from ..startup.files import PORT_KEYS, as_port
from ..wire import DELIMITER, BadSignature, MissingSignature, Session, WireError, jsonutil
from ..wire.signing import DEFAULT_SCHEME
from ..logs import LogLimiter
from . import remote

log = logging.getLogger("kernelkit.launcher")

LOOPBACK = "127.0.0.1"
_RECEIPT_B = b"ACK"
# a registration is a few hundred bytes (a full dialect A message with curve keys: ~1 kB)
MAX_MESSAGE_BYTES = 64 * 1024
# answers a peer has not read yet: one is all a kernel ever gets on a connection
REPLY_QUEUE = 16
QUOTE_CHARS = 80
LOG_INTERVAL = 10.0


def _quote(value) -> str:
    """repr() of what a peer sent, cut to QUOTE_CHARS."""
    text = repr(value)
    return text if len(text) <= QUOTE_CHARS else f"{text[:QUOTE_CHARS]}... ({len(text)} chars)"


class HandshakeError(RuntimeError):
    """A kernel did not register. ``summary`` says why in one line; ``str()``
    adds the last lines the kernel wrote to stderr, when there are any."""

    def __init__(self, summary: str, stderr_tail=()):
        super().__init__(summary)
        self.summary = summary
        self.stderr_tail = list(stderr_tail)

    def __str__(self) -> str:
        if not self.stderr_tail:
            return self.summary
        return "\n".join([self.summary, "last lines of the kernel's stderr:", *("  " + line for line in self.stderr_tail)])


@dataclass(eq=False)
class Expected:
    """A launch waiting for its kernel to register.

    ``future`` resolves to the five ports (``{"shell_port": int, ...}``) or to
    HandshakeError; ``registration`` is what goes into the registration file.
    """

    dialect: str
    kernel_id: str
    session: Session
    registration: dict
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    # set by the launch before the kernel starts (see remote.py):
    allowed_peers: tuple = ()  # addresses the kernel may register from (empty: any)
    wants_own_keys: bool = False  # "encryption": "curve": the kernel reports its key
    # set when the kernel registers, before the future resolves:
    peer_address: str | None = None  # where the registration came from
    reported_keys: dict = field(default_factory=dict)  # the kernel's curve keys


def _resolve(future, result=None, error=None) -> None:
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass  # a caller cancelled the future it was given


def _ports(content: dict) -> dict:
    """The five ports as ints; ValueError naming what is wrong."""
    ports = {}
    for name in PORT_KEYS:
        value = as_port(content.get(name))
        if not value:  # None, or 0: a registered port must be a real one
            raise ValueError(f"{name} must be a port number, got {_quote(content.get(name))}")
        ports[name] = value
    return ports


class RegistrationService:
    """One ROUTER socket on ``ip`` serving the handshakes of many kernels.

    With ``transport="ipc"``, ``ip`` is a path prefix (the socket is
    ``<ip>-<port>``, mode 0600) and the kernels it serves use ipc too.

    Thread-safe: :meth:`expect`, :meth:`forget`, :meth:`fail` and :meth:`close`
    may be called from any thread; only the service's own thread touches the
    socket.
    """

    def __init__(self, ip: str = LOOPBACK, transport: str = "tcp", curve: bool = False):
        if transport not in ("tcp", "ipc"):
            raise ValueError(f"the handshake launcher supports the tcp and ipc transports, not {transport!r}")
        self.ip = ip
        self.transport = transport
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.linger = 0
        self._sock.maxmsgsize = MAX_MESSAGE_BYTES
        self._sock.sndhwm = REPLY_QUEUE
        self._rejections = LogLimiter(LOG_INTERVAL)
        # curve: a CURVE server; kernels find its public key in their registration info
        self.publickey = remote.make_curve_server(self._sock) if curve else None
        try:
            if transport == "ipc":
                self.port = bind_ipc(self._sock, ip)
            else:
                if ":" in ip:
                    self._sock.ipv6 = True
                self.port = self._sock.bind_to_random_port(endpoint("tcp", ip))
        except zmq.ZMQError as e:
            self._sock.close()
            self._ctx.term()
            raise HandshakeError(f"cannot start the registration service on {ip!r}: {e.strerror}") from None
        self.pid = os.getpid()
        self._expected: dict[str, Expected] = {}  # by kernel_id
        self._lock = threading.Lock()
        # writing a byte here wakes the thread to stop (a pipe works from any thread)
        self._wake_r, self._wake_w = os.pipe()
        self._closed = False
        self._peer_address: str | None = None  # of the request being handled (service thread only)
        self._thread = threading.Thread(target=self._serve, name=f"kernelkit-registration-{self.port}", daemon=True)
        self._thread.start()

    # -- called by launches (any thread) ---------------------------------
    def expect(self, key: bytes | str, signature_scheme: str = DEFAULT_SCHEME, dialect: str = "B", ip: str = LOOPBACK, transport: str = "tcp") -> Expected:
        """Wait for one kernel; returns the Expected whose ``registration`` dict
        is the registration file to hand that kernel (which binds on ``ip``)."""
        dialect = dialect.upper()
        if dialect not in ("A", "B"):
            raise ValueError(f"unknown handshake dialect {dialect!r} (expected 'A' or 'B')")
        if transport != self.transport:
            # the kernel registers over the transport it binds with
            raise ValueError(f"a {transport} kernel cannot register with this {self.transport} registration service")
        if not key:
            # an empty key would verify anything: no way to tell kernels apart, no security
            raise ValueError("a handshake launch needs a non-empty key")
        session = Session(key, signature_scheme)
        kernel_id = str(uuid.uuid4())
        common = {"transport": transport, "signature_scheme": signature_scheme, "key": session.signer.key.decode("utf-8")}
        if dialect == "A":
            # dialect A has one address for binding and registering
            registration = {**common, "ip": ip, "registration_port": self.port}
        else:
            # xeus-python requires "ip" and a string registration_port; kernelkit takes both
            registration = {**common, "kernel_id": kernel_id, "ip": ip, "registration_ip": self.ip, "registration_port": str(self.port)}
        if self.publickey:
            registration["registration_publickey"] = self.publickey
        expected = Expected(dialect, kernel_id, session, registration)
        with self._lock:
            if self._closed:
                raise RuntimeError("the registration service is closed")
            # a dialect A request is matched by key alone, so its key must be unique
            if any(e.session.signer.key == session.signer.key and "A" in (dialect, e.dialect) for e in self._expected.values()):
                raise ValueError("another pending launch uses the same key: dialect A launches need a key each")
            self._expected[kernel_id] = expected
        return expected

    def _claim(self, expected: Expected) -> bool:
        """Stop waiting for ``expected``; True for the one caller that did."""
        with self._lock:
            if self._expected.get(expected.kernel_id) is expected:
                del self._expected[expected.kernel_id]
                return True
            return False

    def forget(self, expected: Expected) -> None:
        """No longer wait for this kernel (timed out, launch abandoned)."""
        if self._claim(expected):
            expected.future.cancel()

    def fail(self, expected: Expected, error: Exception) -> None:
        """Resolve a still-pending launch with ``error`` (e.g. the process died)."""
        if self._claim(expected):
            _resolve(expected.future, error=error)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending, self._expected = list(self._expected.values()), {}
        for expected in pending:
            _resolve(expected.future, error=HandshakeError("the registration service was closed"))
        os.write(self._wake_w, b"x")
        self._thread.join(5)
        os.close(self._wake_w)
        os.close(self._wake_r)

    # -- the service thread ----------------------------------------------
    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        try:
            while True:
                events = dict(poller.poll())
                if self._wake_r in events:
                    return
                frames = self._sock.recv_multipart(copy=False)
                # the kernel's address as this socket saw it (remote kernels: where clients go)
                self._peer_address = remote.peer_address(frames[-1])
                try:
                    self._handle([f.bytes for f in frames])
                except Exception:  # one odd peer must not stop registrations for everybody
                    log.exception("registration: unexpected error handling a request")
        finally:
            self._sock.close(linger=0)
            self._ctx.term()
            if self.transport == "ipc":
                remove_if_exists(ipc_path(self.ip, self.port))

    def _handle(self, frames: list) -> None:
        envelope, rest = frames[:1], frames[1:]
        if rest and rest[0] == b"":  # a REQ peer's empty delimiter frame
            envelope.append(b"")
            rest = rest[1:]
        if DELIMITER not in rest:
            return self._reject(envelope, "no <IDS|MSG> delimiter frame", dialect="B")
        body = rest[rest.index(DELIMITER) + 1 :]
        if len(body) >= 5:
            self._handle_message(envelope, body)
        elif len(body) == 2:
            self._handle_content_frame(envelope, body)
        else:
            self._reject(envelope, f"unexpected number of frames ({len(body)}) after the delimiter", dialect="B")

    def _candidates(self, kernel_id=None) -> list:
        with self._lock:
            if kernel_id in self._expected:
                return [self._expected[kernel_id]]
            return list(self._expected.values())

    def _handle_message(self, envelope: list, body: list) -> None:
        """Dialect A: a full signed handshake_request."""
        frames = [DELIMITER, *body]
        for expected in self._candidates():
            try:
                msg = expected.session.parse(frames)
            except (BadSignature, MissingSignature):
                continue  # someone else's key
            except WireError as e:
                return self._refuse(envelope, expected, f"malformed handshake_request: {e}", dialect="A")
            if msg.msg_type != "handshake_request":
                return self._refuse(envelope, expected, f"expected handshake_request, got {msg.msg_type}", dialect="A", parent=msg)
            try:
                ports = self._reported(expected, msg.content)
            except ValueError as e:
                return self._refuse(envelope, expected, f"invalid handshake_request: {e}", dialect="A", parent=msg)
            return self._accept(envelope, expected, ports, expected.session.frames("handshake_reply", {"status": "ok"}, parent=msg))
        self._reject(envelope, "no pending launch's key verifies this handshake_request", dialect="A")

    def _handle_content_frame(self, envelope: list, body: list) -> None:
        """Dialect B: ``[signature, content]`` with kernel_id and string ports."""
        signature, raw = body
        try:
            content = jsonutil.loads(raw)
        except (ValueError, UnicodeDecodeError):
            content = None
        kernel_id = content.get("kernel_id") if isinstance(content, dict) else None
        for expected in self._candidates(kernel_id):
            try:
                expected.session.signer.verify(signature, [raw])
            except WireError:
                continue
            if not isinstance(content, dict):
                return self._refuse(envelope, expected, "handshake content is not a JSON object", dialect="B")
            try:
                ports = self._reported(expected, content)
            except ValueError as e:
                return self._refuse(envelope, expected, f"invalid handshake: {e}", dialect="B")
            receipt = expected.session.single_frame(_RECEIPT_B)
            return self._accept(envelope, expected, ports, receipt)
        self._reject(envelope, f"no pending launch for kernel_id {_quote(kernel_id)} whose key verifies the signature", dialect="B")

    def _reported(self, expected: Expected, content: dict) -> dict:
        """The ports of a verified request; records where it came from and the
        kernel's keys. ValueError (the registration is refused) for bad ports,
        an unexpected peer, or keys asked for and missing."""
        ports = _ports(content)
        remote.check_peer(expected.allowed_peers, self._peer_address)
        if expected.wants_own_keys:
            expected.reported_keys = remote.reported_keys(content)
        expected.peer_address = self._peer_address
        return ports

    def _accept(self, envelope, expected, ports, receipt) -> None:
        if not self._claim(expected):
            # the launch gave up (timeout, process exit) between match and now
            return self._reject(envelope, "the launch is no longer waiting for this kernel", expected.dialect)
        # the launch learns the ports before the kernel learns it was heard:
        # whoever waits on the receipt then finds the launch already done
        _resolve(expected.future, ports)
        self._sock.send_multipart(envelope + receipt)
        log.info("kernel %s registered (dialect %s): %s", expected.kernel_id, expected.dialect, ports)

    def _refuse(self, envelope, expected, why: str, dialect: str, parent=None) -> None:
        """The kernel holds the right key but sent something unusable: the launch fails."""
        log.warning("registration refused: %s", why)
        if dialect == "A":
            reply = expected.session.frames("handshake_reply", {"status": "error", "error": why}, parent=parent)
        else:
            body = jsonutil.dumps({"status": "error", "error": why})
            reply = expected.session.single_frame(body)
        # the launch fails before the kernel hears why (as _accept resolves first)
        self.fail(expected, HandshakeError(f"kernel sent an unusable registration: {why}"))
        self._sock.send_multipart(envelope + reply)

    def _reject(self, envelope, why: str, dialect: str) -> None:
        """Nobody we wait for: answer unsigned (we cannot sign for an unknown key)."""
        peer = self._peer_address or "an unknown address"
        self._rejections.warn(peer, f"registration rejected (from {peer}): {why}", log)
        content = {"status": "error", "error": why}
        if dialect == "A":
            reply = _UNSIGNED.frames("handshake_reply", content)
        else:
            reply = _UNSIGNED.single_frame(jsonutil.dumps(content))
        self._sock.send_multipart(envelope + reply)


# signs nothing: for answers to a key we do not know
_UNSIGNED = Session(b"")


def remove_if_exists(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


_shared: dict[tuple, RegistrationService] = {}  # by (transport, ip, curve)
_shared_lock = threading.Lock()


def shared_service(ip: str = LOOPBACK, transport: str = "tcp", curve: bool = False) -> RegistrationService:
    """The process-wide service on ``ip`` (started on first use, closed at exit).
    For ipc, ``ip`` is the socket's path prefix; ``curve``: the CURVE-encrypted one."""
    with _shared_lock:
        key = (transport, ip, curve)
        service = _shared.get(key)
        # a forked child cannot use its parent's socket or thread: it gets its own
        if service is None or service._closed or service.pid != os.getpid():
            service = _shared[key] = RegistrationService(ip, transport, curve)
        return service


@atexit.register
def _close_shared() -> None:
    for service in list(_shared.values()):
        service.close()
