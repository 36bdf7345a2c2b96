"""ZeroMQ addresses of a kernel's channels.

Jupyter's ipc transport has "ports" too: the socket file of port N on
``ip`` is the path ``<ip>-<N>``.
"""


def ipc_path(ip: str, port) -> str:
    """The socket file of ipc port ``port`` on ``ip``."""
    return f"{ip}-{port}"


def endpoint(transport: str, ip: str, port=None) -> str:
    """The ZeroMQ address of ``port`` on ``ip``; without a port, the tcp
    address to give bind_to_random_port."""
    if transport == "tcp":
        host = f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip
        return f"tcp://{host}" if port is None else f"tcp://{host}:{port}"
    return f"ipc://{ipc_path(ip, port)}"
