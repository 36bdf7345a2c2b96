"""``%gui NAME`` (and ``%matplotlib tk`` / ``qt``): the toolkit's events are
processed on the kernel's asyncio loop (aioloop.py), so windows stay
responsive between cells and during top-level ``await``; there is no second
idle path (the core's ``Kernel.idle`` runs that one loop).

A toolkit's pending events are processed every ``PERIOD`` seconds by a
callback on the asyncio loop. Requests do not wait for it: they wake the
loop through the core's waker at once. ``%gui asyncio`` and ``%gui`` (off)
stop processing toolkit events; the asyncio loop always runs. A loop that
cannot be had here raises ``GuiUnavailable`` with one clear sentence, which
IPython's magic shows in the cell.
"""

import logging
import os
import sys

log = logging.getLogger("kernelkit.python")

PERIOD = 0.02  # seconds between two passes over a toolkit's pending events
_MOST_EVENTS = 1000  # per pass, so a toolkit that keeps posting cannot hold the loop

# the Qt bindings each %gui name accepts, in the order they are tried
_QT_BINDINGS = {
    "qt": ("PySide6", "PyQt6", "PyQt5", "PySide2"),
    "qt6": ("PySide6", "PyQt6"),
    "qt5": ("PyQt5", "PySide2"),
    "qt4": ("PyQt5", "PySide2"),  # (IPython maps qt4 to qt5)
}


class GuiUnavailable(RuntimeError):
    """The GUI event loop asked for cannot run in this kernel (shown in the cell)."""


class GuiLoops:
    """The toolkit whose events the kernel's asyncio loop processes."""

    def __init__(self, kernel_loop):
        self._loop = kernel_loop
        self.name = None  # the %gui name in use (None: asyncio only)

    def enable(self, gui) -> None:
        """IPython's ``enable_gui(gui)``: start processing ``gui``'s events, or stop (None, "asyncio", "inline")."""
        if gui in (None, "", "asyncio", "inline"):
            self._loop.set_pump(None)
            self.name = None
            return
        pump = _pump_for(gui)
        self._loop.set_pump(pump, PERIOD)
        self.name = gui


def _pump_for(gui):
    """A callable that processes ``gui``'s pending events, or GuiUnavailable."""
    if gui == "tk":
        return _tk_pump()
    if gui in _QT_BINDINGS:
        return _qt_pump(gui)
    try:
        from IPython.terminal.pt_inputhooks import backends as known
    except ImportError:  # (IPython moved it: the name is just not one this kernel runs)
        known = ()
    if gui in known:
        if gui == "osx" and sys.platform != "darwin":
            raise GuiUnavailable("%gui osx: the Cocoa event loop exists only on macOS")
        raise GuiUnavailable(f"%gui {gui}: this kernel runs the tk, qt (qt5, qt6) and asyncio event loops, not {gui}")
    raise GuiUnavailable(f"%gui {gui}: no such GUI event loop (IPython knows: {', '.join(known) or 'tk, qt, asyncio'})")


def _tk_pump():
    try:
        import _tkinter
        import tkinter
    except ImportError as e:
        raise GuiUnavailable(f"%gui tk: tkinter does not import ({e})") from None
    try:
        # a hidden root, as ipykernel makes: Tk needs one to process events,
        # and making it says now whether there is a display
        root = tkinter.Tk()
    except tkinter.TclError as e:
        raise GuiUnavailable(f"%gui tk: Tk cannot start ({e})") from None
    root.withdraw()
    one_event = root.tk.dooneevent
    flags = _tkinter.ALL_EVENTS | _tkinter.DONT_WAIT

    def pump():
        for _ in range(_MOST_EVENTS):
            if not one_event(flags):
                return

    return pump


def _qt_pump(gui):
    tried = []
    for binding in _QT_BINDINGS[gui]:
        try:
            widgets = __import__(f"{binding}.QtWidgets", fromlist=["QApplication"])
            break
        except ImportError as e:
            tried.append(f"{binding}: {e}")
    else:
        raise GuiUnavailable(f"%gui {gui}: no Qt binding imports ({'; '.join(tried)})")
    app = widgets.QApplication.instance()
    if app is None:
        if sys.platform.startswith("linux") and not any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
            # (Qt aborts the whole process when it finds no display)
            raise GuiUnavailable(f"%gui {gui}: no display (DISPLAY is not set; QT_QPA_PLATFORM=offscreen runs Qt without one)")
        app = widgets.QApplication([sys.argv[0] if sys.argv and sys.argv[0] else "kernelkit"])
    return app.processEvents
