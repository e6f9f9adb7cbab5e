"""Observed quantities: a bound's left-hand side along one run, on a grid of horizons K."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ...bounds.bound import Bound
from ...bounds.quantities import Quantity
from ..observables import KEY
from .evidence import RunEvidence
from .facts import ROUNDING_ULPS, Facts, eps_of
from .selection import STABILITY_QUANTITIES

# Averaged-iterate bounds and the average each theorem speaks of (keys the run loop records).
AVERAGE_KEY = {
    "sgd.convex.bubeck_2015": (KEY.avg_loss_0, "the average of x_0..x_{K-1}"),
    "sgd.smooth_convex.bubeck_2015": (KEY.avg_loss_1, "the average of x_1..x_K"),
    "sgd.strongly_convex.bubeck_2015": (KEY.wavg_loss, "Σ_s 2s/(K(K+1)) x_{s-1}"),
}


@dataclass(frozen=True)
class Observed:
    k: np.ndarray                 # grid of horizons K
    values: np.ndarray            # observed quantity at each K
    kind: str                     # exact | upper (≥ the true quantity) | estimate
    note: str = ""
    abs_tol: np.ndarray | None = None   # rounding slack of the run's own arithmetic, per K


def _prefix_stats(points: Mapping[int, float], n_steps: int, weights_fn=None, how="min"
                  ) -> Observed | None:
    """min / mean / weighted mean of a per-iterate quantity over x_0..x_{K-1}, per K.

    With a value at every iterate the result is exact. Otherwise the min over the measured
    iterates is an over-estimate (kind ``upper``) and the means integrate the piecewise-linear
    interpolation of the measured values over k = 0..K−1 (kind ``estimate``).
    """
    if not points:
        return None
    ks = sorted(k for k in points if k < max(n_steps, 1))
    if not ks:
        return None
    complete = ks == list(range(0, n_steps))
    grid = list(range(1, n_steps + 1)) if complete else sorted({k + 1 for k in ks} | {n_steps})
    karr = np.array(ks, dtype=float)
    vals = np.array([points[k] for k in ks])
    if not complete and how != "min":
        # one value per iterate, by interpolation between measured ones
        allk = np.arange(0, n_steps, dtype=float)
        per_iterate = np.interp(allk, karr, vals)
        karr, vals = allk, per_iterate
    out = []
    for K in grid:
        mask = karr < K
        if not mask.any():
            out.append(np.nan)
            continue
        v = vals[mask]
        if how == "min":
            out.append(float(v.min()))
        elif weights_fn is None:
            out.append(float(v.mean()))
        else:
            w = weights_fn(karr[mask], K)
            out.append(float((w * v).sum() / w.sum()))
    kind = "exact" if complete else ("upper" if how == "min" else "estimate")
    note = "" if complete else (
        f"from {len(ks)} of {n_steps} iterates (full-data checkpoints"
        + (", interpolated" if how != "min" else "") + "); probe full_batch@1 for the exact value")
    return Observed(np.array(grid, dtype=float), np.array(out), kind, note)


def _gap(bound: Bound, run: RunEvidence, facts: Facts, hyper: Mapping[str, float]
         ) -> Observed | str:
    """F(x_K) − f* (or F at the theorem's average): exact with f*, an over-estimate with
    f_lower."""
    if bound.quantity is Quantity.LAST_ITERATE_GAP:
        pts, what = run.objective(), "F(x_K)"
    else:
        key = AVERAGE_KEY.get(bound.id)
        if key is None:
            return "the auditor does not track the average this theorem uses"
        pts, what = run.checkpoints(key[0]), f"F at {key[1]}"
        if not pts:
            return "the averaged iterates were not evaluated (no full-data checkpoints)"
    ref = facts.f_star if facts.f_star is not None else facts.f_lower
    if ref is None:
        return "needs f* (or a lower bound f_lower) to measure the suboptimality"
    ks = sorted(k for k in pts if k >= 1)
    if not ks:
        return "no full-data checkpoint after the first step"
    kind = "exact" if facts.f_star is not None else "upper"
    note = "" if facts.f_star is not None else (f"{what} − f_lower with f_lower ≤ f*: "
                                                "over-estimates the gap")
    return Observed(np.array(ks, float), np.array([pts[k] - ref for k in ks]), kind, note)


def _dist_sq(bound: Bound, run: RunEvidence, facts: Facts, hyper: Mapping[str, float]
             ) -> Observed | str:
    pts = run.checkpoints(KEY.dist_sq)
    ks = sorted(k for k in pts if k >= 1)
    if not ks:
        return "needs the workload's exact minimizer x* to measure ‖x_K − x*‖²"
    return Observed(np.array(ks, float), np.array([pts[k] for k in ks]), "exact")


def _min_grad(bound: Bound, run: RunEvidence, facts: Facts, hyper: Mapping[str, float]
              ) -> Observed | str:
    r = _prefix_stats(run.grad_norm_sq(), run.n_steps, how="min")
    return r if r is not None else "no full-data gradient norms were measured"


def _avg_grad(bound: Bound, run: RunEvidence, facts: Facts, hyper: Mapping[str, float]
              ) -> Observed | str:
    """The (weighted) average of ‖∇F(x_k)‖² over k < K: exact where every iterate was
    measured, else from the minibatch gradients minus the measured noise."""
    q, N = bound.quantity, run.n_steps
    b1 = float(hyper.get("beta1", 0.0)) if q is Quantity.RANDOM_ITERATE_GRAD_NORM_SQ else 0.0
    wf = None if b1 == 0 else (lambda k, K: 1.0 - b1 ** (K - k))
    pts = run.grad_norm_sq()
    kind, note = "exact", ""
    if sorted(k for k in pts if k < N) != list(range(N)):
        pts, kind, note = run.grad_norm_sq_estimate()
    r = _prefix_stats(pts, N, weights_fn=wf, how="mean")
    if r is None:
        return "no gradient norms were measured"
    if r.kind == "exact":
        r = dataclasses.replace(r, kind=kind, note=note)
    if q is Quantity.AVG_GRAD_NORM_SQ:
        return r
    return dataclasses.replace(r, note=(r.note + " " if r.note else "") + (
        "E over τ with P(τ = j) ∝ 1 − β1^(K−j)" if wf else "E over τ uniform on 0..K−1"))


def _stability(bound: Bound, run: RunEvidence, facts: Facts, hyper: Mapping[str, float]
               ) -> Observed | str:
    return "a stability bound needs runs on neighbouring datasets: use approx-audit stability"


def _consensus(bound: Bound, run: RunEvidence, facts: Facts, hyper: Mapping[str, float]
               ) -> Observed | str:
    return _observe_consensus(run, facts)


def _rate(bound: Bound, run: RunEvidence, facts: Facts, hyper: Mapping[str, float]
          ) -> Observed | str:
    pts = run.checkpoints(KEY.dist_sq)
    if 0 not in pts or len(pts) < 2 or pts[0] <= 0:
        return "needs ‖x_k − x*‖ at x_0 and later (the workload's exact minimizer)"
    K = max(pts)
    rate = (pts[K] / pts[0]) ** (0.5 / K) if pts[K] > 0 else 0.0
    return Observed(np.array([float(K)]), np.array([rate]), "estimate",
                    "(‖x_K − x*‖/‖x_0 − x*‖)^(1/K): a finite-horizon stand-in for the limsup")


# the observer of each quantity a training run can measure
OBSERVERS: dict[Quantity, Callable[..., Observed | str]] = {
    Quantity.LAST_ITERATE_GAP: _gap, Quantity.AVERAGED_ITERATE_GAP: _gap,
    Quantity.LAST_ITERATE_DIST_SQ: _dist_sq, Quantity.MIN_GRAD_NORM_SQ: _min_grad,
    Quantity.AVG_GRAD_NORM_SQ: _avg_grad, Quantity.RANDOM_ITERATE_GRAD_NORM_SQ: _avg_grad,
    **{q: _stability for q in STABILITY_QUANTITIES},
    Quantity.CONSENSUS_DISTANCE: _consensus, Quantity.ASYMPTOTIC_RATE: _rate,
}


def observe(bound: Bound, run: RunEvidence, facts: Facts, hyper: Mapping[str, float]
            ) -> Observed | str:
    """The bound's left-hand side along ``run``, or a one-line reason it cannot be measured."""
    observer = OBSERVERS.get(bound.quantity)
    if observer is None:
        return f"the auditor does not measure {bound.quantity.value} in a training run"
    return observer(bound, run, facts, hyper)


def _observe_consensus(run: RunEvidence, facts: Facts) -> Observed | str:
    """The consensus distance after every step of a decentralized run (exact: measured at
    every step from the ranks' parameters), with the rounding slack of the run's arithmetic.

    The bounds hold in exact arithmetic. Each step the ranks compute their new parameters in
    the workload's dtype (a gossip sum, an average, an elastic pull), which perturbs each x_i
    by a few ulps of ‖x‖; such a perturbation is contracted by the method's own per-step factor
    afterwards (‖W − J‖₂, 1 − a; local SGD: reset by every averaging). The slack allowed at K is
    Σ_{t<K} ρ^(K−1−t) · ROUNDING_ULPS · eps(dtype) · ‖x̄_t‖ with the run's recorded ρ —
    for float64 runs far below any real excess."""
    pts: dict[int, float] = {}
    norms: dict[int, float] = {}
    for r in run.steps:
        v = r.get(KEY.consensus_distance)
        if v is not None:
            pts[int(r["step"]) + 1] = float(v)
        nv = r.get(KEY.avg_param_norm)
        if nv is not None:
            norms[int(r["step"]) + 1] = float(nv)
    if not pts:
        return "no consensus distance was measured (not a decentralized run)"
    info = run.start.get("decentralized") or {}
    method = info.get("method")
    rho = {"dpsgd": info.get("sigma_2"), "easgd": 1.0 - float(info.get("easgd_alpha") or 0.0)
           }.get(method, 1.0)
    rho = min(max(float(rho if rho is not None else 1.0), 0.0), 1.0)
    H = int(info.get("local_steps") or 0) if method == "local-sgd" else 0
    n0 = float((run.init or {}).get(KEY.avg_param_norm) or 0.0)
    ks = sorted(pts)
    unit = ROUNDING_ULPS * eps_of(facts.dtype)
    acc, tol, prev_norm = 0.0, {}, n0
    for K in range(1, ks[-1] + 1):
        acc = rho * acc + unit * max(prev_norm, norms.get(K, prev_norm))
        if H and K % H == 0:
            acc = unit * norms.get(K, prev_norm)     # averaged: only the average's rounding
        tol[K] = acc
        prev_norm = norms.get(K, prev_norm)
    return Observed(np.array(ks, float), np.array([pts[k] for k in ks]), "exact",
                    abs_tol=np.array([tol[k] for k in ks]))

