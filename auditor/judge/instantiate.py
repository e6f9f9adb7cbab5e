"""Instantiate a bound's constants conservatively from what is known of each.

For a right-hand side increasing in a constant, the upper end of what is known (an exact
value, a proven upper bound, an assertion); otherwise the largest estimate, marked
non-conservative. The mirror for decreasing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...bounds import symbols as S
from ...bounds.bound import Bound
from .constants import Constant, Monotonicity


@dataclass(frozen=True)
class Instantiation:
    """The values the right-hand side is evaluated at, each constant's record for results.json,
    and one line per constant whose value would not make an excess a proof."""

    values: Mapping[str, float]
    constants: Mapping[str, Mapping[str, Any]]
    nonconservative: tuple[str, ...] = ()
    missing: str | None = field(default=None)     # a constant nothing is known of


def _why_not_conservative(nm: str, kind: str, value: float, direction: str) -> str:
    return (f"{nm} = {value:.4g} is {kind} and the bound is "
            f"{Monotonicity.parse(direction).trend} in it")


def instantiate(bound: Bound, hyper: Mapping[str, float], consts: Mapping[str, Constant]
                ) -> Instantiation:
    """Each right-hand-side constant's value; stops at the first one nothing is known of
    (``missing`` names it, the constants before it are kept for the record)."""
    values: dict[str, float] = dict(hyper)
    records: dict[str, dict[str, Any]] = {}
    nonconservative: list[str] = []
    for nm in bound.rhs_symbols:
        if nm == "K" or nm in hyper:
            continue
        c = consts.get(nm)
        if c is None or not c.estimates:
            return Instantiation(values, records, tuple(nonconservative), missing=nm)
        direction = bound.direction(nm)
        est, conservative = c.choose(direction)
        values[nm] = est.value
        records[nm] = {**est.to_dict(), "direction": direction, "conservative": conservative,
                       "lo": c.lo, "hi": c.hi}
        if not conservative or est.kind == "asserted":
            nonconservative.append(_why_not_conservative(nm, est.kind, est.value, direction))
    return Instantiation(values, records, tuple(nonconservative))


def missing_reason(nm: str) -> str:
    """Why a bound cannot be instantiated without ``nm``, and how to give it."""
    return (f"cannot instantiate {nm} ({S.SYMBOLS[nm].meaning}): nothing measured or known; "
            f"assert it with --assume {nm}=VALUE")
