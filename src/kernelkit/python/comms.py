"""Comms through the ``comm`` package, so ipywidgets and friends work."""

import importlib
import importlib.util
import threading

from comm.base_comm import BaseComm, CommManager

from .compat import parent_of

_kernel = None
_manager = CommManager()
# held while a comm handler runs (one at a time, on whatever thread): a comm
# message on a subshell runs beside a cell only while the cell runs alone
# (Kernel.comms_follow_main_shell), and code of a cell that shares state with
# comm handlers (pyplot, a widget's state) takes it to keep them out
comm_lock = threading.RLock()

# targets a frontend opens before user code has imported the library that
# serves them: JupyterLab's widget manager opens jupyter.widget.control as
# the notebook connects. Importing ipywidgets registers them.
_TARGET_PROVIDERS = {"jupyter.widget": "ipywidgets", "jupyter.widget.control": "ipywidgets"}


class KernelComm(BaseComm):
    @property
    def kernel(self):  # (the ipywidgets Output widget looks here too)
        return _kernel

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        content = {"data": data or {}, "comm_id": self.comm_id, **keys}
        _kernel.publish(msg_type, content, metadata=metadata, buffers=buffers)


def install_comms(kernel) -> None:
    global _kernel
    _kernel = kernel
    kernel.patches.comms(KernelComm, manager)


def manager() -> CommManager:
    return _manager


def dispatch(kind: str, request) -> None:
    if kind == "comm_open":
        _import_provider(request.content.get("target_name"))
    with comm_lock:
        getattr(_manager, kind)(None, None, parent_of(request))


def _import_provider(target_name) -> None:
    provider = _TARGET_PROVIDERS.get(target_name)
    if provider and target_name not in _manager.targets and importlib.util.find_spec(provider) is not None:
        importlib.import_module(provider)


def comm_info(target_name) -> dict:
    return {
        cid: {"target_name": c.target_name}
        for cid, c in _manager.comms.items()
        if target_name is None or c.target_name == target_name
    }
