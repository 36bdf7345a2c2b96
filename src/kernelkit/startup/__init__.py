"""Getting a kernel on the network: connection and registration files, binding, handshake."""

from .errors import StartupError
from .files import ConnectionInfo, RegistrationInfo, load_file

__all__ = ["ConnectionInfo", "RegistrationInfo", "StartupError", "load_file"]
