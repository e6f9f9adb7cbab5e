"""Constants: every estimate of one, with the direction in which it can be wrong.

An estimate's ``kind`` says what it proves: ``exact``; ``upper`` (true ≤ value); ``lower``
(true ≥ value); ``estimate`` (neither side); ``asserted`` (the user's word, taken as exact).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Certainty(str, Enum):
    """How a bound's monotonicity in a constant is known: proven by sympy, or sampled."""

    PROVEN = "proven"
    SAMPLED = "sampled"


@dataclass(frozen=True)
class Monotonicity:
    """``Bound.direction``'s answer split into its trend and how it is known."""

    trend: str                 # increasing | decreasing | constant | non-monotone | unknown
    certainty: Certainty

    @classmethod
    def parse(cls, text: str) -> "Monotonicity":
        head, sep, trend = text.partition(":")
        if sep and head == Certainty.SAMPLED.value:
            return cls(trend, Certainty.SAMPLED)
        return cls(text, Certainty.PROVEN)


@dataclass(frozen=True)
class Estimate:
    value: float
    kind: str        # exact | upper (true <= value) | lower (true >= value) | estimate | asserted
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "kind": self.kind, "source": self.source}


@dataclass(frozen=True)
class Constant:
    """All that is known of one constant: an interval [lo, hi] that certainly contains it
    (None: unbounded on that side), point estimates, and whether it was asserted."""

    name: str
    estimates: tuple[Estimate, ...] = field(default=())
    conflict: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "estimates", tuple(self.estimates))

    @property
    def asserted(self) -> Estimate | None:
        return next((e for e in self.estimates if e.kind == "asserted"), None)

    def _values(self, *kinds: str) -> list[float]:
        return [e.value for e in self.estimates if e.kind in kinds]

    @property
    def lo(self) -> float | None:
        if self.asserted is not None:
            return self.asserted.value
        vals = self._values("exact", "lower")
        return max(vals) if vals else None

    @property
    def hi(self) -> float | None:
        if self.asserted is not None:
            return self.asserted.value
        vals = self._values("exact", "upper")
        return min(vals) if vals else None

    @property
    def exact(self) -> bool:
        return self.lo is not None and self.hi is not None and self.lo == self.hi

    def choose(self, direction: str) -> tuple[Estimate | None, bool]:
        """(estimate to use, conservative?) for a right-hand side moving ``direction`` in it."""
        if not self.estimates:
            return None, False
        sure = self.asserted or next((e for e in self.estimates if e.kind == "exact"), None)
        if sure is not None:
            return sure, True
        trend = Monotonicity.parse(direction).trend
        if trend == "constant":
            return self.estimates[0], True
        by = {k: [e for e in self.estimates if e.kind == k] for k in ("upper", "lower", "estimate")}
        if trend == "increasing":
            if by["upper"]:
                return min(by["upper"], key=lambda e: e.value), True
            return max(by["lower"] + by["estimate"], key=lambda e: e.value), False
        if trend == "decreasing":
            if by["lower"]:
                return max(by["lower"], key=lambda e: e.value), True
            return min(by["upper"] + by["estimate"], key=lambda e: e.value), False
        return (by["estimate"] or by["lower"] or by["upper"])[0], False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "lo": self.lo, "hi": self.hi,
                "asserted": self.asserted is not None, "conflict": self.conflict,
                "estimates": [e.to_dict() for e in self.estimates]}


def conflict_of(c: Constant, tol: float) -> str | None:
    """The last pair of c's estimates that contradict each other (a proven or asserted lower
    end above a proven or asserted upper end, beyond relative ``tol``), as one line."""
    lows = [e for e in c.estimates if e.kind in ("lower", "exact")]
    lows += [e for e in c.estimates if e.kind == "asserted"]
    highs = [e for e in c.estimates if e.kind in ("upper", "exact", "asserted")]
    found = None
    for lo_e in lows:
        for hi_e in highs:
            if lo_e is not hi_e and lo_e.value > hi_e.value * (1 + tol) + 1e-300:
                found = (f"{c.name} ≥ {lo_e.value:.4g} ({lo_e.kind}: {lo_e.source}) "
                         f"contradicts {c.name} ≤ {hi_e.value:.4g} ({hi_e.kind}: "
                         f"{hi_e.source})")
    return found


def build_constants(named: Iterable[tuple[str, Estimate]], tol: float | None = None
                    ) -> dict[str, Constant]:
    """Constants from (name, estimate) pairs in order; with ``tol``, each with its conflict."""
    grouped: dict[str, list[Estimate]] = {}
    for name, est in named:
        grouped.setdefault(name, []).append(est)
    out = {}
    for name, ests in grouped.items():
        c = Constant(name, tuple(ests))
        out[name] = c if tol is None else Constant(name, c.estimates, conflict_of(c, tol))
    return out
