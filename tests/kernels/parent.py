"""A stand-in for the process that starts a kernel (a server, nbclient): the
parent-death tests kill it with SIGKILL and watch its kernel.

``python parent.py MODE KERNEL_ARGV...`` (``{connection_file}`` in the argv):
MODE ``classic`` starts the kernel with jupyter_client's launcher on a fresh
connection file, ``A`` / ``B`` through kernelkit's handshake launcher. Prints
``{"pid", "connection_info"}`` as one JSON line, then waits to be killed.
"""

import json
import os
import sys
import tempfile


def main():
    mode, argv = sys.argv[1], sys.argv[2:]
    if mode == "classic":
        from jupyter_client.connect import write_connection_file
        from jupyter_client.launcher import launch_kernel

        path, info = write_connection_file(os.path.join(tempfile.mkdtemp(), "kernel.json"))
        proc = launch_kernel([a.replace("{connection_file}", path) for a in argv])
        pid = proc.pid
    else:
        from kernelkit.launcher import launch_kernel

        kernel = launch_kernel(argv, dialect=mode)
        pid, info = kernel.process.pid, kernel.connection_info
    info = {k: v.decode() if isinstance(v, bytes) else v for k, v in info.items()}
    print(json.dumps({"pid": pid, "connection_info": info}), flush=True)
    sys.stdin.read()  # until killed


if __name__ == "__main__":
    main()
