"""A minimal launcher side of the handshake (dialect A), for the demo.

The full registration service (many kernels, both dialects, timeouts,
jupyter_client provisioner) is ``kernelkit.launcher``; this is the bare idea.
"""

import json
import os
import secrets
import subprocess

import zmq

from kernelkit.wire import Session


def register_and_start(argv, tmpdir, timeout=30.0):
    key = secrets.token_hex(16)
    session = Session(key)
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REP)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    path = tmpdir / "registration.json"
    path.write_text(json.dumps({"transport": "tcp", "ip": "127.0.0.1", "signature_scheme": "hmac-sha256",
                                "key": key, "registration_port": port}))
    os.chmod(path, 0o600)
    proc = subprocess.Popen([*argv, "-f", str(path)])
    try:
        if not sock.poll(int(timeout * 1000)):
            proc.kill()
            raise SystemExit("the kernel did not register in time")
        request = session.parse(sock.recv_multipart())
        sock.send_multipart(session.frames("handshake_reply", {"status": "ok"}, parent=request))
    finally:
        sock.close(linger=1000)
    info = {"transport": "tcp", "ip": "127.0.0.1", "key": key, "signature_scheme": "hmac-sha256"}
    info.update(request.content)
    return proc, info
