"""The safe expression parser: text a user wrote becomes a sympy expression, never code.

Text is parsed by Python's :mod:`ast` (which only builds a tree, it executes nothing) and the
tree is walked under a whitelist: numbers (and the constants ``E`` and ``pi``), names from the
canonical symbol table, ``+ - * / **``, unary minus and plus, and the functions ``sqrt``,
``log``, ``exp``, ``Min``, ``Max``. Each node is built into sympy directly. ``eval``,
``sympify``, ``parse_expr`` and ``lambdify`` never see the text.

The work is bounded before sympy does any: besides the length and node limits, every numeric
part is first evaluated in plain floats (:func:`_approx`), and a part beyond ``MAX_FLOAT``, a
division by zero or a real function outside its domain is refused then; exponential towers
deeper than ``MAX_TOWER`` are refused from the tree's shape. Sympy's ``evalf`` (whose
precision grows with an exponent) never sees a number it cannot hold in a float, so
``exp(exp(exp(100)))**2`` is a one-line error at once, not a minutes-long evaluation.
"""

from __future__ import annotations

import ast
import difflib
import math
from typing import Callable, Iterable

import sympy as sp

from . import symbols as S
from .errors import ExpressionError

MAX_LENGTH = 1000
MAX_NODES = 400
MAX_DIGITS = 300  # digits in one integer literal
MAX_MAGNITUDE = 1000  # |log10| of a numeric power's result
MAX_FLOAT = 1e300     # a numeric part beyond this is refused before sympy evaluates it
MAX_TOWER = 3         # nested exponentials (exp(...), x**(non-constant)) at the most

_FUNCTIONS: dict[str, tuple[Callable[..., sp.Expr], int, int | None]] = {
    # name: (builder, minimum arity, maximum arity)
    "sqrt": (sp.sqrt, 1, 1),
    "log": (sp.log, 1, 1),
    "exp": (sp.exp, 1, 1),
    "Min": (sp.Min, 2, None),
    "Max": (sp.Max, 2, None),
}

_BINOPS: dict[type, Callable[[sp.Expr, sp.Expr], sp.Expr]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}

_HINTS: dict[type, str] = {
    ast.BitXor: "'^' is not a power here; write '**'",
    ast.FloorDiv: "'//' is not allowed; write '/'",
    ast.Mod: "'%' is not allowed",
    ast.Compare: "comparisons are not expressions; give the right-hand side only",
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "indexing is not allowed",
    ast.Lambda: "lambda is not allowed",
}


def parse_expression(text: str, allowed: Iterable[str] | None = None) -> sp.Expr:
    """Parse ``text`` into a sympy expression over the canonical symbols.

    ``allowed`` restricts the names further (e.g. to a bound's symbols). Raises
    :class:`ExpressionError` with a one-line reason for anything outside the whitelist.

    >>> parse_expression("L*R**2/(4*K + 2)")
    L*R**2/(4*K + 2)
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expression must be text, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise ExpressionError("empty expression")
    if len(stripped) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse {_short(stripped)}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError):
        raise ExpressionError(f"cannot parse {_short(stripped)}: too deeply nested") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise ExpressionError(f"expression has {count} parts; at most {MAX_NODES} allowed")
    allowed_set = None if allowed is None else set(allowed)
    try:
        if _tower(tree.body) > MAX_TOWER:
            raise ExpressionError(f"{_short(stripped)} nests exponentials more than "
                                  f"{MAX_TOWER} deep (a tower is never evaluated)")
        _approx(tree.body)
        expr = _build(tree.body, allowed_set)
    except RecursionError:
        raise ExpressionError(f"cannot parse {_short(stripped)}: too deeply nested") from None
    except ExpressionError:
        raise
    except (OverflowError, ZeroDivisionError, ValueError, TypeError) as exc:
        # sympy's own arithmetic on a number at the edge: still the user's input
        raise ExpressionError(f"cannot evaluate {_short(stripped)}: "
                              f"{type(exc).__name__}") from None
    if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise ExpressionError(f"{_short(stripped)} is not finite (division by zero?)")
    if expr.has(sp.I):
        raise ExpressionError(f"{_short(stripped)} is not real (square root of a negative?)")
    return expr


def parse_number(text: str) -> float:
    """Parse text that must evaluate to a single finite real number (no symbols)."""
    expr = parse_expression(text, allowed=())
    value = complex(sp.N(expr))
    if value.imag != 0 or not math.isfinite(value.real):
        raise ExpressionError(f"{_short(text)} is not a finite real number")
    return value.real


def _short(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _tower(node: ast.AST) -> int:
    """How deep exponentials nest: ``exp(·)`` and ``a**b`` with a non-constant ``b`` count."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        inner = max((_tower(a) for a in node.args), default=0)
        return inner + (node.func.id == "exp")
    if isinstance(node, ast.BinOp):
        up = isinstance(node.op, ast.Pow) and not isinstance(node.right, ast.Constant)
        return max(_tower(node.left), _tower(node.right) + up)
    if isinstance(node, ast.UnaryOp):
        return _tower(node.operand)
    return 0


def _checked(x: float) -> float:
    if not math.isfinite(x) or abs(x) > MAX_FLOAT:
        raise ExpressionError(f"number too large (beyond ±{MAX_FLOAT:.0e}, the float range "
                              "this library evaluates in)")
    return x


_REAL: dict[str, Callable[..., float]] = {"sqrt": math.sqrt, "log": math.log, "exp": math.exp,
                                           "Min": min, "Max": max}


def _approx(node: ast.AST) -> float | None:
    """The float value of a numeric part (None where a symbol enters): refuses what is beyond
    float range, divides by zero or leaves a real function's domain, before sympy builds it.
    Only nodes of the whitelist are evaluated; anything else is left to :func:`_build`."""
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        if isinstance(v, int) and len(str(abs(v))) > MAX_DIGITS:
            return None                      # _build gives the message
        return _checked(float(v))
    if isinstance(node, ast.Name):
        return {"E": math.e, "pi": math.pi}.get(node.id)
    if isinstance(node, ast.UnaryOp):
        v = _approx(node.operand)
        return None if v is None else -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        return _approx_binop(node)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id in _REAL and not node.keywords:
        args = [_approx(a) for a in node.args if not isinstance(a, ast.Starred)]
        if any(a is None for a in args) or not args or len(args) != len(node.args):
            return None
        name = node.func.id
        if name in ("sqrt", "log", "exp") and len(args) != 1:
            return None
        if name == "sqrt" and args[0] < 0:
            raise ExpressionError(f"sqrt of {args[0]:g} is not real (square root of a negative)")
        if name == "log" and args[0] <= 0:
            raise ExpressionError(f"log of {args[0]:g} is not finite and real")
        if name in ("Min", "Max") and len(args) < 2:
            return None
        try:
            return _checked(_REAL[name](*args))
        except OverflowError:
            return _checked(math.inf)
    return None


def _approx_binop(node: ast.BinOp) -> float | None:
    a, b = _approx(node.left), _approx(node.right)
    if isinstance(node.op, ast.Div) and b == 0.0:
        raise ExpressionError("division by zero (not finite)")
    if a is None or b is None:
        return None
    try:
        if isinstance(node.op, ast.Add):
            return _checked(a + b)
        if isinstance(node.op, ast.Sub):
            return _checked(a - b)
        if isinstance(node.op, ast.Mult):
            return _checked(a * b)
        if isinstance(node.op, ast.Div):
            return _checked(a / b)
        if isinstance(node.op, ast.Pow):
            if a == 0.0 and b < 0:
                raise ExpressionError("zero to a negative power (division by zero)")
            if a < 0 and b != int(b):
                raise ExpressionError(f"({a:g})**{b:g} is not real")
            if a not in (0.0, 1.0, -1.0) and abs(b * math.log10(abs(a))) > MAX_MAGNITUDE:
                raise ExpressionError(f"power too large (about 10^{b * math.log10(abs(a)):.3g})")
            return _checked(float(a ** b))
    except OverflowError:
        return _checked(math.inf)
    return None


def _build(node: ast.AST, allowed: set[str] | None) -> sp.Expr:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExpressionError(f"literal {value!r} is not a number")
        if isinstance(value, int):
            if len(str(abs(value))) > MAX_DIGITS:
                raise ExpressionError(f"integer literal longer than {MAX_DIGITS} digits")
            return sp.Integer(value)
        if not math.isfinite(value):
            raise ExpressionError(f"literal {value!r} is not finite")
        return sp.Float(value)
    if isinstance(node, ast.Name):
        return _name(node.id, allowed)
    if isinstance(node, ast.UnaryOp):
        operand = _build(node.operand, allowed)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
    if isinstance(node, ast.BinOp):
        left = _build(node.left, allowed)
        right = _build(node.right, allowed)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        op = _BINOPS.get(type(node.op))
        if op is None:
            hint = _HINTS.get(type(node.op), f"operator {type(node.op).__name__} is not allowed")
            raise ExpressionError(hint)
        return op(left, right)
    if isinstance(node, ast.Call):
        return _call(node, allowed)
    hint = _HINTS.get(type(node), f"{type(node).__name__} is not allowed in an expression")
    raise ExpressionError(hint)


_CONSTANTS = {"E": sp.E, "pi": sp.pi}  # what sympy prints for e and pi; plain numbers


def _name(name: str, allowed: set[str] | None) -> sp.Expr:
    if name in _CONSTANTS:
        return _CONSTANTS[name]
    if name in S.SYMBOLS and (allowed is None or name in allowed):
        return S.SYMBOLS[name].symbol
    pool = sorted(S.SYMBOLS) if allowed is None else sorted(allowed)
    close = difflib.get_close_matches(name, pool, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    if name in _FUNCTIONS:
        raise ExpressionError(f"{name} is a function; call it as {name}(...)")
    where = "the symbol table" if allowed is None else "this expression's allowed names"
    known = ", ".join(pool) if pool else "none"
    raise ExpressionError(f"unknown name {name!r}{hint} (not in {where}: {known})")


def _call(node: ast.Call, allowed: set[str] | None) -> sp.Expr:
    if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
        what = node.func.id if isinstance(node.func, ast.Name) else "this call"
        raise ExpressionError(
            f"function {what!r} is not allowed (allowed: {', '.join(_FUNCTIONS)})")
    name = node.func.id
    if node.keywords:
        raise ExpressionError(f"{name}() takes no keyword arguments")
    builder, lo, hi = _FUNCTIONS[name]
    if any(isinstance(a, ast.Starred) for a in node.args):
        raise ExpressionError(f"{name}() does not take *arguments")
    if len(node.args) < lo or (hi is not None and len(node.args) > hi):
        want = str(lo) if hi == lo else f"at least {lo}"
        raise ExpressionError(f"{name}() takes {want} argument(s), got {len(node.args)}")
    args = [_build(a, allowed) for a in node.args]
    return builder(*args)


def _power(base: sp.Expr, exponent: sp.Expr) -> sp.Expr:
    # A numeric power is evaluated eagerly by sympy: refuse results too large to hold
    # (10**10**10) before building them.
    if base.is_number and exponent.is_number:
        try:
            b = abs(complex(sp.N(base, 15)))
            e = complex(sp.N(exponent, 15)).real
        except (TypeError, ValueError):
            raise ExpressionError("power of non-numeric values") from None
        if b == 0.0 and e < 0:
            raise ExpressionError("zero to a negative power (division by zero)")
        if b not in (0.0, 1.0) and abs(e * math.log10(b)) > MAX_MAGNITUDE:
            raise ExpressionError(f"power too large (about 10^{e * math.log10(b):.3g})")
    elif exponent.is_number:
        try:
            e = abs(complex(sp.N(exponent, 15)).real)
        except (TypeError, ValueError):
            raise ExpressionError("power of non-numeric values") from None
        if e > 10**6:
            raise ExpressionError("exponent too large")
    return sp.Pow(base, exponent)
