"""One-shot import hooks: a function run once, as a module is first imported.

(Plain classes, not importlib.abc's: the import system needs only the
methods, and importlib.abc loads importlib.resources with it.)
"""

import importlib.util
import sys


class ImportHooks:
    """A finder for sys.meta_path that runs a function once, as a module is
    first imported: before its code runs (``before``) or after (``after``).
    Looks at nothing but the names it waits for, and leaves sys.meta_path
    when it has none left."""

    def __init__(self, before: dict, after: dict):
        self._before = dict(before)
        self._after = dict(after)
        self._busy = set()  # names being looked up below (which asks us again)

    def find_spec(self, name, path=None, target=None):
        if name in self._busy or (name not in self._before and name not in self._after):
            return None
        before, after = self._before.pop(name, None), self._after.pop(name, None)
        if not self._before and not self._after:
            sys.meta_path.remove(self)
        self._busy.add(name)
        try:
            if before is not None:
                before()
            spec = importlib.util.find_spec(name)  # the other finders'
        finally:
            self._busy.discard(name)
        if spec is not None and spec.loader is not None and after is not None:
            spec.loader = _RunAfter(spec.loader, after)
        return spec


class _RunAfter:
    """A module's loader, then ``then()``."""

    def __init__(self, loader, then):
        self._loader = loader
        self._then = then

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._then()

    def __getattr__(self, name):
        # the module keeps this as __loader__: get_source, is_package ... are the real loader's
        return getattr(self._loader, name)
