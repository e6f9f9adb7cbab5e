"""The judge's answer for one bound: its ruling, the reason, and what the ruling rests on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import sympy as sp

from ...bounds.bound import Bound

MAX_SERIES = 400          # points kept per series in results (the comparison uses all)


class Ruling(str, Enum):
    """DESIGN.md's five verdicts (a ``str``: equal to its value, written as its value)."""

    CONSISTENT = "consistent"
    VIOLATED = "violated"
    INCONCLUSIVE = "inconclusive"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


VERDICTS = tuple(r.value for r in Ruling)


@dataclass(frozen=True)
class Verdict:
    """One bound ruled on; built once by the ruling, never changed after."""

    bound: Bound
    verdict: Ruling
    reason: str
    caveats: tuple[str, ...] = ()
    constants: Mapping[str, Any] = field(default_factory=dict)
    hyperparameters: Mapping[str, float] = field(default_factory=dict)
    conditions: tuple[Any, ...] = ()          # ConditionCheck
    assumptions: tuple[Mapping[str, str], ...] = ()
    series: Mapping[str, list] | None = None
    looseness: Mapping[str, float | None] | None = None
    worst: Mapping[str, float] | None = None
    observed_kind: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Ruling(self.verdict))

    def to_dict(self) -> dict[str, Any]:
        b = self.bound
        return {
            "id": b.id, "verdict": self.verdict.value, "reason": self.reason,
            "caveats": list(self.caveats),
            "algorithm": b.algorithm, "quantity": b.quantity.value,
            "quantity_latex": b.quantity.latex, "relation": b.relation,
            "expectation": b.expectation, "rhs": sp.sstr(b.rhs), "latex": b.latex(),
            "mathml": b.mathml(), "citation_url": b.citation.url,
            "citation": b.citation.to_dict()["short"],
            "citation_detail": {k: v for k, v in b.citation.to_dict().items() if k != "url"},
            "summary": b.summary, "verified": list(b.verified),
            "constants": dict(self.constants), "hyperparameters": dict(self.hyperparameters),
            "conditions": [c.to_dict() for c in self.conditions],
            "assumptions": [dict(a) for a in self.assumptions],
            "observed_kind": self.observed_kind,
            "series": None if self.series is None else dict(self.series),
            "looseness": None if self.looseness is None else dict(self.looseness),
            "worst": None if self.worst is None else dict(self.worst),
        }


def summarize(verdicts: Sequence[Verdict]) -> dict[str, int]:
    """How many verdicts of each ruling, every ruling named (0 when none)."""
    counts = {name: 0 for name in VERDICTS}
    for v in verdicts:
        counts[Ruling(v.verdict).value] += 1
    return counts


def downsample(n: int) -> np.ndarray:
    """Indices of at most ``MAX_SERIES`` points of a series of ``n``, geometric, last kept."""
    if n <= MAX_SERIES:
        return np.arange(n)
    idx = np.unique(np.round(np.geomspace(1, n, MAX_SERIES)).astype(int) - 1)
    return np.unique(np.concatenate([idx, [n - 1]]))
