"""``NAME=VALUE`` arguments: numbers, ranges for K, or safe expressions over other names."""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..bounds import symbols as S
from ..bounds.errors import InvalidValueError
from ..bounds.parser import parse_expression

MAX_GRID = 1_000_000


def parse_assignments(items: tuple[str, ...] | list[str]) -> dict[str, float | np.ndarray]:
    """Resolve ``NAME=VALUE`` items into numbers (``K`` may be ``a:b[:step]`` or ``a,b,c``).

    A value may refer to other names given in the same call (``eta=1/L``); references are
    resolved in dependency order, and a cycle is an error.
    """
    exprs: dict[str, sp.Expr] = {}
    grids: dict[str, np.ndarray] = {}
    for item in items:
        if "=" not in item:
            raise InvalidValueError(f"expected NAME=VALUE, got {item!r} (e.g. L=1 or K=1:100)")
        name, _, text = item.partition("=")
        name, text = name.strip(), text.strip()
        S.info(name)  # unknown names: error with close matches
        if name in exprs or name in grids:
            raise InvalidValueError(f"{name} is given twice")
        if not text:
            raise InvalidValueError(f"{name}= has no value")
        if name == "K" and (":" in text or "," in text):
            grids[name] = _parse_grid(text)
            continue
        exprs[name] = parse_expression(text)
    values: dict[str, float | np.ndarray] = dict(grids)
    pending = dict(exprs)
    while pending:
        progressed = False
        for name, expr in list(pending.items()):
            deps = S.names_in(expr)
            unknown = [d for d in deps if d not in exprs and d not in grids]
            if unknown:
                raise InvalidValueError(
                    f"{name}={sp.sstr(expr)} refers to {', '.join(sorted(unknown))}, "
                    f"which has no value; give it too (e.g. {unknown[0]}=1)")
            if any(d in grids for d in deps):
                raise InvalidValueError(f"{name} cannot depend on the grid {', '.join(deps)}")
            if all(d in values for d in deps):
                val = expr.subs({S.SYMBOLS[d].symbol: sp.Float(values[d], 30) for d in deps})
                num = complex(sp.N(val))
                if num.imag != 0 or not np.isfinite(num.real):
                    raise InvalidValueError(f"{name}={sp.sstr(expr)} is not a finite real number")
                values[name] = float(num.real)
                del pending[name]
                progressed = True
        if not progressed:
            raise InvalidValueError(
                f"values refer to each other in a cycle: {', '.join(sorted(pending))}")
    return values


def _parse_grid(text: str) -> np.ndarray:
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            start, stop = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1
            if step <= 0 or stop < start:
                raise ValueError
            if (stop - start) // step + 1 > MAX_GRID:
                raise InvalidValueError(f"K grid {text!r} has more than {MAX_GRID} points")
            grid = np.arange(start, stop + 1, step, dtype=float)
        else:
            grid = np.array([int(p) for p in text.split(",")], dtype=float)
    except InvalidValueError:
        raise                    # the real cause (grid too large), not the generic syntax line
    except ValueError:
        raise InvalidValueError(
            f"K={text!r} is not a range START:STOP[:STEP] or a list a,b,c of integers") from None
    if grid.size == 0 or np.any(grid < 1):
        raise InvalidValueError(f"K={text!r} must contain integers >= 1")
    return grid


def format_number(value: float) -> str:
    return f"{value:.6g}"

