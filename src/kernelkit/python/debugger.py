"""The visual debugger: Jupyter's Debug Adapter Protocol over control, on debugpy.

A frontend (JupyterLab) sends DAP requests as ``debug_request`` on control
and reads the DAP responses from ``debug_reply``; DAP events reach it as
``debug_event`` on iopub. This module is imported on the first
debug_request only, and debugpy on the first ``initialize``: a kernel
nobody debugs pays nothing.

How it is put together:

- ``debugpy.listen`` (on the first initialize) starts pydevd in this process
  and debugpy's adapter as a subprocess. The kernel is the adapter's one DAP
  client (``AdapterConnection``, a TCP socket with a reader thread), and
  forwards the frontend's requests to it. Requests arrive on the control
  thread, so they are answered while the main thread is stopped at a
  breakpoint; the kernel's own threads are never traced or suspended.
- The kernel answers the Jupyter extensions itself: ``debugInfo``,
  ``dumpCell``, ``source``, ``modules``, ``inspectVariables`` and
  ``richInspectVariables`` (also with no debugger attached), and
  ``copyToGlobals`` (a ``setExpression`` in the frame).
- A breakpoint stops only the thread that hit it (``stopAllThreadsOnSuspend``
  false): subshells keep running, and can stop at breakpoints themselves.
- One frontend session owns the debugger from ``initialize`` to
  ``disconnect``; another session's ``initialize`` or ``attach`` is refused
  with a message (its other requests are served: a second window may look).
- ``breakpoint()`` stops in the visual debugger while one is attached, and
  in IPython's interruptible pdb (over stdin) otherwise.

Every reply is a DAP response; anything that goes wrong becomes
``success: false`` with a message, never an exception on the control thread.
"""

import ast
import itertools
import json
import linecache
import logging
import os
import shutil
import socket
import sys
import threading
import time

from .. import threads
from .cellfiles import HASH_METHOD, HASH_SEED, SUFFIX, cell_file_name

log = logging.getLogger("kernelkit.python.debugger")

#: How long to wait for debugpy's answer to one request.
ADAPTER_TIMEOUT = 30.0

#: Modules whose frames are the kernel's, not the user's: never stepped into
#: nor shown in stack traces.
KERNEL_MODULES = ("kernelkit", "IPython", "traitlets", "comm", "zmq", "ipykernel", "debugpy")

#: Names in a cell's globals the variables panel does not show (IPython's
#: own, besides those in its user_ns_hidden), and IPython's numbered
#: history variables (_1, _i1, ...).
HIDDEN_NAMES = frozenset(
    "__name__ __doc__ __package__ __loader__ __spec__ __annotations__ __builtins__ __builtin__ "
    "get_ipython exit quit open In Out _oh _dh _ __ ___ _ih _ii _iii _i".split()
)

# what the frontend receives for breakpoint-on-exception choices
EXCEPTION_PATHS = ["Python Exceptions"]

# commands answered here, with or without a debugger attached
_STATIC = frozenset({"debugInfo", "dumpCell", "source", "modules", "inspectVariables", "richInspectVariables"})


# requests that let a stopped thread go on
_RESUMING = frozenset({"continue", "next", "stepIn", "stepOut", "stepBack", "reverseContinue", "goto"})


class DebugError(Exception):
    """A request that cannot be served: ``success: false`` with this message."""


def _is_hidden(name: str) -> bool:
    return name in HIDDEN_NAMES or (name[:2] == "_i" and name[2:].isdigit()) or (name[:1] == "_" and name[1:].isdigit())


def _hide(thread: threading.Thread) -> None:
    """Keep pydevd from tracing, suspending or listing a kernel thread."""
    thread.pydev_do_not_trace = thread.is_pydev_daemon_thread = True


def _kernel_code_rules() -> list:
    """debugpy rules that keep the kernel's code out of the user's way, by
    module name and by directory (``python -m kernelkit.python`` runs as
    ``__main__``)."""
    rules = [{"module": m, "include": False} for m in KERNEL_MODULES]
    for m in KERNEL_MODULES:
        path = getattr(sys.modules.get(m), "__file__", None)
        if path:
            rules.append({"path": os.path.dirname(path), "include": False})
    return rules


def _is_kernel_thread(thread: threading.Thread) -> bool:
    """The kernel's own threads (I/O, control, output, heartbeat, ...), as
    opposed to the main shell, subshells and threads user code started."""
    return threads.is_machinery(thread)


class AdapterConnection:
    """One DAP connection to debugpy's adapter: requests out, each response
    matched to its request, events handed to ``on_event`` (on the reader thread)."""

    def __init__(self, host: str, port: int, on_event):
        self._sock = socket.create_connection((host, port), timeout=ADAPTER_TIMEOUT)
        self._sock.settimeout(None)
        self._on_event = on_event
        self._seq = itertools.count(1)
        self._send_lock = threading.Lock()
        self._pending: dict = {}  # our seq -> [threading.Event, response]
        self._events: dict = {}  # event name -> threading.Event (see wait_event)
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name=threads.name("debugpy-reader"), daemon=True)
        _hide(self._reader)
        self._reader.start()

    def send(self, command: str, arguments=None) -> list:
        """Send a request; returns the slot ``wait`` takes."""
        if self.closed.is_set():
            raise DebugError("the connection to debugpy is gone; send 'initialize' again")
        seq = next(self._seq)
        slot = [threading.Event(), None, command]
        self._pending[seq] = slot
        msg = {"seq": seq, "type": "request", "command": command}
        if arguments is not None:
            msg["arguments"] = arguments
        body = json.dumps(msg).encode("utf-8")
        try:
            with self._send_lock:
                self._sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        except OSError as e:
            self._pending.pop(seq, None)
            raise DebugError(f"the connection to debugpy is gone ({e})") from None
        return slot

    def wait(self, slot, timeout: float = ADAPTER_TIMEOUT) -> dict:
        done, _, command = slot
        if not done.wait(timeout):
            raise DebugError(f"debugpy did not answer {command!r} within {timeout:g} s")
        if slot[1] is None:
            raise DebugError(f"the connection to debugpy closed before it answered {command!r}")
        return slot[1]

    def request(self, command: str, arguments=None, timeout: float = ADAPTER_TIMEOUT) -> dict:
        return self.wait(self.send(command, arguments), timeout)

    def expect_event(self, name: str) -> threading.Event:
        """An Event set when the adapter next sends event ``name`` (call before
        the request that causes it)."""
        ev = self._events[name] = threading.Event()
        return ev

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._reader.join(5)

    def _read(self) -> None:
        f = self._sock.makefile("rb")
        try:
            while True:
                length = None
                while True:  # headers, up to an empty line
                    line = f.readline()
                    if not line:
                        return
                    line = line.strip()
                    if not line:
                        break
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length is None:
                    continue
                msg = json.loads(f.read(length))
                if msg.get("type") == "response":
                    slot = self._pending.pop(msg.get("request_seq"), None)
                    if slot is not None:
                        slot[1] = msg
                        slot[0].set()
                elif msg.get("type") == "event":
                    ev = self._events.pop(msg.get("event"), None)
                    if ev is not None:
                        ev.set()
                    try:
                        self._on_event(msg)
                    except Exception:
                        log.exception("debugger: handling the %r event failed", msg.get("event"))
        except (OSError, ValueError) as e:
            if not self.closed.is_set():
                log.warning("debugger: reading from debugpy failed: %s", e)
        finally:
            self.closed.set()
            for slot in list(self._pending.values()):
                slot[0].set()  # waiters see no response
            self._pending.clear()
            f.close()


def _expandable(value) -> bool:
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        return len(value) > 0
    try:
        return hasattr(value, "__dict__") and not callable(value) and not isinstance(value, type(sys))
    except Exception:  # a __getattr__ that raises something else
        return False


class VariableExplorer:
    """Variables of the user namespace while nothing is stopped (the panel
    JupyterLab shows beside a notebook): one level at a time, each expandable
    value under a reference of its own. pydevd numbers its references from 1;
    these start at 2**40, so the two never collide (and stay exact in
    JavaScript)."""

    FIRST_REFERENCE = 1 << 40

    MAX_CHILDREN = 300
    MAX_REPR = 500

    def __init__(self):
        self._refs: dict = {}  # reference -> (object whose children it names, its expression)
        self._next = itertools.count(self.FIRST_REFERENCE)

    def reset(self) -> None:
        self._refs.clear()

    def owns(self, reference) -> bool:
        return reference in self._refs

    def namespace(self, shell) -> list:
        hidden = shell.user_ns_hidden
        return [
            self._describe(name, value, name)
            for name, value in list(shell.user_ns.items())
            if not _is_hidden(name) and not (name in hidden and hidden[name] is value)
        ]

    def children(self, reference) -> list:
        parent, path = self._refs[reference]
        if isinstance(parent, dict):
            items = [(repr(k), v, f"{path}[{k!r}]") for k, v in parent.items()]
        elif isinstance(parent, (list, tuple)):
            items = [(str(i), v, f"{path}[{i}]") for i, v in enumerate(parent)]
        elif isinstance(parent, (set, frozenset)):
            items = [(str(i), v, None) for i, v in enumerate(parent)]
        else:
            items = [(k, v, f"{path}.{k}") for k, v in vars(parent).items() if not k.startswith("__")]
        return [self._describe(name, value, expr) for name, value, expr in itertools.islice(items, self.MAX_CHILDREN)]

    def _describe(self, name, value, evaluate_name) -> dict:
        try:
            text = repr(value)
        except Exception as e:  # a broken __repr__ must not break the panel
            text = f"<repr failed: {type(e).__name__}: {e}>"
        if len(text) > self.MAX_REPR:
            text = text[: self.MAX_REPR] + "..."
        reference = 0
        if _expandable(value):
            reference = next(self._next)
            self._refs[reference] = (value, evaluate_name)
        var = {"name": name, "value": text, "type": type(value).__name__, "variablesReference": reference}
        if evaluate_name:
            var["evaluateName"] = evaluate_name
        return var


class Debugger:
    """The debug_request handler of one kernel (see the module's docstring)."""

    def __init__(self, kernel):
        self.kernel = kernel
        self._lock = threading.RLock()  # one request at a time, whatever thread sends it
        self._endpoint = None  # the adapter's (host, port), once debugpy listens
        self._conn: AdapterConnection | None = None
        self.owner = None  # session id of the frontend that initialized
        self._capabilities = None  # the initialize response body
        self.attached = False
        self.breakpoints: dict = {}  # source path -> [{"line": n}, ...]
        self.stopped_threads: set = set()
        self.explorer = VariableExplorer()
        self._removed_transforms: list = []
        self._original_breakpointhook = None

    # ---------------------------------------------------------------- entry
    def handle(self, request: dict, session=None) -> dict:
        """The debug_reply content for one debug_request content."""
        seq = request.get("seq") if isinstance(request, dict) else None
        command = request.get("command") if isinstance(request, dict) else None
        try:
            if not isinstance(command, str) or not command:
                raise DebugError("a debug_request needs a 'command' (a DAP request: type, seq, command, arguments)")
            arguments = request.get("arguments")
            if arguments is None:
                arguments = {}
            if not isinstance(arguments, dict):
                raise DebugError(f"{command}: 'arguments' must be an object, got {type(arguments).__name__}")
            with self._lock:
                response = self._dispatch(command, arguments, session)
        except DebugError as e:
            log.info("debug_request %s refused: %s", command, e)
            return self._response(seq, command, success=False, message=str(e))
        except Exception as e:
            log.exception("debug_request %s failed", command)
            return self._response(seq, command, success=False, message=f"{type(e).__name__}: {e}")
        if response.get("type") == "response" and "request_seq" in response:  # from debugpy
            response.update(seq=seq, request_seq=seq, command=command)
            return response
        return self._response(seq, command, body=response)

    @staticmethod
    def _response(seq, command, success=True, body=None, message=None) -> dict:
        r = {"type": "response", "seq": seq, "request_seq": seq, "command": command, "success": success, "body": body or {}}
        if message is not None:
            r["message"] = message
        return r

    def _dispatch(self, command: str, args: dict, session) -> dict:
        if self._conn is not None and self._conn.closed.is_set():
            log.warning("debugger: the connection to debugpy closed; the debugger is detached")
            self._reset()
        if command == "initialize":
            return self.initialize(args, session)
        if command in _STATIC:
            return getattr(self, "on_" + command)(args)
        if command == "variables" and self.explorer.owns(args.get("variablesReference")):
            return {"variables": self.explorer.children(args["variablesReference"])}
        if self._conn is None:
            raise DebugError(f"{command}: the debugger is not started (send 'initialize' and 'attach' first)")
        if command == "attach":
            return self.attach(args, session)
        if command == "disconnect":
            return self.disconnect(args)
        if command == "configurationDone":
            return {}  # sent to debugpy by attach already
        if command == "setBreakpoints":
            return self.set_breakpoints(args)
        if command == "variables":
            return self._filtered_variables(self._forward("variables", args))
        if command == "copyToGlobals":
            return self.copy_to_globals(args)
        response = self._forward(command, args)
        if command in _RESUMING:
            self._resumed(args, response)
        return response

    def _resumed(self, args: dict, response: dict) -> None:
        # debugpy sends no 'continued' event for what the client resumed
        if not response.get("success"):
            return
        if (response.get("body") or {}).get("allThreadsContinued"):
            self.stopped_threads.clear()
        else:
            self.stopped_threads.discard(args.get("threadId"))

    def _forward(self, command: str, args: dict) -> dict:
        return self._conn.request(command, args)

    # ------------------------------------------------------------ lifecycle
    def initialize(self, args: dict, session) -> dict:
        if self._conn is not None:
            if session != self.owner:
                raise DebugError(
                    f"initialize: the debugger is in use by another client (session {self.owner}); "
                    "it must send 'disconnect' first"
                )
            return self._capabilities  # the same client asking again
        if self._endpoint is None:
            self._endpoint = self._listen()
        conn = AdapterConnection(*self._endpoint, self._on_event)
        try:
            response = conn.request("initialize", args)
        except Exception:
            conn.close()
            raise
        if not response.get("success"):
            conn.close()
            return response
        self._conn, self.owner = conn, session
        self._capabilities = response.get("body") or {}
        return response

    def _listen(self):
        """Start pydevd here and debugpy's adapter beside it (once per process)."""
        # the kernel's threads must never be traced, hence never suspended
        # (nor listed among the user's threads)
        for t in [*threading.enumerate(), threading.current_thread()]:
            if _is_kernel_thread(t):
                _hide(t)
        # debugpy warns on stderr (the user's cell output) about frozen stdlib
        # modules; they only matter for breakpoints in the stdlib itself
        self.kernel.patches.debugpy_environment()
        try:
            import debugpy
        except ImportError:
            raise DebugError(
                "the debugger needs debugpy: pip install 'kernelkit[debugger]' (or debugpy) and restart the kernel"
            ) from None
        self._original_breakpointhook = sys.__breakpointhook__
        # child processes of user code are not debugged: debugpy would patch
        # every subprocess a cell starts
        debugpy.configure(subProcess=False)
        started = time.monotonic()
        endpoint = debugpy.listen(("127.0.0.1", 0))
        # importing pydevd replaced breakpoint(): Python's own again (ours
        # while a client is attached)
        self.kernel.patches.breakpointhook(self._original_breakpointhook)
        log.info("debugger: debugpy listening on %s:%s (%.0f ms)", *endpoint, 1000 * (time.monotonic() - started))
        return endpoint

    def attach(self, args: dict, session) -> dict:
        if session != self.owner:
            raise DebugError(f"attach: the debugger is in use by another client (session {self.owner})")
        if self.attached:
            raise DebugError("attach: already attached (send 'disconnect' first)")
        args = dict(args)
        host, port = self._endpoint
        args["connect"] = {"host": host, "port": port}
        # a breakpoint stops its own thread only: subshells keep running
        args.setdefault("stopAllThreadsOnSuspend", False)
        args.setdefault("steppingResumesAllThreads", False)
        args.setdefault("justMyCode", True)
        args["rules"] = list(args.get("rules") or []) + _kernel_code_rules()
        conn = self._conn
        # debugpy answers attach only after configurationDone, which it asks
        # for with the 'initialized' event; JupyterLab sends its own
        # configurationDone later (answered here)
        initialized = conn.expect_event("initialized")
        pending = conn.send("attach", args)
        if not initialized.wait(ADAPTER_TIMEOUT):
            raise DebugError(f"attach: debugpy did not get ready within {ADAPTER_TIMEOUT:g} s")
        conn.request("configurationDone", {})
        response = conn.wait(pending)
        if response.get("success"):
            self.attached = True
            self._keep_leading_empty_lines(True)
            self.kernel.patches.breakpointhook(self._breakpointhook)
        return response

    def disconnect(self, args: dict) -> dict:
        conn = self._conn
        try:
            response = conn.request("disconnect", {"restart": False, "terminateDebuggee": False, **args})
        except DebugError as e:
            log.warning("debugger: disconnect: %s", e)
            response = {}
        self._reset()
        return response

    def _reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.closed.set()
            conn.close()
        self.owner = None
        self._capabilities = None
        self.attached = False
        self.breakpoints = {}
        self.stopped_threads = set()
        self._keep_leading_empty_lines(False)
        if self._original_breakpointhook is not None:
            # (not ours: a frame of ours between breakpoint() and pdb made pdb
            # stop in it, one frame too deep)
            self.kernel.patches.breakpointhook(self._original_breakpointhook)

    def close(self) -> None:
        """The kernel shuts down: let stopped threads go, leave debugpy, remove
        the cell files dumpCell wrote."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.request("disconnect", {"restart": False, "terminateDebuggee": False}, timeout=5)
                except DebugError:
                    pass
                self._reset()
            if self._endpoint is not None:
                # pydevd's threads would hold the exit up by about a second
                # (its atexit hook waits for them): let them go now
                from pydevd import get_global_debugger

                py_db = get_global_debugger()
                if py_db is not None:
                    py_db.dispose_and_kill_all_pydevd_threads(wait=False)
        shutil.rmtree(cell_file_name.prefix, ignore_errors=True)

    def before_cell(self) -> None:
        """A cell is about to run on this thread: while a client is attached it
        must be traced. An exception unwinding through the tracer can leave
        the thread untraced (seen after an interrupt while stopped, with rich
        installed), and breakpoints would no longer hit there."""
        if self.attached and sys.gettrace() is None:
            import debugpy

            debugpy.trace_this_thread(True)

    def resume_for_interrupt(self) -> None:
        """Before an interrupt: resume stopped threads, so the KeyboardInterrupt
        reaches the user's code instead of the debugger's wait loop."""
        with self._lock:
            if self._conn is None or not self.stopped_threads:
                return
            args = {"threadId": next(iter(self.stopped_threads))}
            try:
                self._resumed(args, self._conn.request("continue", args, timeout=5))
            except DebugError as e:
                log.warning("debugger: could not resume before the interrupt: %s", e)

    def _keep_leading_empty_lines(self, keep: bool) -> None:
        """While debugging, cells keep their leading empty lines, so the lines
        of the code that runs are those of the cell the frontend shows."""
        # the shell first: it is made (and IPython imported) under the kernel's
        # lock; importing IPython here while the main thread makes the shell
        # failed as a circular import in the main thread's first cell
        cleanup = self.kernel.shell.input_transformer_manager.cleanup_transforms
        from IPython.core.inputtransformer2 import leading_empty_lines

        if keep and leading_empty_lines in cleanup:
            cleanup.remove(leading_empty_lines)
            self._removed_transforms.append(leading_empty_lines)
        elif not keep:
            while self._removed_transforms:
                cleanup.insert(0, self._removed_transforms.pop())

    def _breakpointhook(self, *args, **kwargs):
        """``breakpoint()`` while a client is attached: the visual debugger.
        (Installed only then; otherwise Python's own hook, pdb.)"""
        if self.attached:
            import pydevd

            pydevd.settrace(suspend=True, trace_only_current_thread=True, patch_multiprocessing=False, stop_at_frame=sys._getframe(1))
            return None
        return self._original_breakpointhook(*args, **kwargs)

    # --------------------------------------------------------------- events
    def _on_event(self, event: dict) -> None:
        name, body = event.get("event"), event.get("body") or {}
        if name == "stopped":
            if body.get("allThreadsStopped"):
                # which threads: ask on another thread (this one reads the answer)
                asker = threading.Thread(target=self._stopped_all, args=(event,), name=threads.name("debugger-threads"), daemon=True)
                _hide(asker)
                asker.start()
                return
            self.stopped_threads.add(body.get("threadId"))
        elif name == "continued":
            if body.get("allThreadsContinued", True):
                self.stopped_threads.clear()
            else:
                self.stopped_threads.discard(body.get("threadId"))
        elif name == "thread" and body.get("reason") == "exited":
            self.stopped_threads.discard(body.get("threadId"))
        self.kernel.publish("debug_event", event)

    def _stopped_all(self, event: dict) -> None:
        conn = self._conn
        try:
            threads = conn.request("threads", {}).get("body", {}).get("threads", []) if conn else []
        except DebugError:
            threads = []
        self.stopped_threads.update(t["id"] for t in threads)
        self.kernel.publish("debug_event", event)

    # ----------------------------------------------------- Jupyter's requests
    def on_debugInfo(self, args: dict) -> dict:
        return {
            "isStarted": self.attached,
            "hashMethod": HASH_METHOD,
            "hashSeed": HASH_SEED,
            "tmpFilePrefix": cell_file_name.prefix,
            "tmpFileSuffix": SUFFIX,
            "breakpoints": [{"source": path, "breakpoints": bps} for path, bps in self.breakpoints.items()],
            "stoppedThreads": sorted(self.stopped_threads),
            "richRendering": True,
            "exceptionPaths": EXCEPTION_PATHS,
            "copyToGlobals": True,
        }

    def on_dumpCell(self, args: dict) -> dict:
        code = args.get("code")
        if not isinstance(code, str):
            raise DebugError("dumpCell: 'code' must be a string")
        path = cell_file_name(code)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(code)
        return {"sourcePath": path}

    def on_source(self, args: dict) -> dict:
        source = args.get("source")
        path = source.get("path") if isinstance(source, dict) else None
        if not isinstance(path, str) or not path:
            raise DebugError("source: 'source.path' must be a file path")
        try:
            with open(path, encoding="utf-8") as f:
                return {"content": f.read()}
        except OSError:
            lines = linecache.getlines(path)  # a cell that was run but never dumped
            if lines:
                return {"content": "".join(lines)}
            raise DebugError(f"source: no source for {path!r}") from None

    def on_modules(self, args: dict) -> dict:
        mods = list(sys.modules.values())
        start = args.get("startModule") or 0
        count = args.get("moduleCount") or len(mods)
        if not isinstance(start, int) or not isinstance(count, int):
            raise DebugError("modules: 'startModule' and 'moduleCount' must be integers")
        listed = []
        for i, module in enumerate(mods[start : start + count], start):
            path = getattr(getattr(module, "__spec__", None), "origin", None)
            if isinstance(path, str) and path.endswith(".py"):
                listed.append({"id": i, "name": module.__name__, "path": path})
        return {"modules": listed, "totalModules": len(mods)}

    def on_inspectVariables(self, args: dict) -> dict:
        self.explorer.reset()
        return {"variables": self.explorer.namespace(self.kernel.shell)}

    def on_richInspectVariables(self, args: dict) -> dict:
        name = args.get("variableName")
        if not isinstance(name, str) or not name.isidentifier():
            raise DebugError(f"richInspectVariables: 'variableName' must be a Python name, got {name!r}")
        frame = args.get("frameId")
        if frame is None or not self.stopped_threads or self._conn is None:
            result = self.kernel.shell.user_expressions({name: name})[name]
            if result.get("status") != "ok":
                raise DebugError(f"richInspectVariables: {result.get('ename')}: {result.get('evalue')}")
            data, metadata = result.get("data", {}), result.get("metadata", {})
        else:
            # evaluated in the stopped frame; 'clipboard' gives the whole repr
            expression = f"__import__('IPython').get_ipython().display_formatter.format({name})"
            reply = self._forward("evaluate", {"expression": expression, "frameId": frame, "context": "clipboard"})
            if not reply.get("success"):
                raise DebugError(f"richInspectVariables: {reply.get('message') or 'evaluation failed'}")
            data, metadata = ast.literal_eval(reply["body"]["result"])
        return {"data": data, "metadata": {k: v for k, v in metadata.items() if k in data}}

    def set_breakpoints(self, args: dict) -> dict:
        source = args.get("source")
        path = source.get("path") if isinstance(source, dict) else None
        if not isinstance(path, str) or not path:
            raise DebugError("setBreakpoints: 'source.path' must be a file path")
        response = self._forward("setBreakpoints", args)
        if response.get("success"):
            # debugpy may move a breakpoint to the next line that has code
            lines = [{"line": bp["line"]} for bp in response.get("body", {}).get("breakpoints", []) if "line" in bp]
            if lines:
                self.breakpoints[path] = lines
            else:
                self.breakpoints.pop(path, None)
        return response

    def _filtered_variables(self, response: dict) -> dict:
        body = response.get("body")
        if response.get("success") and isinstance(body, dict):
            body["variables"] = [v for v in body.get("variables", []) if not _is_hidden(v.get("name", ""))]
        return response

    def copy_to_globals(self, args: dict) -> dict:
        src, dst, frame = args.get("srcVariableName"), args.get("dstVariableName"), args.get("srcFrameId")
        if not (isinstance(src, str) and src.isidentifier() and isinstance(dst, str) and dst.isidentifier()):
            raise DebugError("copyToGlobals: 'srcVariableName' and 'dstVariableName' must be Python names")
        if not isinstance(frame, int):
            raise DebugError("copyToGlobals: 'srcFrameId' must be a frame id from stackTrace")
        return self._forward("setExpression", {"expression": f"globals()[{dst!r}]", "value": src, "frameId": frame})
