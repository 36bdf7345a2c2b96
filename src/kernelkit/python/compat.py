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

import importlib.abc
import importlib.util
import sys


class IOPub:
    """Stands for ipykernel's ``iopub_socket``: what is sent "on" it through
    ``kernel.session.send`` goes out on iopub, through the kernel's FIFO."""

    channel = "iopub"

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
        self._session = kernel._runtime.session

    @property
    def session(self) -> str:
        return self._session.session_id

    @property
    def username(self) -> str:
        return self._session.username

    def send(self, stream, msg_or_type, content=None, parent=None, ident=None, buffers=None, track=False, header=None, metadata=None):
        """Publish on iopub (the only socket libraries send on); returns the
        message as a dict, as jupyter_client's does."""
        if getattr(stream, "channel", "iopub") != "iopub":
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

    class BridgeSession(Session):
        def send(self, stream, msg_or_type, content=None, parent=None, ident=None, buffers=None, track=False, header=None, metadata=None):
            return kernel.session.send(kernel.iopub_socket, msg_or_type, content, parent, ident, buffers, track, header, metadata)

    class KernelkitBridge(IPyKernel):
        def get_parent(self, channel=None):
            return kernel.get_parent(channel)

    bridge = KernelkitBridge(session=BridgeSession(key=b""), iopub_socket=kernel.iopub_socket, shell=kernel.shell)
    bridge.comm_manager = kernel.comm_manager
    for cls in IPyKernel.__mro__:  # what SingletonConfigurable.instance() records
        if hasattr(cls, "_instance"):
            cls._instance = bridge
    KernelkitBridge._instance = bridge
    return bridge


class _IpykernelCommFinder(importlib.abc.MetaPathFinder):
    """Acts once, as ``ipykernel.comm`` is first imported: when the module
    has run, ipykernel's Kernel singleton is the bridge, and the ``comm``
    package's factories are this kernel's again (importing ipykernel's
    kernel modules may replace them)."""

    def __init__(self, kernel):
        self._kernel = kernel

    def find_spec(self, name, path=None, target=None):
        if name != "ipykernel.comm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)  # (the other finders')
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenBridge(spec.loader, self._kernel)
        return spec


class _ThenBridge(importlib.abc.Loader):
    def __init__(self, loader, kernel):
        self._loader = loader
        self._kernel = kernel

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        ipykernel_bridge(self._kernel)
        from .comms import install_comms

        install_comms(self._kernel)


def install_ipykernel_bridge(kernel) -> None:
    """Arm the bridge for the import of ``ipykernel.comm`` (if installed)."""
    if "ipykernel.comm" in sys.modules:
        ipykernel_bridge(kernel)
    elif importlib.util.find_spec("ipykernel") is not None:
        sys.meta_path.insert(0, _IpykernelCommFinder(kernel))
