"""Synthetic trace records for the judge's tests: no torch, no training, numbers chosen by hand.

``gd_run`` is full-batch gradient descent with F(x_k) − f* = ``gap(k)`` for k = 0..N and
‖x_0 − x*‖² = ``R**2``; ``sgd_run`` is a minibatch run whose full-data gradient norm² at every
iterate is ``grad_sq(k)`` (so averages of it are exact).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from approx_audit.auditor.judge import Facts

BECK = "gd.smooth_convex.beck_2017"          # F(x_K) − f* ≤ R²/(2Kη), if η ≤ 1/L
BOTTOU = "sgd.nonconvex.bottou_2018"         # E avg ‖∇F‖² ≤ 2Δ/(Kη) + Lησ², if η ≤ 1/L
GD = {"name": "sgd", "hparams": {}, "symbol_values": {"eta": 0.5}, "lr": 0.5}
SGD = {"name": "sgd", "hparams": {}, "symbol_values": {"eta": 0.1}, "lr": 0.1}


def facts(**over: Any) -> Facts:
    base = dict(name="toy", convex=True, quadratic=False, f_star=0.0, f_lower=None,
                constants={"L": (1.0, "exact", "by construction")}, n=100, d=2,
                dtype="float64", sampling="iid")
    return Facts(**(base | over))


def gd_run(gap: Callable[[int], float], *, run: int = 0, steps: int = 20, R: float = 1.0,
           lr: float = 0.5, status: str = "completed", step_extra: Mapping[str, Any] | None = None,
           diverged: str | None = None) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = [
        {"record": "start", "run": run, "full_batch": True, "seed": run},
        {"record": "init", "run": run, "k": 0, "full_loss": gap(0), "dist_sq": R * R}]
    for t in range(steps):
        recs.append({"record": "step", "run": run, "step": t, "k": t, "lr": lr,
                     "loss": gap(t), "grad_norm": 1.0, **(step_extra or {})})
    if diverged:
        recs.append({"record": "diverged", "run": run, "message": diverged})
        recs.append({"record": "end", "run": run, "status": "diverged"})
        return recs
    recs.append({"record": "final", "run": run, "k": steps, "full_loss": gap(steps)})
    recs.append({"record": "end", "run": run, "status": status, "message":
                 "boom" if status == "error" else None})
    return recs


def sgd_run(grad_sq: Callable[[int], float], *, run: int = 0, steps: int = 20,
            lr: float = 0.1, F0: float = 1.0) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = [
        {"record": "start", "run": run, "full_batch": False, "seed": run},
        {"record": "init", "run": run, "k": 0, "full_loss": F0,
         "full_grad_norm": grad_sq(0) ** 0.5}]
    for t in range(steps):
        rec = {"record": "step", "run": run, "step": t, "k": t, "lr": lr, "loss": F0,
               "grad_norm": 1.0}
        if t > 0:
            rec["full_grad_norm"] = grad_sq(t) ** 0.5
        recs.append(rec)
    recs.append({"record": "end", "run": run, "status": "completed"})
    return recs
