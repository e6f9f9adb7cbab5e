"""Every constant's estimates from the workload's facts, the runs' probes and the user.

Each source is one small generator of (constant, estimate) pairs; :func:`collect_constants`
chains them in a fixed order (the order of the estimates is the order results.json lists).
The per-key lines (which trace key estimates which constant, in which direction) are
:data:`PATH_MAXIMA`, read from the observables table (:mod:`..observables`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType

from ..observables import OBSERVABLES, KEY
from .constants import Constant, Estimate, build_constants
from .evidence import RunEvidence
from .facts import Facts, eps_of

Pairs = Iterator[tuple[str, Estimate]]

# trace key -> (constant, kind, when: "always" | "full_batch" (single-process or not a rank
# mean), source with {n} the number of values the maximum is over): the rows of the
# observables table that declare a path maximum
PATH_MAXIMA: Mapping[str, tuple[str, str, str, str]] = MappingProxyType({
    k: (o.estimates, o.direction, o.when, o.source) for k, o in OBSERVABLES.items() if o.when})


def _est(name: str, value: float | None, kind: str, source: str) -> Pairs:
    if value is not None and math.isfinite(value):
        yield name, Estimate(float(value), kind, source)


def _run_max(runs: Sequence[RunEvidence], key: str) -> tuple[float | None, int]:
    vals = [v for r in runs for _, v in r.values(key)]
    return (max(vals) if vals else None), len(vals)


def _full_batch(runs: Sequence[RunEvidence]) -> bool:
    return bool(runs) and all(r.full_batch for r in runs)


def _rank_mean_keys(runs: Sequence[RunEvidence]) -> set[str]:
    # keys a multi-process run recorded as a mean over ranks of per-shard values: a mean of
    # shard secants or shard Rayleigh quotients can exceed L of the whole objective, so it is
    # no lower estimate of L
    out: set[str] = set()
    for r in runs:
        for section in ("distributed", "decentralized"):
            out |= set((r.start.get(section) or {}).get("rank_mean_keys") or ())
    return out


def _from_facts(facts: Facts) -> Pairs:
    for name, (value, kind, source) in facts.constants.items():
        yield from _est(name, value, kind, f"workload: {source}")
    yield from _est("d", facts.d, "exact", "number of trainable parameters")
    if facts.n is not None:
        yield from _est("n", facts.n, "exact", "number of training examples")


_SAMPLED = ("; measured on f(·; ξ) with fixed dropout masks (common random numbers), one draw "
            "of the random objective: an estimate of its smoothness, not one-sided for F = E_ξ f")


def _path_maxima(runs: Sequence[RunEvidence], keys: Sequence[str]) -> Pairs:
    skip = _rank_mean_keys(runs)
    stochastic = any(r.stochastic_layers for r in runs)
    for key in keys:
        name, kind, when, source = PATH_MAXIMA[key]
        if when == "full_batch" and (not _full_batch(runs) or key in skip):
            continue
        v, cnt = _run_max(runs, key)
        if stochastic and kind == "lower":
            # a secant of one draw f(·; ξ) need not be below F's L: no certainty from it
            yield from _est(name, v, "estimate", source.format(n=cnt) + _SAMPLED)
            continue
        yield from _est(name, v, kind, source.format(n=cnt))


def _pl(runs: Sequence[RunEvidence], facts: Facts) -> Pairs:
    # PL ratios with the exact f*, where F − f* is well above rounding (near the optimum the
    # ratio of two rounding-sized numbers says nothing)
    floor = 1e4 * eps_of(facts.dtype) * max(1.0, abs(facts.f_star or 0.0))
    pl = [float(s[KEY.pl_ratio]) for r in runs for s in r.steps
          if s.get(KEY.pl_ratio) is not None and s.get(KEY.pl_uses_f_star) == 1
          and (s.get(KEY.pl_gap) or 0.0) > floor]
    if pl:
        yield from _est("mu", min(pl), "upper", f"min over {len(pl)} checkpoints of the PL ratio "
                        "‖∇F‖²/(2(F − f*)) with exact f* (≥ the PL and strong-convexity "
                        "constants)")


def _start_point(runs: Sequence[RunEvidence], facts: Facts) -> Pairs:
    inits = [r.init for r in runs if r.init]
    if inits and all(i.get(KEY.dist_sq) is not None for i in inits):
        yield from _est("R", math.sqrt(max(i[KEY.dist_sq] for i in inits)), "exact",
                        "‖x_0 − x*‖ with the workload's exact minimizer")
    if not (inits and all(i.get(KEY.full_loss) is not None for i in inits)):
        return
    F0 = max(i[KEY.full_loss] for i in inits)
    if facts.f_star is not None:
        yield from _est("Delta", F0 - facts.f_star, "exact", "F(x_0) − f* with the exact f*")
    elif facts.f_lower is not None:
        yield from _est("Delta", F0 - facts.f_lower, "upper",
                        f"F(x_0) − f_lower with f_lower = {facts.f_lower:g} ≤ inf F")


def _gradients(runs: Sequence[RunEvidence]) -> Pairs:
    if _full_batch(runs):
        yield from _est("sigma", 0.0 + 1e-300, "exact", "full-batch gradients are exact (no noise)")
    else:
        v, cnt = _run_max(runs, KEY.gradient_noise_batch)
        if v is not None:
            yield from _est("sigma", math.sqrt(v), "estimate",
                            f"√ of the max over {cnt} steps of the per-sample estimate of the "
                            "minibatch gradient's variance (an estimate; not one-sided)")
    v, cnt = _run_max(runs, KEY.grad_norm)
    if _full_batch(runs):
        yield from _est("G", v, "lower", f"max over {cnt} steps of ‖∇F(x_t)‖ (full batch)")
    else:
        yield from _est("G", v, "estimate", f"max over {cnt} steps of the minibatch gradient "
                        "norm (a sample maximum; not one-sided for a second moment)")


def _consensus(runs: Sequence[RunEvidence]) -> Pairs:
    # decentralized runs: the consensus bounds' constants, measured at every step (exact)
    inits = [r.init for r in runs if r.init]
    if inits and all(i.get(KEY.consensus_distance) is not None for i in inits):
        yield from _est("C0", max(float(i[KEY.consensus_distance]) for i in inits), "exact",
                        "consensus distance of the ranks' starting points, measured")
    spreads = [float(v) for r in runs for _, v in r.values(KEY.update_spread)]
    if spreads and all(len(r.values(KEY.update_spread)) == r.n_steps for r in runs):
        yield from _est("Su", max(spreads), "exact",
                        f"max over all {len(spreads)} steps of the measured spread of the ranks' "
                        "local steps sqrt((1/N) Σ‖u_i − ū‖²)")


def _asserted(assumed: Mapping[str, float] | None) -> Pairs:
    for name, value in (assumed or {}).items():
        yield from _est(name, value, "asserted", "asserted by the user (--assume)")


def collect_constants(runs: Sequence[RunEvidence], facts: Facts,
                      assumed: Mapping[str, float] | None = None) -> dict[str, Constant]:
    """Every constant's estimates, with an assertion or a claimed fact that a certain
    estimate contradicts recorded as the constant's conflict."""
    def pairs() -> Pairs:
        yield from _from_facts(facts)
        yield from _path_maxima(runs, (KEY.full_smoothness, KEY.local_smoothness, KEY.sharpness))
        yield from _pl(runs, facts)
        yield from _start_point(runs, facts)
        yield from _gradients(runs)
        yield from _path_maxima(runs, (KEY.grad_inf_norm,))
        yield from _consensus(runs)
        yield from _asserted(assumed)

    return build_constants(pairs(), tol=1e-6 if facts.dtype == "float64" else 1e-2)
