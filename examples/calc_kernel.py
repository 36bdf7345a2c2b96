"""A calculator kernel: the smallest complete kernel on kernelkit.

Each line is an assignment (``x = 2 * 3``) or an expression. The last line's
value becomes the cell's result. ``print(a, b)`` writes to stdout and
``input("prompt")`` asks the frontend for a number.

Run it:  python examples/calc_kernel.py -f CONNECTION_OR_REGISTRATION_FILE
"""

import ast
import math
import operator

from kernelkit import Kernel
from kernelkit import ExecutionError

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max}


class CalcKernel(Kernel):
    implementation = "calc"
    implementation_version = "1.0"
    banner = "Calculator kernel (kernelkit example): x = 2 * 3, print(x), input('n? ')"
    language_info = {
        "name": "calc",
        "version": "1.0",
        "mimetype": "text/x-calc",
        "file_extension": ".calc",
        "pygments_lexer": "python",
        "codemirror_mode": "python",
    }

    def __init__(self):
        super().__init__()
        self.names = {"pi": math.pi, "e": math.e}
        self.past = []  # (execution_count, code) of stored executions

    # -- requests ---------------------------------------------------------
    def execute(self, code, request):
        if request.content.get("store_history", True) and not request.content.get("silent"):
            self.past.append((request.execution_count, code))
        value = None
        for lineno, line in enumerate(code.splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                value = self._run_line(line, lineno)
        if value is not None and not request.content.get("silent"):
            self.execute_result({"text/plain": repr(value)})

    def complete(self, code, cursor_pos, request):
        start = cursor_pos
        while start > 0 and (code[start - 1].isalnum() or code[start - 1] == "_"):
            start -= 1
        prefix = code[start:cursor_pos]
        matches = sorted(n for n in [*self.names, *_FUNCTIONS, "print", "input"] if n.startswith(prefix))
        return {"matches": matches, "cursor_start": start, "cursor_end": cursor_pos, "metadata": {}}

    def is_complete(self, code, request):
        if code.count("(") > code.count(")") or code.rstrip().endswith(("+", "-", "*", "/", "=", ",")):
            return {"status": "incomplete", "indent": ""}
        try:
            ast.parse(code)
        except SyntaxError:
            return {"status": "invalid"}
        return {"status": "complete"}

    def inspect(self, code, cursor_pos, detail_level, request):
        name = self.complete(code, cursor_pos, request)
        word = code[name["cursor_start"]:cursor_pos]
        if word in self.names:
            return {"found": True, "data": {"text/plain": f"{word} = {self.names[word]!r}"}, "metadata": {}}
        if word in _FUNCTIONS:
            return {"found": True, "data": {"text/plain": f"{word}: built-in function"}, "metadata": {}}
        return {"found": False, "data": {}, "metadata": {}}

    def history(self, request):
        n = request.content.get("n") or len(self.past)
        return {"history": [(0, count, code) for count, code in self.past[-n:]]}

    # -- evaluation -------------------------------------------------------
    def _run_line(self, line, lineno):
        try:
            tree = ast.parse(line.strip(), mode="single")
        except SyntaxError as e:
            raise ExecutionError("SyntaxError", f"line {lineno}: {e.msg}", [f"SyntaxError: line {lineno}: {e.msg}"])
        stmt = tree.body[0]
        try:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                self.names[stmt.targets[0].id] = self._eval(stmt.value)
                return None
            if isinstance(stmt, ast.Expr):
                return self._eval(stmt.value)
            raise ValueError("only assignments and expressions are allowed")
        except ExecutionError:
            raise
        except (ArithmeticError, ValueError, NameError, TypeError) as e:
            name = type(e).__name__
            raise ExecutionError(name, str(e), [f"line {lineno}: {line.strip()}", f"{name}: {e}"]) from None

    def _eval(self, node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                raise NameError(f"name {node.id!r} is not defined")
            return self.names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](self._eval(node.left), self._eval(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self._eval(node.operand))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            args = [self._eval(a) for a in node.args]
            if node.func.id == "print":
                self.stream(" ".join(str(a) for a in args) + "\n")
                return None
            if node.func.id == "input":
                answer = self.input(str(args[0]) if args else "")
                try:
                    return float(answer) if "." in answer else int(answer)
                except ValueError:
                    return answer
            if node.func.id in _FUNCTIONS:
                return _FUNCTIONS[node.func.id](*args)
            raise NameError(f"unknown function {node.func.id!r}")
        raise ValueError(f"unsupported syntax: {ast.dump(node)[:40]}")


if __name__ == "__main__":
    CalcKernel.main()
