"""The least a Python kernel can do per round trip: a yardstick, not a kernel.

    python3 bench/floor_kernel.py -f CONNECTION_FILE

One thread and one zmq.Poller over the five sockets. Every shell or control
request is answered at once, on that thread, with kernelkit's own message
building (wire.Session: header, JSON, HMAC): busy, (execute_input,) the reply,
idle. An execute runs nothing, so the "execute" round trip here is the cost
of the messages alone, with no hand-off to another thread and no IPython.
bench_kernel.py runs it as the kernel "floor": what is left between it and
another kernel is that kernel's own work (hand-offs, running the cell); what
is left between it and a raw ZeroMQ echo is the client's and the transport's.

``--zero`` (bench_kernel.py's "zero") goes further: every message is built
once, at start, and a request only changes its parent header (the request's
header frame, as received) and its signature. No JSON, no header, no date:
the least any kernel, in any language, can make its client wait for these
messages, so it bounds from below what a round trip through this client can
cost.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from kernelkit.wire import DELIMITER, Session  # noqa: E402

KERNEL_INFO = {
    "status": "ok",
    "protocol_version": "5.3",
    "implementation": "floor",
    "implementation_version": "0",
    "language_info": {"name": "python", "version": "3", "mimetype": "text/x-python", "file_extension": ".py"},
    "banner": "",
    "help_links": [],
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-f", required=True)
    p.add_argument("--zero", action="store_true", help="pre-built messages: only the parent header and the signature change")
    args = p.parse_args()
    info = json.loads(Path(args.f).read_text())
    session = Session(info["key"], info.get("signature_scheme", "hmac-sha256"))
    ctx = zmq.Context()

    def bind(kind, name):
        sock = ctx.socket(kind)
        sock.bind(f"{info['transport']}://{info['ip']}:{info[name]}")
        return sock

    shell, control = bind(zmq.ROUTER, "shell_port"), bind(zmq.ROUTER, "control_port")
    stdin, hb, iopub = bind(zmq.ROUTER, "stdin_port"), bind(zmq.REP, "hb_port"), bind(zmq.PUB, "iopub_port")
    count = 0

    def publish(msg_type, content, parent):
        iopub.send_multipart(session.frames(msg_type, content, parent, identities=[session.iopub_topic(msg_type)]))

    poller = zmq.Poller()
    for sock in (shell, control, hb):
        poller.register(sock, zmq.POLLIN)
    if args.zero:
        answer_prebuilt(session, poller, hb, iopub)
    while True:
        for sock, _ in poller.poll():
            if sock is hb:
                hb.send(hb.recv())
                continue
            msg = session.parse(sock.recv_multipart())
            msg_type = msg.msg_type
            publish("status", {"execution_state": "busy"}, msg)
            if msg_type == "execute_request":
                count += 1
                publish("execute_input", {"code": msg.content.get("code", ""), "execution_count": count}, msg)
                content = {"status": "ok", "execution_count": count, "user_expressions": {}, "payload": []}
            elif msg_type == "kernel_info_request":
                content = KERNEL_INFO
            elif msg_type == "shutdown_request":
                content = {"status": "ok", "restart": False}
            else:
                content = {"status": "error", "ename": "NotImplemented", "evalue": msg_type, "traceback": []}
            reply_type = msg_type.removesuffix("_request") + "_reply"
            sock.send_multipart(session.frames(reply_type, content, msg, identities=msg.identities))
            publish("status", {"execution_state": "idle"}, msg)
            if msg_type == "shutdown_request":
                os._exit(0)


def answer_prebuilt(session, poller, hb, iopub):
    """--zero: answer from messages built at start (never returns)."""
    def prebuilt(msg_type, content):
        # [header, metadata, content] of a message made once
        header, _parent, metadata, body = session.frames(msg_type, content)[-4:]
        return header, metadata, body

    busy, idle = prebuilt("status", {"execution_state": "busy"}), prebuilt("status", {"execution_state": "idle"})
    execute_input = prebuilt("execute_input", {"code": "pass", "execution_count": 1})
    replies = {
        b"execute_request": prebuilt("execute_reply", {"status": "ok", "execution_count": 1, "user_expressions": {}, "payload": []}),
        b"kernel_info_request": prebuilt("kernel_info_reply", KERNEL_INFO),
        b"shutdown_request": prebuilt("shutdown_reply", {"status": "ok", "restart": False}),
    }
    status_topic, input_topic = session.iopub_topic("status"), session.iopub_topic("execute_input")

    sign = session.signer.sign

    def frames(built, parent, identities):
        header, metadata, body = built
        return [*identities, DELIMITER, sign((header, parent, metadata, body)), header, parent, metadata, body]

    while True:
        for sock, _ in poller.poll():
            if sock is hb:
                hb.send(hb.recv())
                continue
            request = sock.recv_multipart()
            at = request.index(DELIMITER)
            parent = request[at + 2]
            msg_type = json.loads(parent)["msg_type"].encode()
            if msg_type not in replies:  # (an error reply, built the first time it is asked)
                kind = msg_type.decode().removesuffix("_request")
                replies[msg_type] = prebuilt(f"{kind}_reply", {"status": "error", "ename": "NotImplemented", "evalue": kind, "traceback": []})
            iopub.send_multipart(frames(busy, parent, [status_topic]))
            if msg_type == b"execute_request":
                iopub.send_multipart(frames(execute_input, parent, [input_topic]))
            sock.send_multipart(frames(replies[msg_type], parent, request[:at]))
            iopub.send_multipart(frames(idle, parent, [status_topic]))
            if msg_type == b"shutdown_request":
                os._exit(0)


if __name__ == "__main__":
    main()
