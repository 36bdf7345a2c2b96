"""The Python kernel's process-wide patches (python/patches.py): each one
undone puts back exactly what was there, newest first."""

import builtins
import getpass
import os
import sys
import threading

from kernelkit.python.patches import Patches


def test_undo_puts_back_every_global_replaced(monkeypatch):
    monkeypatch.delenv("PLOTLY_RENDERER", raising=False)
    monkeypatch.setenv("CLICOLOR", "0")
    monkeypatch.setenv("MPLBACKEND", "agg")
    before = {
        "displayhook": sys.displayhook,
        "breakpointhook": sys.breakpointhook, "input": builtins.input, "getpass": getpass.getpass,
        "start": threading.Thread.start, "meta_path": list(sys.meta_path), "pager": os.environ.get("PAGER"),
    }
    patches = Patches()
    patches.input(lambda prompt, password=False: f"asked {prompt} {password}")
    patches.thread_parents(lambda: "the cell", "_parent")
    patches.displayhook(print)
    patches.breakpointhook(print)
    patches.notebook_environment()
    patches.module_alias("kernelkit_test_alias", sys)
    finder = type("Finder", (), {"find_spec": staticmethod(lambda *a: None)})()
    patches.import_hooks(finder)

    assert builtins.input("x? ") == "asked x?  False" and getpass.getpass("p") == "asked p True"
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    assert t._parent == "the cell"
    assert os.environ["PLOTLY_RENDERER"] == "plotly_mimetype" and os.environ["MPLBACKEND"] == "agg"  # set only if unset
    assert os.environ["CLICOLOR"] == "1"  # set whatever was there, as ipykernel does
    assert sys.modules["kernelkit_test_alias"] is sys and sys.meta_path[0] is finder

    patches.undo()
    assert (sys.displayhook, sys.breakpointhook) == (before["displayhook"], before["breakpointhook"])
    assert builtins.input is before["input"] and getpass.getpass is before["getpass"]
    assert threading.Thread.start is before["start"]
    assert sys.meta_path == before["meta_path"] and "kernelkit_test_alias" not in sys.modules
    assert "PLOTLY_RENDERER" not in os.environ and os.environ["CLICOLOR"] == "0" and os.environ["MPLBACKEND"] == "agg"
    assert os.environ.get("PAGER") == before["pager"]
