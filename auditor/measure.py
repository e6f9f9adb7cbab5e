"""Numerical kernels behind the auditor's probes, each returning its value(s) and its exact cost.

A loss is a pure function ``f(params, X, y) -> scalar Tensor``: ``params`` maps parameter names
to tensors, ``X`` and ``y`` are one batch (tensors or pytrees of tensors whose leading dimension
is the batch), and the value is the *mean* over the batch. :func:`functional_loss` builds one
from a module and a criterion with :func:`torch.func.functional_call`; :func:`params_of` takes a
module's current parameters. Every kernel works on whatever device the tensors are on (CUDA
when present) and in their dtype; nothing is moved to the CPU except a handful of scalars (the
small projected matrix of Lanczos, reported values).

Cost counting (the :class:`Cost` every result carries), exact counts of what ran:

``forward``
    evaluations of ``f``, each one forward pass over the batch it was given (a vmapped call
    over a chunk of examples counts once);
``backward``
    reverse passes: the backward of a gradient counts 1, and each Hessian-vector product counts
    1 more for the reverse pass over the gradient's graph. One stand-alone HVP is therefore
    1 forward + 2 backward (the usual "one forward and two backward-equivalents"); *k* HVPs at
    the same point through one :class:`HessianOperator` share the forward and the first
    backward: 1 forward + (1 + k) backward (with ``method="forward_over_reverse"`` nothing is
    shared: 1 forward + 2 backward per product, f re-run each time);
``hvp``
    Hessian-vector products (their passes are already in ``forward`` / ``backward``);
``per_sample``
    examples whose own gradient was computed (*B* for a batch of *B*), and ``vmapped``, the
    number of vmapped calls that computed them (1 unless chunked; each is also one forward and
    one backward in the counts above).

``gradient_equivalents`` (= ``backward``) is the number to add to a run's gradient-evaluation
budget. Measured on this project's 2-core CPU (torch 2.13, float32, batch 128, medians): one
reverse pass over the gradient graph costs 1.3-1.6x a whole first-order gradient (forward +
backward), so counting it as one backward is an undercount by at most a factor of about 2;
the counts are of passes, not of seconds.

Errors are :class:`~approx_audit.bounds.errors.ApproxAuditError` subclasses with one-line
messages: :class:`UnsupportedLayerError` for layers that make a measurement meaningless,
:class:`~approx_audit.bounds.errors.InvalidValueError` for bad arguments.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import grad, jvp, vmap
from torch.utils._pytree import tree_flatten, tree_map

from ..bounds.errors import ApproxAuditError, InvalidValueError
from .objective import Objective

__all__ = [
    "ConvexityTerms", "Cost", "EigenResult", "GradientNoise", "HVPResult", "HessianOperator",
    "LossAndGrad", "PerSampleGrads", "PreconditionedSharpness", "UnsupportedLayerError",
    "adam_preconditioner", "adam_state_by_name", "adam_stability_threshold",
    "check_curvature_supported", "check_per_sample_supported", "convexity_gap",
    "convexity_ratio", "convexity_terms", "dot", "flatten", "functional_loss", "gradient_noise",
    "hvp", "local_smoothness", "loss_and_grad", "norm", "normalized_convexity_gap", "params_of",
    "per_sample_grads", "pl_ratio", "preconditioned_sharpness", "top_hessian_eigenvalue",
    "unflatten",
]

Params = Mapping[str, Tensor]
LossFn = Callable[[Params, Any, Any], Tensor]


class UnsupportedLayerError(ApproxAuditError, ValueError):
    """A layer that makes a measurement wrong (BatchNorm couples samples; Dropout is random)."""


# ---------------------------------------------------------------------------------------------
# Costs and results
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cost:
    """Exact counts of the passes a kernel ran; see the module docstring for the convention."""

    forward: int = 0
    backward: int = 0
    hvp: int = 0
    per_sample: int = 0
    vmapped: int = 0

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(self.forward + other.forward, self.backward + other.backward,
                    self.hvp + other.hvp, self.per_sample + other.per_sample,
                    self.vmapped + other.vmapped)

    @property
    def gradient_equivalents(self) -> int:
        """Reverse passes: what a run adds to its gradient-evaluation count for this kernel."""
        return self.backward

    def as_dict(self) -> dict[str, int]:
        return {"forward": self.forward, "backward": self.backward, "hvp": self.hvp,
                "per_sample": self.per_sample, "vmapped": self.vmapped,
                "gradient_equivalents": self.gradient_equivalents}


@dataclass(frozen=True)
class LossAndGrad:
    loss: float
    grad: dict[str, Tensor]
    grad_norm_sq: float
    cost: Cost


@dataclass(frozen=True)
class HVPResult:
    value: dict[str, Tensor]
    cost: Cost


@dataclass(frozen=True)
class EigenResult:
    """Top (largest algebraic) eigenvalue estimate of a symmetric operator.

    ``value`` is a Rayleigh quotient, so it never exceeds the true λ_max (up to rounding): it is
    a *lower* estimate. ``residual`` = ‖Av − λv‖ / |λ| for the returned unit ``vector`` (from
    real products, not from a recurrence): some eigenvalue lies within ``residual·|λ|`` of
    ``value``; when ``converged`` is false, or the start vector was nearly orthogonal to the top
    eigenvector, that eigenvalue need not be the top one.
    """

    value: float
    vector: dict[str, Tensor]
    residual: float
    n_hvp: int
    converged: bool
    method: str
    cost: Cost


@dataclass(frozen=True)
class PerSampleGrads:
    grads: dict[str, Tensor]      # name -> (B, *param.shape)
    batch_size: int
    cost: Cost


@dataclass(frozen=True)
class GradientNoise:
    """Mean gradient and the spread of per-sample gradients around it.

    ``sigma_sq`` = (1/(B−1)) Σ_i ‖g_i − ḡ‖², the unbiased estimate of the trace of the
    per-example gradient covariance; a mini-batch of size b has gradient variance
    ``sigma_sq / b`` when examples are drawn with replacement.
    """

    mean_grad: dict[str, Tensor]
    grad_norm_sq: float
    sigma_sq: float
    batch_size: int
    cost: Cost

    @property
    def batch_mean_variance(self) -> float:
        """Variance of this batch's mean gradient, σ²/B (sampling with replacement)."""
        return self.sigma_sq / self.batch_size


@dataclass(frozen=True)
class PreconditionedSharpness:
    """λ_max(P⁻¹H) for Adam's preconditioner P, with Cohen et al.'s stability threshold.

    ``vector`` is the top eigenvector u of the symmetric P^{-1/2} H P^{-1/2} (pass it back as
    ``init``); the matching direction in parameter space is P^{-1/2} u.
    """

    value: float
    threshold: float
    vector: dict[str, Tensor]
    residual: float
    n_hvp: int
    converged: bool
    cost: Cost

    @property
    def ratio(self) -> float:
        """value / threshold: about 1 at the adaptive edge of stability."""
        return self.value / self.threshold


# ---------------------------------------------------------------------------------------------
# Building losses; flat-vector helpers
# ---------------------------------------------------------------------------------------------

def params_of(model: nn.Module) -> dict[str, Tensor]:
    """The trainable parameters of ``model`` by name, detached (sharing storage: an optimizer
    step changes them; :func:`flatten` makes an independent snapshot)."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def functional_loss(model: nn.Module, criterion: Callable[[Any, Any], Tensor],
                    regularization: Callable[[Params], Tensor] | None = None, *,
                    mode: str | None = None, seed: int = 0, sum_over: int | None = None):
    """``f(params, X, y) = criterion(model(X; params), y) [+ regularization(params)]`` as an
    :class:`~.objective.Objective`: the one builder of the function every probe evaluates (the
    Auditor's, a workload's, stability's).

    Buffers are cloned at every call and never written back (BatchNorm's running statistics
    and ``num_batches_tracked`` stay as training left them); every call runs with common random
    numbers (dropout draws the same masks at every point, and the caller's generator is
    restored). ``mode`` ``"train"``/``"eval"`` fixes the modules' flags for the evaluation;
    the default ``None`` leaves them as they are. ``criterion`` must average over the batch: a
    loss module with ``reduction='sum'`` needs ``sum_over`` (the training batch size), any
    other reduction is refused. A plain function (``F.cross_entropy``, a lambda) cannot be
    inspected: that it returns a batch mean is the caller's promise. ``X`` may be a tensor, a
    tuple of positional inputs or a dict of keyword inputs.
    """
    return Objective(model, criterion, regularization=regularization, mode=mode, seed=seed,
                     sum_over=sum_over)


def _tensors(a: Params | Tensor) -> list[Tensor]:
    return [a] if isinstance(a, Tensor) else list(a.values())


def flatten(tensors: Params | Iterable[Tensor]) -> Tensor:
    """One new 1-D tensor: the values of ``tensors`` (a name→tensor dict, in its order)."""
    ts = list(tensors.values()) if isinstance(tensors, Mapping) else list(tensors)
    if not ts:
        raise InvalidValueError("nothing to flatten: the parameter dict is empty")
    return torch.cat([t.reshape(-1) for t in ts])


def unflatten(vec: Tensor, like: Params) -> dict[str, Tensor]:
    """Split a flat vector into tensors shaped (and typed) like ``like`` (views when possible)."""
    total = sum(t.numel() for t in like.values())
    if vec.dim() != 1 or vec.numel() != total:
        raise InvalidValueError(f"flat vector has shape {tuple(vec.shape)}; expected ({total},) "
                                "to match the parameters")
    out, i = {}, 0
    for name, t in like.items():
        n = t.numel()
        out[name] = vec[i:i + n].view(t.shape).to(t.dtype)
        i += n
    return out


def _check_same_keys(a: Params, b: Params) -> None:
    if list(a.keys()) != list(b.keys()):
        missing = set(a) ^ set(b)
        raise InvalidValueError(f"parameter names differ ({sorted(missing)[:3]}); pass dicts "
                                "with the same names in the same order")


def dot(a: Params | Tensor, b: Params | Tensor) -> Tensor:
    """⟨a, b⟩ over all entries of two dicts (or tensors), as a 0-dim tensor on their device."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        _check_same_keys(a, b)
        return sum((x * y).sum() for x, y in zip(a.values(), b.values()))
    return (_flat(a) * _flat(b)).sum()


def norm(a: Params | Tensor) -> Tensor:
    """Euclidean norm over all entries of a dict (or tensor), as a 0-dim tensor."""
    return torch.sqrt(sum((t * t).sum() for t in _tensors(a)))


def _flat(a: Params | Tensor) -> Tensor:
    return a.reshape(-1) if isinstance(a, Tensor) else flatten(a)


def _leading_dim(X: Any) -> int:
    leaves, _ = tree_flatten(X)
    leaves = [t for t in leaves if isinstance(t, Tensor)]
    if not leaves or leaves[0].dim() == 0:
        raise InvalidValueError("X holds no batched tensor; per-sample measurements need a "
                                "batch whose first dimension indexes examples")
    return int(leaves[0].shape[0])


# ---------------------------------------------------------------------------------------------
# Loss, gradient, Hessian-vector products
# ---------------------------------------------------------------------------------------------

def _leaves(params: Params) -> dict[str, Tensor]:
    for name, t in params.items():
        if not (isinstance(t, Tensor) and t.is_floating_point()):
            raise InvalidValueError(f"parameter {name!r} is not a floating-point tensor")
    return {name: t.detach().requires_grad_(True) for name, t in params.items()}


def _zeros_if_none(gs: Iterable[Tensor | None], like: Iterable[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(t) if g is None else g for g, t in zip(gs, like)]


def loss_and_grad(f: LossFn, params: Params, X: Any, y: Any) -> LossAndGrad:
    """Loss and gradient at ``params`` on one batch: 1 forward, 1 backward."""
    with torch.enable_grad():
        leaves = _leaves(params)
        loss = f(leaves, X, y)
        _check_scalar(loss)
        gs = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    g = dict(zip(leaves, (t.detach() for t in _zeros_if_none(gs, leaves.values()))))
    return LossAndGrad(loss=float(loss.detach()), grad=g, grad_norm_sq=float(dot(g, g)),
                       cost=Cost(forward=1, backward=1))


def _check_scalar(loss: Tensor) -> None:
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise InvalidValueError(f"the loss function returned {shape}, not a scalar; average "
                                "over the batch (reduction='mean')")


HVPMethod = Literal["double_backward", "forward_over_reverse"]


def _twice_differentiable_attention():
    """Scaled dot-product attention through its math kernel: the fused CPU/GPU kernels (flash,
    memory-efficient) have no double-backward or forward-mode formula, so a Transformer's HVP
    would fail in eval mode (``..._flash_attention_for_cpu_backward is not implemented``). The
    math kernel computes the same function from differentiable ops."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # pragma: no cover - torch < 2.3
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.MATH])


class HessianOperator:
    """v ↦ ∇²f(params; X, y)·v at a fixed point, for many products.

    ``method="double_backward"`` (default) builds the gradient with ``create_graph=True`` once
    (1 forward + 1 backward) and answers each product with one reverse pass over that graph
    (``torch.autograd.grad`` with ``grad_outputs=v``, graph retained): products 2..k cost no
    forward. ``method="forward_over_reverse"`` uses ``torch.func.jvp`` of ``torch.func.grad``
    and re-runs f for every product (1 forward + 2 backward each). Measured on this project's
    2-core CPU (torch 2.13, float32, batch 128; medians over 30 calls), time per HVP:

    ==========================  ========  =========  ==========
    MLP                          params   fwd/rev    double bw
    ==========================  ========  =========  ==========
    64-32-10                      2,410   1.41 ms    0.43 ms (0.23 ms on a retained graph)
    784-128-10                  101,770   2.83 ms    1.15 ms (0.81 ms retained)
    784-512-10, batch 512       407,050   20.4 ms    12.2 ms (6.7 ms retained)
    ==========================  ========  =========  ==========

    (reverse-over-reverse with ``torch.func.vjp`` sat in between: 0.76 / 1.55 / 13.2 ms; a plain
    gradient took 0.17 / 0.51 / 5.7 ms). Double backward is faster on CPU, so it is the
    default; forward-over-reverse remains for layers without a double-backward formula (cuDNN
    RNNs, some fused attention kernels).

    Memory: the double-backward operator keeps the activations and the gradient's graph alive
    while it exists; drop it when done.
    """

    def __init__(self, f: LossFn, params: Params, X: Any, y: Any, *,
                 method: HVPMethod = "double_backward") -> None:
        if method not in ("double_backward", "forward_over_reverse"):
            raise InvalidValueError(f"unknown HVP method {method!r}; use 'double_backward' or "
                                    "'forward_over_reverse'")
        self.f, self.X, self.y, self.method = f, X, y, method
        self.params = {k: v.detach() for k, v in params.items()}
        self._names = list(self.params)
        self._forward = self._backward = self._hvp = 0
        self.loss: float | None = None   # f at the point, when the method computed it
        if method == "double_backward":
            with torch.enable_grad(), _twice_differentiable_attention():
                self._leaf_list = list(_leaves(self.params).values())
                loss = f(dict(zip(self._names, self._leaf_list)), X, y)
                _check_scalar(loss)
                gs = torch.autograd.grad(loss, self._leaf_list, create_graph=True,
                                         allow_unused=True)
            self._forward, self._backward = 1, 1
            # Gradient entries that do not depend on the parameters (f linear in them) have no
            # graph: their rows of the Hessian are zero.
            self._live = [i for i, g in enumerate(gs) if g is not None and g.requires_grad]
            self._grads = [gs[i] for i in self._live]
            self.loss = float(loss.detach())

    @property
    def cost(self) -> Cost:
        return Cost(forward=self._forward, backward=self._backward, hvp=self._hvp)

    @property
    def n_hvp(self) -> int:
        return self._hvp

    def matvec(self, v: Params) -> dict[str, Tensor]:
        """H·v for a dict shaped like the parameters."""
        _check_same_keys(self.params, v)
        vs = [v[k].detach() for k in self._names]
        if self.method == "double_backward":
            self._hvp += 1
            self._backward += 1
            if not self._grads:
                return {k: torch.zeros_like(self.params[k]) for k in self._names}
            try:
                with torch.enable_grad():
                    hv = torch.autograd.grad(self._grads, self._leaf_list,
                                             grad_outputs=[vs[i] for i in self._live],
                                             retain_graph=True, allow_unused=True)
            except RuntimeError as exc:  # pragma: no cover - depends on layer kernels
                if "double backward" in str(exc).lower():
                    raise UnsupportedLayerError(
                        "a layer has no double-backward formula (" + str(exc).splitlines()[0]
                        + "); use method='forward_over_reverse'") from exc
                raise
            hv = _zeros_if_none(hv, self._leaf_list)
            return {k: t.detach() for k, t in zip(self._names, hv)}
        # forward over reverse
        def g_of(p):
            return grad(self.f)(p, self.X, self.y)
        with torch.enable_grad(), _twice_differentiable_attention():
            _, hv = jvp(g_of, (self.params,), (dict(zip(self._names, vs)),))
        self._hvp += 1
        self._forward += 1
        self._backward += 2
        return {k: hv[k].detach() for k in self._names}

    def matvec_flat(self, v: Tensor) -> Tensor:
        return flatten(self.matvec(unflatten(v, self.params)))


def hvp(f: LossFn, params: Params, X: Any, y: Any, v: Params, *,
        method: HVPMethod = "double_backward") -> HVPResult:
    """∇²f(params; X, y)·v: 1 forward + 2 backward (one HVP). Double backward by default:
    measured 1.4-3x faster than forward-over-reverse on CPU (see :class:`HessianOperator`)."""
    op = HessianOperator(f, params, X, y, method=method)
    value = op.matvec(v)
    return HVPResult(value=value, cost=op.cost)


# ---------------------------------------------------------------------------------------------
# Top eigenvalue: Lanczos (Rayleigh-Ritz on a fully reorthogonalised Krylov basis) and power
# ---------------------------------------------------------------------------------------------

def _random_unit(like: Tensor, seed: int) -> Tensor:
    gen = torch.Generator(device=like.device)
    gen.manual_seed(seed)
    v = torch.randn(like.shape, generator=gen, device=like.device, dtype=like.dtype)
    return v / v.norm()


def _start_vector(init: Params | Tensor | None, template: Tensor, seed: int,
                  like: Params) -> Tensor:
    if init is None:
        return _random_unit(template, seed)
    if not isinstance(init, Tensor):
        missing = [k for k in like if k not in init]
        if missing:
            raise InvalidValueError(f"init lacks parameter {missing[0]!r}; pass a previous "
                                    "result's vector for the same parameters")
    v = _flat(init if isinstance(init, Tensor) else {k: init[k] for k in like}).to(
        device=template.device, dtype=template.dtype)
    if v.numel() != template.numel():
        raise InvalidValueError(f"init has {v.numel()} entries; the parameters have "
                                f"{template.numel()}")
    nv = v.norm()
    if not torch.isfinite(nv) or float(nv) == 0.0:
        return _random_unit(template, seed)
    return v / nv


def _working(v: Tensor) -> Tensor:
    """Krylov bases of 16-bit models are kept in float32 (the products stay in the model's
    dtype); other dtypes are kept."""
    return v.float() if v.dtype in (torch.float16, torch.bfloat16) else v


def _lanczos(matvec: Callable[[Tensor], Tensor], q0: Tensor, iters: int, tol: float,
             seed: int) -> tuple[float, Tensor, float, int, bool]:
    """Largest algebraic eigenvalue of a symmetric operator.

    Krylov basis Q with full reorthogonalisation (two classical Gram-Schmidt passes), products
    W = AQ kept, Ritz pairs from the projected matrix QᵀAQ (= tridiagonal Lanczos matrix in exact
    arithmetic; computed from the stored products, so loss of orthogonality cannot create
    ghost values). The residual of the top Ritz pair is computed from the stored products at
    every step: no extra product. Memory: 2·min(iters, n) vectors, allocated up front.
    """
    n = q0.numel()
    k = min(iters, n)
    Q = torch.empty((k, n), dtype=q0.dtype, device=q0.device)
    W = torch.empty_like(Q)
    G = np.zeros((k, k))
    q = q0
    theta, y, resid, converged = float("nan"), q0, float("inf"), False
    used = 0
    for j in range(k):
        Q[j] = q
        W[j] = matvec(q)
        used = j + 1
        col = (Q[:used] @ W[j]).double().cpu().numpy()
        G[:used, j] = col
        G[j, :used] = col
        Gs = 0.5 * (G[:used, :used] + G[:used, :used].T)
        evals, evecs = np.linalg.eigh(Gs)
        theta = float(evals[-1])
        s = torch.as_tensor(evecs[:, -1], dtype=q0.dtype, device=q0.device)
        y = s @ Q[:used]
        ynorm = y.norm()
        y = y / ynorm
        Ay = (s @ W[:used]) / ynorm
        rnorm = float((Ay - theta * y).norm())
        resid = rnorm / abs(theta) if theta != 0.0 else (0.0 if rnorm == 0.0 else float("inf"))
        if resid <= tol:
            converged = True
            break
        if used == k:
            break
        w = W[j].clone()
        for _ in range(2):
            w = w - Q[:used].T @ (Q[:used] @ w)
        beta = float(w.norm())
        scale = max(float(np.abs(Gs).max()), 1e-300)
        if beta <= 1e-12 * scale:
            # Invariant subspace found (and its top pair not yet within tol: only possible when
            # tol is below rounding). Continue in a random direction orthogonal to it.
            w = _random_unit(q0, seed + 1 + j)
            for _ in range(2):
                w = w - Q[:used].T @ (Q[:used] @ w)
            beta = float(w.norm())
            if beta == 0.0:
                break
        q = w / beta
    if used == n and not converged:
        # The basis spans the whole space: the Ritz value is exact up to rounding.
        converged = resid <= max(tol, 1e-8)
    return theta, y, resid, used, converged


def _power(matvec: Callable[[Tensor], Tensor], v0: Tensor, iters: int, tol: float,
           seed: int) -> tuple[float, Tensor, float, int, bool]:
    """Power iteration for the largest *algebraic* eigenvalue.

    Plain power iteration finds the eigenvalue of largest magnitude. If that one is negative
    (λ_min dominates), a second phase runs power iteration on A − σI with σ = the first
    phase's Rayleigh quotient (≥ λ_min), whose dominant eigenvalue is λ_max − σ ≥ 0, from a
    fresh random start; the returned value is σ + that. Each phase runs at most ``iters``
    products; the residual is that of A itself.
    """
    lam, v, resid, used, conv = _power_phase(matvec, v0, iters, tol, 0.0)
    if lam < 0.0:
        sigma = lam
        shifted = lambda x: matvec(x) - sigma * x  # noqa: E731
        lam2, v2, resid2, used2, conv2 = _power_phase(shifted, _random_unit(v0, seed + 7919),
                                                      iters, tol, sigma)
        # Below σ means phase 2 found λ_min again: the shift was not far enough (phase 1 had
        # not converged); say so rather than report λ_min as the maximum.
        return lam2, v2, resid2, used + used2, conv2 and conv and lam2 >= sigma
    return lam, v, resid, used, conv


def _power_phase(mv: Callable[[Tensor], Tensor], v: Tensor, iters: int, tol: float,
                 sigma: float) -> tuple[float, Tensor, float, int, bool]:
    """Power iteration on ``mv`` (= A − σI); returns the Ritz pair of A for the last measured
    vector: λ = vᵀ(mv v) + σ, residual ‖(A − λ)v‖/|λ|."""
    lam, resid, used = float("nan"), float("inf"), 0
    for _ in range(iters):
        w = mv(v)
        used += 1
        theta = float(v @ w)
        lam = theta + sigma
        rnorm = float((w - theta * v).norm())
        resid = rnorm / abs(lam) if lam != 0.0 else (0.0 if rnorm == 0.0 else float("inf"))
        if resid <= tol:
            return lam, v, resid, used, True
        wn = w.norm()
        if float(wn) == 0.0 or used == iters:
            return lam, v, resid, used, False
        v = w / wn
    return lam, v, resid, used, False


def top_hessian_eigenvalue(f: LossFn, params: Params, X: Any, y: Any, *, iters: int = 20,
                           tol: float = 1e-3, init: Params | Tensor | None = None, seed: int = 0,
                           method: Literal["lanczos", "power"] = "lanczos",
                           hvp_method: HVPMethod = "double_backward") -> EigenResult:
    """Sharpness: the largest algebraic eigenvalue of the batch Hessian ∇²f(params; X, y).

    ``method="lanczos"`` (default): Krylov/Lanczos with full reorthogonalisation; the top Ritz
    value is the algebraic maximum, whatever the sign of the dominant eigenvalue. Stops when
    the residual ‖Hv − λv‖/|λ| ≤ ``tol`` or after ``iters`` HVPs. ``method="power"``: power
    iteration, shifted in a second phase when the dominant eigenvalue is negative (so it too
    reports the algebraic maximum; up to 2·``iters`` HVPs).

    ``init`` (a previous result's ``vector``) warm-starts either method: along a trajectory the
    top eigenvector moves slowly and the next call converges in fewer HVPs. A warm start can
    only find what the Krylov space from it reaches: the residual certifies that ``value`` is
    an eigenvalue to within ``residual·|value|``, not that it is the largest (started from an
    exact eigenvector of a lower eigenvalue, both methods stop after one HVP at that
    eigenvalue). A probe that warm-starts should cold-start now and then. In every case the
    value is a Rayleigh quotient, hence a lower estimate of λ_max: a wrong eigenvector makes
    the estimate looser, never of the wrong direction.

    Cost: 1 forward + (1 + n_hvp) backward, n_hvp HVPs (one shared graph; see
    :class:`HessianOperator`).
    """
    _check_iters(iters, tol)
    op = HessianOperator(f, params, X, y, method=hvp_method)
    template = _working(flatten(op.params))
    v0 = _start_vector(init, template, seed, op.params)
    solver = {"lanczos": _lanczos, "power": _power}.get(method)
    if solver is None:
        raise InvalidValueError(f"unknown method {method!r}; use 'lanczos' or 'power'")
    lam, vec, resid, n, conv = solver(op.matvec_flat, v0, iters, tol, seed)
    return EigenResult(value=lam, vector=unflatten(vec, op.params), residual=resid, n_hvp=n,
                       converged=conv, method=method, cost=op.cost)


def _check_iters(iters: int, tol: float) -> None:
    if not isinstance(iters, int) or iters < 1:
        raise InvalidValueError(f"iters={iters!r}; give a positive integer number of HVPs")
    if not tol > 0:
        raise InvalidValueError(f"tol={tol!r}; give a positive relative residual tolerance")


# ---------------------------------------------------------------------------------------------
# Per-sample gradients and gradient noise
# ---------------------------------------------------------------------------------------------

def _per_sample_fn(f: LossFn) -> Callable:
    def single(p, x, t):
        add_batch = lambda a: a.unsqueeze(0) if isinstance(a, Tensor) else a  # noqa: E731
        return f(p, tree_map(add_batch, x), tree_map(add_batch, t))
    return grad(single)


def _vmapped(f: LossFn, params: Params, X: Any, y: Any, chunk_size: int | None):
    y_dim = None if y is None else 0
    try:
        return vmap(_per_sample_fn(f), in_dims=(None, 0, y_dim), chunk_size=chunk_size)(
            {k: v.detach() for k, v in params.items()}, X, y)
    except (RuntimeError, ValueError) as exc:
        msg = str(exc)
        if "randomness" in msg:
            raise UnsupportedLayerError("the loss draws random numbers (Dropout in train mode?) "
                                        "and per-sample gradients cannot reproduce them under "
                                        "vmap; call model.eval() for the probe "
                                        "(check_per_sample_supported names the layer)") from exc
        if any(s in msg.lower() for s in ("batch_norm", "running_mean", "value per channel")):
            raise UnsupportedLayerError("BatchNorm in train mode couples the samples in a batch; "
                                        "call model.eval() for the probe "
                                        "(check_per_sample_supported names the layer)") from exc
        raise


def per_sample_grads(f: LossFn, params: Params, X: Any, y: Any,
                     chunk_size: int | None = None) -> PerSampleGrads:
    """Gradient of each example's loss, ``f(params, X[i:i+1], y[i:i+1])``, by ``torch.func.vmap``
    over ``torch.func.grad``: name → tensor of shape (B, *param.shape).

    ``chunk_size`` bounds vmap's working memory (the result is still B × #params).
    Call :func:`check_per_sample_supported` on the model first: BatchNorm in train mode would
    give wrong numbers without an error. Cost: B per-sample gradients in ⌈B/chunk⌉ vmapped
    calls, each one forward + one backward.
    """
    B = _leading_dim(X)
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise InvalidValueError(f"chunk_size={chunk_size!r}; give a positive integer or None")
    with torch.enable_grad():
        g = _vmapped(f, params, X, y, chunk_size)
    calls = 1 if chunk_size is None else math.ceil(B / chunk_size)
    return PerSampleGrads(grads={k: t.detach() for k, t in g.items()}, batch_size=B,
                          cost=Cost(forward=calls, backward=calls, per_sample=B, vmapped=calls))


def _slice(a: Any, start: int, stop: int) -> Any:
    return tree_map(lambda t: t[start:stop] if isinstance(t, Tensor) else t, a)


def gradient_noise(f: LossFn, params: Params, X: Any, y: Any,
                   chunk_size: int | None = None) -> GradientNoise:
    """Mean gradient ḡ, ‖ḡ‖², and σ² = (1/(B−1)) Σ‖g_i − ḡ‖² from per-sample gradients.

    With ``chunk_size`` the batch is processed ``chunk_size`` examples at a time and the
    statistics are merged exactly (Chan et al.'s pairwise update of mean and sum of squared
    deviations), so memory is chunk_size × #params, not B × #params; deviations are taken from
    each chunk's mean, never via Σ‖g_i‖² − B‖ḡ‖² (which cancels catastrophically in float32).
    A ``regularization`` term inside f shifts every g_i equally and leaves σ² unchanged.
    Cost: B per-sample gradients in ⌈B/chunk⌉ vmapped calls.
    """
    B = _leading_dim(X)
    if B < 2:
        raise InvalidValueError(f"batch of {B} example(s); the variance estimate needs at least 2")
    step = B if chunk_size is None else chunk_size
    if not isinstance(step, int) or step < 1:
        raise InvalidValueError(f"chunk_size={chunk_size!r}; give a positive integer or None")
    names = list(params)
    mean: dict[str, Tensor] | None = None
    m2, count, calls = 0.0, 0, 0
    with torch.enable_grad():
        for start in range(0, B, step):
            stop = min(B, start + step)
            g = _vmapped(f, params, _slice(X, start, stop),
                         None if y is None else _slice(y, start, stop), None)
            calls += 1
            n_c = stop - start
            m_c = {k: g[k].detach().mean(dim=0) for k in names}
            m2_c = float(sum(((g[k].detach() - m_c[k]) ** 2).sum() for k in names))
            if mean is None:
                mean, m2, count = m_c, m2_c, n_c
                continue
            n_new = count + n_c
            delta = {k: m_c[k] - mean[k] for k in names}
            d2 = float(sum((d * d).sum() for d in delta.values()))
            m2 = m2 + m2_c + d2 * count * n_c / n_new
            mean = {k: mean[k] + delta[k] * (n_c / n_new) for k in names}
            count = n_new
    assert mean is not None
    return GradientNoise(mean_grad=mean, grad_norm_sq=float(dot(mean, mean)),
                         sigma_sq=m2 / (B - 1), batch_size=B,
                         cost=Cost(forward=calls, backward=calls, per_sample=B, vmapped=calls))


_DROPOUT_TYPES: tuple[type, ...] = (nn.modules.dropout._DropoutNd,)


def _path(name: str) -> str:
    return "model" + ("." + name if name else "")


def _offenders(model: nn.Module, batchnorm: bool) -> list[tuple[str, str, str]]:
    """(path, description, kind) for each layer that breaks a measurement; kind is 'bn' or
    'dropout'."""
    found = []
    for name, m in model.named_modules():
        if batchnorm and isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.training:
                found.append((_path(name), f"{type(m).__name__} in train mode", "bn"))
            elif m.running_mean is None:
                found.append((_path(name), f"{type(m).__name__} without running statistics",
                              "bn"))
        elif isinstance(m, _DROPOUT_TYPES) and m.training and m.p > 0:
            found.append((_path(name), f"{type(m).__name__} in train mode", "dropout"))
        elif isinstance(m, nn.MultiheadAttention) and m.training and m.dropout > 0:
            found.append((_path(name), f"{type(m).__name__} with dropout in train mode",
                          "dropout"))
    return found


def _more(found: list) -> str:
    n = len(found) - 1
    return f" (and {n} more such layer{'s' if n > 1 else ''})" if n else ""


def check_per_sample_supported(model: nn.Module) -> None:
    """Raise :class:`UnsupportedLayerError` naming the first layer that breaks per-sample
    gradients: BatchNorm in train mode (or without running statistics, which uses batch
    statistics even in eval mode) couples the samples of a batch; Dropout (and
    MultiheadAttention's dropout) in train mode draws random masks that vmap cannot give each
    example consistently. Custom modules that mix examples cannot be detected."""
    found = _offenders(model, batchnorm=True)
    if not found:
        return
    path, what, kind = found[0]
    if kind == "bn":
        raise UnsupportedLayerError(
            f"{path} ({what}) couples the samples in a batch{_more(found)}; per-sample gradients "
            "would be wrong — call model.eval() for the probe or use the 'cheap' preset")
    raise UnsupportedLayerError(
        f"{path} ({what}) draws a random mask at every call{_more(found)}; per-sample gradients "
        "under vmap cannot reproduce it — call model.eval() for the probe or use the 'cheap' "
        "preset")


def check_curvature_supported(model: nn.Module) -> None:
    """Raise :class:`UnsupportedLayerError` for Dropout in train mode: for a plain loss
    function (not an :class:`~.objective.Objective`, whose common random numbers fix the masks)
    every HVP would see a different random function, so Lanczos and power iteration would not
    measure one Hessian. The auditor's probes evaluate an Objective and do not call this.
    (BatchNorm in train mode is fine here: the batch loss is one deterministic function.)"""
    found = _offenders(model, batchnorm=False)
    if not found:
        return
    path, what, _ = found[0]
    raise UnsupportedLayerError(
        f"{path} ({what}) makes the loss random{_more(found)}; Hessian-vector products would "
        "each see a different function — call model.eval() for the probe")


# ---------------------------------------------------------------------------------------------
# Adam's preconditioned sharpness (Cohen et al. 2022)
# ---------------------------------------------------------------------------------------------

def adam_stability_threshold(lr: float, beta1: float) -> float:
    """(2 + 2β₁) / ((1 − β₁)·η): 38/η at β₁ = 0.9 (Cohen et al. 2022).

    Derivation (checked in the tests): on a quadratic with curvature λ along an eigenvector of
    P⁻¹H, Adam with a frozen preconditioner is x_{t+1} = x_t − η·m_t/p with EMA momentum
    m_t = β₁m_{t−1} + (1−β₁)·λx_t; eliminating m gives x_{t+1} = (1 + β₁ − a)x_t − β₁x_{t−1},
    a = η(1−β₁)λ/p, stable iff 0 < a < 2 + 2β₁, i.e. λ/p < (2+2β₁)/((1−β₁)η).
    """
    if not (lr > 0 and 0 <= beta1 < 1):
        raise InvalidValueError(f"lr={lr!r}, beta1={beta1!r}; need lr > 0 and 0 <= beta1 < 1")
    return (2.0 + 2.0 * beta1) / ((1.0 - beta1) * lr)


def adam_state_by_name(optimizer: torch.optim.Optimizer, model: nn.Module) -> dict[str, dict]:
    """``{parameter name: optimizer.state[parameter]}`` for the model's trainable parameters
    (matched by identity, so the order the optimizer was built in does not matter)."""
    return {name: optimizer.state[p] for name, p in model.named_parameters()
            if p.requires_grad and p in optimizer.state}


def _state_by_name(adam_state: Mapping, names: list[str],
                   param_names: list[str] | None) -> Mapping[str, Mapping]:
    if "state" in adam_state and "param_groups" in adam_state:  # optimizer.state_dict()
        order = [i for g in adam_state["param_groups"] for i in g["params"]]
        names_in_order = param_names if param_names is not None else names
        if len(order) != len(names_in_order):
            raise InvalidValueError(
                f"the optimizer state_dict lists {len(order)} parameters and {len(names_in_order)} "
                "names were given; pass param_names in the optimizer's order or use "
                "adam_state_by_name(optimizer, model)")
        return {n: adam_state["state"][i] for n, i in zip(names_in_order, order)
                if i in adam_state["state"]}
    return adam_state


def adam_preconditioner(params: Params, adam_state: Mapping, *, beta1: float, beta2: float,
                        eps: float, step: int | None = None,
                        param_names: list[str] | None = None) -> dict[str, Tensor]:
    """Adam's diagonal preconditioner P_t = (1 − β₁ᵗ)·(√v̂_t + ε), v̂_t = v_t / (1 − β₂ᵗ).

    With it, torch's Adam step η·m̂_t/(√v̂_t + ε) is exactly η·P_t⁻¹·m_t with the EMA momentum
    m_t (the bias correction of m moves into P), the form whose stability threshold is
    :func:`adam_stability_threshold`. ``v_t`` is ``exp_avg_sq`` (``max_exp_avg_sq`` under
    AMSGrad, which is what divides the step). ``adam_state`` maps names to per-parameter state
    (:func:`adam_state_by_name`) or is ``optimizer.state_dict()``, whose integer ids are matched
    to ``param_names`` (default: the order of ``params``). ``step`` defaults to the state's.
    """
    names = list(params)
    by_name = _state_by_name(adam_state, names, param_names)
    out = {}
    for name in names:
        st = by_name.get(name)
        if st is None or "exp_avg_sq" not in st:
            raise InvalidValueError(f"parameter {name!r} has no Adam state (exp_avg_sq); step the "
                                    "optimizer first or pass adam_state_by_name(optimizer, model)")
        v = st.get("max_exp_avg_sq", st["exp_avg_sq"]).detach()
        t = step if step is not None else st.get("step")
        t = int(t.item()) if isinstance(t, Tensor) else t
        if t is None or t < 1:
            raise InvalidValueError(f"Adam step count for {name!r} is {t!r}; the preconditioner "
                                    "needs at least one optimizer step")
        if v.shape != params[name].shape:
            raise InvalidValueError(f"Adam state for {name!r} has shape {tuple(v.shape)}, the "
                                    f"parameter {tuple(params[name].shape)}: states mismatched")
        vhat = v / (1.0 - beta2 ** t)
        out[name] = ((1.0 - beta1 ** t) * (vhat.sqrt() + eps)).to(
            dtype=params[name].dtype, device=params[name].device)
    return out


def preconditioned_sharpness(f: LossFn, params: Params, X: Any, y: Any, adam_state: Mapping, *,
                             lr: float, beta1: float, beta2: float, eps: float,
                             step: int | None = None, iters: int = 20, tol: float = 1e-3,
                             init: Params | Tensor | None = None, seed: int = 0,
                             param_names: list[str] | None = None,
                             hvp_method: HVPMethod = "double_backward"
                             ) -> PreconditionedSharpness:
    """λ_max(P⁻¹H), computed as the top eigenvalue of the symmetric P^{-1/2} H P^{-1/2} by
    Lanczos, with P from :func:`adam_preconditioner` and the threshold (2+2β₁)/((1−β₁)η).

    Source: Cohen et al. (2022), "Adaptive Gradient Methods at the Edge of Stability",
    arXiv:2207.14484. Confirmed from the abstract (primary): the preconditioned sharpness
    equilibrates at the stability threshold, 38/η for Adam with β₁ = 0.9. The general form
    (2+2β₁)/((1−β₁)η) is from a secondary summary (sciencestack.ai) and agrees with 38/η at
    β₁ = 0.9; it is re-derived in :func:`adam_stability_threshold`. The definition
    P_t = (1−β₁ᵗ)·diag(√v̂_t + ε) could NOT be read in the paper's body; it is the one that
    writes torch's Adam step as η·P_t⁻¹·m_t (checked numerically in the tests) and matches a
    public re-implementation of the paper's measurement. P is the one the *last* step used
    (v_t, t from the state), not the next step's.
    """
    _check_iters(iters, tol)
    thr = adam_stability_threshold(lr, beta1)
    P = adam_preconditioner(params, adam_state, beta1=beta1, beta2=beta2, eps=eps, step=step,
                            param_names=param_names)
    op = HessianOperator(f, params, X, y, method=hvp_method)
    d = _working(flatten({k: P[k].rsqrt() for k in op.params}))   # P^{-1/2}
    v0 = _start_vector(init, d, seed, op.params)
    lam, vec, resid, n, conv = _lanczos(lambda u: d * op.matvec_flat(d * u), v0, iters, tol,
                                        seed)
    return PreconditionedSharpness(value=lam, threshold=thr, vector=unflatten(vec, op.params),
                                   residual=resid, n_hvp=n, converged=conv, cost=op.cost)


# ---------------------------------------------------------------------------------------------
# Along-trajectory quantities (pure functions on flat tensors or dicts)
# ---------------------------------------------------------------------------------------------

def _f(x: float | Tensor) -> float:
    return float(x.detach()) if isinstance(x, Tensor) else float(x)


def local_smoothness(g_prev: Tensor | Params, g_curr: Tensor | Params, x_prev: Tensor | Params,
                     x_curr: Tensor | Params) -> float | None:
    """‖∇f(x_t) − ∇f(x_{t−1})‖ / ‖x_t − x_{t−1}‖ (gradients on the same batch); None when the
    iterates coincide. A maximum over visited pairs is a lower estimate of a global L."""
    dx = float((_flat(x_curr) - _flat(x_prev)).norm())
    if dx == 0.0:
        return None
    return float((_flat(g_curr) - _flat(g_prev)).norm()) / dx


@dataclass(frozen=True)
class ConvexityTerms:
    """For a base point x (gradient there) and another point y:

    ``gap`` = f(y) − f(x) − ⟨∇f(x), y − x⟩ (≥ 0 for every pair iff f is convex);
    ``numerator`` = ⟨∇f(x), x − y⟩ and ``denominator`` = f(x) − f(y), so gap = numerator −
    denominator; ``ratio`` = numerator / denominator (None when f(x) = f(y)).
    """

    gap: float
    numerator: float
    denominator: float
    ratio: float | None


def convexity_terms(f_x: float | Tensor, f_y: float | Tensor, g_x: Tensor | Params,
                    x: Tensor | Params, y: Tensor | Params) -> ConvexityTerms:
    """Gap and ratio forms of the convexity test between two points (see :class:`ConvexityTerms`).

    Tran, Zhang & Cutkosky (arXiv:2407.01825): the paper's body could not be read, so the
    definition is taken from the authors' public code (tranhp98/some_projects,
    test_properties/ImageClassification/Cifar10/train.py): base point x = x_t (the newer
    iterate, minibatch gradient g_t there), y = x_{t−1}, the same minibatch at both points;
    they log ``gap_t = f(x_t) − f(x_{t−1}) − ⟨g_t, x_t − x_{t−1}⟩`` ("negative means convex",
    i.e. minus our ``gap``) and the ratio Σ_t⟨g_t, x_t − x_{t−1}⟩ / Σ_t(f(x_t) − f(x_{t−1}))
    over an epoch ("positive is good"), also as a ratio of EMAs (0.99). ``ratio`` here is one
    step's term; sum ``numerator`` and ``denominator`` over a window and divide to get theirs.
    """
    diff = _flat(x) - _flat(y)
    num = float((_flat(g_x) * diff).sum())
    den = _f(f_x) - _f(f_y)
    return ConvexityTerms(gap=num - den, numerator=num, denominator=den,
                          ratio=None if den == 0.0 else num / den)


def convexity_gap(f_x: float | Tensor, f_y: float | Tensor, g_x: Tensor | Params,
                  x: Tensor | Params, y: Tensor | Params) -> float:
    """f(y) − f(x) − ⟨∇f(x), y − x⟩: ≥ 0 for all pairs iff f is convex."""
    return convexity_terms(f_x, f_y, g_x, x, y).gap


def convexity_ratio(f_x: float | Tensor, f_y: float | Tensor, g_x: Tensor | Params,
                    x: Tensor | Params, y: Tensor | Params) -> float | None:
    """⟨∇f(x), x − y⟩ / (f(x) − f(y)), one step of Tran, Zhang & Cutkosky's ratio (see
    :func:`convexity_terms`); None when f(x) = f(y)."""
    return convexity_terms(f_x, f_y, g_x, x, y).ratio


def normalized_convexity_gap(gap: float, L_hat: float, x: Tensor | Params,
                             y: Tensor | Params) -> float | None:
    """gap / ((L̂/2)‖y − x‖²): in [−1, 1] when f is L̂-smooth between the points; ≥ 0 when f is
    convex there. This project's normalisation, not Tran et al.'s. None when x = y or L̂ ≤ 0."""
    d2 = float(((_flat(x) - _flat(y)) ** 2).sum())
    if d2 == 0.0 or not L_hat > 0:
        return None
    return gap / (0.5 * L_hat * d2)


def pl_ratio(grad_norm_sq: float | Tensor, f: float | Tensor,
             f_star: float | Tensor) -> float | None:
    """‖∇f(x)‖² / (2(f(x) − f*)): f satisfies PL with constant μ along the path iff every value
    is ≥ μ, so a minimum over visited points is an upper estimate of the path's μ. None when
    f(x) − f* ≤ 0."""
    gap = _f(f) - _f(f_star)
    if not gap > 0:
        return None
    return _f(grad_norm_sq) / (2.0 * gap)
