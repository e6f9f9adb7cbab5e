"""A bound's conditions, checked with interval reasoning over what is known of each constant.

A condition *holds* when it holds at every value the data allow, *fails* when it fails even at
the most favourable one (e.g. ``eta < 2/L`` with η > 2/L̂ for a lower estimate L̂ ≤ L), else it
holds or fails only at the estimates. Both sides are evaluated with the bound library's own
compiled functions (:func:`approx_audit.bounds.bound.compile_condition`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sympy as sp

from ...bounds import symbols as S
from ...bounds.bound import compile_condition, sides
from ...bounds.symbols import sympy_sign
from .constants import Constant


@dataclass(frozen=True)
class ConditionCheck:
    condition: str
    status: str            # holds | fails | holds_at_estimate | fails_at_estimate | unknown
    text: str
    lhs: float | None = None
    rhs: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.lhs is None or not self.rhs:
            return None
        return self.lhs / self.rhs

    def to_dict(self) -> dict[str, Any]:
        return {"condition": self.condition, "status": self.status, "text": self.text,
                "lhs": self.lhs, "rhs": self.rhs, "ratio": self.ratio}


def _describe_value(name: str, c: Constant | None, value: float) -> str:
    if c is None:
        return f"{name} = {value:.4g}"
    if c.asserted is not None:
        return f"{name} = {value:.4g} (asserted)"
    if c.exact:
        return f"{name} = {value:.4g} (exact)"
    which = "lower" if c.lo == value else "upper" if c.hi == value else "point"
    src = next((e.source for e in c.estimates if e.value == value), "")
    return f"{name} {'≥' if which == 'lower' else '≤' if which == 'upper' else '≈'} {value:.4g}" + (
        f" ({src})" if src else "")


def _holds(cond, values: Mapping[str, float]) -> tuple[bool | None, float | None, float | None]:
    """(holds?, small side, large side) at ``values``; None where it cannot be evaluated."""
    c = compile_condition(cond)
    at = c.sides_at(values)
    if at is None:
        return None, None, None
    s, lg = float(at[0]), float(at[1])
    if not (math.isfinite(s) and math.isfinite(lg)):
        return None, None, None
    tol = 1e-12 * max(abs(s), abs(lg))
    return (lg - s > 0 if c.strict else lg - s >= -tol), s, lg


@dataclass(frozen=True)
class _Ends:
    """For each name: the value most favourable to the condition, the least favourable one,
    and the point estimate; whether refuting / certifying is possible with what is known."""

    best: Mapping[str, float]
    worst: Mapping[str, float]
    point: Mapping[str, float]
    can_refute: bool
    can_certify: bool


def _ends(slack: sp.Expr, names: list[str], consts: Mapping[str, Constant]) -> _Ends | str:
    best: dict[str, float] = {}
    worst: dict[str, float] = {}
    point: dict[str, float] = {}
    can_refute = can_certify = True
    for nm in names:
        c = consts.get(nm)
        if c is None or not c.estimates:
            return nm
        sign = sympy_sign(sp.diff(slack, S.SYMBOLS[nm].symbol))
        point[nm] = c.choose("increasing")[0].value
        if sign is None:
            if c.exact:
                best[nm] = worst[nm] = c.lo
            else:
                can_refute = can_certify = False
            continue
        fav, unfav = (c.hi, c.lo) if sign >= 0 else (c.lo, c.hi)
        can_refute &= fav is not None
        can_certify &= unfav is not None
        if fav is not None:
            best[nm] = fav
        if unfav is not None:
            worst[nm] = unfav
    return _Ends(best, worst, point, can_refute, can_certify)


def check_condition(cond, hyper: Mapping[str, float], consts: Mapping[str, Constant]
                    ) -> ConditionCheck:
    """Whether a condition certainly holds, certainly fails, or neither, given intervals."""
    text = sp.sstr(cond)
    small, large, _ = sides(cond)
    hsubs = {S.SYMBOLS[k].symbol: v for k, v in hyper.items() if k in S.SYMBOLS}
    slack = (large - small).subs(hsubs)
    names = sorted(S.names_in(slack))
    ends = _ends(slack, names, consts)
    if isinstance(ends, str):
        return ConditionCheck(text, "unknown", f"{text}: no value for {ends}")

    def words(vals: Mapping[str, float]) -> str:
        return ", ".join(_describe_value(nm, consts.get(nm), vals[nm]) for nm in names)

    if ends.can_refute:
        res, s, lg = _holds(cond, {**hyper, **ends.best})
        if res is False:
            ratio = f" by {s / lg:.3g}×" if lg and s and lg > 0 and s > 0 else ""
            return ConditionCheck(text, "fails", f"{sp.sstr(small)} = {s:.4g} exceeds "
                                  f"{sp.sstr(large)} = {lg:.4g}{ratio}, even with "
                                  f"{words(ends.best) or 'exact values'}", s, lg)
    if ends.can_certify:
        res, s, lg = _holds(cond, {**hyper, **ends.worst})
        if res is True:
            return ConditionCheck(text, "holds", f"{text} holds for every value the data allow",
                                  s, lg)
    res, s, lg = _holds(cond, {**hyper, **ends.point})
    if res is None:
        return ConditionCheck(text, "unknown", f"{text}: cannot be evaluated")
    if res:
        return ConditionCheck(text, "holds_at_estimate",
                              f"{text} holds at the estimates ({words(ends.point)}), not proven",
                              s, lg)
    return ConditionCheck(text, "fails_at_estimate",
                          f"{text} fails at the estimates ({words(ends.point)}), not proven", s, lg)
