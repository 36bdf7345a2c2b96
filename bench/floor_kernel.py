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
"""

import argparse
import json
import os
import sys
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from kernelkit.wire import Session  # noqa: E402

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
    info = json.loads(Path(p.parse_args().f).read_text())
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


if __name__ == "__main__":
    main()
