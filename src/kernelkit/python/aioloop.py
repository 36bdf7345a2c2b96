"""The Python kernel's asyncio event loop: it runs between cells and during
top-level ``await``, as ipykernel's does.

- Between cells the main thread runs it (``Kernel.idle``, the core's hook)
  until the main shell's waker is readable: a request stops it at once.
- During a cell on the main thread it is marked as the running loop
  (``asyncio._set_running_loop``), though it does not run: ``asyncio.create_task``,
  ``ensure_future``, ``get_running_loop`` and tornado's ``IOLoop.current()``
  give this loop, and what they schedule runs once the cell ends.
- A cell with top-level ``await`` runs on it (IPython's ``loop_runner``), so
  other tasks make progress meanwhile. An interrupt while it awaits ends
  the cell (KeyboardInterrupt); other tasks keep running.
- ``asyncio.run()`` in a cell runs its coroutine on a loop of its own, as in
  a script (this kernel's loop pauses meanwhile); see patches.py.
- Replaced (``asyncio.set_event_loop``) or closed (``loop.close()``) by user
  code: the next cell says so on stderr and a new loop takes over.
- At stop, tasks still pending are cancelled and given a moment to end,
  then the loop is closed.
- Made when asyncio is first imported (by a cell, a library, IPython's
  configuration, or a top-level ``await``; at start if it already is):
  importing asyncio costs a kernel that never uses it about 3 MB (asyncio,
  ssl and libssl) and 15-25 ms of its launch. From that import on, everything
  above holds; until then there is nothing a loop could run. The main
  thread makes the loop its event loop as the import returns, or, if
  another thread imported asyncio, as soon as it is idle or starts a cell.
"""

import contextvars
import functools
import logging
import signal
import sys
import threading
import time

log = logging.getLogger("kernelkit.python")

# the request of the cell that made a task (asyncio copies the context into
# every task and callback): a task's output goes to the cell that started it
CELL = contextvars.ContextVar("kernelkit_cell", default=None)

# how long pending tasks get to end after being cancelled at stop
CANCEL_GRACE = 1.0
# passes over the loop's due callbacks after a cell (a task that never
# waits for anything would otherwise hold the next request back), and for
# how long at most: they run before the cell's reply, so a background task
# that computes between its awaits must not hold every reply back (100
# passes of a 20 ms step delayed each reply by 2 s)
AFTER_CELL_PASSES = 100
AFTER_CELL_SECONDS = 0.005


class KernelLoop:
    def __init__(self):
        self.loop = None  # None until asyncio is imported (adopt)
        self._current_on_main = False  # the main thread's event loop is self.loop
        self._in_cell = False  # a cell runs on the main thread (the loop counts as running)
        self.running = False  # the loop runs now (idle or a cell's await): tasks may write
        self._idling = False
        self._parked = False  # idle() returned False: the main thread waits on the queue
        self._wake = None
        self.last_cell = None  # the main shell's last execute request (output of GUI callbacks)
        self._pump = None  # a GUI toolkit's pass over its pending events (guiloops.py)
        self._pump_period = 0.0
        self._pump_handle = None

    # -- the loop ----------------------------------------------------------------
    def get(self):
        """The kernel's loop (an asyncio event loop); a new one if there is
        none or user code closed it (importing asyncio first)."""
        import asyncio  # noqa: F401 (made by adopt, if this import is the first)

        loop = self.loop
        if loop is None or loop.is_closed():
            if loop is not None:
                log.warning("the kernel's asyncio loop was closed by user code: a new one replaces it (its tasks are gone)")
            self._current_on_main = False
            loop = self.loop = _kernel_event_loop_class()(self._nudge)
            loop.set_exception_handler(_exception_handler)
            if self._wake is not None:
                loop.add_reader(self._wake.fileno(), self._woken)
            if self._pump is not None:
                self._schedule_pump()
        return loop

    def adopt(self) -> None:
        """asyncio has been imported (on any thread): make the loop, and on
        the main thread make it the event loop (and, during a cell, the
        running one). Another thread's import wakes the main thread, which
        does that when idle (``idle``) or at its next cell."""
        self.get()
        if threading.current_thread() is threading.main_thread():
            self._make_current()
            if self._in_cell:
                self.mark_running()
        else:
            self._nudge()

    def _make_current(self) -> None:
        """(main thread) The loop is the main thread's event loop."""
        if not self._current_on_main:
            import asyncio

            asyncio.set_event_loop(self.loop)
            self._current_on_main = True

    def set_pump(self, pump, period: float = 0.0) -> None:
        """``pump()`` (processes a GUI toolkit's pending events) runs every
        ``period`` seconds while the loop runs; None: no more."""
        if self._pump_handle is not None:
            self._pump_handle.cancel()
            self._pump_handle = None
        self._pump, self._pump_period = pump, period
        if pump is not None:
            self._schedule_pump()

    def _schedule_pump(self) -> None:
        # (an empty context: what the toolkit's callbacks print goes to the
        # last cell, not to the cell that ran %gui; kernel.py)
        self._pump_handle = self.get().call_later(self._pump_period, self._run_pump, context=contextvars.Context())

    def _run_pump(self) -> None:
        try:
            self._pump()
        except Exception:
            log.exception("the GUI event loop failed; it is turned off (%gui to start it again)")
            self._pump = self._pump_handle = None
            return
        self._schedule_pump()

    def after_cell(self) -> str | None:
        """After a cell on the main thread: what it scheduled to run at once
        runs until it waits for something (I/O, a timer, a future), at most
        ``AFTER_CELL_PASSES`` passes, so a task made by the cell has done its
        quick steps when the next request runs (the next request may already
        be queued: the lifecycle then takes it without idling); and what the
        cell did to the loop that the user should hear about (None: nothing)."""
        loop = self.loop
        if loop is None:  # asyncio is not imported: nothing was scheduled
            return None
        import asyncio

        if loop.is_closed():
            self.get()
            self._make_current()
            return "the kernel's asyncio loop was closed: a new one replaces it; tasks scheduled on the old one will not run"
        self._make_current()  # (if another thread imported asyncio during the cell)
        passes = 0
        deadline = time.monotonic() + AFTER_CELL_SECONDS
        while getattr(loop, "_ready", passes == 0) and passes < AFTER_CELL_PASSES and (passes == 0 or time.monotonic() < deadline):  # (asyncio's callbacks due now)
            passes += 1
            loop.call_soon(loop.stop)  # (one pass over what is due, then back here)
            self.running = True
            try:
                loop.run_forever()
            finally:
                self.running = False
        try:
            current = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:  # (set_event_loop(None))
            current = None
        if current is not loop:
            asyncio.set_event_loop(loop)
            return (
                "asyncio.set_event_loop() does not replace the kernel's loop: cells and tasks keep running on it "
                "(a loop of your own runs only while you run it)"
            )
        return None

    # -- between cells (Kernel.idle) ------------------------------------------------
    def idle(self, wake) -> bool | None:
        if self.loop is None:
            # no asyncio yet: wait on the request queue; a thread that
            # imports asyncio nudges this thread back here (adopt)
            self._wake = wake
            self._parked = True
            return False
        if self._wake is not wake:
            self._wake = wake
            self.get().add_reader(wake.fileno(), self._woken)
        loop = self.get()
        self._make_current()
        # (parked before the look, so a thread's call_soon_threadsafe either
        # is seen by the look or nudges)
        self._parked = True
        if _has_nothing_to_do(loop):
            # the main thread waits on the request queue (the fastest
            # wake-up) until a request, or a thread's call_soon_threadsafe
            # nudges it back here
            return False
        self._parked = False
        self._idling = self.running = True
        try:
            loop.run_forever()
        finally:
            self._idling = self.running = False

    def _nudge(self) -> None:
        """(any thread) The loop was given work: if the main thread waits on
        the request queue instead of running the loop, bring it back."""
        if self._parked and self._wake is not None:
            self._parked = False
            self._wake.nudge()

    def _woken(self) -> None:
        self._wake.clear()
        if self._idling:  # (a late wake-up during a cell's await is not for it)
            self.loop.stop()

    # -- cells ----------------------------------------------------------------------
    def mark_running(self) -> None:
        """(main thread) The loop counts as running on this thread (a cell
        starts), once there is one: importing asyncio in the cell marks it."""
        self._in_cell = True
        if self.loop is not None:
            import asyncio

            loop = self.get()
            self._make_current()
            asyncio._set_running_loop(loop)

    def unmark_running(self) -> None:
        self._in_cell = False
        if self.loop is not None:
            import asyncio

            asyncio._set_running_loop(None)

    def loop_is_only_marked(self) -> bool:
        """This thread's running loop is the kernel's, marked by a cell, not running."""
        import asyncio

        loop = asyncio._get_running_loop()
        return loop is not None and loop is self.loop and not loop.is_running()

    def run_cell_coroutine(self, coro):
        """IPython's ``loop_runner``: a cell with top-level await, on this loop."""
        import asyncio

        loop = self.get()
        asyncio._set_running_loop(None)  # (the cell's mark: run_until_complete refuses it)
        task = loop.create_task(coro)
        kernels_handler = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):
            # an interrupt ends the cell, never a background task: raised
            # only in the cell's own code, else the cell's task is cancelled
            # (shown as KeyboardInterrupt, shell.py), as asyncio.run does
            if asyncio.current_task(loop) is task and callable(kernels_handler):
                return kernels_handler(signum, frame)
            if not task.done():
                task.kernelkit_interrupted = True
                task.cancel()
                loop.call_soon_threadsafe(_nothing)  # (the loop may wait in select)

        signal.signal(signal.SIGINT, on_sigint)
        self.running = True
        try:
            try:
                return loop.run_until_complete(task)
            except KeyboardInterrupt:
                if task.done():
                    raise
                # (defensive: raised in the loop's own code) end the cell there
                task.kernelkit_interrupted = True
                task.cancel()
                return loop.run_until_complete(task)
        finally:
            self.running = False
            if signal.getsignal(signal.SIGINT) is on_sigint:
                signal.signal(signal.SIGINT, kernels_handler)
            asyncio._set_running_loop(loop)

    # -- stop -----------------------------------------------------------------------
    def close(self) -> None:
        """Cancel what is pending, let it end (briefly), close the loop."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        import asyncio

        asyncio._set_running_loop(None)
        try:
            if self._wake is not None:
                loop.remove_reader(self._wake.fileno())
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=CANCEL_GRACE))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except BaseException as e:  # (stop must finish: the sockets close next)
            log.warning("closing the asyncio loop: %s: %s", type(e).__name__, e)
        finally:
            for task in asyncio.all_tasks(loop):
                task._log_destroy_pending = False  # (said above; no noise at exit)
            loop.close()


@functools.cache
def _kernel_event_loop_class():
    """(Defined once asyncio is imported.)"""
    import asyncio

    class _KernelEventLoop(asyncio.SelectorEventLoop):
        """asyncio's loop, which tells the kernel when another thread gives it
        work (``call_soon_threadsafe``: also run_coroutine_threadsafe, executor
        results): the main thread may be waiting on the request queue instead
        of in the loop (``_has_nothing_to_do``)."""

        def __init__(self, nudge):
            super().__init__()
            self._kernel_nudge = nudge

        def call_soon_threadsafe(self, callback, *args, context=None):
            handle = super().call_soon_threadsafe(callback, *args, context=context)
            self._kernel_nudge()
            return handle

    return _KernelEventLoop


def _nothing() -> None:
    pass


def _has_nothing_to_do(loop) -> bool:
    """Nothing due, no timer, no file watched but the loop's own wake-up pipe
    and the kernel's waker: only code on the main thread (a request) or a
    thread's call_soon_threadsafe (a nudge) can give it work. (asyncio's
    internals, read defensively: if they change, the loop just runs.)"""
    try:
        return not loop._ready and not loop._scheduled and not loop._signal_handlers and len(loop._selector.get_map()) <= 2
    except (AttributeError, TypeError):
        return False


def _exception_handler(loop, context) -> None:
    """asyncio's report (a task that raised, a failing callback) in the
    context of what failed: it goes to the cell that started it."""
    source = context.get("task") or context.get("future") or context.get("handle")
    ctx = getattr(source, "_context", None)
    if isinstance(ctx, contextvars.Context):
        ctx.run(loop.default_exception_handler, context)
    else:
        loop.default_exception_handler(context)
    try:
        sys.stderr.flush()
    except Exception:
        pass
