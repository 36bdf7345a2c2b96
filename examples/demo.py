"""Start the calculator kernel and talk to it, as a notebook would.

    python examples/demo.py

Shows the handshake start (the kernel picks its own ports and reports them),
a few cells with output and an error, then a clean shutdown.
"""

import sys
import tempfile
import time
from pathlib import Path

from jupyter_client import BlockingKernelClient

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from demo_registrar import register_and_start  # noqa: E402

CELLS = [
    "radius = 2\narea = pi * radius ** 2\nprint(area)",
    "round(area, 3)",
    "sqrt(-1)",
    "area / 0",
    "max(1, 7, 3) * 6",
]


def show(msg):
    kind, c = msg["msg_type"], msg["content"]
    if kind == "stream":
        print(f"  [{c['name']}] {c['text']}", end="")
    elif kind == "execute_result":
        print(f"  Out[{c['execution_count']}]: {c['data']['text/plain']}")
    elif kind == "error":
        print(f"  {c['ename']}: {c['evalue']}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc, info = register_and_start([sys.executable, str(HERE / "calc_kernel.py")], Path(tmp))
        print(f"kernel registered its own ports in {time.perf_counter() - t0:.3f} s: "
              + ", ".join(f"{k[:-5]}={v}" for k, v in info.items() if k.endswith("_port")))
        kc = BlockingKernelClient()
        kc.load_connection_info(info)
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=30)
            banner = kc.kernel_info(reply=True, timeout=10)["content"]["banner"]
            print(banner)
            for code in CELLS:
                print("In: " + code.replace("\n", "\n    "))
                t = time.perf_counter()
                reply = kc.execute_interactive(code, output_hook=show, timeout=30)
                print(f"  -> {reply['content']['status']} in {1000 * (time.perf_counter() - t):.1f} ms")
            kc.shutdown()
            code = proc.wait(10)
            print(f"kernel shut down cleanly (exit code {code})")
            return code
        finally:
            kc.stop_channels()
            if proc.poll() is None:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
