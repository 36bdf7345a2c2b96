"""Which kernel runs a notebook.

The notebook's own kernel (``metadata.kernelspec.name``) when it is installed,
started as its kernelspec says (through the handshake when its spec selects the
``kernelkit-handshake`` provisioner); ``--kernel NAME`` overrides it. The name
``kernelkit`` is always available: its installed kernelspec, else the bundled
Python kernel with this Python, started through the handshake. A kernel that is not installed
is an error naming it and what is installed; a Python notebook runs on the
bundled kernel only when asked (``--kernel kernelkit``).
"""

import logging
import os
import shlex
from dataclasses import dataclass

from ...python import install
from .notebooks import UsageError, notebook_language

BUNDLED = install.DEFAULT_NAME


@dataclass
class KernelChoice:
    name: str  # the kernelspec name the manager is asked for
    spec: object = None  # a KernelSpec we made (bundled kernel, --kernel-cmd); None: an installed one
    language: str = ""

    def manager(self):
        """A fresh AsyncKernelManager (one per notebook: each runs on its own kernel)."""
        from jupyter_client import AsyncKernelManager
        from jupyter_client.kernelspec import KernelSpecManager

        made, name = self.spec, self.name

        class Specs(KernelSpecManager):
            """The installed kernelspecs, plus the one we made, which needs no install."""

            def get_kernel_spec(self, kernel_name, *a, **kw):
                if made is not None and kernel_name == name:
                    return made
                return super().get_kernel_spec(kernel_name, *a, **kw)

        km = AsyncKernelManager(kernel_name=self.name, kernel_spec_manager=Specs(log=quiet_log()))
        km.log = quiet_log()
        return km


def quiet_log() -> logging.Logger:
    """For nbclient and jupyter_client: they log what we report ourselves, in one line."""
    log = logging.getLogger("kernelkit.run.jupyter")
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    return log


def handshake_spec(argv, display_name, dialect, startup_timeout):
    from jupyter_client.kernelspec import KernelSpec

    return KernelSpec(
        argv=argv,
        display_name=display_name,
        language="python",
        interrupt_mode="signal",
        metadata={"kernel_provisioner": {
            "provisioner_name": "kernelkit-handshake",
            "config": {"dialect": dialect, "registration_timeout": startup_timeout},
        }},
    )


def installed_kernels() -> dict:
    """name -> resource dir of every kernelspec jupyter_client finds."""
    from jupyter_client.kernelspec import KernelSpecManager

    return KernelSpecManager(log=quiet_log()).find_kernel_specs()


def choose_kernel(path: str, nb, override, kernel_cmd, dialect, startup_timeout, installed) -> KernelChoice:
    language = notebook_language(nb)
    if kernel_cmd:  # advanced, for tests: a handshake kernel without a kernelspec
        argv = shlex.split(kernel_cmd)
        if not argv:
            raise UsageError("--kernel-cmd is empty")
        if not any("{connection_file}" in a for a in argv):
            argv += ["-f", "{connection_file}"]
        name = " ".join(os.path.basename(a) for a in argv if a != "-f" and "{connection_file}" not in a)[:60]
        return KernelChoice("kernelkit-run-cmd", handshake_spec(argv, name, dialect, startup_timeout), "python")

    name = override or (nb.metadata.get("kernelspec") or {}).get("name")
    if not name:
        if language and language != "python":
            raise UsageError(f"{path}: a {language} notebook with no kernelspec name: pass --kernel NAME")
        name = BUNDLED  # no kernel named at all: Jupyter's default is Python; the header line says which
    if name in installed:
        return KernelChoice(name, None, language)
    if name == BUNDLED:
        if language and language != "python":
            raise UsageError(f"{path}: a {language} notebook; the kernelkit kernel runs Python: pass --kernel NAME")
        return KernelChoice(BUNDLED, handshake_spec(install.kernel_argv(), install.DEFAULT_DISPLAY_NAME, dialect, startup_timeout), "python")
    names = ", ".join(sorted({*installed, BUNDLED}))
    if override:
        raise UsageError(f"--kernel {name}: no such kernel (installed: {names})")
    hint = f"; to run this Python notebook on the bundled kernel: --kernel {BUNDLED}" if language in ("python", "") else ""
    raise UsageError(f"{path}: its kernel {name!r} is not installed (installed: {names}){hint}")
