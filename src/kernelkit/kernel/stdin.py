"""Asking the client for input: input_request out, input_reply back.

Replies are matched to the waiting request by their parent msg_id; a reply
for a prompt that is no longer waiting (it was interrupted) is dropped, so a
late answer never feeds the next prompt. A reply with no parent at all (as
jupyter_client's ``KernelClient.input`` sends) goes to the only waiting
prompt, if there is exactly one.
"""

import logging
import queue
import threading

from ..logs import LogLimiter
from ..wire.channels import STDIN

log = logging.getLogger("kernelkit.stdin")


class StdinNotAllowed(RuntimeError):
    """The request that is running did not allow stdin (``allow_stdin`` false)."""


_CANCEL = object()


class StdinRouter:
    def __init__(self, session, outbound, critical, channel: str = STDIN):
        self._session = session
        self._critical = critical  # defers interrupts while locks are held
        self._outbound = outbound
        self._channel = channel
        # input_request msg_id -> (where its reply goes, ident of the waiting thread)
        self._waiting: dict[str, tuple[queue.SimpleQueue, int]] = {}
        self._lock = threading.Lock()
        self._limiter = LogLimiter()

    def deliver(self, msg) -> None:
        """Called on the I/O thread for every message arriving on stdin."""
        if msg.msg_type != "input_reply":
            self._limiter.warn((STDIN, msg.msg_type), f"stdin: ignored unexpected {msg.msg_type!r}", log)
            return
        parent_id = msg.parent_header.get("msg_id")
        with self._lock:
            waiting = self._waiting.get(parent_id)
            if waiting is None and not parent_id and len(self._waiting) == 1:
                # jupyter_client's KernelClient.input() (jupyter console) sends
                # no parent: give it to the one prompt that is waiting
                waiting = next(iter(self._waiting.values()))
        if waiting is None:
            log.info("stdin: dropped an input_reply for a prompt that is no longer waiting (%s)", parent_id)
            return
        waiting[0].put(msg)

    def ask(self, request, prompt: str = "", password: bool = False) -> str:
        """Send an input_request for ``request`` and wait for the answer.

        Interruptible: SIGINT (on the main thread) or ``cancel_other_threads`` raise
        KeyboardInterrupt here. Raises StdinNotAllowed if the request did not
        allow stdin.
        """
        if not request.allow_stdin:
            raise StdinNotAllowed(f"{request.msg_type} was sent with allow_stdin=False: this frontend does not support input")
        msg = self._session.message("input_request", {"prompt": str(prompt), "password": bool(password)}, parent=request.message)
        frames = self._session.serialize(msg, request.message.identities)
        # the client's input_reply names our input_request as its parent
        msg_id = msg.msg_id
        waiter: queue.SimpleQueue = queue.SimpleQueue()
        with self._critical, self._lock:
            self._waiting[msg_id] = (waiter, threading.get_ident())
        try:
            with self._critical:
                self._outbound.send(self._channel, frames)
            reply = waiter.get()  # interruptible: nothing is held while waiting
        finally:
            with self._critical, self._lock:
                self._waiting.pop(msg_id, None)
        if reply is _CANCEL:
            raise KeyboardInterrupt("input interrupted")
        value = reply.content.get("value", "")
        return value if isinstance(value, str) else str(value)

    def cancel_other_threads(self) -> None:
        """Interrupt the prompts waited on by threads other than the main one
        (subshells), which SIGINT cannot reach."""
        main = threading.main_thread().ident
        with self._lock:
            waiters = [w for w, ident in self._waiting.values() if ident != main]
        for w in waiters:
            w.put(_CANCEL)
