"""The Python kernel's input transformations give exactly IPython's result.

kernelkit.python skips IPython's tokenizing search for magics, shell escapes
and help syntax when no line of a cell could start, end or be assigned such
syntax. These tests compare its transformer with IPython's own on cells with
and without such syntax, including the near misses (``%`` as an operator and
in strings, ``!=``, escapes that only count at the start of a line), and
check that a changed set of token transformers turns the shortcut off.
The cleanup transforms' shortcuts (no dedent of a cell whose first line is
not indented, no prompt search without ``>>>``) are held to the same rule:
indented cells, whitespace-only lines, pasted doctest and IPython prompts.
"""

import itertools
import random

import pytest
from IPython.core.inputtransformer2 import TransformerManager

from kernelkit.python.shell import KernelTransformerManager, may_hold_ipython_syntax

PLAIN = [
    "pass",
    "x = 1\ny = 2\nprint(x + y)",
    "def f(a, b=2):\n    return a // b\n\nf(3)",
    "if a != b:\n    print('different')",
    "class C:\n    '''Doc.\n\n    More.\n    '''\n    x = [1,\n         2]\n",
    "    indented = True\n    more = 1\n",
    "total = (1\n         + 2\n         - 3)",
    "x = 1\r\ny = 2\r\n",
    "",
    "\n\n",
    "# just a comment",
    "a = b / c",
    "f(a, b); g()",
    "s = '%d' % 3",
    "x %= 3",
    "ratio = a % b",
    "s = 'why?'",
    "url = 'https://example.org/?q=1'  # a query?  not help",
    "if a != b != c:\n    x = not a",
    "a ! = b",
]

IPYTHON_SYNTAX = [
    "%pwd",
    "%%capture out\nprint(1)",
    "x = %pwd",
    "x=%pwd",
    "y =   %time 1",
    "files = !ls",
    "y = !ls -l",
    "!echo hi",
    "!!echo hi",
    "print?",
    "print??",
    "?print",
    "  ?obj",
    "obj.attr?",
    "x = 1\nlen?",
    "if True:\n    %time pass",
    "x = 1\n  %pwd",
    "if a != b:\n    !echo differ",
    ",print a b",
    ";print a b",
    "/print 1",
    "x = 1\n  /print 2",
    "x = 1\r/print 2",
]

# plain Python (or not even that) that looks close enough to take the full
# path; the result is IPython's all the same
NEAR_MISSES = [
    "print('a=%s' % x)",
    "s = '''\n,not an escape\n;nor this\n'''",
    "x = 1 \\\n  + 2",
    "'''Is it?\n'''",
    "x == !y",
]

# what IPython's cleanup transforms change: indentation, whitespace-only
# lines (dedent empties them), pasted prompts
CLEANUP = [
    "x = 1\n    \ny = 2",
    "x = '''\n  \t\n'''",
    "def f():\n    '''Doc.\n    \n    '''\n",
    "\t\tx = 1\n\t\ty = 2",
    "  \n  x = 1",
    "\n\n    x = 1\n    y = 2\n",
    "x = 1\n \r\ny = 2",
    ">>> x = 1\n>>> x + 1",
    ">>> def f():\n...     return 1\n",
    "    >>> x = 1\n    >>> x",
    "s = '''\n>>> not a prompt\n'''",
    "x = 1\n...",
    "x = 1\n... ",
    "In [1]: x = 1",
    "In [2]: def f():\n   ...:     return 1\n",
    "\x0cx = 1",
    # (since Python 3.14, dedent also empties lines of \r, \x0c and the like)
    "x = 1\r\n\r\ny = 2\r\n",
    "x = 1\n\x0c\ny = 2\n",
    "x\n\r\x0c\ny",
]

ALL_CELLS = PLAIN + IPYTHON_SYNTAX + NEAR_MISSES + CLEANUP


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_same_result_as_ipython(cell):
    assert KernelTransformerManager().transform_cell(cell) == TransformerManager().transform_cell(cell)


@pytest.mark.parametrize("cell", PLAIN)
def test_plain_python_takes_the_shortcut(cell):
    assert not may_hold_ipython_syntax(cell.splitlines(keepends=True))


@pytest.mark.parametrize("cell", IPYTHON_SYNTAX + NEAR_MISSES)
def test_anything_like_ipython_syntax_takes_the_full_path(cell):
    assert may_hold_ipython_syntax(cell.splitlines(keepends=True))


def test_mixed_cells_match_ipython():
    # many combinations of the lines above, so line starts, continuation
    # lines and strings meet the escapes in places no list above has
    pieces = [line for cell in ALL_CELLS for line in cell.splitlines() if line.strip()]
    rng = random.Random(7)
    ours, theirs = KernelTransformerManager(), TransformerManager()
    for n in itertools.islice(itertools.cycle([1, 2, 3, 5, 8]), 400):
        cell = "\n".join(rng.choice(pieces) for _ in range(n))
        try:
            expected = theirs.transform_cell(cell)
        except SyntaxError:
            # IPython's tokenizer gave up on it (a bad dedent); without the
            # tokenizing, compiling the cell reports the same error
            with pytest.raises(SyntaxError):
                compile(ours.transform_cell(cell), "<cell>", "exec")
            continue
        assert ours.transform_cell(cell) == expected, cell


def test_added_token_transformer_turns_the_shortcut_off():
    from IPython.core.inputtransformer2 import TokenTransformBase

    class Shout(TokenTransformBase):
        """Turns a line that is just ``shout`` into print('SHOUT')."""

        @classmethod
        def find(cls, tokens_by_line):
            for line in tokens_by_line:
                if line and line[0].string == "shout" and len(line) == 2:
                    return cls(line[0].start)

        def transform(self, lines):
            lines = list(lines)
            lines[self.start_line] = "print('SHOUT')\n"
            return lines

    manager = KernelTransformerManager()
    manager.token_transformers.append(Shout)
    assert manager.transform_cell("shout") == "print('SHOUT')\n"


def test_a_changed_cleanup_transform_runs_them_all():
    def shout(lines):
        return [line.upper() for line in lines]

    manager = KernelTransformerManager()
    manager.cleanup_transforms.append(shout)
    assert manager.transform_cell("x = 1\n") == "X = 1\n"
