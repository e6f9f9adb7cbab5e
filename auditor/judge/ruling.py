"""The ruling on one bound: a chain of small stages, each accepting its input or stopping.

select (:mod:`.selection`) → open the case: check assumptions (:mod:`.assumptions`) and
conditions (:mod:`.conditions`) → gates (:mod:`.gates`: error, not applicable) → instantiate
the constants (:mod:`.instantiate`) → observe the left side on every run (:mod:`.observe`) →
predict → compare and decide (:mod:`.comparison`). The :class:`Verdict` is built once, from
whatever stage ended the chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from ...bounds import catalogue as _catalogue
from ...bounds import symbols as S
from ...bounds.bound import Bound
from ...bounds.errors import ApproxAuditError
from .assumptions import Context, check_assumptions
from .comparison import Samples, compare, decide
from .conditions import ConditionCheck, check_condition
from .constants import Constant
from .estimates import collect_constants
from .evidence import RunEvidence, runs_from_records
from .facts import Facts
from .gates import Case, Stop, first_stop
from .instantiate import Instantiation, instantiate, missing_reason
from .observe import Observed, observe
from .selection import hyper_values, select_bounds
from .verdict import Ruling, Verdict


def open_case(bound: Bound, runs: Sequence[RunEvidence], facts: Facts, spec: Mapping[str, Any],
              hyper: Mapping[str, float], consts: Mapping[str, Constant],
              lrs: Sequence[float], schedule: str) -> Case:
    """The case with its assumptions and its conditions not in K checked (those in K are
    checked per horizon once the constants are known)."""
    assumptions = check_assumptions(bound.assumptions, Context(facts, runs, consts))
    conditions = tuple(check_condition(c, hyper, consts) for c in bound.conditions_
                       if c not in (sp.true, sp.false) and "K" not in S.names_in(c))
    return Case(bound, runs, facts, spec, hyper, consts, lrs, schedule, assumptions, conditions)


def _observed_kind(obs: Sequence[Observed]) -> str:
    kinds = {o.kind for o in obs}
    return "exact" if kinds == {"exact"} else ("upper" if "estimate" not in kinds else "estimate")


def gather(case: Case, inst: Instantiation) -> Samples | Stop:
    """Every run's left side on the horizons they share where the conditions in K hold."""
    obs: list[Observed] = []
    for r in case.runs:
        o = observe(case.bound, r, case.facts, case.hyper)
        if isinstance(o, str):
            return Stop(Ruling.INCONCLUSIVE, f"cannot measure the bound's left side: {o}")
        obs.append(o)
    common = sorted(set.intersection(*[set(o.k.tolist()) for o in obs]))
    if not common:
        return Stop(Ruling.INCONCLUSIVE, "the runs share no checkpoint")
    K = np.array(common, dtype=float)
    keep = case.bound.horizon_mask(K, **inst.values)
    if not keep.any():
        return Stop(Ruling.NOT_APPLICABLE, "the horizon conditions fail at every checkpoint")

    def on_grid(o: Observed, arr: np.ndarray) -> list[float]:
        at = dict(zip(o.k.tolist(), arr.tolist()))
        return [at[k] for k in common]

    mats = np.array([on_grid(o, o.values) for o in obs])[:, keep]
    abs_tol = None
    if all(o.abs_tol is not None for o in obs):
        abs_tol = np.array([on_grid(o, o.abs_tol) for o in obs])[:, keep].max(axis=0)
    return Samples(K[keep], mats, _observed_kind(obs),
                   stochastic=bool(case.bound.expectation) and not case.full_batch,
                   notes=tuple(o.note for o in obs if o.note)[:1], abs_tol=abs_tol)


def predict(bound: Bound, values: Mapping[str, float], K: np.ndarray) -> np.ndarray | Stop:
    """The right-hand side on the horizons ``K``."""
    try:
        pred = bound.evaluate(**{n: values[n] for n in bound.rhs_symbols if n != "K"}, K=K)
    except ApproxAuditError as exc:
        return Stop(Ruling.ERROR, f"could not evaluate the bound: {exc}")
    return np.broadcast_to(np.asarray(pred, dtype=float), K.shape)


def doubts_of(inst: Instantiation, conditions: Sequence[ConditionCheck]) -> list[str]:
    """Why an excess would not be a proof, apart from the statistics."""
    return list(inst.nonconservative) + [
        f"condition {c.condition} is not proven ({c.status.replace('_', ' ')})"
        for c in conditions if c.status != "holds"]


def caveats_of(inst: Instantiation, conditions: Sequence[ConditionCheck], s: Samples
               ) -> tuple[str, ...]:
    """What a reader should keep in mind whatever the ruling."""
    return tuple([f"condition {c.condition}: {c.text}" for c in conditions if c.status != "holds"]
                 + [f"{x}: an excess would not prove a violation" for x in inst.nonconservative]
                 + list(s.notes))


def conclude(case: Case, inst: Instantiation, s: Samples, pred: np.ndarray,
             base: Mapping[str, Any]) -> Verdict:
    """Compare, decide and build the verdict."""
    c = compare(s, pred, case.facts.dtype)
    unchecked = [a["id"] for a in case.assumptions if a["status"] in ("unknown", "assumed")]
    ruling, reason = decide(case.bound, s, c, doubts_of(inst, case.conditions), unchecked)
    base = dict(base)
    caveats = tuple(base.pop("caveats", ())) + caveats_of(inst, case.conditions, s)
    return Verdict(verdict=ruling, reason=reason, caveats=caveats,
                   series=c.series, looseness=c.looseness, worst=c.worst, observed_kind=s.kind,
                   **base)


def run_caveats(runs: Sequence[RunEvidence], schedule: str) -> tuple[str, ...]:
    """What every verdict on these runs should say about how they were trained and measured:
    the step-size schedule, clipped steps, random layers, the audited function's mode."""
    out = []
    if schedule not in ("constant", None):
        out.append(f"step sizes: {schedule} (every step's η is in the trace)")
    for r in runs:
        n, seen, raw, applied = r.clipped()
        if n:
            out.append(f"gradient clipping: {n} of {seen} steps of run {r.run} clipped "
                       f"(largest ‖g‖ {raw:.3g} → {applied:.3g})")
    objective = (runs[0].start.get("objective") or {}) if runs else {}
    layers = sorted({x for r in runs for x in r.stochastic_layers})
    if layers:
        out.append(f"random layers ({layers[0]}{' and more' if len(layers) > 1 else ''}): "
                   "the gradients are stochastic even on the full data; probes compare one draw "
                   "f(·; ξ) (common random numbers)")
    if objective.get("mode") == "eval":
        out.append("audited function: the eval-mode objective (running statistics, no "
                   "dropout), not the one training differentiates")
    return tuple(out)


def rule(bound: Bound, runs: Sequence[RunEvidence], facts: Facts, spec: Mapping[str, Any],
         hyper: Mapping[str, float], consts: Mapping[str, Constant],
         lrs: Sequence[float], schedule: str = "constant") -> Verdict:
    """The verdict for one bound over the runs of one configuration (one run per seed)."""
    case = open_case(bound, runs, facts, spec, hyper, consts, lrs, schedule)
    base: dict[str, Any] = {"bound": bound, "hyperparameters": dict(hyper),
                            "conditions": case.conditions, "assumptions": case.assumptions,
                            "caveats": run_caveats(runs, schedule)}
    stop = first_stop(case)
    if stop is not None:
        return Verdict(verdict=stop.ruling, reason=stop.reason, **base)
    inst = instantiate(bound, hyper, consts)
    base["constants"] = dict(inst.constants)
    if inst.missing is not None:
        return Verdict(verdict=Ruling.INCONCLUSIVE, reason=missing_reason(inst.missing), **base)
    s = gather(case, inst)
    if isinstance(s, Stop):
        return Verdict(verdict=s.ruling, reason=s.reason, **base)
    pred = predict(bound, inst.values, s.K)
    if isinstance(pred, Stop):
        return Verdict(verdict=pred.ruling, reason=pred.reason, **base)
    return conclude(case, inst, s, pred, base)


def judge(records: list[dict[str, Any]], facts: Facts, spec: Mapping[str, Any], *,
          bounds: Sequence[str] | None = None, assume: Mapping[str, float] | None = None,
          catalogue=_catalogue) -> tuple[list[Verdict], dict[str, Any]]:
    """Verdicts and the constants table from trace records (also for a re-render)."""
    runs = runs_from_records(records)
    full_batch = bool(runs) and all(r.full_batch for r in runs)
    random_layers = sorted({layer for r in runs for layer in r.stochastic_layers})
    if random_layers:
        spec = {**spec, "random_layers": random_layers}
    consts = collect_constants(runs, facts, assume)
    hyper = hyper_values(spec)
    lrs = runs[0].lrs() if runs else []
    selected = select_bounds(catalogue, spec, full_batch, bounds)
    verdicts = [rule(b, runs, facts, spec, hyper, consts, lrs, spec.get("schedule", "constant"))
                for b in selected]
    return verdicts, {"constants": {k: c.to_dict() for k, c in consts.items()},
                      "runs": runs, "hyperparameters": hyper, "full_batch": full_batch}
