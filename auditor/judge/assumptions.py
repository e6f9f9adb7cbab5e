"""A bound's assumptions, each checked against the facts and the runs by a small checker.

A checker answers ``(status, reason)`` with status ``holds`` | ``refuted`` | ``unknown`` |
``assumed`` (the user's loop makes it so, unchecked) | ``estimated`` (its constant is estimated
along the path). :data:`CHECKERS` maps each assumption id of the catalogue to its checker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..observables import KEY
from .constants import Constant
from .evidence import RunEvidence
from .facts import ROUNDING_ULPS, Facts, eps_of

Status = tuple[str, str]


@dataclass(frozen=True)
class Context:
    """What every checker may read."""

    facts: Facts
    runs: Sequence[RunEvidence]
    consts: Mapping[str, Constant]


def _most_negative_gap(ctx: Context) -> tuple[float, int, str] | None:
    worst = None
    for r in ctx.runs:
        keys = [KEY.full_convexity_gap] + ([KEY.convexity_gap, KEY.convexity_gap_reverse]
                                         if r.full_batch else [])
        for key in keys:
            for step, v in r.values(key):
                if worst is None or v < worst[0]:
                    worst = (v, step, key)
    return worst


def _convex(ctx: Context, strongly: bool = False) -> Status:
    f0 = max((abs(r.init.get(KEY.full_loss) or 0.0) for r in ctx.runs if r.init), default=1.0)
    tol = ROUNDING_ULPS * eps_of(ctx.facts.dtype) * (1 + f0)
    worst = _most_negative_gap(ctx)
    if worst is not None and worst[0] < -tol:
        return "refuted", (f"measured a negative convexity gap {worst[0]:.3g} ({worst[2]}, "
                           f"step {worst[1]}): the objective is not convex along the path")
    if ctx.facts.convex is False:
        return "refuted", f"the workload {ctx.facts.name!r} is non-convex"
    if strongly:
        mu = ctx.consts.get("mu")
        if mu is None or mu.lo is None:
            return "unknown", "no lower bound on mu is known; assert one with --assume mu=…"
    if ctx.facts.convex:
        return "holds", "convex by construction"
    return "unknown", "not refuted along the path (no negative convexity gap)"


def _quadratic(ctx: Context) -> Status:
    if ctx.facts.quadratic:
        return "holds", "the workload is a quadratic"
    return "refuted", f"the workload {ctx.facts.name!r} is not a quadratic"


def _pl(ctx: Context) -> Status:
    mu = ctx.consts.get("mu")
    if ctx.facts.convex and mu is not None and mu.lo:
        return "holds", "strong convexity with mu implies PL with mu"
    return "unknown", "not refutable from a run; the PL-ratio probe gives an upper estimate"


def _minimizer_exists(ctx: Context) -> Status:
    R = ctx.consts.get("R")
    if R is None:
        return "unknown", "no minimizer is known; assert R with --assume R=…"
    return "holds", "asserted (R)" if R.asserted else "the workload knows its minimizer"


def _lower_bounded(ctx: Context) -> Status:
    if ctx.facts.f_star is not None or ctx.facts.f_lower is not None:
        return "holds", "f* or a lower bound f_lower is known"
    return "unknown", "no lower bound on the objective is known"


def _unbiased_gradients(ctx: Context) -> Status:
    if ctx.facts.sampling == "iid":
        return "holds", "minibatches are drawn i.i.d. uniformly with replacement"
    return "assumed", "the user's loop draws the batches"


def _bounded_domain(ctx: Context) -> Status:
    return "refuted", "the run is unconstrained: no projection onto a bounded set"


def _doubly_stochastic(ctx: Context) -> Status:
    infos = [r.start.get("decentralized") or {} for r in ctx.runs]
    if infos and all(i.get("W") is not None for i in infos):
        return "holds", ("W was checked doubly stochastic (within 1e-9) before the run and "
                         "applied exactly through torch.distributed")
    return "unknown", "no mixing matrix is recorded"


def _measured(key: str) -> Callable[[Context], Status]:
    def check(ctx: Context) -> Status:
        c = ctx.consts.get(key)
        if c is not None and not c.asserted:
            return "holds", "measured on every rank at every step"
        return "unknown", "not measured (not a decentralized run)"
    return check


def _estimated(ctx: Context) -> Status:
    return "estimated", "its constant is estimated along the path"


def _not_checked(ctx: Context) -> Status:
    return "unknown", "not checked by a run"


CHECKERS: dict[str, Callable[[Context], Status]] = {
    "convex": _convex,
    "strongly_convex": lambda ctx: _convex(ctx, strongly=True),
    "quadratic": _quadratic,
    "pl": _pl,
    "minimizer_exists": _minimizer_exists,
    "lower_bounded": _lower_bounded,
    "unbiased_gradients": _unbiased_gradients,
    "bounded_domain": _bounded_domain,
    "doubly_stochastic_mixing": _doubly_stochastic,
    "initial_consensus": _measured("C0"),
    "bounded_update_spread": _measured("Su"),
    **{aid: _estimated for aid in ("bounded_variance", "bounded_second_moment",
                                   "bounded_gradient_inf", "lipschitz_loss", "l_smooth")},
    # no probe measures these: said so, rather than left to the default
    **{aid: _not_checked for aid in ("bounded_loss", "hessian_lower_bound_at_optimum",
                                     "lipschitz_hessian")},
}


def check_assumptions(ids: Sequence[str], ctx: Context) -> tuple[dict[str, str], ...]:
    """Each assumption's ``{"id", "status", "reason"}``; one without a checker is unknown."""
    out = []
    for aid in ids:
        checker = CHECKERS.get(aid)
        status, reason = (checker or _not_checked)(ctx)
        out.append({"id": aid, "status": status, "reason": reason})
    return tuple(out)
