"""Comms through the ``comm`` package, so ipywidgets and friends work."""

import comm
from comm.base_comm import BaseComm, CommManager

_kernel = None
_manager = CommManager()


class KernelComm(BaseComm):
    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        content = {"data": data or {}, "comm_id": self.comm_id, **keys}
        _kernel.publish(msg_type, content, metadata=metadata, buffers=buffers)


def install_comms(kernel) -> None:
    global _kernel
    _kernel = kernel
    comm.create_comm = KernelComm
    comm.get_comm_manager = lambda: _manager


def _as_dict(request) -> dict:
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


def dispatch(kind: str, request) -> None:
    getattr(_manager, kind)(None, None, _as_dict(request))


def comm_info(target_name) -> dict:
    return {
        cid: {"target_name": c.target_name}
        for cid, c in _manager.comms.items()
        if target_name is None or c.target_name == target_name
    }
