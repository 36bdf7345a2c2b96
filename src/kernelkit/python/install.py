"""``kernelkit install`` / ``kernelkit uninstall``: the Python kernel's kernelspec.

Writes ``kernel.json`` and the logos (no jupyter_client needed). The spec starts the
kernel with this Python and selects the ``kernelkit-handshake`` provisioner,
so jupyter_client starts it through the handshake (no port race).
"""

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

from ..wire import PROTOCOL_VERSION

RESOURCES = Path(__file__).parent / "resources"
LOGOS = ("logo-32x32.png", "logo-64x64.png")
DEFAULT_NAME = "kernelkit"
DEFAULT_DISPLAY_NAME = "Python 3 (kernelkit)"
_NAME_RE = re.compile(r"^[a-z0-9._-]+$", re.IGNORECASE)


def kernel_argv() -> list:
    """The command a kernelspec starts the bundled Python kernel with."""
    return [sys.executable, "-m", "kernelkit.python", "-f", "{connection_file}"]


def kernelspec(display_name: str = DEFAULT_DISPLAY_NAME, provisioner: bool = True, kernel: str | None = None, language: str = "python") -> dict:
    """The Python kernel's kernelspec, or (``kernel="MODULE:CLASS"``) any kernelkit kernel's."""
    spec = {
        "argv": kernel_argv() if kernel is None else [sys.executable, "-m", "kernelkit.kernel", kernel, "-f", "{connection_file}"],
        "display_name": display_name,
        "language": language,
        "interrupt_mode": "signal",
        "kernel_protocol_version": PROTOCOL_VERSION,
        "metadata": {"supported_encryption": ["curve"], **({"debugger": True} if kernel is None else {})},
    }
    if provisioner:
        spec["metadata"]["kernel_provisioner"] = {"provisioner_name": "kernelkit-handshake", "config": {"preferred_ports": True}}
    return spec


def user_data_dir() -> Path:
    try:
        from jupyter_core.paths import jupyter_data_dir
    except ImportError:  # the same rules, for a machine without jupyter_core
        if os.environ.get("JUPYTER_DATA_DIR"):
            return Path(os.environ["JUPYTER_DATA_DIR"])
        if sys.platform == "darwin":
            return Path.home() / "Library" / "Jupyter"
        if os.name == "nt":
            return Path(os.environ.get("APPDATA", Path.home())) / "jupyter"
        return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "jupyter"
    return Path(jupyter_data_dir())


def kernels_dir(args) -> Path:
    if args.prefix:
        return Path(args.prefix) / "share" / "jupyter" / "kernels"
    if args.sys_prefix:
        return Path(sys.prefix) / "share" / "jupyter" / "kernels"
    return user_data_dir() / "kernels"


def _parser(prog: str, help_: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=help_)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for this user (the default)")
    where.add_argument("--sys-prefix", action="store_true", help=f"in this environment ({sys.prefix})")
    where.add_argument("--prefix", metavar="DIR", help="under DIR/share/jupyter/kernels")
    p.add_argument("--name", default=DEFAULT_NAME, help=f"kernelspec name (default {DEFAULT_NAME!r})")
    return p


def _check_name(p, name: str) -> None:
    if not _NAME_RE.match(name):
        p.error(f"invalid kernel name {name!r}: use ASCII letters, digits, '.', '_' and '-'")


def main(argv=None) -> int:
    p = _parser("kernelkit install", "Install the kernelkit Python kernel's kernelspec.")
    p.add_argument("--display-name", default=DEFAULT_DISPLAY_NAME, help=f"name shown in menus (default {DEFAULT_DISPLAY_NAME!r})")
    p.add_argument(
        "--no-handshake",
        action="store_true",
        help="do not select the kernelkit-handshake provisioner (for a Jupyter that cannot import kernelkit)",
    )
    p.add_argument("--kernel", metavar="MODULE:CLASS", help="install this kernelkit kernel class instead of the Python kernel (with --name)")
    p.add_argument("--logo", action="append", default=[], metavar="PNG",
                   help="with --kernel: a logo to copy (logo-32x32.png, logo-64x64.png: the launcher's icons)")
    args = p.parse_args(argv)
    _check_name(p, args.name)
    if not args.display_name.strip():
        p.error("--display-name must not be empty")
    logos = [(RESOURCES / logo, logo) for logo in LOGOS]  # shown in JupyterLab's launcher
    if args.kernel:
        if args.name == DEFAULT_NAME:
            p.error("--kernel needs --name NAME (the Python kernel's spec is 'kernelkit')")
        from ..kernel.__main__ import load

        try:
            cls = load(args.kernel)
        except ValueError as e:
            p.error(str(e))
        display_name = args.name if args.display_name == DEFAULT_DISPLAY_NAME else args.display_name
        spec = kernelspec(display_name, not args.no_handshake, args.kernel, str(cls.language_info.get("name", "text")))
        logos = [(Path(f), Path(f).name) for f in args.logo]
    else:
        spec = kernelspec(args.display_name, not args.no_handshake)
    dest = kernels_dir(args) / args.name
    try:
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
        for source, logo in logos:
            shutil.copyfile(source, dest / logo)
    except OSError as e:
        print(f"kernelkit install: cannot write {dest}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"Installed kernelspec {args.name!r} in {dest}")
    return 0


def uninstall_main(argv=None) -> int:
    p = _parser("kernelkit uninstall", "Remove a kernelspec installed by 'kernelkit install'.")
    args = p.parse_args(argv)
    _check_name(p, args.name)
    dest = kernels_dir(args) / args.name
    if not (dest / "kernel.json").is_file():
        print(f"kernelkit uninstall: no kernelspec {args.name!r} in {dest.parent}", file=sys.stderr)
        return 1
    try:
        shutil.rmtree(dest)
    except OSError as e:
        print(f"kernelkit uninstall: cannot remove {dest}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"Removed kernelspec {args.name!r} from {dest.parent}")
    return 0
