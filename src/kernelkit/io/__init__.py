"""The I/O side: one thread owns the ZeroMQ sockets; everyone else uses queues."""

from .heartbeat import Heartbeat
from .iothread import CONTROL, IOPUB, SHELL, STDIN, IOThread, LogLimiter, Outbound

__all__ = ["CONTROL", "Heartbeat", "IOPUB", "IOThread", "LogLimiter", "Outbound", "SHELL", "STDIN"]
