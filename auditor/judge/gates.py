"""The gates before a comparison: each accepts the case (None) or stops it with a ruling.

In DESIGN.md's order: ``error`` for a run whose steps are not contiguous and for a diverged or
failed run (never ``violated``), then ``not_applicable`` for a lower bound, another algorithm,
a deterministic bound on a stochastic run, another step rule, a refuted assumption, a refuted
assertion (a contradicted fact is an ``error``) and a condition that certainly fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from ...bounds.bound import Bound
from .conditions import ConditionCheck
from .constants import Constant
from .evidence import RunEvidence
from .facts import Facts
from .selection import ADAPTIVE, PATHWISE, algorithm_of
from .verdict import Ruling


@dataclass(frozen=True)
class Case:
    """One bound and everything known when ruling on it over one configuration's runs."""

    bound: Bound
    runs: Sequence[RunEvidence]
    facts: Facts
    spec: Mapping[str, Any]
    hyper: Mapping[str, float]
    consts: Mapping[str, Constant]
    lrs: Sequence[float]
    schedule: str
    assumptions: tuple[Mapping[str, str], ...]
    conditions: tuple[ConditionCheck, ...]

    @property
    def full_batch(self) -> bool:
        return bool(self.runs) and all(r.full_batch for r in self.runs)


@dataclass(frozen=True)
class Stop:
    """A stage's refusal: the ruling and its one-line reason."""

    ruling: Ruling
    reason: str


def _failed(case: Case) -> list[ConditionCheck]:
    return [c for c in case.conditions if c.status == "fails"]


def non_contiguous(case: Case) -> Stop | None:
    """A run whose steps are not 0..n−1, each once, in order (a hand-edited or concatenated
    trace) is an ``error``: ruling on it would claim checkpoints the run may not have had."""
    for r in case.runs:
        if r.contiguity is not None:
            return Stop(Ruling.ERROR, f"run {r.run}: steps not contiguous: {r.contiguity}")
    return None


def bad_run(case: Case) -> Stop | None:
    bad = [r for r in case.runs if r.status in ("diverged", "error")]
    if bad:
        r = bad[0]
        msg = (r.diverged or {}).get("message") or (r.end or {}).get("message") or r.status
        failed = _failed(case)
        extra = f"; note: {failed[0].text}" if failed else ""
        return Stop(Ruling.ERROR, f"run {r.run} {r.status}: {msg}{extra}")
    if not case.runs or not any(r.steps for r in case.runs):
        return Stop(Ruling.ERROR, "no step was recorded")
    return None


def lower_bound(case: Case) -> Stop | None:
    if case.bound.kind != "upper":
        return Stop(Ruling.NOT_APPLICABLE, "a lower bound over a function class says nothing "
                                           "about one run")
    return None


def wrong_algorithm(case: Case) -> Stop | None:
    layers = sorted({x for r in case.runs for x in r.stochastic_layers})
    spec = {**case.spec, "random_layers": layers} if layers else case.spec
    algo, why = algorithm_of(spec, case.full_batch)
    if algo != case.bound.algorithm:
        return Stop(Ruling.NOT_APPLICABLE, f"the bound is for {case.bound.algorithm}; this run "
                                           f"is {algo or case.spec['name']}: {why}")
    return None


def clipped_steps(case: Case) -> Stop | None:
    """A clipped step is clipped SGD, not the theorem's algorithm: not applicable, saying how
    many steps and by how much (no catalogue bound analyses gradient clipping yet)."""
    for r in case.runs:
        n, seen, raw, applied = r.clipped()
        if n:
            how = (f" (‖g‖ up to {raw:.3g} applied as {applied:.3g})"
                   if raw is not None and applied is not None else "")
            return Stop(Ruling.NOT_APPLICABLE,
                        f"gradient clipping: {n} of {seen} steps of run {r.run} were clipped"
                        f"{how}; the run is clipped {case.spec.get('name', 'SGD')}, which the "
                        f"bound ({case.bound.algorithm}, unclipped steps) does not cover")
    return None


def deterministic_on_stochastic(case: Case) -> Stop | None:
    b = case.bound
    if b.expectation is False and not case.full_batch and b.quantity not in PATHWISE:
        return Stop(Ruling.NOT_APPLICABLE, "a deterministic bound on a stochastic run")
    return None


def other_step_rule(case: Case) -> Stop | None:
    msg = check_step_rule(case.bound, case.hyper, case.consts, case.lrs, case.schedule)
    return None if msg is None else Stop(Ruling.NOT_APPLICABLE, msg)


def refuted_assumption(case: Case) -> Stop | None:
    refuted = [a for a in case.assumptions if a["status"] == "refuted"]
    if refuted:
        return Stop(Ruling.NOT_APPLICABLE, "; ".join(
            f"assumption {a['id']} fails: {a['reason']}" for a in refuted))
    return None


def conflicting_constant(case: Case) -> Stop | None:
    mine = [case.consts[n] for n in case.bound.constants if n in case.consts]
    conflicts = [c for c in mine if c.conflict]
    if not conflicts:
        return None
    if any(c.asserted for c in conflicts):
        return Stop(Ruling.NOT_APPLICABLE, "an assertion is refuted by a measurement: "
                    + conflicts[0].conflict)
    return Stop(Ruling.ERROR, "a known constant contradicts a measurement: "
                + conflicts[0].conflict)


def failing_condition(case: Case) -> Stop | None:
    failed = _failed(case)
    if failed:
        return Stop(Ruling.NOT_APPLICABLE, "; ".join(
            f"condition {c.condition} fails: {c.text}" for c in failed))
    return None


GATES: tuple[Callable[[Case], Stop | None], ...] = (
    non_contiguous, bad_run, lower_bound, wrong_algorithm, clipped_steps,
    deterministic_on_stochastic, other_step_rule,
    refuted_assumption, conflicting_constant, failing_condition)


def first_stop(case: Case, gates: Sequence[Callable[[Case], Stop | None]] = GATES
               ) -> Stop | None:
    """The first gate that stops the case, or None when every gate accepts it."""
    for gate in gates:
        stop = gate(case)
        if stop is not None:
            return stop
    return None


def check_step_rule(bound: Bound, hyper: Mapping[str, float], consts: Mapping[str, Constant],
                     lrs: Sequence[float], schedule: str) -> str | None:
    """None when the run's step sizes follow the theorem's rule, else why not (one line)."""
    if not lrs:
        return None
    lr_arr = np.asarray(lrs, dtype=float)
    const_lr = bool(np.allclose(lr_arr, lr_arr[0], rtol=1e-12, atol=0))
    if bound.algorithm in ADAPTIVE:
        if not const_lr:
            return (f"the theorem's step scale alpha is constant; this run used schedule "
                    f"{schedule!r}")
        return None
    rule_expr = bound.step_rule
    if rule_expr is None:
        return None
    names = {s.name for s in rule_expr.free_symbols} - {"k"}
    values = dict(hyper)
    for nm in names - set(hyper):
        c = consts.get(nm)
        if c is None or not c.exact:
            if const_lr and "k" in {s.name for s in rule_expr.free_symbols}:
                return (f"the theorem prescribes η_k = {sp.sstr(rule_expr)} (varying with k); "
                        f"this run used a constant step {lr_arr[0]:g}")
            return (f"the theorem prescribes η_k = {sp.sstr(rule_expr)}, which needs {nm} "
                    "exactly; it is not known exactly here")
        values[nm] = c.lo
    in_k = "k" in {s.name for s in rule_expr.free_symbols}
    want = []
    for k in np.arange(len(lr_arr), dtype=float):
        val = _num(rule_expr, {**values, "k": k} if in_k else values)
        want.append(np.nan if val is None else val)
    want = np.asarray(want)
    if np.isnan(want).any():
        return (f"the theorem prescribes η_k = {sp.sstr(rule_expr)}, which could not be "
                "evaluated with this run's values")
    if not np.allclose(want, lr_arr, rtol=1e-9, atol=0):
        i = int(np.argmax(np.abs(want - lr_arr) / np.maximum(np.abs(want), 1e-300)))
        return (f"the theorem prescribes η_k = {sp.sstr(rule_expr)} = {want[i]:.4g} at step "
                f"{i}; this run used {lr_arr[i]:.4g} (schedule {schedule!r})")
    return None


def _num(expr: sp.Expr, values: Mapping[str, float]) -> float | None:
    """A real, finite value of ``expr`` at ``values``, or None."""
    subs = {s: values[s.name] for s in expr.free_symbols if s.name in values}
    try:
        out = complex(sp.N(expr.subs(subs)))
    except (TypeError, ValueError):
        return None
    if abs(out.imag) > 1e-12 * max(1.0, abs(out.real)) or not math.isfinite(out.real):
        return None
    return out.real
