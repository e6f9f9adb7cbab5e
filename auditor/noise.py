"""Gradient noise from ordinary microbatch gradients, for McCandlish et al.'s (2018) noise scale.

Per-sample gradients (``measure.gradient_noise``, vmap) are wrong or impossible when a layer
couples the examples of a batch (BatchNorm in train mode, custom layers) or draws random numbers
(dropout). The estimator here needs only *m* ordinary gradients, one per disjoint microbatch of
*b* examples: with ḡ_j the mean gradient of microbatch j and ḡ their average,

    σ̂² = b · (1/(m−1)) Σ_j ‖ḡ_j − ḡ‖²,

unbiased for tr Σ, the per-example gradient variance, when examples are i.i.d. and the loss is
the mean of per-example losses (then Var(ḡ_j) = Σ/b). Under coupling or random layers it is b
times the variance of the gradient as computed on microbatches of b (no per-example meaning
exists there). For the noise scale B_noise = tr Σ/‖G‖², note E‖ḡ‖² = ‖G‖² + tr Σ/(m·b):
``grad_norm_sq − batch_mean_variance`` is the unbiased estimate of ‖G‖².
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..bounds.errors import InvalidValueError
from . import measure as M
from .measure import Cost

__all__ = ["MicrobatchNoise", "microbatch_gradient_noise"]


@dataclass(frozen=True)
class MicrobatchNoise:
    """Mean gradient of m microbatches of b examples and the per-example noise σ̂² from them.

    ``standard_error`` is the jackknife standard error of ``sigma_sq`` (see
    :func:`microbatch_gradient_noise`); ``math.inf`` when m = 2, where it cannot be estimated.
    """

    mean_grad: dict[str, Tensor]
    grad_norm_sq: float
    sigma_sq: float
    standard_error: float
    microbatches: int
    microbatch_size: int
    batch_size: int
    cost: Cost

    @property
    def batch_mean_variance(self) -> float:
        """Variance of the mean gradient over all m·b examples used, σ̂²/(m·b)."""
        return self.sigma_sq / self.batch_size


def _sq(tensors: list[Tensor]) -> float:
    """Σ of squares over tensors, summed in float64 (the squares stay in the tensors' dtype)."""
    return float(sum((t * t).sum(dtype=torch.float64) for t in tensors))


def _check(microbatches: Any, B: int) -> int:
    """b = B // m, after refusing what would make σ̂² undefined."""
    if isinstance(microbatches, bool) or not isinstance(microbatches, int):
        raise InvalidValueError(f"microbatches={microbatches!r}; give an integer >= 2")
    if microbatches < 2:
        raise InvalidValueError(f"microbatches={microbatches}; the variance needs at least 2 "
                                "microbatches: give an integer >= 2")
    if B < microbatches:
        raise InvalidValueError(f"batch of {B} example(s) cannot fill {microbatches} "
                                "microbatches; use fewer microbatches or a larger batch")
    return B // microbatches


def _mean(ts: list[Tensor]) -> Tensor:
    """Average of same-shaped tensors, one accumulator (no m-fold stack)."""
    acc = ts[0].clone()
    for t in ts[1:]:
        acc += t
    return acc / len(ts)


def _jackknife_se(d: list[float], b: int) -> float:
    """Jackknife standard error of σ̂² = b·Σd_j/(m−1) from the spread of d_j = ‖ḡ_j − ḡ‖².

    Leaving microbatch j out changes the sum of squared deviations to SS − m/(m−1)·d_j exactly,
    so θ_(−j) − θ̄_(·) = −b·m/((m−1)(m−2))·(d_j − d̄) and the jackknife variance
    (m−1)/m·Σ(θ_(−j) − θ̄_(·))² is b²·m·Σ(d_j − d̄)² / ((m−1)(m−2)²).
    """
    m = len(d)
    if m < 3:
        return math.inf   # m = 2: d_1 = d_2 always, the spread says nothing
    d_bar = math.fsum(d) / m
    spread = math.fsum((x - d_bar) ** 2 for x in d)
    return b * math.sqrt(m * spread / ((m - 1) * (m - 2) ** 2))


def microbatch_gradient_noise(f: M.LossFn, params: M.Params, X: Any, y: Any, *,
                              microbatches: int = 8,
                              draw: Callable[[int], AbstractContextManager] | None = None
                              ) -> MicrobatchNoise:
    """Mean gradient and per-example noise σ̂² from ``microbatches`` ordinary gradients.

    ``f(params, X, y)`` is the batch-mean loss; ``X``/``y`` are tensors or pytrees of tensors
    whose first dimension indexes examples (``y`` may be None). With B examples, b = B // m and
    only the first m·b are used (the remainder is dropped, so every ḡ_j has the same variance).
    Microbatch j's gradient is one :func:`measure.loss_and_grad` on its slice, inside
    ``with draw(j):`` when ``draw`` is given (e.g. to give stochastic layers an independent
    draw per microbatch). Deviations are taken from ḡ, never Σ‖ḡ_j‖² − m‖ḡ‖²; their squares
    are summed in float64; tensors stay on their device and dtype. Memory: m gradients.

    ``standard_error`` is the jackknife over microbatches (:func:`_jackknife_se`). It assumes
    the m microbatch gradients are i.i.d. (disjoint slices of i.i.d. examples) and, being a
    spread of m numbers, is itself uncertain by at least about 1/√(2(m−1)) relative; m = 2
    gives inf.
    Cost: m forward + m backward.
    """
    m = microbatches
    b = _check(m, M._leading_dim(X))
    grads, cost = [], Cost()
    for j in range(m):
        Xj = M._slice(X, j * b, (j + 1) * b)
        yj = None if y is None else M._slice(y, j * b, (j + 1) * b)
        with (draw(j) if draw is not None else nullcontext()):
            r = M.loss_and_grad(f, params, Xj, yj)
        grads.append(r.grad)
        cost = cost + r.cost
    names = list(grads[0])
    mean = {k: _mean([g[k] for g in grads]) for k in names}
    d = [_sq([g[k] - mean[k] for k in names]) for g in grads]
    sigma_sq = b * math.fsum(d) / (m - 1)
    return MicrobatchNoise(mean_grad=mean, grad_norm_sq=_sq(list(mean.values())),
                           sigma_sq=sigma_sq, standard_error=_jackknife_se(d, b),
                           microbatches=m, microbatch_size=b, batch_size=m * b, cost=cost)
