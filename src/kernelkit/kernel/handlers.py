"""Declaring which Kernel method handles which message type.

    class MyKernel(Kernel):
        @handler("debug_request")
        def debug(self, request):
            return {...}          # the debug_reply's content

A handler is called with the ``Request`` on the thread of the channel it came
on (shell: the main thread or the subshell's; control: the control thread)
and returns the reply's content (``status: ok`` is added), or None for a
message that has no reply. It gets busy before and idle after, and an
exception becomes an error reply, like every request. Subclasses inherit
their bases' table; declaring a type again replaces its handler, and
overriding a handler method by name (without the decorator) does too.
"""

# The lifecycle's own message types: served by kernel/lifecycle.py (the method
# named), which calls the kernel's public methods for them (execute,
# kernel_info, interrupt, shutdown): counts, aborts and stopping are not the
# kernel's to reimplement.
LIFECYCLE_HANDLERS = {
    "execute_request": "_execute",
    "kernel_info_request": "_kernel_info",
    "interrupt_request": "_interrupt",
    "shutdown_request": "_shutdown",
    "create_subshell_request": "_create_subshell",
    "delete_subshell_request": "_delete_subshell",
    "list_subshell_request": "_list_subshells",
}
LIFECYCLE_TYPES = frozenset(LIFECYCLE_HANDLERS)

_MARK = "_kernelkit_handles"


def handler(msg_type: str):
    """Declare the decorated Kernel method the handler of ``msg_type``."""
    if not isinstance(msg_type, str) or not msg_type:
        raise TypeError(f"handler() takes a message type, got {msg_type!r}")
    if msg_type in LIFECYCLE_TYPES:
        raise TypeError(f"{msg_type} is served by kernelkit; override the Kernel method it calls instead")

    def declare(method):
        getattr(method, _MARK, None) or setattr(method, _MARK, [])
        getattr(method, _MARK).append(msg_type)
        return method

    return declare


def collect(cls) -> dict:
    """``msg_type -> method name`` for a class: what it and its bases
    declare, nearer classes winning (the method resolution order)."""
    table = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            for msg_type in getattr(value, _MARK, ()):
                table[msg_type] = name
    return table
