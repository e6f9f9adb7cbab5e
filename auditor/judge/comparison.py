"""Observed against predicted on the grid of horizons, and the ruling that comparison supports.

One tolerance (:func:`tolerance`) and one statistic for every audit: a deterministic bound must
hold for every run; an expectation bound is compared through the mean over runs (seeds, or
pairs of a stability audit) minus a one-sided 95 % Student-t margin. No excess: consistent. An
excess with every constant conservative, every condition certain, an exact observation and
(for expectations) a significant mean: violated. Any other excess: inconclusive, with reasons.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...bounds.bound import Bound
from ...bounds.quantities import Quantity
from .facts import ROUNDING_ULPS, eps_of
from .verdict import Ruling, downsample

CONFIDENCE = 0.95
REL_TOL = 1e-6            # relative slack on predicted values (bound evaluation rounding)


def t_quantile(n: int) -> float:
    """The one-sided ``CONFIDENCE`` quantile of Student's t with n − 1 degrees of freedom."""
    try:
        from scipy.stats import t as student_t
        return float(student_t.ppf(CONFIDENCE, n - 1))
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return 1.645


def tolerance(pred: np.ndarray, observed: np.ndarray, dtype: str,
              abs_tol: np.ndarray | None = None) -> np.ndarray:
    """Rounding slack per horizon: REL_TOL of the prediction, ROUNDING_ULPS ulps of the
    observed quantity's scale (its largest value over runs at the first horizon), plus the
    run's own arithmetic slack where the observation carries one."""
    scale = float(np.nanmax(np.abs(observed[:, 0]))) if observed.size else 1.0
    tol = REL_TOL * np.abs(pred) + ROUNDING_ULPS * eps_of(dtype) * max(scale, 1e-300)
    return tol if abs_tol is None else tol + abs_tol


@dataclass(frozen=True)
class Samples:
    """The left-hand side of every run on a common grid of horizons."""

    K: np.ndarray                  # horizons
    values: np.ndarray             # (runs, horizons)
    kind: str                      # exact | upper (over-estimate) | estimate
    stochastic: bool               # compare the mean over runs (an expectation) or every run
    notes: tuple[str, ...] = ()
    abs_tol: np.ndarray | None = None     # per horizon, the largest over runs
    over: str = "seeds"            # what the runs are: seeds | pairs
    hint: str = "run --seeds ≥ 2"  # how to get more of them

    @property
    def n(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class Comparison:
    """Statistics of one comparison, and the parts of the verdict they give."""

    excess: np.ndarray             # of the statistic (the lower confidence end for expectations)
    point_excess: np.ndarray       # of the mean (expectations) or of the largest run
    mean: np.ndarray
    pred: np.ndarray
    loose: np.ndarray
    series: Mapping[str, Any]
    looseness: Mapping[str, float | None]
    worst: Mapping[str, float]


def _series(s: Samples, mean, sd, margin, pred) -> dict[str, Any]:
    idx = downsample(len(s.K))
    out: dict[str, Any] = {"k": s.K[idx].tolist(), "observed": mean[idx].tolist(),
                           "predicted": pred[idx].tolist()}
    # a stability audit always reports its spread over pairs (the report draws it)
    if s.n > 1 or s.over == "pairs":
        out |= {"observed_sd": sd[idx].tolist(), "margin": margin[idx].tolist(),
                "observed_max": s.values.max(axis=0)[idx].tolist(), "over": s.over}
    return out


def compare(s: Samples, pred: np.ndarray, dtype: str) -> Comparison:
    """Observed against predicted: excesses beyond the tolerance, looseness, the worst point."""
    mean = s.values.mean(axis=0)
    sd = s.values.std(axis=0, ddof=1) if s.n > 1 else np.zeros_like(mean)
    margin = t_quantile(s.n) * sd / math.sqrt(s.n) if s.n > 1 else np.zeros_like(mean)
    tol = tolerance(pred, s.values, dtype, s.abs_tol)
    if s.stochastic:
        stat, point = mean - margin, mean       # lower confidence bound on the expectation
    else:
        stat = point = s.values.max(axis=0)     # every run must satisfy a deterministic bound
    with np.errstate(divide="ignore", invalid="ignore"):
        loose = np.where(mean > 0, pred / mean, np.inf)
    finite = loose[np.isfinite(loose)]
    point_excess = point - pred - tol
    j = int(np.argmax(point_excess))
    return Comparison(
        excess=stat - pred - tol, point_excess=point_excess, mean=mean, pred=pred, loose=loose,
        series=_series(s, mean, sd, margin, pred),
        looseness={"final": float(loose[-1]) if np.isfinite(loose[-1]) else None,
                   "min": float(finite.min()) if finite.size else None,
                   "max": float(finite.max()) if finite.size else None},
        worst={"k": float(s.K[j]), "observed": float(mean[j]), "predicted": float(pred[j]),
               "excess": float(point_excess[j])})


def _fmt(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.4g}"


def _consistent_reason(s: Samples, c: Comparison) -> str:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = c.pred / np.where(c.mean > 0, c.mean, np.nan)
    # where the observation is 0 (e.g. right after local SGD's averaging) there is no ratio
    tight = int(np.nanargmin(ratio)) if np.isfinite(ratio).any() else -1
    at = f"; tightest at K = {s.K[tight]:g}, looseness {c.loose[tight]:.3g}" if tight >= 0 else ""
    over = ((f" (mean over {s.n} {s.over})" if s.n > 1 else f" (one {s.over[:-1]})")
            if s.stochastic else "")
    return f"observed ≤ predicted at all {len(s.K)} checkpoints" + over + at


def _not_a_proof(bound: Bound, s: Samples, c: Comparison, doubts: Sequence[str],
                 unchecked: Sequence[str]) -> list[str]:
    why: list[str] = []
    if s.stochastic:
        if s.n < 2:
            why.append(f"one {s.over[:-1]} cannot refute an expectation bound ({s.hint})")
        elif not (c.excess > 0).any():
            why.append(f"the excess is within the one-sided {CONFIDENCE:.0%} confidence "
                       f"margin over {s.n} {s.over}")
    why += list(doubts)
    if s.kind != "exact":
        what = "an over-estimate" if s.kind == "upper" else "an estimate"
        why.append(f"the observation is {what}" + (f" ({s.notes[0]})" if s.notes else ""))
    if bound.quantity is Quantity.ASYMPTOTIC_RATE:
        why.append("an asymptotic rate cannot be refuted at a finite horizon")
    if unchecked:
        why.append(f"assumption(s) {', '.join(unchecked)} could not be checked")
    return why


def decide(bound: Bound, s: Samples, c: Comparison, doubts: Sequence[str],
           unchecked: Sequence[str] = ()) -> tuple[Ruling, str]:
    """The ruling the comparison supports. ``doubts``: why an excess would not be a proof
    apart from the statistics (non-conservative constants, unproven conditions), one line
    each; ``unchecked``: the ids of assumptions no run could check."""
    if not (c.point_excess > 0).any():
        return Ruling.CONSISTENT, _consistent_reason(s, c)
    why_not = _not_a_proof(bound, s, c, doubts, unchecked)
    w = c.worst
    head = f"observed {_fmt(w['observed'])} > predicted {_fmt(w['predicted'])} at K = {w['k']:g}"
    if why_not:
        return Ruling.INCONCLUSIVE, head + "; not a proof: " + "; ".join(why_not)
    reason = head + (" beyond the confidence margin" if s.stochastic else "") + (
        "; every constant is exact or conservative and every condition holds")
    if bound.expectation and not s.stochastic:
        reason += " (full batch: the run is deterministic, its value is the expectation)"
    return Ruling.VIOLATED, reason
