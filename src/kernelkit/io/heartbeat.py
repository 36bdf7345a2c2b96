"""Heartbeat: a ROUTER proxied to itself inside libzmq echoes every ping.

It runs on its own thread and its own context, and ``zmq.proxy_steerable``
releases the GIL, so pings are answered while Python code holds the GIL.
"""

import threading

import zmq

from .. import threads


class Heartbeat:
    def __init__(self, ctx: zmq.Context, socket: zmq.Socket):
        self._ctx = ctx
        self._socket = socket
        self._endpoint = f"inproc://kernelkit-hb-control-{id(self)}"
        self._control_in = ctx.socket(zmq.PAIR)
        self._control_in.bind(self._endpoint)
        self._thread = threading.Thread(target=self._run, name=threads.name("heartbeat"), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            # frontend == backend: every message goes back to its sender
            zmq.proxy_steerable(self._socket, self._socket, None, self._control_in)
        except zmq.ZMQError:
            pass  # context terminated
        finally:
            self._socket.close(linger=0)
            self._control_in.close(linger=0)

    def stop(self, timeout: float = 1.0) -> None:
        if not self._thread.is_alive():
            return
        ctl = self._ctx.socket(zmq.PAIR)
        ctl.linger = 0
        ctl.connect(self._endpoint)
        ctl.send(b"TERMINATE")
        self._thread.join(timeout)
        ctl.close()
