"""What libraries use of ipykernel's kernel object, on kernelkit's.

``get_ipython().kernel`` is the PythonKernel itself. Libraries written for
ipykernel reach into it for ``get_parent()`` (the ipywidgets Output widget,
``interact``), ``session.send(kernel.iopub_socket, ...)`` (comms of old
ipywidgets, ``ipykernel.comm.Comm``), ``comm_manager``, ``shell`` and ``log``.
This module holds those pieces; the kernel creates them on first use, so none
of it is on the execute path of code that does not use them.

``ipykernel.comm.Comm`` (when ipykernel is installed) sends only if
ipykernel's own ``Kernel`` singleton exists and is an ipykernel Kernel: when
user code imports ``ipykernel.comm``, ``install_ipykernel_bridge`` makes one
that forwards to this kernel (``ipykernel_bridge``).
"""

import importlib.util
import os
import sys

from ..wire.channels import IOPUB
from .importhooks import ImportHooks


class IOPub:
    """Stands for ipykernel's ``iopub_socket``: what is sent "on" it through
    ``kernel.session.send`` goes out on iopub, through the kernel's FIFO."""

    channel = IOPUB

    def __repr__(self):
        return "<kernelkit iopub>"


class _ParentHeader:
    """A parent given as a message dict, in the shape Runtime.send takes
    (``.message`` with a header)."""

    __slots__ = ("message",)

    def __init__(self, header: dict):
        self.message = header


class KernelSession:
    """The part of jupyter_client's ``Session`` that libraries call on
    ``kernel.session``: ``send`` to iopub, and the session's names."""

    def __init__(self, kernel):
        self._kernel = kernel
        self._session = kernel._services.session

    @property
    def session(self) -> str:
        return self._session.session_id

    @property
    def username(self) -> str:
        return self._session.username

    def send(self, stream, msg_or_type, content=None, parent=None, ident=None, buffers=None, track=False, header=None, metadata=None):
        """Publish on iopub (the only socket libraries send on); returns the
        message as a dict, as jupyter_client's does."""
        if getattr(stream, "channel", IOPUB) != IOPUB:
            raise ValueError(f"kernelkit sends only on iopub through session.send, not {stream!r}")
        if isinstance(msg_or_type, dict):
            msg_type = msg_or_type["header"]["msg_type"]
            content = msg_or_type.get("content", content)
            metadata = msg_or_type.get("metadata", metadata)
            parent = parent or msg_or_type.get("parent_header")
        else:
            msg_type = msg_or_type
        self._kernel.publish(msg_type, content or {}, metadata=metadata, buffers=buffers, parent=self._kernel.request_for(parent))
        return {"msg_type": msg_type, "content": content or {}, "metadata": metadata or {}}


def parent_of(request) -> dict:
    """ipykernel's ``get_parent()`` value for a request: the message as a
    dict ({} when there is none)."""
    if request is None:
        return {}
    m = request.message
    return {
        "header": m.header,
        "parent_header": m.parent_header,
        "metadata": m.metadata,
        "content": m.content,
        "buffers": m.buffers,
        "msg_id": m.msg_id,
        "msg_type": m.msg_type,
    }


def request_like(parent: dict | None, current):
    """What Runtime.send takes as a parent, for a parent given as a message
    dict or a header dict (``current`` when it is that request or missing)."""
    if not parent:
        return current
    header = parent.get("header", parent)
    if current is not None and header.get("msg_id") == current.msg_id:
        return current  # (keeps the header bytes as received)
    return _ParentHeader(header)


# -- ipykernel.comm.Comm ---------------------------------------------------------
def ipykernel_bridge(kernel):
    """An ipykernel ``Kernel`` (the class ipykernel's comms insist on) whose
    ``session``, ``iopub_socket``, ``get_parent`` and ``comm_manager`` are
    this kernel's. Made once, when ``ipykernel.comm`` is imported."""
    from ipykernel.kernelbase import Kernel as IPyKernel
    from jupyter_client.session import Session
    from traitlets.config import SingletonConfigurable

    class BridgeSession(Session):
        def send(self, stream, msg_or_type, content=None, parent=None, ident=None, buffers=None, track=False, header=None, metadata=None):
            return kernel.session.send(kernel.iopub_socket, msg_or_type, content, parent, ident, buffers, track, header, metadata)

    class KernelkitBridge(IPyKernel):
        def get_parent(self, channel=None):
            return kernel.get_parent(channel)

    # (the key signs nothing, send is ours; without one Session warns)
    bridge = KernelkitBridge(session=BridgeSession(key=os.urandom(16)), iopub_socket=kernel.iopub_socket, shell=kernel.shell)
    bridge.comm_manager = kernel.comm_manager
    # what SingletonConfigurable.instance() records: the instance on each
    # singleton class of its MRO, SingletonConfigurable itself excepted
    for cls in KernelkitBridge.__mro__:
        if issubclass(cls, SingletonConfigurable) and cls is not SingletonConfigurable:
            cls._instance = bridge
    return bridge


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # hidden or broken: as good as absent
        return False


def _ensure_zmqshell_module(patches) -> None:
    """tqdm.autonotebook picks notebook progress bars only when
    ``ipykernel.zmqshell`` is in sys.modules: the real module when ipykernel
    is installed, else this kernel's shell module under that name."""
    if "ipykernel.zmqshell" in sys.modules:
        return
    if _installed("ipykernel"):
        importlib.import_module("ipykernel.zmqshell")
    else:
        patches.module_alias("ipykernel.zmqshell", sys.modules["kernelkit.python.shell"])


def install_import_hooks(kernel, install_comms) -> None:
    """What libraries need of ipykernel, done as they are imported."""

    def bridge():
        ipykernel_bridge(kernel)
        install_comms()  # (importing ipykernel's kernel may replace comm's factories)

    before, after = {}, {}
    if "tqdm.autonotebook" not in sys.modules:
        before["tqdm.autonotebook"] = lambda: _ensure_zmqshell_module(kernel.patches)
    if "ipykernel.comm" in sys.modules:
        bridge()
    elif _installed("ipykernel"):
        after["ipykernel.comm"] = bridge
    if before or after:
        kernel.patches.import_hooks(ImportHooks(before, after))
