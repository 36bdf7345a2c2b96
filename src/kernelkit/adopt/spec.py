"""``kernelkit adopt NAME`` / ``kernelkit adopt --undo NAME``: make an installed
ipykernel-based kernelspec start its kernel on kernelkit's core, and back.

The spec's ``argv`` must be ``[PYTHON, -m, MODULE, ...]`` (what the kernels'
own installers write). It becomes ``[PYTHON, -m, kernelkit.adopt, MODULE, ...]``
with the ``kernelkit-handshake`` provisioner; the original kernel.json is kept
beside it as ``kernel.json.ipykernel`` for ``--undo``.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from ..python.install import kernels_dir

ENTRY = "kernelkit.adopt"
BACKUP = "kernel.json.ipykernel"


class AdoptError(Exception):
    pass


def find_spec_dir(name: str, args) -> Path:
    if args.user or args.sys_prefix or args.prefix:
        d = kernels_dir(args) / name
    else:  # wherever Jupyter finds it
        from jupyter_client.kernelspec import KernelSpecManager

        found = KernelSpecManager().find_kernel_specs()
        if name not in found:
            raise AdoptError(f"no kernelspec {name!r} (known: {', '.join(sorted(found)) or 'none'})")
        d = Path(found[name])
    if not (d / "kernel.json").is_file():
        raise AdoptError(f"no kernelspec {name!r} in {d.parent}")
    return d


def adopted(spec: dict) -> dict:
    """The kernelspec that runs the same kernel on kernelkit."""
    argv = list(spec.get("argv") or [])
    if len(argv) < 3 or argv[1] != "-m":
        raise AdoptError(f"its argv {argv!r} is not [PYTHON, -m, MODULE, ...]: kernelkit adopt runs kernels started as a Python module")
    if argv[2] == ENTRY:
        raise AdoptError("it is adopted already")
    new = dict(spec)
    new["argv"] = [argv[0], "-m", ENTRY, *argv[2:]]
    metadata = dict(spec.get("metadata") or {})
    metadata["kernel_provisioner"] = {"provisioner_name": "kernelkit-handshake", "config": {"preferred_ports": True}}
    metadata["supported_encryption"] = ["curve"]
    new["metadata"] = metadata
    return new


def _check_python(python: str) -> None:
    try:
        r = subprocess.run([python, "-c", "import kernelkit.adopt.layer"], capture_output=True, text=True, timeout=60)
    except OSError as e:
        raise AdoptError(f"cannot run its Python {python}: {e.strerror or e}") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        raise AdoptError(f"its Python {python} cannot import kernelkit's ipykernel layer ({last}): pip install 'kernelkit[python]' there")


def adopt(d: Path) -> None:
    original = (d / "kernel.json").read_text()
    try:
        spec = json.loads(original)
    except ValueError as e:
        raise AdoptError(f"its kernel.json is not JSON: {e}") from None
    new = adopted(spec)
    _check_python(new["argv"][0])
    (d / BACKUP).write_text(original)  # as it was, byte for byte
    (d / "kernel.json").write_text(json.dumps(new, indent=1) + "\n")


def undo(d: Path) -> None:
    backup = d / BACKUP
    if not backup.is_file():
        raise AdoptError(f"it was not adopted (no {BACKUP} in {d})")
    (d / "kernel.json").write_text(backup.read_text())
    backup.unlink()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="kernelkit adopt",
        description="Run an installed kernel built on ipykernel's Kernel on kernelkit's core, unchanged (--undo: back on ipykernel).",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="the kernelspec installed for this user")
    where.add_argument("--sys-prefix", action="store_true", help=f"the kernelspec installed in this environment ({sys.prefix})")
    where.add_argument("--prefix", metavar="DIR", help="the kernelspec under DIR/share/jupyter/kernels")
    p.add_argument("--undo", action="store_true", help="restore the kernelspec as it was before 'kernelkit adopt'")
    p.add_argument("name", metavar="NAME", help="kernelspec name (see 'jupyter kernelspec list'); without a location: where Jupyter finds it")
    args = p.parse_args(argv)
    try:
        d = find_spec_dir(args.name, args)
        (undo if args.undo else adopt)(d)
    except AdoptError as e:
        print(f"kernelkit adopt: {args.name}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"kernelkit adopt: {args.name}: {e.strerror or e}: {e.filename or ''}", file=sys.stderr)
        return 1
    print(f"kernelspec {args.name!r} in {d} {'restored: it runs on ipykernel' if args.undo else 'runs on kernelkit now'}")
    return 0
