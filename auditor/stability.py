"""Stability audits: the same optimizer on neighbouring datasets S and S', and the stability
bounds of the catalogue checked against what the pair of runs does.

The data of a workload are split (by ``seed``) into a training set S of n examples, a pool of
replacement examples (one per pair) and a held-out set T. For each pair p, S' is S with one
example replaced — at random, or adversarially (the example whose gradient at the start has
the largest norm) — and two copies of the model train from the same initial point with the same
optimizer and the *same sample order* (i.i.d. indices with replacement from the pair's seed),
in lockstep in one process. Measured:

* δ_t = ‖x_t − x'_t‖ after every step (the parameter divergence of Hardt, Recht & Singer);
* at checkpoints, the largest loss difference max_{z ∈ T} |f(x_t; z) − f(x'_t; z)| over the
  held-out points (the empirical counterpart of ε-stability), the training loss on S and the
  held-out loss on T (the generalization gap of run S), and max_t ‖x_t‖.

Constants for the convex bound (:mod:`approx_audit.bounds.families.stability`): for logistic
regression every per-example loss is convex and L-smooth with L = max_i ‖x̃_i‖²/4 + λ (exact:
σ' ≤ 1/4 with equality at a zero margin), and its gradient norm at any visited w is at most
‖x̃_i‖ + λ‖w‖, so G = max_i ‖x̃_i‖ + λ max_t ‖w_t‖ is an upper bound over every point either
run visited (max over every step, both runs). Other workloads get measured lower estimates
(per-example gradient norms at checkpoints) and are marked non-conservative.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
import torch
from torch import Tensor

from ..bounds import catalogue as _catalogue
from ..bounds.bound import Bound
from ..bounds.errors import ApproxAuditError, InvalidValueError
from ..bounds.quantities import Quantity
from . import measure as M
from .judge import (ConditionCheck, Constant, Estimate, Ruling, Samples, Verdict, build_constants,
                    check_condition, compare, decide, downsample, instantiate, summarize)
from .judge.gates import Stop
from .judge.instantiate import missing_reason
from .judge.ruling import caveats_of, doubts_of, predict
from .sinks import tick

MODES = ("random", "adversarial")
STABILITY_IDS = ("sgd.stability_convex.hardt_2016",
                 "sgd.stability_convex.hardt_2016.divergence")


class StabilityError(ApproxAuditError, ValueError):
    """A stability experiment that cannot run as asked (one line)."""


@dataclass
class PairTrace:
    index: int                     # position in S of the replaced example
    replacement: int               # index (in the workload's data) of the new example
    delta: list[float]             # δ_t for t = 1..K
    k: list[int]                   # checkpoints
    eps_hat: list[float]           # max_z∈T |f(x_t; z) − f(x'_t; z)| at checkpoints
    train_loss: list[float]        # F_S(x_t) at checkpoints (run on S)
    test_loss: list[float]         # F_T(x_t) at checkpoints (run on S)
    max_param_norm: float          # max_t max(‖x_t‖, ‖x'_t‖)
    max_grad_norm: float           # max per-example gradient norm seen at checkpoints
    diverged: str | None = None


@dataclass
class StabilityResult:
    status: str
    verdicts: list[Verdict]
    results: dict[str, Any]
    pairs: list[PairTrace] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return summarize(self.verdicts)


def _split(N: int, pairs: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray,
                                                                     np.ndarray]:
    if not 0.0 < holdout < 0.9:
        raise StabilityError(f"--holdout {holdout:g} must be in (0, 0.9): the share of the "
                             "data held out to measure loss differences")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(N)
    n_test = max(1, int(round(holdout * N)))
    if N - n_test - pairs < 2:
        raise StabilityError(f"{N} examples leave no training set after {n_test} held out and "
                             f"{pairs} replacements; use fewer --pairs or a smaller --holdout")
    return perm[n_test + pairs:], perm[n_test:n_test + pairs], perm[:n_test]


def _flat(model: torch.nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])


def _vector_loss(workload, out: Tensor, y: Tensor) -> Tensor:
    """Per-example data loss (without the shared L2 term, which cancels in differences)."""
    # vmap the criterion over examples: it averages over a batch of one
    return torch.vmap(lambda o, t: workload.criterion(o[None], t[None]))(out, y)


def _objective(workload, model, X, y) -> float:
    # the one objective builder: buffers cloned, so a checkpoint never moves BatchNorm's stats
    f = M.functional_loss(model, workload.criterion, workload.regularization)
    with torch.no_grad():
        return float(f(M.params_of(model), X, y))


def _max_grad_norm(workload, model, X, y) -> float:
    f = workload.functional_loss()
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    g = M.per_sample_grads(f, params, X, y, chunk_size=256)
    sq = sum(t.reshape(t.shape[0], -1).pow(2).sum(1) for t in g.grads.values())
    return float(sq.sqrt().max())


def per_example_constants(workload, X_all: Tensor) -> dict[str, tuple[float, str, str]]:
    """Exact per-example constants where the workload's form gives them (logistic)."""
    if workload.name != "logistic":
        return {}
    Xt = torch.cat([X_all, torch.ones(X_all.shape[0], 1, dtype=X_all.dtype,
                                      device=X_all.device)], 1).double()
    norms = Xt.norm(dim=1)
    lam = float(workload.lam)
    return {"L": (float(norms.max() ** 2 / 4 + lam), "exact",
                  "max_i ‖x̃_i‖²/4 + λ over S ∪ pool: every per-example logistic loss is that "
                  "smooth, with equality at a zero margin"),
            "x_norm": (float(norms.max()), "exact", "max_i ‖x̃_i‖ over S ∪ pool")}


def run_pairs(workload, spec, *, steps: int, batch_size: int | None, pairs: int, seed: int = 0,
              mode: str = "random", holdout: float = 0.2, checkpoint_every: int | None = None,
              identical: bool = False, progress: Any = None
              ) -> tuple[list[PairTrace], dict[str, Any]]:
    """Train each pair (S, S') in lockstep; ``identical=True`` uses S' = S (a control whose
    divergence must be exactly 0 for deterministic algorithms)."""
    if mode not in MODES:
        raise StabilityError(f"--mode {mode!r}: choose {' or '.join(MODES)}")
    if pairs < 1:
        raise StabilityError("--pairs must be at least 1")
    X, y = workload.X, workload.y
    train_idx, pool_idx, test_idx = _split(X.shape[0], pairs, holdout, seed)
    XS, yS = X[train_idx], y[train_idx]
    XT, yT = X[test_idx], y[test_idx]
    n = XS.shape[0]
    B = n if batch_size is None or batch_size >= n else int(batch_size)
    every = checkpoint_every or max(1, steps // 25)
    chosen: list[int] = []
    if mode == "adversarial":
        model0 = workload.fresh_model()
        f = workload.functional_loss()
        params = {k: v.detach() for k, v in model0.named_parameters() if v.requires_grad}
        g = M.per_sample_grads(f, params, XS, yS, chunk_size=256)
        sq = sum(t.reshape(t.shape[0], -1).pow(2).sum(1) for t in g.grads.values())
        chosen = [int(i) for i in torch.argsort(sq, descending=True)[:pairs]]
    else:
        rng = np.random.default_rng(seed + 1)
        chosen = [int(i) for i in rng.choice(n, size=pairs, replace=False)]
    out: list[PairTrace] = []
    for p in range(pairs):
        i = chosen[p]
        XS2, yS2 = XS.clone(), yS.clone()
        if not identical:
            XS2[i], yS2[i] = X[pool_idx[p]], y[pool_idx[p]]
        out.append(_run_pair(workload, spec, XS, yS, XS2, yS2, XT, yT, steps=steps, B=B,
                             every=every, sampling_seed=seed + 1000 * (p + 1), index=i,
                             replacement=-1 if identical else int(pool_idx[p]),
                             progress=progress, run=p))
    info = {"n": n, "n_test": int(len(test_idx)), "pairs": pairs, "mode": mode,
            "batch_size": None if B == n else B, "checkpoint_every": every,
            "identical": identical, "holdout": holdout,
            "per_example": per_example_constants(workload, X[np.concatenate([train_idx,
                                                                             pool_idx])])}
    return out, info


def _run_pair(workload, spec, XS, yS, XS2, yS2, XT, yT, *, steps, B, every, sampling_seed,
              index, replacement, progress=None, run: int = 0) -> PairTrace:
    tick(progress, "start", run)
    try:
        return _train_pair(workload, spec, XS, yS, XS2, yS2, XT, yT, steps=steps, B=B,
                           every=every, sampling_seed=sampling_seed, index=index,
                           replacement=replacement, progress=progress, run=run)
    finally:
        tick(progress, "end", run)


def _train_pair(workload, spec, XS, yS, XS2, yS2, XT, yT, *, steps, B, every, sampling_seed,
                index, replacement, progress, run) -> PairTrace:
    m1, m2 = workload.fresh_model(), workload.fresh_model()
    o1, o2 = spec.build(m1.parameters()), spec.build(m2.parameters())
    gen = torch.Generator(device="cpu").manual_seed(int(sampling_seed))
    n = XS.shape[0]
    trace = PairTrace(index, replacement, [], [], [], [], [], 0.0, 0.0)
    norm0 = float(_flat(m1).norm())
    trace.max_param_norm = norm0
    for t in range(steps):
        lr = spec.lr_at(t)
        idx = (torch.randint(0, n, (B,), generator=gen).to(XS.device) if B < n
               else torch.arange(n, device=XS.device))
        for model, opt, Xd, yd in ((m1, o1, XS, yS), (m2, o2, XS2, yS2)):
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss = workload.objective(model, Xd[idx], yd[idx])
            if not torch.isfinite(loss):
                trace.diverged = f"the loss is {float(loss)!r} at step {t}"
                return trace
            loss.backward()
            opt.step()
        w1, w2 = _flat(m1), _flat(m2)
        trace.delta.append(float((w1 - w2).norm()))
        if progress is not None:
            tick(progress, "step", run, t + 1, float(loss.detach()))
        trace.max_param_norm = max(trace.max_param_norm, float(w1.norm()), float(w2.norm()))
        k = t + 1
        if k % every == 0 or k == steps:
            d1 = _vector_loss(workload, m1(XT).detach(), yT)
            d2 = _vector_loss(workload, m2(XT).detach(), yT)
            trace.k.append(k)
            trace.eps_hat.append(float((d1 - d2).abs().max()))
            trace.train_loss.append(_objective(workload, m1, XS, yS))
            trace.test_loss.append(_objective(workload, m1, XT, yT))
            trace.max_grad_norm = max(trace.max_grad_norm, _max_grad_norm(workload, m1, XS, yS),
                                      _max_grad_norm(workload, m2, XS2, yS2))
    return trace


# ------------------------------------------------------------------------------------------
# verdicts
# ------------------------------------------------------------------------------------------

def stability_constants(pairs: Sequence[PairTrace], info: Mapping[str, Any], workload,
                        assume: Mapping[str, float] | None = None) -> dict[str, Constant]:
    found: list[tuple[str, Estimate]] = []

    def add(name, value, kind, source):
        if value is not None and math.isfinite(value):
            found.append((name, Estimate(float(value), kind, source)))

    add("n", info["n"], "exact", "training-set size |S|")
    pe = info.get("per_example") or {}
    if "L" in pe:
        add("L", pe["L"][0], pe["L"][1], pe["L"][2])
    if "x_norm" in pe:
        wmax = max(p.max_param_norm for p in pairs)
        add("G", pe["x_norm"][0] + float(workload.lam) * wmax, "upper",
            f"max_i ‖x̃_i‖ + λ·max_t ‖w_t‖ = {pe['x_norm'][0]:.4g} + {float(workload.lam):g}·"
            f"{wmax:.4g}: bounds every per-example gradient at every point either run visited")
    g_seen = max(p.max_grad_norm for p in pairs)
    add("G", g_seen, "lower", "max per-example gradient norm seen at the checkpoints (both runs)")
    for name, value in (assume or {}).items():
        add(name, value, "asserted", "asserted by the user (--assume)")
    return build_constants(found)


def _convexity(convex: bool | None) -> dict[str, str]:
    if convex is False:
        return {"id": "convex", "status": "refuted", "reason": "the workload is non-convex"}
    if convex:
        return {"id": "convex", "status": "holds", "reason": "convex by construction"}
    return {"id": "convex", "status": "unknown", "reason": "not checked"}


def _stop(conditions: Sequence[ConditionCheck], convexity: Mapping[str, str],
          lrs_constant: bool) -> Stop | None:
    """Not applicable: another step rule, a non-convex workload or a failing condition (the
    measured curve is still shown against the bound's shape)."""
    if not lrs_constant:
        return Stop(Ruling.NOT_APPLICABLE, "the bound is for a constant step")
    why = [f"condition {c.condition} fails: {c.text}" for c in conditions if c.status == "fails"]
    if convexity["status"] == "refuted":
        why.append("assumption convex fails: the workload is non-convex")
    if why:
        return Stop(Ruling.NOT_APPLICABLE, "; ".join(why) + " (the measured curve is still "
                    "shown against the bound's shape)")
    return None


def _rule_one(bound: Bound, K: np.ndarray, obs: np.ndarray, spec_hyper: Mapping[str, float],
              consts: Mapping[str, Constant], facts_convex: bool | None, observed_kind: str,
              lrs_constant: bool, dtype: str) -> Verdict:
    """The judge's ruling over pairs: the same instantiation, tolerance, statistic and
    decision as a training audit, with stability's own gates."""
    conditions = tuple(check_condition(c, spec_hyper, consts) for c in bound.conditions_
                       if c not in (sp.true, sp.false))
    convexity = _convexity(facts_convex)
    base: dict[str, Any] = {"bound": bound, "hyperparameters": dict(spec_hyper),
                            "conditions": conditions, "assumptions": (convexity,),
                            "observed_kind": observed_kind}
    inst = instantiate(bound, spec_hyper, consts)
    base["constants"] = dict(inst.constants)
    if inst.missing is not None:
        return Verdict(verdict=Ruling.INCONCLUSIVE, reason=missing_reason(inst.missing), **base)
    samples = Samples(K, obs, observed_kind, stochastic=True, over="pairs",
                      hint="use --pairs ≥ 2")
    pred = predict(bound, inst.values, K)
    if isinstance(pred, Stop):
        return Verdict(verdict=pred.ruling, reason=pred.reason, **base)
    c = compare(samples, pred, dtype)
    shown = {"series": c.series, "looseness": c.looseness, "worst": c.worst}
    stop = _stop(conditions, convexity, lrs_constant)
    if stop is not None:
        return Verdict(verdict=stop.ruling, reason=stop.reason, **shown, **base)
    ruling, reason = decide(bound, samples, c, doubts_of(inst, conditions))
    return Verdict(verdict=ruling, reason=reason, caveats=caveats_of(inst, conditions, samples),
                   **shown, **base)


def judge_stability(pairs: Sequence[PairTrace], info: Mapping[str, Any], workload, spec, *,
                    bounds: Sequence[str] | None = None, assume=None,
                    catalogue=_catalogue) -> tuple[list[Verdict], dict[str, Constant]]:
    ids = list(dict.fromkeys(bounds)) if bounds else list(STABILITY_IDS)
    selected = [catalogue.get(i) for i in ids]
    consts = stability_constants(pairs, info, workload, assume)
    hyper = {k: float(v) for k, v in spec.symbol_values.items() if k in ("eta",)}
    steps = len(pairs[0].delta)
    lrs = [spec.lr_at(t) for t in range(steps)]
    lrs_constant = len(set(lrs)) <= 1
    verdicts = []
    for b in selected:
        if b.quantity is Quantity.PARAMETER_DIVERGENCE:
            K = np.arange(1, steps + 1, dtype=float)
            obs = np.array([p.delta for p in pairs])
            kind = "exact"
        elif b.quantity is Quantity.UNIFORM_STABILITY:
            K = np.array(pairs[0].k, dtype=float)
            obs = np.array([p.eps_hat for p in pairs])
            kind = "estimate"     # |·| over-estimates, max over held-out z under-estimates sup_z
        else:
            v = Verdict(b, "not_applicable", f"{b.id} is not a stability bound")
            verdicts.append(v)
            continue
        if spec.name != "sgd" or spec.hparams.get("momentum") or spec.hparams.get("weight_decay"):
            verdicts.append(Verdict(b, "not_applicable", "the bound is for plain SGD (no "
                                    "momentum, no weight decay)"))
            continue
        verdicts.append(_rule_one(b, K, obs, hyper, consts, workload.convex if
                                  not workload.name.startswith("user:") else None, kind,
                                  lrs_constant, str(workload.X.dtype).replace("torch.", "")))
    return verdicts, consts


def stability_section(pairs: Sequence[PairTrace], info: Mapping[str, Any],
                      verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """Series for the report: δ_t against the bound, the generalization gap and ε̂ against T,
    and the best early-stopping point by held-out loss."""
    delta = np.array([p.delta for p in pairs])
    K = np.arange(1, delta.shape[1] + 1)
    idx = downsample(len(K))
    ck = pairs[0].k
    train = np.array([p.train_loss for p in pairs]).mean(0)
    test = np.array([p.test_loss for p in pairs]).mean(0)
    eps = np.array([p.eps_hat for p in pairs]).mean(0)
    best = int(np.argmin(test)) if len(test) else None
    div = next((v for v in verdicts if v.bound.quantity is Quantity.PARAMETER_DIVERGENCE), None)
    stab = next((v for v in verdicts if v.bound.quantity is Quantity.UNIFORM_STABILITY), None)
    return {
        "info": {k: v for k, v in info.items() if k != "per_example"},
        "pairs": [{"index": p.index, "replacement": p.replacement, "final_delta":
                   p.delta[-1] if p.delta else None, "diverged": p.diverged} for p in pairs],
        "delta": {"k": K[idx].tolist(), "mean": delta.mean(0)[idx].tolist(),
                  "max": delta.max(0)[idx].tolist(),
                  "bound": None if not div or not div.series else
                  {"k": div.series["k"], "predicted": div.series["predicted"]}},
        "checkpoints": {"k": list(ck), "train_loss": train.tolist(), "test_loss": test.tolist(),
                        "generalization_gap": (test - train).tolist(), "eps_hat": eps.tolist(),
                        "eps_bound": (stab.series["predicted"] if stab and stab.series
                                      and len(stab.series["k"]) == len(ck) else None)},
        "early_stopping": None if best is None else {
            "k": ck[best], "test_loss": float(test[best]),
            "generalization_gap": float(test[best] - train[best])},
    }


def check_identical(pairs: Sequence[PairTrace]) -> float:
    """Largest divergence of identical-dataset controls (0 for a deterministic algorithm)."""
    return max((max(p.delta) if p.delta else 0.0) for p in pairs)


def validate_inputs(steps: int, pairs: int) -> None:
    if steps < 1:
        raise InvalidValueError("--steps must be at least 1")
    if pairs < 1:
        raise StabilityError("--pairs must be at least 1")


def stability_audit(workload, spec, *, steps: int, batch_size: int | None, pairs: int,
                    seed: int = 0, mode: str = "random", holdout: float = 0.2,
                    bounds: Sequence[str] | None = None, assume=None, out=None,
                    device: str = "cpu", command: str | None = None,
                    progress: Any = None) -> StabilityResult:
    """Run the pairs, rule on the stability bounds, write ``results.json`` (the audit schema
    plus a ``stability`` section) into ``out``."""
    import time

    from .audit import facts_of
    from .results import provenance, write_json_atomic

    validate_inputs(steps, pairs)
    started = time.time()
    traces, info = run_pairs(workload, spec, steps=steps, batch_size=batch_size, pairs=pairs,
                             seed=seed, mode=mode, holdout=holdout, progress=progress)
    bad = [p for p in traces if p.diverged]
    if bad:
        verdicts = [Verdict(_catalogue.get(i), "error", f"a run diverged: {bad[0].diverged}")
                    for i in (bounds or STABILITY_IDS)]
        consts = {}
        status = "diverged"
    else:
        verdicts, consts = judge_stability(traces, info, workload, spec, bounds=bounds,
                                           assume=assume)
        status = "completed"
    B = info["batch_size"] or info["n"]
    config = {"workload": workload.name, "workload_options": dict(workload.options),
              "optimizer": spec.to_dict(), "steps": steps, "batch_size": info["batch_size"],
              "seeds": 1, "seed": seed, "probes": "stability", "bounds": list(bounds) if bounds
              else None, "assume": dict(assume or {}), "device": device, "pairs": pairs,
              "mode": mode, "holdout": holdout, "out": None if out is None else str(out)}
    results = {
        "schema_version": "1.0", "status": status,
        "message": None if not bad else bad[0].diverged,
        "counts": summarize(verdicts), "config": config,
        "workload": {**facts_of(workload).to_dict(), "description": workload.description},
        "optimizer": spec.to_dict(), "hyperparameters": dict(spec.symbol_values),
        "full_batch": info["batch_size"] is None,
        "verdicts": [v.to_dict() for v in verdicts],
        "constants": {k: c.to_dict() for k, c in consts.items()},
        "probes": [],
        "runs": [{"run": i, "seed": seed + 1000 * (i + 1), "status": "diverged" if p.diverged
                  else "completed", "steps": len(p.delta), "costs": {}, "message": p.diverged}
                 for i, p in enumerate(traces)],
        "lr_series": {"step": list(range(steps))[:1] + [steps - 1] if steps > 1 else [0],
                      "lr": [spec.lr_at(0)] + ([spec.lr_at(steps - 1)] if steps > 1 else [])},
        "gradient_evaluations": {"train_grad_evals": 2 * steps * pairs, "probe_grad_evals": 0,
                                 "train_examples": 2 * steps * pairs * B,
                                 "overhead_ratio": None},
        "provenance": provenance(device, command, started, time.time()),
        "stability": stability_section(traces, info, verdicts) if not bad else None,
    }
    if out is not None:
        write_json_atomic(Path(out) / "results.json", results)
    return StabilityResult(status, verdicts, results, traces)
