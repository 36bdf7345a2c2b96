"""The file name each cell is compiled under, and the rule that makes it.

Every cell is compiled under a real path: ``<tmp>/ipykernel_<pid>/<hash>.py``,
``hash`` being MurmurHash2 (32 bits) of the cell's UTF-8 text with the seed
below. The debugger reports the rule (``debugInfo``: hashMethod, hashSeed,
tmpFilePrefix, tmpFileSuffix) so that JupyterLab computes the same name from
a cell's text, sets breakpoints on it, and finds the cell again in a stack
trace; ``dumpCell`` writes the file. The name is the same whether or not a
debugger is attached, so breakpoints also hit in functions defined before
it was. Tracebacks still say ``Cell In[N]`` (IPython maps the name back).

As in ipykernel, the environment variable ``IPYKERNEL_CELL_NAME`` (read at
start) replaces that name for every cell: test suites set it so that
tracebacks do not depend on a random path (nbclient's compares them).
"""

import os
import sys
import tempfile
from array import array

from IPython.core.compilerop import CachingCompiler

HASH_METHOD = "Murmur2"
HASH_SEED = 0x6B6B6974  # any 32-bit seed works: the frontend is told which
SUFFIX = ".py"

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes, seed: int) -> int:
    """MurmurHash2, 32-bit (Austin Appleby's), as JupyterLab's debugger
    computes it over a cell's UTF-8 bytes."""
    n = len(data)
    h = (seed ^ n) & _MASK
    whole = n & ~3
    words = array("I", data[:whole])  # 4-byte little-endian blocks
    if sys.byteorder != "little":
        words.byteswap()
    for k in words:  # (masking once per step is enough: xor is bitwise)
        k = k * _M & _MASK
        h = (h * _M ^ (k ^ k >> 24) * _M) & _MASK
    rest = n - whole
    if rest:
        h ^= int.from_bytes(data[whole:], "little")
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def prefix() -> str:
    """The directory cell files live in, with a trailing separator (this
    process's own: two kernels never share a name). Named as ipykernel names
    it: JupyterLab's debugger (4.6) names a path as a cell ("Cell [3]:2" in
    its call stack and breakpoints panels) only when the path contains
    ``ipykernel_``; debugInfo reports this prefix as it is."""
    return os.path.join(tempfile.gettempdir(), f"ipykernel_{os.getpid()}") + os.sep


class CellNames:
    """Cell text -> file name, remembering recent ones (a cell run again, and
    the debugger's dumpCell of a cell just run, cost one dict look-up)."""

    KEEP = 64

    def __init__(self):
        self.prefix = prefix()
        self._names: dict = {}
        self._fixed = os.environ.get("IPYKERNEL_CELL_NAME")

    def __call__(self, code: str) -> str:
        if self._fixed is not None:
            return self._fixed
        name = self._names.get(code)
        if name is None:
            if len(self._names) >= self.KEEP:
                self._names.clear()  # (one call: subshells compile concurrently)
            name = self._names[code] = f"{self.prefix}{murmur2(code.encode('utf-8', 'surrogatepass'), HASH_SEED)}{SUFFIX}"
        return name


cell_file_name = CellNames()


class CellFileCompiler(CachingCompiler):
    """IPython's compiler, naming each cell by its file (see above)."""

    def get_code_name(self, raw_code, transformed_code, number):
        return cell_file_name(raw_code)
