"""Verdicts: catalogue bounds instantiated from what a run measured, and ruled on.

The rules are DESIGN.md's table. For each selected bound:

1. ``error`` when the run diverged or failed, or a probe it needs failed (never ``violated``).
2. ``not_applicable`` when the bound is for another algorithm or step rule, when an assumption
   is refuted (a negative convexity gap, a non-convex workload, an assertion contradicted by a
   measurement), or when a condition *certainly* fails — e.g. ``eta < 2/L`` with η > 2/L̂ for a
   lower estimate L̂ ≤ L (then η > 2/L too). The reason gives the margin.
3. The constants are instantiated *conservatively*: for a right-hand side increasing in L the
   upper end of what is known about L (an exact value, a proven upper bound, an assertion),
   otherwise the largest estimate, marked non-conservative; the mirror for decreasing.
4. Observed and predicted are compared on the iteration grid with a rounding tolerance
   (deterministic bounds: every run; expectation bounds: the mean over seeds minus a one-sided
   95 % Student-t margin). No excess: ``consistent``. An excess with every constant
   conservative, every condition certain, an exact observation and (for expectations) a
   significant mean: ``violated``. Any other excess: ``inconclusive``, with the reasons.

Each verdict carries the looseness predicted/observed at the end and its range over the grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from ..bounds import symbols as S
from ..bounds.bound import Bound
from ..bounds.errors import ApproxAuditError
from ..bounds.quantities import Quantity
from ..bounds.sampling import sympy_sign
from .trace import by_run

VERDICTS = ("consistent", "violated", "inconclusive", "not_applicable", "error")
CONFIDENCE = 0.95
REL_TOL = 1e-6            # relative slack on predicted values (bound evaluation rounding)
ROUNDING_ULPS = 64        # absolute slack: ULPS · eps(dtype) · scale of the observed quantity
MAX_SERIES = 400          # points kept per series in results (the comparison uses all)

# Averaged-iterate bounds and the average each theorem speaks of (keys the run loop records).
AVERAGE_KEY = {
    "sgd.convex.bubeck_2015": ("avg_loss_0", "the average of x_0..x_{K-1}"),
    "sgd.smooth_convex.bubeck_2015": ("avg_loss_1", "the average of x_1..x_K"),
    "sgd.strongly_convex.bubeck_2015": ("wavg_loss", "Σ_s 2s/(K(K+1)) x_{s-1}"),
}

ADAPTIVE = {"adam", "rmsprop", "adagrad"}


# ------------------------------------------------------------------------------------------
# What the run knew and measured
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Facts:
    """What is known about the workload, independent of any run."""

    name: str
    convex: bool | None              # None: unknown (a user's model)
    quadratic: bool
    f_star: float | None
    f_lower: float | None
    constants: Mapping[str, tuple[float, str, str]]   # name -> (value, kind, source)
    n: int | None
    d: int
    dtype: str = "float32"
    sampling: str = "iid"            # "iid": i.i.d. with replacement (unbiased); "user"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Facts":
        return cls(name=d["name"], convex=d.get("convex"), quadratic=bool(d.get("quadratic")),
                   f_star=d.get("f_star"), f_lower=d.get("f_lower"),
                   constants={k: (float(v["value"]), v["kind"], v["source"])
                              for k, v in (d.get("constants") or {}).items()},
                   n=d.get("n"), d=int(d.get("d") or 0), dtype=d.get("dtype", "float32"),
                   sampling=d.get("sampling", "iid"))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "convex": self.convex, "quadratic": self.quadratic,
                "f_star": self.f_star, "f_lower": self.f_lower, "n": self.n, "d": self.d,
                "dtype": self.dtype, "sampling": self.sampling,
                "constants": {k: {"value": v, "kind": kind, "source": src}
                              for k, (v, kind, src) in self.constants.items()}}


@dataclass
class RunData:
    """One run's records from the trace, with accessors keyed by iterate index k."""

    run: int
    records: list[dict[str, Any]]

    def __post_init__(self):
        self.start = next((r for r in self.records if r["record"] == "start"), {})
        self.init = next((r for r in self.records if r["record"] == "init"), None)
        self.steps = [r for r in self.records if r["record"] == "step"]
        self.final = next((r for r in self.records if r["record"] == "final"), None)
        self.end = next((r for r in self.records if r["record"] == "end"), None)
        self.diverged = next((r for r in self.records if r["record"] == "diverged"), None)

    @property
    def status(self) -> str:
        if self.end is not None:
            return self.end.get("status", "completed")
        return "diverged" if self.diverged else "interrupted"

    @property
    def full_batch(self) -> bool:
        return bool(self.start.get("full_batch"))

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    def checkpoints(self, key: str) -> dict[int, float]:
        """k -> value of a quantity measured at x_k (init, checkpoints after steps, final)."""
        out: dict[int, float] = {}
        for r in ([self.init] if self.init else []) + self.steps + ([self.final] if self.final else []):
            v = r.get(key)
            if v is not None:
                out[int(r["k"])] = float(v)
        return out

    def objective(self) -> dict[int, float]:
        """F(x_k): full-data checkpoints, plus the training loss of full-batch steps (at x_t)."""
        out = self.checkpoints("full_loss")
        if self.full_batch:
            for r in self.steps:
                if r.get("loss") is not None:
                    out.setdefault(int(r["step"]), float(r["loss"]))
        return out

    def grad_norm_sq(self) -> dict[int, float]:
        """‖∇F(x_k)‖²: checkpoints, plus the training gradient of full-batch steps."""
        out = {k: v * v for k, v in self.checkpoints("full_grad_norm").items()}
        if self.full_batch:
            for r in self.steps:
                if r.get("grad_norm") is not None:
                    out.setdefault(int(r["step"]), float(r["grad_norm"]) ** 2)
        return out

    def grad_norm_sq_estimate(self) -> tuple[dict[int, float], str, str]:
        """‖∇F(x_k)‖² at every iterate 0..N−1 of a minibatch run, with its kind and a note.

        Exact where a full-data checkpoint exists; elsewhere ‖g_k‖² − σ̂²_B from the training
        gradient g_k (free) minus the minibatch noise the gradient-noise probe measured
        (interpolated between its steps): E‖g_k‖² = ‖∇F(x_k)‖² + σ_B², so this is unbiased up
        to the interpolation of σ²_B. Without noise measurements ‖g_k‖² alone over-estimates
        in expectation (kind ``upper``).
        """
        exact = self.grad_norm_sq()
        g = {int(r["step"]): float(r["grad_norm"]) ** 2 for r in self.steps
             if r.get("grad_norm") is not None}
        noise = self.values("gradient_noise_batch")
        out: dict[int, float] = {}
        if noise:
            nk = np.array([k for k, _ in noise], dtype=float)
            nv = np.array([v for _, v in noise])
        for k in range(self.n_steps):
            if k in exact:
                out[k] = exact[k]
            elif k in g:
                out[k] = g[k] - (float(np.interp(k, nk, nv)) if noise else 0.0)
        if noise:
            return out, "estimate", ("‖g_k‖² − σ̂²_B (minibatch gradient minus measured noise) "
                                     "between full-data checkpoints: an estimate")
        return out, "upper", ("‖g_k‖² of the minibatch gradient between full-data checkpoints: "
                              "over-estimates ‖∇F‖² in expectation by σ²_B")

    def values(self, key: str) -> list[tuple[int, float]]:
        """(step, value) of a per-step probe key, skipping missing values."""
        return [(int(r["step"]), float(r[key])) for r in self.steps if r.get(key) is not None]

    def lrs(self) -> list[float]:
        return [float(r["lr"]) for r in self.steps if r.get("lr") is not None]


def runs_from_records(records: Iterable[dict[str, Any]]) -> list[RunData]:
    return [RunData(i, recs) for i, recs in sorted(by_run(records).items())]


# ------------------------------------------------------------------------------------------
# Constants: every estimate, with the direction in which it can be wrong
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    value: float
    kind: str        # exact | upper (true <= value) | lower (true >= value) | estimate | asserted
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "kind": self.kind, "source": self.source}


@dataclass
class Constant:
    """All that is known of one constant: an interval [lo, hi] that certainly contains it
    (None: unbounded on that side), point estimates, and whether it was asserted."""

    name: str
    estimates: list[Estimate] = field(default_factory=list)
    conflict: str | None = None

    @property
    def asserted(self) -> Estimate | None:
        return next((e for e in self.estimates if e.kind == "asserted"), None)

    @property
    def lo(self) -> float | None:
        a = self.asserted
        if a is not None:
            return a.value
        vals = [e.value for e in self.estimates if e.kind in ("exact", "lower")]
        return max(vals) if vals else None

    @property
    def hi(self) -> float | None:
        a = self.asserted
        if a is not None:
            return a.value
        vals = [e.value for e in self.estimates if e.kind in ("exact", "upper")]
        return min(vals) if vals else None

    @property
    def exact(self) -> bool:
        return self.lo is not None and self.hi is not None and self.lo == self.hi

    def choose(self, direction: str) -> tuple[Estimate | None, bool]:
        """(estimate to use, conservative?) for a right-hand side moving ``direction`` in it."""
        if not self.estimates:
            return None, False
        a = self.asserted
        if a is not None:
            return a, True
        exact = next((e for e in self.estimates if e.kind == "exact"), None)
        if exact is not None:
            return exact, True
        d = direction.replace("sampled:", "")
        ups = [e for e in self.estimates if e.kind == "upper"]
        downs = [e for e in self.estimates if e.kind == "lower"]
        others = [e for e in self.estimates if e.kind == "estimate"]
        if d == "constant":
            return self.estimates[0], True
        if d == "increasing":
            if ups:
                return min(ups, key=lambda e: e.value), True
            pool = downs + others
            return max(pool, key=lambda e: e.value), False
        if d == "decreasing":
            if downs:
                return max(downs, key=lambda e: e.value), True
            pool = ups + others
            return min(pool, key=lambda e: e.value), False
        return (others or downs or ups)[0], False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "lo": self.lo, "hi": self.hi,
                "asserted": self.asserted is not None, "conflict": self.conflict,
                "estimates": [e.to_dict() for e in self.estimates]}


def _eps(dtype: str) -> float:
    return {"float64": 2.2e-16, "float32": 1.2e-7, "float16": 9.8e-4,
            "bfloat16": 7.8e-3}.get(dtype, 1.2e-7)


def collect_constants(runs: Sequence[RunData], facts: Facts,
                      assumed: Mapping[str, float] | None = None) -> dict[str, Constant]:
    """Every constant's estimates from the workload's facts, the probes and the user."""
    C: dict[str, Constant] = {}

    def add(name: str, value: float | None, kind: str, source: str) -> None:
        if value is None or not math.isfinite(value):
            return
        C.setdefault(name, Constant(name)).estimates.append(Estimate(float(value), kind, source))

    for name, (value, kind, source) in facts.constants.items():
        add(name, value, kind, f"workload: {source}")
    add("d", facts.d, "exact", "number of trainable parameters")
    if facts.n is not None:
        add("n", facts.n, "exact", "number of training examples")

    full_batch = bool(runs) and all(r.full_batch for r in runs)

    def run_max(key: str, steps_only: bool = True) -> tuple[float | None, int]:
        vals = [v for r in runs for _, v in r.values(key)]
        return (max(vals) if vals else None), len(vals)

    v, cnt = run_max("full_smoothness")
    add("L", v, "lower", f"max over {cnt} pairs of consecutive full-data checkpoints of the "
                         "secant ‖∇F(x_b) − ∇F(x_a)‖/‖x_b − x_a‖ (every secant is ≤ L)")
    # keys a multi-process run recorded as a mean over ranks of per-shard values: a mean of
    # shard secants or shard Rayleigh quotients can exceed L of the whole objective, so it is
    # no lower estimate of L
    rank_mean: set[str] = set()
    for r in runs:
        for section in ("distributed", "decentralized"):
            rank_mean |= set((r.start.get(section) or {}).get("rank_mean_keys") or ())
    if full_batch:
        if "local_smoothness" not in rank_mean:
            v, cnt = run_max("local_smoothness")
            add("L", v, "lower", f"max over {cnt} steps of ‖∇F(x_t+1) − ∇F(x_t)‖/‖x_t+1 − x_t‖ "
                                 "(full batch)")
        if "sharpness" not in rank_mean:
            v, cnt = run_max("sharpness")
            add("L", v, "lower", f"max over {cnt} checkpoints of the Hessian's top eigenvalue "
                                 "(Rayleigh quotient ≤ λ_max ≤ L, full batch)")
    # PL ratios with the exact f*, where F − f* is well above rounding (near the optimum the
    # ratio of two rounding-sized numbers says nothing)
    floor = 1e4 * _eps(facts.dtype) * max(1.0, abs(facts.f_star or 0.0))
    pl = [float(s["pl_ratio"]) for r in runs for s in r.steps
          if s.get("pl_ratio") is not None and s.get("pl_uses_f_star") == 1
          and (s.get("pl_gap") or 0.0) > floor]
    if pl:
        add("mu", min(pl), "upper", f"min over {len(pl)} checkpoints of the PL ratio "
                                    "‖∇F‖²/(2(F − f*)) with exact f* (≥ the PL and strong-"
                                    "convexity constants)")
    inits = [r.init for r in runs if r.init]
    if inits and all(i.get("dist_sq") is not None for i in inits):
        add("R", math.sqrt(max(i["dist_sq"] for i in inits)), "exact",
            "‖x_0 − x*‖ with the workload's exact minimizer")
    if inits and all(i.get("full_loss") is not None for i in inits):
        F0 = max(i["full_loss"] for i in inits)
        if facts.f_star is not None:
            add("Delta", F0 - facts.f_star, "exact", "F(x_0) − f* with the exact f*")
        elif facts.f_lower is not None:
            add("Delta", F0 - facts.f_lower, "upper",
                f"F(x_0) − f_lower with f_lower = {facts.f_lower:g} ≤ inf F")
    if full_batch:
        add("sigma", 0.0 + 1e-300, "exact", "full-batch gradients are exact (no noise)")
    else:
        v, cnt = run_max("gradient_noise_batch")
        if v is not None:
            add("sigma", math.sqrt(v), "estimate",
                f"√ of the max over {cnt} steps of the per-sample estimate of the minibatch "
                "gradient's variance (an estimate; not one-sided)")
    v, cnt = run_max("grad_norm")
    if v is not None:
        if full_batch:
            add("G", v, "lower", f"max over {cnt} steps of ‖∇F(x_t)‖ (full batch)")
        else:
            add("G", v, "estimate", f"max over {cnt} steps of the minibatch gradient norm "
                                    "(a sample maximum; not one-sided for a second moment)")
    v, cnt = run_max("grad_inf_norm")
    add("G_inf", v, "lower", f"max over {cnt} steps of ‖g‖_∞ of the stochastic gradient "
                             "(an almost-sure bound is at least any observed value)")

    # decentralized runs: the consensus bounds' constants, measured at every step (exact)
    if inits and all(i.get("consensus_distance") is not None for i in inits):
        add("C0", max(float(i["consensus_distance"]) for i in inits), "exact",
            "consensus distance of the ranks' starting points, measured")
    spreads = [float(v) for r in runs for _, v in r.values("update_spread")]
    if spreads and all(len(r.values("update_spread")) == r.n_steps for r in runs):
        add("Su", max(spreads), "exact",
            f"max over all {len(spreads)} steps of the measured spread of the ranks' local "
            "steps sqrt((1/N) Σ‖u_i − ū‖²)")

    for name, value in (assumed or {}).items():
        add(name, value, "asserted", "asserted by the user (--assume)")

    # an assertion or a claimed fact that a certain estimate contradicts
    tol = 1e-6 if facts.dtype == "float64" else 1e-2
    for c in C.values():
        lows = [e for e in c.estimates if e.kind in ("lower", "exact")]
        highs = [e for e in c.estimates if e.kind in ("upper", "exact", "asserted")]
        lows += [e for e in c.estimates if e.kind == "asserted"]
        for lo_e in lows:
            for hi_e in highs:
                if lo_e is hi_e:
                    continue
                if lo_e.value > hi_e.value * (1 + tol) + 1e-300:
                    c.conflict = (f"{c.name} ≥ {lo_e.value:.4g} ({lo_e.kind}: {lo_e.source}) "
                                  f"contradicts {c.name} ≤ {hi_e.value:.4g} ({hi_e.kind}: "
                                  f"{hi_e.source})")
    return C


# ------------------------------------------------------------------------------------------
# Conditions with interval reasoning
# ------------------------------------------------------------------------------------------

@dataclass
class ConditionCheck:
    condition: str
    status: str            # holds | fails | holds_at_estimate | fails_at_estimate | unknown
    text: str
    lhs: float | None = None
    rhs: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.lhs is None or not self.rhs:
            return None
        return self.lhs / self.rhs

    def to_dict(self) -> dict[str, Any]:
        return {"condition": self.condition, "status": self.status, "text": self.text,
                "lhs": self.lhs, "rhs": self.rhs, "ratio": self.ratio}


def _sides(rel) -> tuple[sp.Expr, sp.Expr, bool]:
    if isinstance(rel, (sp.LessThan, sp.StrictLessThan)):
        return rel.lhs, rel.rhs, isinstance(rel, sp.StrictLessThan)
    return rel.rhs, rel.lhs, isinstance(rel, sp.StrictGreaterThan)


def _num(expr: sp.Expr, values: Mapping[str, float]) -> float | None:
    subs = {s: values[s.name] for s in expr.free_symbols if s.name in values}
    try:
        out = complex(sp.N(expr.subs(subs)))
    except (TypeError, ValueError):
        return None
    if abs(out.imag) > 1e-12 * max(1.0, abs(out.real)) or not math.isfinite(out.real):
        return None
    return out.real


def _describe_value(name: str, c: Constant | None, value: float) -> str:
    if c is None:
        return f"{name} = {value:.4g}"
    if c.asserted is not None:
        return f"{name} = {value:.4g} (asserted)"
    if c.exact:
        return f"{name} = {value:.4g} (exact)"
    which = "lower" if c.lo == value else "upper" if c.hi == value else "point"
    src = next((e.source for e in c.estimates if e.value == value), "")
    return f"{name} {'≥' if which == 'lower' else '≤' if which == 'upper' else '≈'} {value:.4g}" + (
        f" ({src})" if src else "")


def check_condition(cond, hyper: Mapping[str, float], consts: Mapping[str, Constant]
                    ) -> ConditionCheck:
    """Whether a condition certainly holds, certainly fails, or neither, given intervals."""
    text = sp.sstr(cond)
    small, large, strict = _sides(cond)
    slack = large - small
    hsubs = {S.SYMBOLS[k].symbol: v for k, v in hyper.items() if k in S.SYMBOLS}
    slack_h = slack.subs(hsubs)
    names = sorted(S.names_in(slack_h))
    best: dict[str, float] = {}
    worst: dict[str, float] = {}
    point: dict[str, float] = {}
    can_refute = can_certify = True
    for nm in names:
        c = consts.get(nm)
        if c is None or not c.estimates:
            return ConditionCheck(text, "unknown", f"{text}: no value for {nm}")
        sign = sympy_sign(sp.diff(slack_h, S.SYMBOLS[nm].symbol))
        est, _ = c.choose("increasing")
        point[nm] = est.value
        if sign is None:
            if c.exact:
                best[nm] = worst[nm] = c.lo
            else:
                can_refute = can_certify = False
            continue
        fav, unfav = (c.hi, c.lo) if sign >= 0 else (c.lo, c.hi)
        if fav is None:
            can_refute = False
        else:
            best[nm] = fav
        if unfav is None:
            can_certify = False
        else:
            worst[nm] = unfav

    def ok(vals: Mapping[str, float]) -> tuple[bool | None, float | None, float | None]:
        v = {**hyper, **vals}
        s, lg = _num(small, v), _num(large, v)
        if s is None or lg is None:
            return None, s, lg
        tol = 1e-12 * max(abs(s), abs(lg))
        return (lg - s > 0 if strict else lg - s >= -tol), s, lg

    if can_refute:
        res, s, lg = ok(best)
        if res is False:
            words = ", ".join(_describe_value(nm, consts.get(nm), best[nm]) for nm in names)
            ratio = f" by {s / lg:.3g}×" if lg and s and lg > 0 and s > 0 else ""
            return ConditionCheck(text, "fails", f"{sp.sstr(small)} = {s:.4g} exceeds "
                                  f"{sp.sstr(large)} = {lg:.4g}{ratio}, even with "
                                  f"{words or 'exact values'}", s, lg)
    if can_certify:
        res, s, lg = ok(worst)
        if res is True:
            return ConditionCheck(text, "holds", f"{text} holds for every value the data allow",
                                  s, lg)
    res, s, lg = ok(point)
    if res is None:
        return ConditionCheck(text, "unknown", f"{text}: cannot be evaluated")
    words = ", ".join(_describe_value(nm, consts.get(nm), point[nm]) for nm in names)
    if res:
        return ConditionCheck(text, "holds_at_estimate",
                              f"{text} holds at the estimates ({words}), not proven", s, lg)
    return ConditionCheck(text, "fails_at_estimate",
                          f"{text} fails at the estimates ({words}), not proven", s, lg)


# ------------------------------------------------------------------------------------------
# Observed quantities
# ------------------------------------------------------------------------------------------

@dataclass
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


def observe(bound: Bound, run: RunData, facts: Facts, hyper: Mapping[str, float]
            ) -> Observed | str:
    """The bound's left-hand side along ``run``, or a one-line reason it cannot be measured."""
    q = bound.quantity
    N = run.n_steps
    if q in (Quantity.LAST_ITERATE_GAP, Quantity.AVERAGED_ITERATE_GAP):
        if q is Quantity.LAST_ITERATE_GAP:
            pts = run.objective()
            what = "F(x_K)"
        else:
            key = AVERAGE_KEY.get(bound.id)
            if key is None:
                return "the auditor does not track the average this theorem uses"
            pts = run.checkpoints(key[0])
            what = f"F at {key[1]}"
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
    if q is Quantity.LAST_ITERATE_DIST_SQ:
        pts = run.checkpoints("dist_sq")
        ks = sorted(k for k in pts if k >= 1)
        if not ks:
            return "needs the workload's exact minimizer x* to measure ‖x_K − x*‖²"
        return Observed(np.array(ks, float), np.array([pts[k] for k in ks]), "exact")
    if q is Quantity.MIN_GRAD_NORM_SQ:
        r = _prefix_stats(run.grad_norm_sq(), N, how="min")
        return r if r is not None else "no full-data gradient norms were measured"
    if q in (Quantity.AVG_GRAD_NORM_SQ, Quantity.RANDOM_ITERATE_GRAD_NORM_SQ):
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
            r.kind, r.note = kind, note
        if q is Quantity.AVG_GRAD_NORM_SQ:
            return r
        r.note = (r.note + " " if r.note else "") + (
            "E over τ with P(τ = j) ∝ 1 − β1^(K−j)" if wf else "E over τ uniform on 0..K−1")
        return r
    if q in STABILITY_QUANTITIES:
        return ("a stability bound needs runs on neighbouring datasets: use approx-audit "
                "stability")
    if q is Quantity.CONSENSUS_DISTANCE:
        return _observe_consensus(run, facts)
    if q is Quantity.ASYMPTOTIC_RATE:
        pts = run.checkpoints("dist_sq")
        if 0 not in pts or len(pts) < 2 or pts[0] <= 0:
            return "needs ‖x_k − x*‖ at x_0 and later (the workload's exact minimizer)"
        K = max(pts)
        rate = (pts[K] / pts[0]) ** (0.5 / K) if pts[K] > 0 else 0.0
        return Observed(np.array([float(K)]), np.array([rate]), "estimate",
                        "(‖x_K − x*‖/‖x_0 − x*‖)^(1/K): a finite-horizon stand-in for the limsup")
    return f"the auditor does not measure {q.value} in a training run"


def _observe_consensus(run: RunData, facts: Facts) -> Observed | str:
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
        v = r.get("consensus_distance")
        if v is not None:
            pts[int(r["step"]) + 1] = float(v)
        nv = r.get("avg_param_norm")
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
    n0 = float((run.init or {}).get("avg_param_norm") or 0.0)
    ks = sorted(pts)
    unit = ROUNDING_ULPS * _eps(facts.dtype)
    acc, tol, prev_norm = 0.0, {}, n0
    for K in range(1, ks[-1] + 1):
        acc = rho * acc + unit * max(prev_norm, norms.get(K, prev_norm))
        if H and K % H == 0:
            acc = unit * norms.get(K, prev_norm)     # averaged: only the average's rounding
        tol[K] = acc
        prev_norm = norms.get(K, prev_norm)
    return Observed(np.array(ks, float), np.array([pts[k] for k in ks]), "exact",
                    abs_tol=np.array([tol[k] for k in ks]))


# ------------------------------------------------------------------------------------------
# Matching bounds to the run's optimizer
# ------------------------------------------------------------------------------------------

# ``approx-audit run --method M`` (auditor/decentralized.py): the catalogue algorithm of each
# method (its consensus bound; its published rates are not in the catalogue: their constants
# are not confirmed) and its name
DECENTRALIZED_METHODS = {"dpsgd": ("dpsgd", "D-PSGD (Lian et al. 2017)"),
                         "local-sgd": ("local_sgd", "local SGD (periodic parameter averaging)"),
                         "easgd": ("easgd", "synchronous EASGD (Zhang, Choromanska & LeCun "
                                            "2015)")}


def algorithm_of(spec: Mapping[str, Any], full_batch: bool) -> tuple[str | None, str]:
    """(catalogue algorithm the run implements or None, one-line explanation)."""
    method = spec.get("distributed_method")
    if method in DECENTRALIZED_METHODS:
        algo, name = DECENTRALIZED_METHODS[method]
        return algo, (f"{name} (--method {method}) with local optimizer {spec['name']}: the "
                      "catalogue has its consensus bound; the constants of its published "
                      "convergence rates are not confirmed")
    name = spec["name"]
    hp = spec.get("hparams", {})
    wd = float(hp.get("weight_decay", 0) or 0)
    if name == "sgd":
        if wd:
            return None, ("weight_decay adds (wd/2)‖x‖² to the objective the optimizer sees; "
                          "put it in the workload (lam) so the bounds see it")
        if hp.get("nesterov"):
            return None, ("torch's Nesterov momentum (constant coefficient) is not the "
                          "accelerated method the catalogue's agd bounds analyse")
        if float(hp.get("momentum", 0) or 0) > 0:
            if float(hp.get("dampening", 0) or 0) != 0:
                return None, "SGD momentum with dampening is not Polyak's heavy ball"
            if not full_batch:
                return None, "stochastic heavy ball has no bound in the catalogue"
            return "heavy_ball", "full-batch SGD with momentum is Polyak's heavy ball"
        return ("gd", "full-batch SGD is gradient descent") if full_batch else (
            "sgd", "minibatch SGD with i.i.d. samples")
    if name.startswith("defossez-"):
        return name.split("-", 1)[1], "the algorithm of Défossez et al. (2022), implemented exactly"
    if name in ("adam", "adamw", "rmsprop", "adagrad"):
        return None, (f"torch.optim.{ {'adam': 'Adam', 'adamw': 'AdamW', 'rmsprop': 'RMSprop', 'adagrad': 'Adagrad'}[name]} "
                      "differs from the analysed algorithm (bias correction of the first moment"
                      " / eps outside the square root); audit --optimizer defossez-"
                      f"{'adam' if name == 'adamw' else name} for the theorem's algorithm")
    return None, f"no catalogue algorithm for optimizer {name!r}"


def _torch_family(name: str) -> str | None:
    return {"adam": "adam", "adamw": "adam", "rmsprop": "rmsprop", "adagrad": "adagrad"}.get(name)


def select_bounds(catalogue, spec: Mapping[str, Any], full_batch: bool,
                  ids: Sequence[str] | None = None) -> list[Bound]:
    """Bounds to rule on: ``ids`` when given (unknown ids raise with close matches), else the
    upper bounds of the run's algorithm (and, for torch's adaptive optimizers, their family's
    bounds, which will be ruled not applicable with the reason)."""
    if ids:
        return [catalogue.get(i) for i in dict.fromkeys(ids)]   # each id once, in order
    algo, _ = algorithm_of(spec, full_batch)
    if spec.get("distributed_method") in DECENTRALIZED_METHODS:
        # the method's own bounds, not the local optimizer's (the ranks do not run it alone)
        return [b for b in catalogue if b.algorithm == algo and b.kind == "upper"]
    family = algo or _torch_family(spec["name"])
    if family is None:
        return []
    return [b for b in catalogue if b.algorithm == family and b.kind == "upper"
            and b.quantity not in STABILITY_QUANTITIES]    # ruled by approx-audit stability


STABILITY_QUANTITIES = (Quantity.UNIFORM_STABILITY, Quantity.PARAMETER_DIVERGENCE)
# Deterministic bounds that hold along every realized trajectory of a stochastic run, their
# constants measured on that trajectory (the consensus recursions)
PATHWISE = (Quantity.CONSENSUS_DISTANCE,)


# ------------------------------------------------------------------------------------------
# The verdict
# ------------------------------------------------------------------------------------------

@dataclass
class Verdict:
    bound: Bound
    verdict: str
    reason: str
    caveats: list[str] = field(default_factory=list)
    constants: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, float] = field(default_factory=dict)
    conditions: list[ConditionCheck] = field(default_factory=list)
    assumptions: list[dict[str, str]] = field(default_factory=list)
    series: dict[str, list] | None = None
    looseness: dict[str, float | None] | None = None
    worst: dict[str, float] | None = None
    observed_kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        b = self.bound
        return {
            "id": b.id, "verdict": self.verdict, "reason": self.reason, "caveats": self.caveats,
            "algorithm": b.algorithm, "quantity": b.quantity.value,
            "quantity_latex": b.quantity.latex, "relation": b.relation,
            "expectation": b.expectation, "rhs": sp.sstr(b.rhs), "latex": b.latex(),
            "mathml": b.mathml(), "citation_url": b.citation.url,
            "citation": b.citation.to_dict()["short"],
            "citation_detail": {k: v for k, v in b.citation.to_dict().items() if k != "url"},
            "summary": b.summary, "verified": list(b.verified),
            "constants": self.constants, "hyperparameters": self.hyperparameters,
            "conditions": [c.to_dict() for c in self.conditions],
            "assumptions": self.assumptions, "observed_kind": self.observed_kind,
            "series": self.series, "looseness": self.looseness, "worst": self.worst,
        }


def _assumption_status(aid: str, facts: Facts, runs: Sequence[RunData],
                       consts: Mapping[str, Constant]) -> tuple[str, str]:
    """(holds | refuted | unknown | assumed | estimated, reason) for one assumption."""
    if aid in ("convex", "strongly_convex"):
        tol = ROUNDING_ULPS * _eps(facts.dtype) * (1 + max(
            (abs(r.init.get("full_loss") or 0.0) for r in runs if r.init), default=1.0))
        worst = None
        for r in runs:
            keys = ["full_convexity_gap"] + (["convexity_gap", "convexity_gap_reverse"]
                                             if r.full_batch else [])
            for key in keys:
                for step, v in r.values(key):
                    if worst is None or v < worst[0]:
                        worst = (v, step, key)
        if worst is not None and worst[0] < -tol:
            return "refuted", (f"measured a negative convexity gap {worst[0]:.3g} ({worst[2]}, "
                               f"step {worst[1]}): the objective is not convex along the path")
        if facts.convex is False:
            return "refuted", f"the workload {facts.name!r} is non-convex"
        if aid == "strongly_convex":
            mu = consts.get("mu")
            if mu is None or mu.lo is None:
                return "unknown", "no lower bound on mu is known; assert one with --assume mu=…"
        if facts.convex:
            return "holds", "convex by construction"
        return "unknown", "not refuted along the path (no negative convexity gap)"
    if aid == "quadratic":
        return (("holds", "the workload is a quadratic") if facts.quadratic
                else ("refuted", f"the workload {facts.name!r} is not a quadratic"))
    if aid == "pl":
        if facts.convex and consts.get("mu") is not None and consts["mu"].lo:
            return "holds", "strong convexity with mu implies PL with mu"
        return "unknown", "not refutable from a run; the PL-ratio probe gives an upper estimate"
    if aid == "minimizer_exists":
        if "R" in consts:
            return "holds", "the workload knows its minimizer" if not consts["R"].asserted else \
                "asserted (R)"
        return "unknown", "no minimizer is known; assert R with --assume R=…"
    if aid == "lower_bounded":
        if facts.f_star is not None or facts.f_lower is not None:
            return "holds", "f* or a lower bound f_lower is known"
        return "unknown", "no lower bound on the objective is known"
    if aid == "unbiased_gradients":
        if facts.sampling == "iid":
            return "holds", "minibatches are drawn i.i.d. uniformly with replacement"
        return "assumed", "the user's loop draws the batches"
    if aid == "bounded_domain":
        return "refuted", "the run is unconstrained: no projection onto a bounded set"
    if aid == "doubly_stochastic_mixing":
        infos = [r.start.get("decentralized") or {} for r in runs]
        if infos and all(i.get("W") is not None for i in infos):
            return "holds", ("W was checked doubly stochastic (within 1e-9) before the run and "
                             "applied exactly through torch.distributed")
        return "unknown", "no mixing matrix is recorded"
    if aid in ("initial_consensus", "bounded_update_spread"):
        key = "C0" if aid == "initial_consensus" else "Su"
        if key in consts and not consts[key].asserted:
            return "holds", "measured on every rank at every step"
        return "unknown", "not measured (not a decentralized run)"
    if aid in ("bounded_variance", "bounded_second_moment", "bounded_gradient_inf",
               "lipschitz_loss", "l_smooth"):
        return "estimated", "its constant is estimated along the path"
    return "unknown", "not checked by a run"


def _t_quantile(S: int) -> float:
    try:
        from scipy.stats import t as student_t
        return float(student_t.ppf(CONFIDENCE, S - 1))
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return 1.645


def _downsample(n: int) -> np.ndarray:
    if n <= MAX_SERIES:
        return np.arange(n)
    idx = np.unique(np.round(np.geomspace(1, n, MAX_SERIES)).astype(int) - 1)
    return np.unique(np.concatenate([idx, [n - 1]]))


def _fmt(x: float | None) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.4g}"


def rule(bound: Bound, runs: Sequence[RunData], facts: Facts, spec: Mapping[str, Any],
         hyper: Mapping[str, float], consts: Mapping[str, Constant],
         lrs: Sequence[float], schedule: str = "constant") -> Verdict:
    """The verdict for one bound over the runs of one configuration (one run per seed)."""
    v = Verdict(bound, "inconclusive", "", hyperparameters=dict(hyper))
    full_batch = bool(runs) and all(r.full_batch for r in runs)
    algo, why = algorithm_of(spec, full_batch)
    v.assumptions = []
    for aid in bound.assumptions:
        status, reason = _assumption_status(aid, facts, runs, consts)
        v.assumptions.append({"id": aid, "status": status, "reason": reason})
    for cond in bound.conditions_:
        if cond in (sp.true, sp.false) or "K" in S.names_in(cond):
            continue
        v.conditions.append(check_condition(cond, hyper, consts))

    failed = [c for c in v.conditions if c.status == "fails"]
    # 1. errors
    bad_runs = [r for r in runs if r.status in ("diverged", "error")]
    if bad_runs:
        r = bad_runs[0]
        msg = (r.diverged or {}).get("message") or (r.end or {}).get("message") or r.status
        extra = f"; note: {failed[0].text}" if failed else ""
        v.verdict, v.reason = "error", f"run {r.run} {r.status}: {msg}{extra}"
        return v
    if not runs or not any(r.steps for r in runs):
        v.verdict, v.reason = "error", "no step was recorded"
        return v
    # 2. not applicable: algorithm, step rule, assumptions, conditions
    if bound.kind != "upper":
        v.verdict, v.reason = "not_applicable", ("a lower bound over a function class says "
                                                 "nothing about one run")
        return v
    if algo != bound.algorithm:
        v.verdict = "not_applicable"
        v.reason = (f"the bound is for {bound.algorithm}; this run is "
                    f"{algo or spec['name']}: {why}")
        return v
    if bound.expectation is False and not full_batch and bound.quantity not in PATHWISE:
        v.verdict, v.reason = "not_applicable", "a deterministic bound on a stochastic run"
        return v
    rule_msg = _check_step_rule(bound, hyper, consts, lrs, schedule)
    if rule_msg is not None:
        v.verdict, v.reason = "not_applicable", rule_msg
        return v
    refuted = [a for a in v.assumptions if a["status"] == "refuted"]
    if refuted:
        v.verdict = "not_applicable"
        v.reason = "; ".join(f"assumption {a['id']} fails: {a['reason']}" for a in refuted)
        return v
    conflicts = [consts[n].conflict for n in bound.constants
                 if n in consts and consts[n].conflict]
    if conflicts:
        asserted = [n for n in bound.constants if n in consts and consts[n].asserted
                    and consts[n].conflict]
        v.verdict = "not_applicable" if asserted else "error"
        v.reason = ("an assertion is refuted by a measurement: " if asserted else
                    "a known constant contradicts a measurement: ") + conflicts[0]
        return v
    if failed:
        v.verdict = "not_applicable"
        v.reason = "; ".join(f"condition {c.condition} fails: {c.text}" for c in failed)
        return v
    # 3. constants
    values: dict[str, float] = dict(hyper)
    nonconservative: list[str] = []
    for nm in bound.rhs_symbols:
        if nm == "K" or nm in hyper:
            continue
        c = consts.get(nm)
        if c is None or not c.estimates:
            v.verdict = "inconclusive"
            v.reason = (f"cannot instantiate {nm} ({S.SYMBOLS[nm].meaning}): nothing measured "
                        f"or known; assert it with --assume {nm}=VALUE")
            return v
        direction = bound.direction(nm)
        est, conservative = c.choose(direction)
        values[nm] = est.value
        v.constants[nm] = {**est.to_dict(), "direction": direction, "conservative": conservative,
                           "lo": c.lo, "hi": c.hi}
        if not conservative or est.kind == "asserted":
            nonconservative.append(
                f"{nm} = {est.value:.4g} is {'asserted' if est.kind == 'asserted' else est.kind}"
                f" and the bound is {direction.replace('sampled:', '')} in it")
    # 4. observed vs predicted
    obs_list: list[Observed] = []
    for r in runs:
        o = observe(bound, r, facts, hyper)
        if isinstance(o, str):
            v.verdict, v.reason = "inconclusive", f"cannot measure the bound's left side: {o}"
            return v
        obs_list.append(o)
    common = sorted(set.intersection(*[set(o.k.tolist()) for o in obs_list]))
    if not common:
        v.verdict, v.reason = "inconclusive", "the runs share no checkpoint"
        return v
    K = np.array(common, dtype=float)
    mats = np.array([[dict(zip(o.k.tolist(), o.values.tolist()))[k] for k in common]
                     for o in obs_list])
    keep_k = np.ones(len(K), dtype=bool)
    for cond in bound.conditions_:
        if cond not in (sp.true, sp.false) and "K" in S.names_in(cond):
            small, large, strict = _sides(cond)
            for i, kk in enumerate(K):
                vals = {**values, "K": kk}
                s, lg = _num(small, vals), _num(large, vals)
                if s is None or lg is None or (s >= lg if strict else s > lg):
                    keep_k[i] = False
    if not keep_k.any():
        v.verdict, v.reason = "not_applicable", "the horizon conditions fail at every checkpoint"
        return v
    K, mats = K[keep_k], mats[:, keep_k]
    try:
        pred = np.asarray(bound.evaluate(**{n: values[n] for n in bound.rhs_symbols if n != "K"},
                                         K=K), dtype=float)
    except ApproxAuditError as exc:
        v.verdict, v.reason = "error", f"could not evaluate the bound: {exc}"
        return v
    pred = np.broadcast_to(pred, K.shape)
    Sn = mats.shape[0]
    mean = mats.mean(axis=0)
    sd = mats.std(axis=0, ddof=1) if Sn > 1 else np.zeros_like(mean)
    margin = _t_quantile(Sn) * sd / math.sqrt(Sn) if Sn > 1 else np.zeros_like(mean)
    scale = float(np.nanmax(np.abs(mats[:, 0]))) if mats.size else 1.0
    tol = REL_TOL * np.abs(pred) + ROUNDING_ULPS * _eps(facts.dtype) * max(scale, 1e-300)
    if all(o.abs_tol is not None for o in obs_list):
        run_tol = np.array([[dict(zip(o.k.tolist(), o.abs_tol.tolist()))[k] for k in common]
                            for o in obs_list])[:, keep_k]
        tol = tol + run_tol.max(axis=0)
    stochastic = bound.expectation and not full_batch   # full batch: no randomness to average
    if stochastic:
        stat = mean - margin            # lower confidence bound on the expectation
        point_excess = mean - pred - tol
    else:
        stat = mats.max(axis=0)         # every run must satisfy a deterministic bound
        point_excess = stat - pred - tol
    excess = stat - pred - tol
    kinds = {o.kind for o in obs_list}
    v.observed_kind = "exact" if kinds == {"exact"} else ("upper" if "estimate" not in kinds
                                                          else "estimate")
    with np.errstate(divide="ignore", invalid="ignore"):
        loose = np.where(mean > 0, pred / mean, np.inf)
    idx = _downsample(len(K))
    v.series = {"k": K[idx].tolist(), "observed": mean[idx].tolist(),
                "predicted": pred[idx].tolist()}
    if Sn > 1:
        v.series["observed_sd"] = sd[idx].tolist()
        v.series["margin"] = margin[idx].tolist()
        v.series["observed_max"] = mats.max(axis=0)[idx].tolist()
        v.series["over"] = "seeds"
    finite = loose[np.isfinite(loose)]
    v.looseness = {"final": float(loose[-1]) if np.isfinite(loose[-1]) else None,
                   "min": float(finite.min()) if finite.size else None,
                   "max": float(finite.max()) if finite.size else None}
    j = int(np.argmax(point_excess))
    v.worst = {"k": float(K[j]), "observed": float(mean[j]), "predicted": float(pred[j]),
               "excess": float(point_excess[j])}
    notes = [o.note for o in obs_list if o.note][:1]
    uncertain = [c for c in v.conditions if c.status != "holds"]
    v.caveats = ([f"condition {c.condition}: {c.text}" for c in uncertain]
                 + [f"{s}: an excess would not prove a violation" for s in nonconservative]
                 + notes)
    if not (point_excess > 0).any():
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = pred / np.where(mean > 0, mean, np.nan)
        # where the observation is 0 (e.g. right after local SGD's averaging) there is no ratio
        tight = int(np.nanargmin(ratio)) if np.isfinite(ratio).any() else -1
        at = f"; tightest at K = {K[tight]:g}, looseness {loose[tight]:.3g}" if tight >= 0 else ""
        v.verdict = "consistent"
        v.reason = (f"observed ≤ predicted at all {len(K)} checkpoints"
                    + ((f" (mean over {Sn} seeds)" if Sn > 1 else " (one seed)") if stochastic else "")
            + at)
        return v
    # an excess exists: is it a proof?
    why_not: list[str] = []
    if stochastic:
        if Sn < 2:
            why_not.append("one seed cannot refute an expectation bound (run --seeds ≥ 2)")
        elif not (excess > 0).any():
            why_not.append(f"the excess is within the one-sided {CONFIDENCE:.0%} confidence "
                           f"margin over {Sn} seeds")
    why_not += [f"{s}" for s in nonconservative]
    why_not += [f"condition {c.condition} is not proven ({c.status.replace('_', ' ')})"
                for c in uncertain]
    if v.observed_kind != "exact":
        why_not.append(f"the observation is {'an over-estimate' if v.observed_kind == 'upper' else 'an estimate'}"
                       + (f" ({notes[0]})" if notes else ""))
    if bound.quantity is Quantity.ASYMPTOTIC_RATE:
        why_not.append("an asymptotic rate cannot be refuted at a finite horizon")
    hp = [a["id"] for a in v.assumptions if a["status"] in ("unknown", "assumed")]
    if hp:
        why_not.append(f"assumption(s) {', '.join(hp)} could not be checked")
    w = v.worst
    head = (f"observed {_fmt(w['observed'])} > predicted {_fmt(w['predicted'])} at K = "
            f"{w['k']:g}")
    if why_not:
        v.verdict = "inconclusive"
        v.reason = head + "; not a proof: " + "; ".join(why_not)
    else:
        v.verdict = "violated"
        v.reason = head + (" beyond the confidence margin" if stochastic else "") + (
            "; every constant is exact or conservative and every condition holds")
        if bound.expectation and not stochastic:
            v.reason += " (full batch: the run is deterministic, its value is the expectation)"
    return v


def _check_step_rule(bound: Bound, hyper: Mapping[str, float], consts: Mapping[str, Constant],
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
    ks = np.arange(len(lr_arr), dtype=float)
    want = []
    for k in ks:
        val = _num(rule_expr, {**values, "k": k}) if "k" in {s.name for s in rule_expr.free_symbols} \
            else _num(rule_expr, values)
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


def hyper_values(spec: Mapping[str, Any]) -> dict[str, float]:
    """The run's hyper-parameters in the symbol table's names (eta, beta, beta1, beta2, eps,
    and c, gamma for the 1/k schedule, whose η_k = c/(gamma + k + 1))."""
    out = {k: float(v) for k, v in (spec.get("symbol_values") or {}).items()}
    if spec.get("schedule") == "1/k":
        out["c"] = float(spec["lr"])
        out["gamma"] = 0.0
    return {k: v for k, v in out.items() if k in S.SYMBOLS}


def summarize(verdicts: Sequence[Verdict]) -> dict[str, int]:
    counts = {name: 0 for name in VERDICTS}
    for v in verdicts:
        counts[v.verdict] += 1
    return counts
