"""The kernel's five channels, their names and their connection-file port keys."""

SHELL, IOPUB, STDIN, CONTROL, HB = "shell", "iopub", "stdin", "control", "hb"
# in the order of a connection file
CHANNELS = (SHELL, IOPUB, STDIN, CONTROL, HB)


def port_key(channel: str) -> str:
    """``shell`` -> ``shell_port``: the channel's key in connection and registration files."""
    return f"{channel}_port"


PORT_KEYS = tuple(port_key(c) for c in CHANNELS)
