"""The I/O side: one thread owns the ZeroMQ sockets; everyone else uses queues."""

from .heartbeat import Heartbeat
from .iothread import CONTROL, IOPUB, SHELL, STDIN, IOThread, Outbound

__all__ = ["CONTROL", "Heartbeat", "IOPUB", "IOThread", "Outbound", "SHELL", "STDIN"]
