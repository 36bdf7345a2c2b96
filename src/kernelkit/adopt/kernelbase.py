"""``ipykernel.kernelbase`` as an adopted kernel sees it: the ``Kernel`` class
wrapper kernels subclass, backed by a kernelkit kernel (``bridge.AdoptedKernel``).

What is provided is below (README lists it); any other attribute of
ipykernel's Kernel raises ``NotProvided`` naming it. The ``do_*`` methods may be plain or
``async def``, as in ipykernel; they run on the main thread (``do_shutdown``
on the control thread).
"""

import threading

from traitlets.config import SingletonConfigurable

from ..kernel.stdin import StdinNotAllowed
from ..wire import PROTOCOL_VERSION

class NotProvided(AttributeError):
    """An attribute of ipykernel's API that kernelkit's ipykernel layer does not provide."""


def not_provided(owner: str, name: str) -> NotProvided:
    return NotProvided(
        f"{owner}.{name} is not provided by kernelkit's ipykernel layer "
        f"(this kernel runs on kernelkit through 'kernelkit adopt'; 'kernelkit adopt --undo' runs it on ipykernel)"
    )


class _Standalone:
    """Stands for the kernelkit kernel when the ipykernel-style kernel is made
    outside ``IPKernelApp``: a count, no request, no input."""

    publish = None
    current_request = None

    def __init__(self):
        self.execution_count = 0

    def parent_message(self) -> dict:
        return {}

    def input(self, prompt, password=False):
        raise StdinNotAllowed("no frontend: this kernel was not started by IPKernelApp")


# the kernelkit kernel an instance being made is bound to (set by the bridge
# around the construction: a subclass's __init__ need not pass it on)
_binding = threading.local()


class Kernel(SingletonConfigurable):
    """ipykernel's base class for wrapper kernels, on kernelkit."""

    implementation = "kernel"
    implementation_version = ""
    language_info: dict = {}
    banner = ""
    help_links: list = []
    protocol_version = PROTOCOL_VERSION
    _supports_kernel_subshells = False
    _set_parent: dict = {}

    def __init__(self, **kwargs):
        # ipykernel's app passes its sockets and streams; kernelkit owns those
        session, iopub_socket = kwargs.pop("session", None), kwargs.pop("iopub_socket", None)
        for name in ("stdin_socket", "shell_stream", "control_stream", "iopub_thread", "debugpy_stream",
                     "profile_dir", "user_ns", "shell_streams", "control_thread", "shell_class"):
            kwargs.pop(name, None)
        super().__init__(**kwargs)
        self._kk = getattr(_binding, "kernel", None)
        if self._kk is None:
            # made directly, not by IPKernelApp (as the kernels' own unit tests
            # do): sent only through the session and socket given, if any
            self._kk = _Standalone()
            self.session, self.iopub_socket = session, iopub_socket
        else:
            self.session = self._kk.ipykernel_session
            self.iopub_socket = self._kk.iopub_socket
        #: ``msg_type -> handler(stream, ident, parent)``: the kernel may add
        #: its own (metakernel routes comm messages to its comm manager here)
        self.shell_handlers = {}
        self.control_handlers = {}

    def __getattr__(self, name):
        # only called for what is missing: ipykernel's other attributes
        if name.startswith("__") or name.startswith("_trait") or name.startswith("_kk"):
            raise AttributeError(name)
        raise not_provided(f"{type(self).__name__} (ipykernel's Kernel)", name)

    # --------------------------------------------------------------- state
    @property
    def execution_count(self) -> int:
        return self._kk.execution_count

    @execution_count.setter
    def execution_count(self, value: int) -> None:
        self._kk.execution_count = value

    @property
    def _allow_stdin(self) -> bool:
        req = self._kk.current_request
        return req is not None and req.allow_stdin

    @_allow_stdin.setter
    def _allow_stdin(self, value) -> None:
        pass  # (metakernel records it; the request says it)

    @property
    def kernel_info(self) -> dict:
        return {
            "protocol_version": self.protocol_version,
            "implementation": self.implementation,
            "implementation_version": self.implementation_version,
            "language_info": self.language_info,
            "banner": self.banner,
            "help_links": self.help_links,
            "supported_features": ["iopub_welcome"],
        }

    def get_parent(self, channel=None) -> dict:
        """The request being handled (the message as a dict), else what
        ``set_parent`` was given, else {}."""
        return self._kk.parent_message() or self._set_parent

    def set_parent(self, ident, parent, channel="shell") -> None:
        """The parent ``get_parent`` gives while no request is being handled
        (kernelkit itself knows which request each thread works for)."""
        self._set_parent = parent or {}

    def get_parent_header(self, channel=None) -> dict:
        return self.get_parent(channel).get("header", {})

    # ------------------------------------------------------------- output
    def send_response(self, stream, msg_or_type, content=None, ident=None, buffers=None, track=False, header=None,
                      metadata=None, channel=None):
        """Publish on iopub, parented to the request being handled."""
        if not self.session:
            return None  # (as ipykernel: a kernel made without a session sends nothing)
        if isinstance(msg_or_type, str) and stream is self.iopub_socket and self._kk.publish is not None:  # (the common case)
            if msg_or_type == "stream" and not metadata and not buffers and self._kk.write_stream(content):
                return {"msg_type": msg_or_type, "content": content, "metadata": {}}
            self._kk.publish(msg_or_type, content or {}, metadata, buffers)
            return {"msg_type": msg_or_type, "content": content or {}, "metadata": metadata or {}}
        return self.session.send(stream, msg_or_type, content, self.get_parent(channel), ident, buffers, track, header, metadata)

    # -------------------------------------------------------------- input
    def raw_input(self, prompt="") -> str:
        """An input_request to the frontend; the answer (KeyboardInterrupt on an interrupt)."""
        if not self._allow_stdin:
            raise StdinNotAllowed("raw_input was called, but this frontend does not support input requests.")
        return self._kk.input(str(prompt))

    def getpass(self, prompt="", stream=None, *, echo_char=None) -> str:
        if not self._allow_stdin:
            raise StdinNotAllowed("getpass was called, but this frontend does not support input requests.")
        return self._kk.input(str(prompt), password=True)

    # ---------------------------------------------- ipykernel's defaults
    async def do_execute(self, code, silent, store_history=True, user_expressions=None, allow_stdin=False, *,
                         cell_meta=None, cell_id=None):
        raise NotImplementedError("this kernel does not execute code (no do_execute)")

    async def do_complete(self, code, cursor_pos):
        return {"matches": [], "cursor_end": cursor_pos, "cursor_start": cursor_pos, "metadata": {}, "status": "ok"}

    async def do_inspect(self, code, cursor_pos, detail_level=0, omit_sections=()):
        return {"status": "ok", "data": {}, "metadata": {}, "found": False}

    async def do_history(self, hist_access_type, output, raw, session=None, start=None, stop=None, n=None,
                         pattern=None, unique=False):
        return {"status": "ok", "history": []}

    async def do_is_complete(self, code):
        return {"status": "unknown"}

    async def do_shutdown(self, restart):
        return {"status": "ok", "restart": restart}


def __getattr__(name):
    raise not_provided("ipykernel.kernelbase", name)
