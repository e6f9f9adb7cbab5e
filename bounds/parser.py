"""The safe expression parser: text a user wrote becomes a sympy expression, never code.

Text is parsed by Python's :mod:`ast` (which only builds a tree, it executes nothing) and the
tree is walked under a whitelist: numbers (and the constants ``E`` and ``pi``), names from the
canonical symbol table, ``+ - * / **``, unary minus and plus, and the functions ``sqrt``,
``log``, ``exp``, ``Min``, ``Max``. Each node is built into sympy directly. ``eval``, ``sympify``, ``parse_expr`` and
``lambdify`` never see the text.
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
        expr = _build(tree.body, allowed_set)
    except RecursionError:
        raise ExpressionError(f"cannot parse {_short(stripped)}: too deeply nested") from None
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
