"""Several optimizers on one workload: solution quality against gradient evaluations.

:func:`compare` is what ``approx-audit compare`` calls. Every optimizer runs ``budget`` steps
(one training gradient evaluation per step; with a minibatch of ``B`` a step is one minibatch
gradient, ``B`` example gradients) through :func:`~.audit.run_audit` with the probes
``loss,full_batch@E``, ``E = max(1, budget // checkpoints)``, into its own folder
``out/NN-<label>/`` (``trace.jsonl``, ``results.json`` and the verdicts, as ``approx-audit run``
writes them). From the full-batch checkpoints of the traces it computes the quality at each
checkpoint (lower is better):

* ``suboptimality`` F − f* where the workload knows f* exactly, with the approximation ratio
  F/f* where f* > 0;
* ``gap_to_lower_bound`` F − f_lower where only a lower bound on f* is known (an upper bound
  on the suboptimality);
* ``objective`` F otherwise.

Over seeds the quality is the mean at each checkpoint (only checkpoints every seed reached with
a finite objective). The Pareto frontier is the non-dominated set of all (gradient evaluations,
quality) points with at least one step (:func:`pareto_front`); the initial point x_0 is shared
by every optimizer and left out. ``out/compare.json`` holds the whole comparison.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..bounds.errors import ApproxAuditError, InvalidValueError
from .audit import AuditConfig, run_audit
from .observables import KEY
from .optimizers import OptimizerSpec, parse_optimizer
from .results import write_json_atomic
from .trace import by_run, read_trace

__all__ = ["COMPARE_SCHEMA_VERSION", "CompareResult", "OptimizerCurve", "TARGETS", "compare",
           "distinct_specs", "pareto_front", "quality_kind"]

COMPARE_SCHEMA_VERSION = "0.1"
TARGETS: tuple[float, ...] = (1e-1, 1e-2, 1e-3)   # fractions of the initial quality

P = TypeVar("P")


def pareto_front(points: Iterable[P], key: Callable[[P], tuple[float, float]] | None = None
                 ) -> list[P]:
    """The points no other point dominates, sorted by x (both coordinates: lower is better).

    ``key(p)`` gives ``(x, y)`` (default: ``p[0], p[1]``). ``q`` dominates ``p`` when
    ``q.x <= p.x`` and ``q.y <= p.y`` with ``(q.x, q.y) != (p.x, p.y)``: of points with the same
    x only the lowest y stays, a point with the same y as an earlier (smaller-x) one is dropped,
    and points at the very same (x, y) all stay (none dominates the other), in input order.
    Points whose x or y is not a finite number are left out. O(n log n).
    """
    key = (lambda p: (p[0], p[1])) if key is None else key
    items = []
    for i, p in enumerate(points):
        x, y = key(p)
        if x is None or y is None:
            continue
        x, y = float(x), float(y)
        if math.isfinite(x) and math.isfinite(y):
            items.append((x, y, i, p))
    items.sort(key=lambda t: (t[0], t[1], t[2]))
    front: list[P] = []
    best: tuple[float, float] | None = None
    for x, y, _, p in items:
        if best is None or y < best[1] or (x, y) == best:
            front.append(p)
            best = (x, y)
    return front


def quality_kind(f_star: float | None, f_lower: float | None) -> dict[str, Any]:
    """What "quality" means for a workload with these facts (see the module docstring)."""
    if f_star is not None:
        return {"kind": "suboptimality", "reference": float(f_star),
                "description": "suboptimality F − f* (f* known exactly)",
                "ratio": f_star > 0,
                "ratio_description": ("approximation ratio F/f*" if f_star > 0 else
                                      "no approximation ratio: f* ≤ 0")}
    if f_lower is not None:
        return {"kind": "gap_to_lower_bound", "reference": float(f_lower),
                "description": (f"gap to a lower bound F − f_lower (f_lower = {f_lower:g}; f* is "
                                "not known, the true suboptimality is at most this)"),
                "ratio": False, "ratio_description": "no approximation ratio: f* is not known"}
    return {"kind": "objective", "reference": None,
            "description": "the objective F itself (neither f* nor a lower bound is known)",
            "ratio": False, "ratio_description": "no approximation ratio: f* is not known"}


@dataclass
class OptimizerCurve:
    """One optimizer's runs: quality at each checkpoint (mean over seeds) and a summary."""

    index: int
    spec: OptimizerSpec
    out: Path
    status: str = "pending"          # completed | diverged | error | interrupted
    message: str | None = None
    points: list[dict[str, Any]] = field(default_factory=list)   # k = 0 first
    counts: dict[str, int] = field(default_factory=dict)         # verdict counts
    costs: dict[str, Any] = field(default_factory=dict)          # results.json's totals
    frontier_points: int = 0

    @property
    def label(self) -> str:
        return self.spec.label()

    @property
    def usable(self) -> bool:
        """At least one checkpoint after a step (a run that failed at once has none)."""
        return any(p["k"] >= 1 for p in self.points)

    @property
    def initial(self) -> dict[str, Any] | None:
        return self.points[0] if self.points and self.points[0]["k"] == 0 else None

    @property
    def final(self) -> dict[str, Any] | None:
        last = self.points[-1] if self.points else None
        return last if last is not None and last["k"] >= 1 else None

    @property
    def best(self) -> dict[str, Any] | None:
        after = [p for p in self.points if p["k"] >= 1]
        return min(after, key=lambda p: (p["quality"], p["k"])) if after else None

    def reached(self, targets: Sequence[float] = TARGETS) -> list[dict[str, Any]]:
        """Gradient evaluations at the first checkpoint with quality ≤ fraction × initial."""
        init = self.initial
        q0 = None if init is None else init["quality"]
        out = []
        for frac in targets:
            row: dict[str, Any] = {"fraction": frac, "target": None, "k": None,
                                   "grad_evals": None, "examples": None}
            if q0 is not None and q0 > 0:
                row["target"] = frac * q0
                hit = next((p for p in self.points if p["k"] >= 1 and p["quality"] <= frac * q0),
                           None)
                if hit is not None:
                    row.update(k=hit["k"], grad_evals=hit["grad_evals"],
                               examples=hit["examples"])
            out.append(row)
        return out

    def to_dict(self, targets: Sequence[float] = TARGETS) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "optimizer": self.spec.to_dict(),
                "out": str(self.out), "status": self.status, "message": self.message,
                "usable": self.usable, "initial": self.initial, "final": self.final,
                "best": self.best, "targets": self.reached(targets),
                "on_frontier": self.frontier_points > 0,
                "frontier_points": self.frontier_points, "verdict_counts": dict(self.counts),
                "gradient_evaluations": dict(self.costs), "points": list(self.points)}


@dataclass
class CompareResult:
    status: str                      # completed | partial (some run failed or diverged) | failed
    workload: dict[str, Any]
    quality: dict[str, Any]
    budget: int
    steps: int
    batch_size: int | None           # None: full batch
    seeds: int
    seed: int
    checkpoint_every: int
    curves: list[OptimizerCurve]
    frontier: list[dict[str, Any]]
    out: Path
    targets: tuple[float, ...] = TARGETS
    message: str | None = None

    @property
    def all_failed(self) -> bool:
        return not any(c.usable for c in self.curves)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": COMPARE_SCHEMA_VERSION, "status": self.status,
                "message": self.message, "workload": self.workload, "quality": self.quality,
                "budget": {"grad_evals": self.budget, "steps": self.steps,
                           "batch_size": self.batch_size,
                           "examples_per_grad_eval": self.workload["n"] if self.batch_size is None
                           else self.batch_size,
                           "unit": "one training gradient evaluation = one step (one forward "
                                   "and backward pass on the batch); audit overhead not "
                                   "counted"},
                "seeds": self.seeds, "seed": self.seed,
                "checkpoint_every": self.checkpoint_every,
                "targets": list(self.targets),
                "optimizers": [c.to_dict(self.targets) for c in self.curves],
                "frontier": self.frontier,
                "frontier_note": ("non-dominated (grad_evals, quality) points over all "
                                  "optimizers' checkpoints after at least one step; x_0 is "
                                  "shared by all and left out"
                                  + ("; trivial with one optimizer" if len(self.curves) == 1
                                     else "")),
                "out": str(self.out)}


def _safe_name(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9.=+-]+", "_", text).strip("_")
    return s[:60] or "optimizer"


def _as_spec(s: OptimizerSpec | str) -> OptimizerSpec:
    return s if isinstance(s, OptimizerSpec) else parse_optimizer(s)


def distinct_specs(specs: Sequence[OptimizerSpec | str]) -> list[OptimizerSpec]:
    """The specs parsed; an :class:`InvalidValueError` when two are the same optimizer
    (``sgd:lr=0.1`` and ``sgd:lr=0.10`` are)."""
    parsed = [_as_spec(s) for s in specs]
    seen: dict[str, int] = {}
    for i, sp in enumerate(parsed):
        key = json.dumps(sp.to_dict(), sort_keys=True, default=str)
        if key in seen:
            raise InvalidValueError(f"optimizer {i + 1} ({sp.label()}) is the same as optimizer "
                                    f"{seen[key] + 1}; give each optimizer once")
        seen[key] = i
    return parsed


def _curve_points(records: list[dict[str, Any]], qual: dict[str, Any], examples_per_eval: int
                  ) -> list[dict[str, Any]]:
    """Mean quality over runs at the checkpoints every run reached with a finite F."""
    series: list[dict[int, float]] = []
    evals: dict[int, int] = {0: 0}
    for _, recs in sorted(by_run(records).items()):
        fs: dict[int, float] = {}
        for r in recs:
            if r.get("record") == "step" and r.get("train_grad_evals") is not None:
                evals[int(r["k"])] = int(r["train_grad_evals"])
            if r.get("record") == "diverged":
                break
            if r.get("record") not in ("init", "step", "final") or KEY.full_loss not in r:
                continue
            F = r[KEY.full_loss]
            if F is None or not math.isfinite(float(F)):
                break                     # not finite (written as null): the run ends here
            fs[int(r["k"])] = float(F)
        if recs and any(r.get("record") == "start" for r in recs):
            series.append(fs)
    if not series:
        return []
    common = sorted(set.intersection(*(set(s) for s in series)))
    ref = qual["reference"]
    points = []
    for k in common:
        Fs = [s[k] for s in series]
        qs = [F - ref if ref is not None else F for F in Fs]
        F = sum(Fs) / len(Fs)
        ge = evals.get(k, k)
        p: dict[str, Any] = {"k": k, "grad_evals": ge, "examples": ge * examples_per_eval,
                             KEY.full_loss: F, "quality": sum(qs) / len(qs)}
        if len(qs) > 1:
            p["quality_min"], p["quality_max"] = min(qs), max(qs)
        if qual["ratio"]:
            p["ratio"] = F / ref
        points.append(p)
    return points


def _positive_int(name: str, value: Any, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(f"{name}={value!r}: give a positive whole number{hint}")


def _check_inputs(budget: Any, checkpoints: Any, seeds: Any, batch_size: Any,
                  specs: Sequence[Any]) -> None:
    """Refuse bad arguments in one line each, before any run."""
    _positive_int("budget", budget, " of gradient evaluations, e.g. --budget 300")
    _positive_int("checkpoints", checkpoints)
    _positive_int("seeds", seeds)
    if batch_size is not None:
        _positive_int("batch_size", batch_size, ", or None for full batch")
    if not specs:
        raise InvalidValueError("no optimizer to compare; give at least one, e.g. "
                                "--optimizer sgd:lr=0.1 --optimizer adam:lr=0.01")


@dataclass(frozen=True)
class _Plan:
    """What every optimizer of one comparison shares."""

    workload: Any
    budget: int
    batch_size: int | None           # None: full batch
    seeds: int
    seed: int
    every: int
    out: Path
    device: str
    targets: tuple[float, ...]
    command: str | None
    quality: dict[str, Any]
    examples_per_eval: int
    # sinks per optimizer (a TensorBoard folder per curve, a progress bar): curve -> list
    sinks_for: Callable[[Any], list] | None = None

    @property
    def workload_description(self) -> dict[str, Any]:
        w = self.workload
        return {"name": w.name, "options": dict(w.options), "n": w.n, "f_star": w.f_star,
                "f_lower": w.f_lower, "description": w.description}

    def config(self, c: OptimizerCurve) -> AuditConfig:
        return AuditConfig(workload=self.workload, optimizer=c.spec, steps=self.budget,
                           batch_size=self.batch_size, seeds=self.seeds, seed=self.seed,
                           probes=f"loss,full_batch@{self.every}", out=c.out,
                           device=self.device, command=self.command,
                           extra={"compare": str(self.out)},
                           sinks=list(self.sinks_for(c)) if self.sinks_for else [])


def _status(curves: Sequence[OptimizerCurve], interrupted: bool) -> tuple[str, str | None]:
    if interrupted:
        return "interrupted", "interrupted by the user"
    if all(c.status == "completed" for c in curves):
        return "completed", None
    if not any(c.usable for c in curves):
        return "failed", "no optimizer got past its first step"
    bad = [f"{c.index} {c.label}: {c.status}" for c in curves if c.status != "completed"]
    return "partial", "not every run completed (" + "; ".join(bad) + ")"


def _result(plan: _Plan, curves: list[OptimizerCurve], interrupted: bool = False
            ) -> CompareResult:
    """The comparison so far, with its frontier, written to ``out/compare.json``."""
    front = pareto_front([(p["grad_evals"], p["quality"], c, p) for c in curves
                          for p in c.points if p["k"] >= 1])
    for c in curves:
        c.frontier_points = sum(1 for _, _, cc, _ in front if cc is c)
    frontier = [{"grad_evals": p["grad_evals"], "examples": p["examples"], "k": p["k"],
                 "quality": p["quality"], "optimizer": c.index, "label": c.label}
                for _, _, c, p in front]
    status, message = _status(curves, interrupted)
    res = CompareResult(status=status, workload=plan.workload_description,
                        quality=plan.quality, budget=plan.budget, steps=plan.budget,
                        batch_size=plan.batch_size, seeds=plan.seeds, seed=plan.seed,
                        checkpoint_every=plan.every, curves=curves, frontier=frontier,
                        out=plan.out, targets=plan.targets, message=message)
    write_json_atomic(plan.out / "compare.json", res.to_dict())
    return res


def _run_curve(plan: _Plan, c: OptimizerCurve, curves: list[OptimizerCurve]) -> None:
    """Audit one optimizer and fill its curve; Ctrl-C writes the comparison so far."""
    audit = None
    try:
        audit = run_audit(plan.config(c))
    except KeyboardInterrupt as exc:
        audit = getattr(exc, "audit_result", None)
        c.status, c.message = "interrupted", "interrupted by the user"
        _fill(c, audit, plan.quality, plan.examples_per_eval)
        exc.compare_result = _result(plan, curves, interrupted=True)  # type: ignore[attr-defined]
        raise
    except ApproxAuditError:
        raise
    except Exception as exc:  # noqa: BLE001 - one failed optimizer does not stop the rest
        audit = getattr(exc, "audit_result", None)
        if audit is None:
            raise
    _fill(c, audit, plan.quality, plan.examples_per_eval)


def compare(workload: Any, specs: Sequence[OptimizerSpec | str], budget: int,
            batch_size: int | None = None, seeds: int = 1, seed: int = 0,
            checkpoints: int = 50, out: str | Path = "compare", device: str = "cpu", *,
            targets: Sequence[float] = TARGETS, command: str | None = None,
            progress: Callable[[str], None] | None = None,
            sinks_for: Callable[[Any], list] | None = None) -> CompareResult:
    """Run every optimizer in ``specs`` for ``budget`` gradient evaluations on ``workload``.

    ``workload`` is a built :class:`~.workloads.Workload` or a built-in name (built with
    ``seed`` on ``device``). ``specs`` are :class:`OptimizerSpec` or spec texts
    (``"sgd:lr=0.1,momentum=0.9"``); two equal specs are refused. Writes ``out/NN-<label>/``
    per optimizer and ``out/compare.json``; returns the :class:`CompareResult`. Input errors
    raise :class:`ApproxAuditError` before any run; a run that fails is recorded with status
    ``error`` and the others go on. ``sinks_for(curve)`` gives each optimizer's sinks
    (``curve.index``, ``curve.label``, ``curve.out``; see :mod:`.sinks`).
    """
    _check_inputs(budget, checkpoints, seeds, batch_size, specs)
    parsed = distinct_specs(specs)
    if isinstance(workload, str):
        from .workloads import get_workload
        workload = get_workload(workload, seed=seed, device=device)
    say = progress or (lambda _msg: None)
    full_batch = batch_size is None or batch_size >= workload.n
    plan = _Plan(workload=workload, budget=budget, batch_size=None if full_batch else batch_size,
                 seeds=seeds, seed=seed, every=max(1, budget // checkpoints), out=Path(out),
                 device=device, targets=tuple(targets), command=command,
                 quality=quality_kind(workload.f_star, workload.f_lower),
                 examples_per_eval=workload.n if full_batch else int(batch_size),
                 sinks_for=sinks_for)
    width = max(2, len(str(len(parsed))))
    curves = [OptimizerCurve(i + 1, sp, plan.out / f"{i + 1:0{width}d}-{_safe_name(sp.label())}")
              for i, sp in enumerate(parsed)]
    for c in curves:
        say(f"[{c.index}/{len(curves)}] {c.label}: {budget} steps × {seeds} seed(s) → {c.out}")
        _run_curve(plan, c, curves)
        fin = c.final
        say(f"[{c.index}/{len(curves)}] {c.label}: {c.status}" +
            (f", final quality {fin['quality']:.4g}" if fin else "") +
            (f" ({c.message})" if c.message and c.status != "completed" else ""))
    return _result(plan, curves)


def _fill(c: OptimizerCurve, audit, qual: dict[str, Any], examples_per_eval: int) -> None:
    if audit is not None:
        if c.status == "pending":
            c.status, c.message = audit.status, audit.message
        c.counts = dict(audit.counts)
        c.costs = dict(audit.results.get("gradient_evaluations", {}))
    trace = c.out / "trace.jsonl"
    c.points = (_curve_points(read_trace(trace), qual, examples_per_eval) if trace.exists()
                else [])
    if c.status == "pending":
        c.status = "error"
