"""The I/O side: one thread owns the ZeroMQ sockets; everyone else uses queues."""

from .heartbeat import Heartbeat
from .iothread import IOThread
from .outbound import Outbound

__all__ = ["Heartbeat", "IOThread", "Outbound"]
