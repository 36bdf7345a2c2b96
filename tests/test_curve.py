"""CurveZMQ: a connection file with curve keys makes every kernel socket a CURVE
server. A client that connects with the file's key pair (as jupyter_client
does) is served; one without the server key, or with the server's public key
and a key pair of its own, gets nothing. Real kernel processes, real ZeroMQ."""

import json
import subprocess
import time
from queue import Empty

import pytest
import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from kernelkit.wire import Session
from support import EXEC_KERNEL, KernelProcess

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE support")

KEY = b"curve-test-key"
# how long a client without the right server key is given to get an answer
SILENCE_S = 2.0


@pytest.fixture
def curve_kernel(tmp_path):
    """A kernel on a connection file with curve keys; yields (proc, file, info, server_public)."""
    pub, sec = zmq.curve_keypair()
    fname, info = write_connection_file(
        str(tmp_path / "curve-kernel.json"), ip="127.0.0.1", key=KEY, curve_publickey=pub, curve_secretkey=sec
    )
    with open(fname) as f:
        written = json.load(f)
    assert written["curve_publickey"] == pub.decode("ascii")
    assert written["curve_secretkey"] == sec.decode("ascii")
    proc = KernelProcess(EXEC_KERNEL, fname)
    try:
        yield proc, fname, written, pub
    finally:
        proc.kill()


@pytest.fixture
def raw():
    """A zmq context for raw client sockets, torn down with every socket in it."""
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def keyed_client(fname) -> BlockingKernelClient:
    kc = BlockingKernelClient()
    kc.load_connection_file(fname)
    assert kc.curve_publickey is not None, "jupyter_client did not load the curve key"
    kc.start_channels()
    # iopub output is only reliable once our subscription is live (JEP 65 welcome)
    deadline = time.monotonic() + 15
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
        except Empty:
            kc.stop_channels()
            raise AssertionError("the keyed client got no iopub_welcome") from None
        if msg["msg_type"] == "iopub_welcome":
            return kc


def assert_serves(kc: BlockingKernelClient, proc: KernelProcess) -> None:
    """kernel_info and ``1+1`` through a jupyter_client client."""
    try:
        msg_id = kc.kernel_info()
        reply = kc.get_shell_msg(timeout=15)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["msg_type"] == "kernel_info_reply"
        assert reply["content"]["status"] == "ok"

        msg_id = kc.execute("1+1")
        reply = kc.get_shell_msg(timeout=10)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "ok", reply["content"]
        deadline = time.monotonic() + 10
        result = None
        while True:
            msg = kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "execute_result":
                result = msg["content"]["data"]["text/plain"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert result == "2"
    except Exception:
        raise AssertionError(f"the keyed client was not served; kernel stderr:\n{proc.stderr}")


def raw_sockets(ctx, info, curve=None, pair=None):
    """DEALER on shell and control, SUB on iopub, REQ on hb.

    ``curve``: None for plain sockets, else the server public key to expect;
    ``pair``: the client key pair to connect with (public, secret), by default
    a fresh one for each socket.
    """
    kinds = {"shell": zmq.DEALER, "control": zmq.DEALER, "iopub": zmq.SUB, "hb": zmq.REQ}
    socks = {}
    for channel, kind in kinds.items():
        s = ctx.socket(kind)
        s.linger = 0
        if curve is not None:
            cpub, csec = pair or zmq.curve_keypair()
            s.curve_publickey = cpub
            s.curve_secretkey = csec
            s.curve_serverkey = curve
        if kind == zmq.SUB:
            s.setsockopt(zmq.SUBSCRIBE, b"")
        s.connect(f"tcp://{info['ip']}:{info[channel + '_port']}")
        socks[channel] = s
    return socks


def send_requests(socks, session: Session) -> None:
    socks["shell"].send_multipart(session.frames("kernel_info_request", {}))
    socks["control"].send_multipart(session.frames("kernel_info_request", {}))
    socks["hb"].send(b"curve-ping")
    # iopub: the subscription itself asks for a welcome


def collect(socks, seconds: float) -> dict:
    """Everything that arrives on ``socks`` within ``seconds`` (poll timeouts, no sleeps)."""
    poller = zmq.Poller()
    names = {}
    for name, s in socks.items():
        poller.register(s, zmq.POLLIN)
        names[s] = name
    got = {name: [] for name in socks}
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        for s, _ in poller.poll(int(left * 1000) + 1):
            got[names[s]].append(s.recv_multipart())
    return got


def test_keyed_jupyter_client_is_served(curve_kernel):
    proc, fname, _, _ = curve_kernel
    kc = keyed_client(fname)
    try:
        assert_serves(kc, proc)
        msg_id = kc.shutdown()
        reply = kc.get_control_msg(timeout=10)
        assert reply["parent_header"]["msg_id"] == msg_id
    finally:
        kc.stop_channels()
    try:
        assert proc.wait(15) == 0, proc.stderr
    except subprocess.TimeoutExpired:
        raise AssertionError(f"kernel did not exit after shutdown; stderr:\n{proc.stderr}") from None


def test_keyed_raw_sockets_are_served_on_every_channel(curve_kernel, raw):
    """Positive control for the raw sockets below: connecting with the
    connection file's key pair (as jupyter_client does), shell, control, hb
    and iopub (welcome) all answer."""
    proc, _, info, server_pub = curve_kernel
    session = Session(KEY)
    socks = raw_sockets(raw, info, curve=server_pub, pair=(server_pub, info["curve_secretkey"].encode()))
    send_requests(socks, session)
    want = {"shell", "control", "hb", "iopub"}
    got = {name: [] for name in socks}
    deadline = time.monotonic() + 20
    while want - {n for n, v in got.items() if v}:
        left = deadline - time.monotonic()
        assert left > 0, f"no answer on {want - {n for n, v in got.items() if v}}; stderr:\n{proc.stderr}"
        for name, frames in collect({n: socks[n] for n in want if not got[n]}, min(left, 0.5)).items():
            got[name].extend(frames)
    assert got["hb"][0] == [b"curve-ping"]
    for channel in ("shell", "control"):
        msg = session.parse(got[channel][0])
        assert msg.msg_type == "kernel_info_reply", msg.msg_type
    welcome = session.parse(got["iopub"][0])
    assert welcome.msg_type == "iopub_welcome"


def test_client_without_server_key_gets_nothing(curve_kernel, raw):
    proc, fname, info, server_pub = curve_kernel
    # the kernel is up and serving before the plain clients try
    kc = keyed_client(fname)
    try:
        assert_serves(kc, proc)

        # 1. a jupyter_client client built from the file without the curve keys
        plain_info = {k: v for k, v in info.items() if not k.startswith("curve_")}
        plain = BlockingKernelClient()
        plain.load_connection_info(plain_info)
        assert plain.curve_publickey is None
        plain.start_channels(hb=False)
        try:
            plain.kernel_info()
            plain.control_channel.send(plain.session.msg("kernel_info_request"))
            # 2. raw plain sockets on every channel, 3. curve clients expecting the wrong server key,
            # 4. curve clients with the server's public key but not its secret key (a key pair of
            # their own): CURVE alone would serve them, and iopub needs no HMAC key to read
            session = Session(KEY)
            nokey = raw_sockets(raw, info, curve=None)
            wrongkey = raw_sockets(raw, info, curve=zmq.curve_keypair()[0])
            pubonly = raw_sockets(raw, info, curve=server_pub)
            for socks in (nokey, wrongkey, pubonly):
                send_requests(socks, session)
            socks = {"jc-shell": plain.shell_channel.socket, "jc-control": plain.control_channel.socket}
            socks.update({f"plain-{n}": s for n, s in nokey.items()})
            socks.update({f"wrongkey-{n}": s for n, s in wrongkey.items()})
            socks.update({f"pubonly-{n}": s for n, s in pubonly.items()})
            got = collect(socks, SILENCE_S)
            leaked = {n: v for n, v in got.items() if v}
            assert not leaked, f"clients without the server key were answered: {leaked}"
        finally:
            plain.stop_channels()

        # the silence was the kernel refusing, not the kernel being gone
        assert proc.proc.poll() is None, proc.stderr
        assert_serves(kc, proc)
        proc.kill()
        assert "CURVE: refused a client whose key is not the kernel's" in proc.stderr
    finally:
        kc.stop_channels()
