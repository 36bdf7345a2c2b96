"""Puts kernelkit's stand-ins for ipykernel's modules in ``sys.modules``, for
this process only (called by ``python -m kernelkit.adopt``): ``ipykernel``,
``ipykernel.kernelbase``, ``ipykernel.kernelapp`` and ``ipykernel.ipkernel``.
Importing any other ``ipykernel.*`` module fails with an ImportError saying
it is not provided (the real ipykernel, if installed, is never imported)."""

import importlib.abc
import sys
import types

from . import kernelapp, kernelbase
from .kernelbase import not_provided

# the ipykernel release whose API the layer follows
API_VERSION = (7, 4, 0)


class _Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith("ipykernel.") and name not in sys.modules:
            raise ModuleNotFoundError(
                f"{name} is not provided by kernelkit's ipykernel layer (this kernel runs on kernelkit "
                "through 'kernelkit adopt'; 'kernelkit adopt --undo' runs it on ipykernel)",
                name=name,
            )
        return None


def _module(name: str, doc: str, **attrs) -> types.ModuleType:
    m = types.ModuleType(name, doc)
    m.__dict__.update(attrs)

    def missing(attr):
        raise not_provided(name, attr)

    m.__getattr__ = missing
    return m


def install() -> None:
    package = _module("ipykernel", "kernelkit's ipykernel layer", version_info=API_VERSION,
                      __version__=".".join(map(str, API_VERSION)), __path__=[])
    ipkernel = _module("ipykernel.ipkernel", "kernelkit's ipykernel layer: no IPythonKernel")
    sys.modules.update({
        "ipykernel": package,
        "ipykernel.kernelbase": kernelbase,
        "ipykernel.kernelapp": kernelapp,
        "ipykernel.ipkernel": ipkernel,
    })
    package.kernelbase, package.kernelapp, package.ipkernel = kernelbase, kernelapp, ipkernel
    sys.meta_path.insert(0, _Refuse())
