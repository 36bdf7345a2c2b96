"""Sending: a message built from a request's header goes into the one outbound FIFO."""

from ..wire.channels import IOPUB


class Sender:
    """Builds the frames of everything the kernel sends and puts them in the
    outbound FIFO, in the order the calls are made (from any thread)."""

    def __init__(self, session, outbound, critical):
        self.session = session
        self.outbound = outbound
        self._critical = critical  # the interrupt gate's critical section

    def send(self, channel: str, msg_type: str, content, parent=None, metadata=None, buffers=None) -> None:
        """``parent``: the Request this answers or belongs to (None: no parent).
        On iopub the message gets its topic; elsewhere it goes back to the
        parent's identities."""
        identities = (self.session.iopub_topic(msg_type),) if channel == IOPUB else parent.message.identities
        frames = self.session.frames(msg_type, content, parent.message if parent else None, metadata, identities, buffers)
        with self._critical:  # an interrupt must not cut the FIFO's bookkeeping in half
            self.outbound.send(channel, frames, lazy=True)

    def publish(self, msg_type: str, content, metadata=None, buffers=None, parent=None) -> None:
        self.send(IOPUB, msg_type, content, parent, metadata, buffers)

    def status(self, state: str, parent) -> None:
        self.send(IOPUB, "status", {"execution_state": state}, parent)

    def reply(self, req, content: dict, metadata=None) -> None:
        self.send(req.channel, req.reply_type, content, req, metadata)
