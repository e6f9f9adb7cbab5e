"""Workloads: a model, a loss, data, and what is known about them.

A :class:`Workload` is what the auditor trains and measures. Besides the model and the data it
declares the facts the verdicts can use, each saying how it is known:

* ``convex`` -- True only where the *full* objective is known to be convex;
* ``f_star`` -- the exact optimum of the full objective (data loss + regularization), only where
  it is exact (the quadratic, least squares, logistic regression);
* ``f_lower`` -- a lower bound on the objective (``f_star`` where known, 0 for non-negative
  losses, ``None`` when nothing is known);
* ``constants`` -- ``{"L": Known(...), "mu": Known(...)}`` where they are known, each with its
  ``kind`` (``exact``, ``upper``, ``lower``: which way the value can be wrong) and ``source``.

Built-ins (:data:`WORKLOADS`, :func:`get_workload`):

=============  =============================================================================
quadratic      ``(1/(2n))‖Aw − b‖²`` with ``AᵀA/n`` having chosen eigenvalues: L, mu, f* exact
least-squares  breast-cancer data, ``(1/(2n))‖Xw + b − y‖² + (λ/2)(‖w‖² + b²)``: L, mu, f* exact
logistic       breast-cancer data, logistic loss + the same L2 term: L, mu, f* exact
mlp-digits     8×8 digits, one-hidden-layer MLP, cross-entropy: non-convex, f ≥ 0
cnn-digits     8×8 digits, two-conv-layer CNN, cross-entropy: non-convex, f ≥ 0
three-node     Blum–Rivest 3-node network (sigmoid relaxation) on planted data: non-convex, f ≥ 0
=============  =============================================================================

A user's own workload comes from :func:`load_user_workload` (``--model pkg.mod:fn``,
``--data pkg.mod:fn``, ``--loss NAME|pkg.mod:fn``); user text is only ever resolved with
``importlib.import_module`` and ``getattr``, never evaluated.
"""

from __future__ import annotations

import copy
import functools
import importlib
import math
import re
from dataclasses import dataclass, field
from statistics import NormalDist
from types import MappingProxyType
from typing import Any, Callable, Literal, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..bounds import optima
from ..bounds.errors import ApproxAuditError
from . import measure as M

__all__ = [
    "Known", "LOSSES", "LOSS_NAMES", "ThreeNodeNet", "UnknownWorkloadError", "UserWorkloadError",
    "WORKLOADS", "Workload", "WorkloadEntry", "WorkloadOptionError", "bce_logits", "cross_entropy",
    "WorkloadRequest", "get_workload", "half_mse", "load_user_workload", "logistic_pm1", "mse",
    "resolve",
]

KnownKind = Literal["exact", "upper", "lower"]


class UnknownWorkloadError(ApproxAuditError, LookupError):
    """A workload name that is not registered."""


class WorkloadOptionError(ApproxAuditError, ValueError):
    """An option a built-in workload does not take, or a value outside its range."""


class UserWorkloadError(ApproxAuditError, ValueError):
    """A user's ``--model``/``--data``/``--loss`` could not be used.

    ``reason`` says which check failed: ``syntax``, ``module_not_found``, ``attribute_missing``,
    ``not_callable``, ``raised``, ``return_type``, ``length_mismatch``, ``empty``,
    ``no_parameters``, ``frozen`` or ``detached``.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Known:
    """A constant known about a workload, and which way it can be wrong.

    ``kind``: ``exact`` (the constant itself), ``upper`` (the true constant is ≤ value) or
    ``lower`` (the true constant is ≥ value). ``source`` says how it was obtained, in one line.
    """

    value: float
    kind: KnownKind
    source: str

    def __post_init__(self):
        if self.kind not in ("exact", "upper", "lower"):
            raise ValueError(f"Known.kind={self.kind!r}; use 'exact', 'upper' or 'lower'")


@dataclass(frozen=True, eq=False)
class Workload:
    """A model, its loss and data, and what is known about the objective.

    The objective is ``F(θ) = criterion(model_θ(X), y) + regularization(θ)``, where
    ``criterion`` is the *mean* data loss over the rows of ``X``/``y`` (so a minibatch gives an
    unbiased estimate of the data term) and ``regularization`` is ``(lam/2)·Σ‖p‖²`` over all
    parameters (0 when ``lam == 0``). ``f_star``, ``f_lower`` and ``constants`` refer to ``F``
    on the full data as stored in ``X``/``y``: exact optima and constants are computed in
    float64 from the stored values, so they are exact for the problem actually given
    (evaluating ``F`` in float32 adds its own rounding, ~1e-7 relative). ``optimum`` holds the
    parameters at the optimum where it is known exactly; ``info`` holds workload-specific facts
    (e.g. the planted teacher of ``three-node``); ``options`` the resolved options, for the report.

    ``model`` is built deterministically from ``seed``; it is the object a run trains.
    :meth:`fresh_model` returns a copy with the initial parameters.
    """

    name: str
    description: str
    model: nn.Module = field(repr=False)
    criterion: Callable[[Tensor, Tensor], Tensor] = field(repr=False)
    loss_name: str = field()
    X: Tensor = field(repr=False)
    y: Tensor = field(repr=False)
    convex: bool = False
    f_star: float | None = None
    f_lower: float | None = None
    constants: Mapping[str, Known] = field(default_factory=dict)
    lam: float = 0.0
    optimum: Mapping[str, Tensor] | None = field(default=None, repr=False)
    info: Mapping[str, Any] = field(default_factory=dict, repr=False)
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)
    initial_state: Mapping[str, Tensor] = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "constants", MappingProxyType(dict(self.constants)))
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        if self.optimum is not None:
            object.__setattr__(self, "optimum", MappingProxyType(dict(self.optimum)))
        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        object.__setattr__(self, "initial_state", MappingProxyType(state))

    @property
    def n(self) -> int:
        """Number of training examples."""
        return int(self.X.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.X.dtype if self.X.is_floating_point() else next(self.model.parameters()).dtype

    def fresh_model(self) -> nn.Module:
        """A copy of :attr:`model` with its initial parameters (independent of later training)."""
        model = copy.deepcopy(self.model)
        model.load_state_dict(dict(self.initial_state))
        return model

    def regularization(self, params: Mapping[str, Tensor]) -> Tensor:
        """``(lam/2)·Σ‖p‖²`` over ``params`` (a zero tensor when ``lam == 0``)."""
        if self.lam == 0.0 or not params:
            p0 = next(iter(params.values()), None)
            return torch.zeros((), dtype=self.dtype if p0 is None else p0.dtype,
                               device=self.X.device if p0 is None else p0.device)
        return 0.5 * self.lam * sum(p.pow(2).sum() for p in params.values())

    def objective(self, model: nn.Module | None = None, X: Tensor | None = None,
                  y: Tensor | None = None) -> Tensor:
        """``criterion(model(X), y) + regularization(model's parameters)``; defaults: the workload's own."""
        model = self.model if model is None else model
        X = self.X if X is None else X
        y = self.y if y is None else y
        return self.criterion(model(X), y) + self.regularization(dict(model.named_parameters()))

    def functional_loss(self, *, include_regularization: bool = True
                        ) -> Callable[[Mapping[str, Tensor], Tensor, Tensor], Tensor]:
        """``f(params, X, y)``: the objective as a pure function of a parameter dict, built by
        :func:`~.measure.functional_loss` on :attr:`model` (buffers cloned, never written back;
        a ``reduction='sum'`` criterion module refused).

        ``X``/``y`` are batches with a leading example dimension; ``f`` is the mean over them of
        the per-example loss plus the regularization, so its mean over single examples is the
        objective. To ``vmap`` over examples, add the batch dimension back:
        ``vmap(grad(lambda p, x, t: f(p, x[None], t[None])), in_dims=(None, 0, 0))``.
        """
        return M.functional_loss(self.model, self.criterion,
                                 self.regularization if include_regularization else None)


# -- criteria ---------------------------------------------------------------------------------

def _match_last_dim(outputs: Tensor, targets: Tensor) -> Tensor:
    # A regression / binary head returns (n, 1) for targets (n,): compare like with like, never
    # broadcast (n, 1) against (n,) into (n, n).
    if outputs.shape != targets.shape and outputs.shape[-1:] == (1,) and outputs.shape[:-1] == targets.shape:
        outputs = outputs.squeeze(-1)
    if outputs.shape != targets.shape:
        raise ValueError(f"outputs of shape {tuple(outputs.shape)} do not match targets of shape "
                         f"{tuple(targets.shape)}")
    return outputs


def half_mse(outputs: Tensor, targets: Tensor) -> Tensor:
    """``mean((outputs − targets)²)/2``: the least-squares data term ``(1/(2n))‖r‖²``."""
    r = _match_last_dim(outputs, targets) - targets
    return 0.5 * (r * r).mean()


def mse(outputs: Tensor, targets: Tensor) -> Tensor:
    """``mean((outputs − targets)²)`` (PyTorch's ``MSELoss``: no factor 1/2)."""
    r = _match_last_dim(outputs, targets) - targets
    return (r * r).mean()


def logistic_pm1(outputs: Tensor, targets: Tensor) -> Tensor:
    """``mean log(1 + exp(−y·z))`` for labels ``y ∈ {−1, +1}`` (BCE with logits on ``(y+1)/2``).

    ``logaddexp(0, −y z)`` is exact in floating point for every margin (``softplus`` switches
    to a linear approximation above 20, off by ~1e-9).
    """
    m = _match_last_dim(outputs, targets) * targets
    return torch.logaddexp(torch.zeros_like(m), -m).mean()


def bce_logits(outputs: Tensor, targets: Tensor) -> Tensor:
    """``binary_cross_entropy_with_logits`` for 0/1 (or probability) targets, mean reduction."""
    return F.binary_cross_entropy_with_logits(_match_last_dim(outputs, targets), targets)


def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """``cross_entropy`` of logits ``(n, C)`` against class indices ``(n,)``, mean reduction."""
    return F.cross_entropy(outputs, targets)


LOSSES: Mapping[str, Callable[[Tensor, Tensor], Tensor]] = MappingProxyType({
    "mse": mse, "cross-entropy": cross_entropy, "bce-logits": bce_logits,
})
LOSS_NAMES: tuple[str, ...] = tuple(LOSSES)


# -- helpers ----------------------------------------------------------------------------------

def _build_model(seed: int, factory: Callable[[], nn.Module]) -> nn.Module:
    """Call ``factory`` with torch's CPU generator seeded, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def _stored(a: np.ndarray, dtype: torch.dtype, device) -> Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float64)).to(dtype=dtype, device=device)


def _as_float64(t: Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _int_option(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise WorkloadOptionError(f"option {name}={value!r} must be an integer >= {low}")
    if high is not None and value > high:
        raise WorkloadOptionError(f"option {name}={value!r} must be an integer <= {high}")
    return int(value)


# torch's generators take 64-bit seeds: above this, torch.manual_seed overflows (an internal
# error deep in setup); runs use seed, seed + 1, … and stay below 2**64
SEED_MAX = 2**63 - 1


def _seed_option(seed) -> int:
    return _int_option("seed", seed, 0, SEED_MAX)


def _float_option(name: str, value, *, low: float, low_open: bool = True, high: float | None = None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise WorkloadOptionError(f"option {name}={value!r} is not a number") from None
    bad = not math.isfinite(v) or (v <= low if low_open else v < low) or (high is not None and v > high)
    if bad:
        rng = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")
        raise WorkloadOptionError(f"option {name}={value!r} must be a finite number {rng}")
    return v


def _choice_option(name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise WorkloadOptionError(f"option {name}={value!r} is not one of {', '.join(choices)}")
    return value


_ACTIVATIONS: Mapping[str, Callable[[], nn.Module]] = MappingProxyType(
    {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus})


# -- datasets (bundled with scikit-learn: offline) ----------------------------------------------

@functools.lru_cache(maxsize=1)
def _breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    """Breast-cancer data (569 × 30), columns standardised (mean 0, population std 1); y = ±1."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = 2.0 * y - 1.0
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """8×8 digits (1797 × 64), pixel values scaled from 0..16 to [0, 1]; y: class indices 0..9."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X.setflags(write=False)
    y = y.astype(np.int64)
    y.setflags(write=False)
    return X, y


@functools.lru_cache(maxsize=16)
def _convex_facts(loss: str, X_bytes: bytes, shape: tuple[int, int], y_bytes: bytes, lam: float):
    """Optimum and constants of a breast-cancer problem on the stored (rounded) data; cached."""
    X = np.frombuffer(X_bytes, dtype=np.float64).reshape(shape)
    y = np.frombuffer(y_bytes, dtype=np.float64)
    solve = optima.least_squares_optimum if loss == "least_squares" else optima.logistic_optimum
    return solve(X, y, lam), optima.smoothness_constants(X, lam, loss=loss)


# -- built-in workloads -----------------------------------------------------------------------

def _build_quadratic(seed, dtype, device, *, d, n, L, mu, eigenvalues, noise):
    if eigenvalues is not None:
        try:
            eig = np.sort(np.asarray(eigenvalues, dtype=np.float64).reshape(-1))
        except (TypeError, ValueError):
            raise WorkloadOptionError(
                f"option eigenvalues={eigenvalues!r} is not a list of numbers") from None
        if eig.size == 0 or not np.all(np.isfinite(eig)) or eig[0] <= 0:
            raise WorkloadOptionError(f"option eigenvalues={eigenvalues!r} must be finite and > 0")
        d = eig.size
    else:
        d = _int_option("d", d, 1)
        mu = _float_option("mu", mu, low=0.0)
        L = _float_option("L", L, low=0.0)
        if mu > L:
            raise WorkloadOptionError(f"options mu={mu:g} > L={L:g}; give mu <= L")
        eig = np.geomspace(mu, L, d)
    n = _int_option("n", n, d)
    noise = _float_option("noise", noise, low=0.0, low_open=False)

    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))   # n×d, orthonormal columns
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))   # d×d orthogonal
    A = math.sqrt(n) * (U * np.sqrt(eig)) @ V.T        # AᵀA/n = V diag(eig) Vᵀ
    w_star = rng.standard_normal(d)
    e = noise * rng.standard_normal(n)
    e -= U @ (U.T @ e)                                 # residual orthogonal to range(A)
    b = A @ w_star + e

    X, y = _stored(A, dtype, device), _stored(b, dtype, device)
    # Every fact is recomputed from the stored values in float64, so it is exact for the
    # problem actually given (float32 storage perturbs the chosen eigenvalues by ~1e-7).
    As, bs = _as_float64(X), _as_float64(y)
    w, *_ = np.linalg.lstsq(As, bs, rcond=None)
    w += np.linalg.lstsq(As, bs - As @ w, rcond=None)[0]  # one refinement step
    r = As @ w - bs
    f_star = 0.5 * float(r @ r) / n
    ev = np.linalg.eigvalsh(As.T @ As / n)
    src = "AᵀA/n, whose eigenvalues are chosen by construction (eigvalsh of the stored A, float64)"
    model = _build_model(seed, lambda: nn.Linear(d, 1, bias=False)).to(dtype=dtype, device=device)
    return dict(
        description=(f"f(w) = (1/(2n))‖Aw − b‖², n={n}, d={d}, AᵀA/n with eigenvalues in "
                     f"[{ev[0]:.3g}, {ev[-1]:.3g}]; b = A w° + noise ⟂ range(A) (std {noise:g}); "
                     "L, mu, f* exact"),
        model=model, criterion=half_mse, loss_name="half-mse", X=X, y=y, convex=True,
        f_star=f_star, f_lower=f_star,
        constants={"L": Known(float(ev[-1]), "exact", "λ_max of " + src),
                   "mu": Known(float(ev[0]), "exact", "λ_min of " + src)},
        optimum={"weight": _stored(w[None, :], dtype, device)},
        info={"eigenvalues": tuple(float(v) for v in ev), "w_planted": w_star,
              "f_star_source": "least squares on the stored data (numpy lstsq + one refinement, float64)"},
        options={"d": d, "n": n, "eigenvalues": tuple(float(v) for v in eig), "noise": noise},
    )


def _build_breast_cancer(loss: str, seed, dtype, device, *, lam):
    lam = _float_option("lam", lam, low=0.0)
    X0, y0 = _breast_cancer()
    n, d = X0.shape
    X, y = _stored(X0, dtype, device), _stored(y0, dtype, device)
    Xs, ys = _as_float64(X), _as_float64(y)
    opt, const = _convex_facts(loss, Xs.tobytes(), Xs.shape, ys.tobytes(), lam)
    model = _build_model(seed, lambda: nn.Linear(d, 1)).to(dtype=dtype, device=device)
    if loss == "least_squares":
        description = (f"least squares on scikit-learn's breast-cancer data (n={n}, d={d}, "
                       f"standardised, targets ±1): (1/(2n))‖Xw + b − y‖² + (λ/2)(‖w‖² + b²), "
                       f"λ={lam:g}; L, mu, f* exact")
        criterion, loss_name = half_mse, "half-mse"
    else:
        description = (f"logistic regression on scikit-learn's breast-cancer data (n={n}, d={d}, "
                       f"standardised, labels ±1): mean log(1 + exp(−y(x·w + b))) + "
                       f"(λ/2)(‖w‖² + b²), λ={lam:g}; L, mu, f* exact")
        criterion, loss_name = logistic_pm1, "logistic"
    f_src = (f"cvxpy ({opt.solver}, {opt.status}) + {opt.newton_steps} Newton steps in float64; "
             f"‖∇f‖ = {opt.grad_norm:.1e}, so f − f* ≤ ‖∇f‖²/(2λ) = {opt.gap_bound:.1e}")
    return dict(
        description=description, model=model, criterion=criterion, loss_name=loss_name, X=X, y=y,
        convex=True, f_star=opt.f_star, f_lower=opt.f_star, lam=lam,
        constants={"L": Known(const.L, const.L_kind, const.L_source),
                   "mu": Known(const.mu, const.mu_kind, const.mu_source)},
        optimum={"weight": _stored(opt.w[None, :], dtype, device),
                 "bias": _stored(np.array([opt.b]), dtype, device)},
        info={"f_star_source": f_src, "grad_norm_at_optimum": opt.grad_norm, "gap_bound": opt.gap_bound},
        options={"lam": lam},
    )


def _build_digits(kind: str, seed, dtype, device, *, lam, activation, width):
    lam = _float_option("lam", lam, low=0.0, low_open=False)
    activation = _choice_option("activation", activation, tuple(_ACTIVATIONS))
    width = _int_option("width", width, 1)
    X0, y0 = _digits()
    act = _ACTIVATIONS[activation]
    if kind == "mlp":
        factory = lambda: nn.Sequential(nn.Linear(64, width), act(), nn.Linear(width, 10))  # noqa: E731
        arch = f"MLP 64→{width}→10 ({activation})"
    else:
        X0 = X0.reshape(-1, 1, 8, 8)
        factory = lambda: nn.Sequential(  # noqa: E731
            nn.Conv2d(1, width, 3, padding=1), act(), nn.AvgPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), act(), nn.AvgPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * 4, 10))
        arch = f"CNN conv3×3({width})→pool→conv3×3({2 * width})→pool→linear(10) ({activation})"
    model = _build_model(seed, factory).to(dtype=dtype, device=device)
    reg = f" + (λ/2)‖θ‖², λ={lam:g}" if lam else ""
    return dict(
        description=(f"{arch} on scikit-learn's 8×8 digits (n={len(y0)}, pixels scaled to [0, 1]), "
                     f"mean cross-entropy{reg}; non-convex, f ≥ 0"),
        model=model, criterion=cross_entropy, loss_name="cross-entropy",
        X=_stored(X0, dtype, device), y=torch.from_numpy(np.array(y0)).to(device),
        convex=False, f_star=None, f_lower=0.0, lam=lam,
        info={"f_lower_source": "cross-entropy and the L2 term are non-negative"},
        options={"lam": lam, "activation": activation, "width": width},
    )


class ThreeNodeNet(nn.Module):
    """The Blum–Rivest 3-node network and its sigmoid relaxation.

    Two hidden units and one output unit. The threshold network computes
    ``h_k = 1[w_k·x + c_k > 0]`` and outputs ``1[v·h + v₀ > 0]``. Training uses the relaxation
    with temperature ``T``: ``h_k = σ((w_k·x + c_k)/T)``, output probability ``σ(z/T)`` with
    ``z = v·h + v₀``. :meth:`forward` returns the output *logit* ``z/T`` (shape ``(n,)``), and the
    workload's loss is ``binary_cross_entropy_with_logits(z/T, y)``, i.e. ``−log`` of the output
    sigmoid's probability of the label. As ``T → 0`` the relaxation tends to the threshold network
    (for points off the hyperplanes). :meth:`hard_forward` evaluates the threshold network
    with the same weights.

    ``output="and"`` fixes the output unit to the AND of the hidden units (the special case of
    Blum & Rivest's reduction; no output weights): the output probability is
    ``p = σ(z_1/T)·σ(z_2/T)`` and :meth:`forward` returns its logit ``log p − log(1 − p)``.
    """

    def __init__(self, d: int, temperature: float = 1.0, output: str = "threshold"):
        super().__init__()
        if output not in ("threshold", "and"):
            raise ValueError(f"output must be 'threshold' or 'and', got {output!r}")
        self.hidden = nn.Linear(d, 2)
        self.output = nn.Linear(2, 1) if output == "threshold" else None
        self.temperature = float(temperature)

    def forward(self, x: Tensor) -> Tensor:
        z = self.hidden(x) / self.temperature
        if self.output is None:
            logp = F.logsigmoid(z).sum(-1)            # log σ(z_1)σ(z_2), stable for large |z|
            # p < 1 - 1e-12 keeps log(1 - p) finite where both units saturate
            return logp - torch.log1p(-torch.exp(logp).clamp(max=1 - 1e-12))
        return self.output(torch.sigmoid(z)).squeeze(-1) / self.temperature

    @torch.no_grad()
    def hard_forward(self, x: Tensor) -> Tensor:
        """0/1 predictions of the threshold network with the same weights (long tensor, shape (n,))."""
        h = (self.hidden(x) > 0).to(x.dtype)
        if self.output is None:
            return (h.sum(-1) == 2).long()
        return (self.output(h).squeeze(-1) > 0).long()


# Teacher bias: each unit fires with probability Φ(β) = 1/√2 on N(0, I) inputs, so for nearly
# orthogonal teacher directions about half of the points are positive (AND of the two units).
_TEACHER_BIAS = NormalDist().inv_cdf(math.sqrt(0.5))


def _build_three_node(seed, dtype, device, *, n, d, noise, temperature):
    n = _int_option("n", n, 1)
    d = _int_option("d", d, 1)
    noise = _float_option("noise", noise, low=0.0, low_open=False, high=0.5)
    temperature = _float_option("temperature", temperature, low=0.0)
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((2, d))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    c = np.full(2, _TEACHER_BIAS)
    X = _stored(rng.standard_normal((n, d)), dtype, device)
    Xs = _as_float64(X)  # labels from the stored (rounded) inputs, so the teacher is exact on them
    clean = np.all(Xs @ W.T + c > 0, axis=1).astype(np.int64)
    flipped = rng.random(n) < noise
    labels = np.where(flipped, 1 - clean, clean)
    model = _build_model(seed, lambda: ThreeNodeNet(d, temperature)).to(dtype=dtype, device=device)
    return dict(
        description=(f"Blum–Rivest 3-node network (2 hidden units, 1 output unit) on planted data: "
                     f"x ~ N(0, I_{d}), n={n}, labels from a threshold teacher with AND output, "
                     f"{int(flipped.sum())} of {n} labels flipped (noise {noise:g}); trained through "
                     f"its sigmoid relaxation (temperature {temperature:g}) with BCE on the output "
                     "logit; non-convex, f ≥ 0"),
        model=model, criterion=bce_logits, loss_name="bce-logits",
        X=X, y=_stored(labels.astype(np.float64), dtype, device),
        convex=False, f_star=None, f_lower=0.0,
        info={"teacher_W": W, "teacher_b": c, "teacher_output": "AND",
              "labels_flipped": int(flipped.sum()), "positives": int(labels.sum()),
              # The teacher's threshold network errs exactly on the flipped labels: an upper
              # bound on the fewest errors any 3-node threshold network makes on this data.
              "teacher_errors": int(flipped.sum()),
              "f_lower_source": "binary cross-entropy is non-negative"},
        options={"n": n, "d": d, "noise": noise, "temperature": temperature},
    )


@dataclass(frozen=True)
class WorkloadEntry:
    """A registered built-in: its name, one-line summary, default dtype and options with defaults."""

    name: str
    summary: str
    default_dtype: torch.dtype
    defaults: Mapping[str, Any]
    build: Callable[..., dict] = field(repr=False)


def _entry(name, summary, default_dtype, build, **defaults) -> WorkloadEntry:
    return WorkloadEntry(name, summary, default_dtype, MappingProxyType(defaults), build)


WORKLOADS: Mapping[str, WorkloadEntry] = MappingProxyType({e.name: e for e in (
    _entry("quadratic", "random quadratic with chosen eigenvalues: L, mu, f* exact", torch.float64,
           _build_quadratic, d=20, n=200, L=1.0, mu=0.01, eigenvalues=None, noise=0.1),
    _entry("least-squares", "ridge least squares on breast-cancer data: L, mu, f* exact", torch.float64,
           functools.partial(_build_breast_cancer, "least_squares"), lam=1e-3),
    _entry("logistic", "L2 logistic regression on breast-cancer data: L, mu, f* exact", torch.float64,
           functools.partial(_build_breast_cancer, "logistic"), lam=1e-3),
    _entry("mlp-digits", "MLP on 8×8 digits, cross-entropy: non-convex, f ≥ 0", torch.float32,
           functools.partial(_build_digits, "mlp"), lam=0.0, activation="tanh", width=32),
    _entry("cnn-digits", "small CNN on 8×8 digits, cross-entropy: non-convex, f ≥ 0", torch.float32,
           functools.partial(_build_digits, "cnn"), lam=0.0, activation="tanh", width=8),
    _entry("three-node", "Blum–Rivest 3-node network on planted data: non-convex, f ≥ 0", torch.float32,
           _build_three_node, n=200, d=10, noise=0.0, temperature=1.0),
)})


def _check_dtype_device(dtype, device):
    if dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise WorkloadOptionError(
            f"dtype={dtype!r} is not a floating torch dtype; use torch.float32 or torch.float64")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise WorkloadOptionError(f"device={device!r} is not a torch device; use 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise WorkloadOptionError(
            f"device={device!r} but this torch has no usable CUDA device; use device='cpu'")
    return dev


def get_workload(name: str, *, seed: int = 0, dtype: torch.dtype | None = None,
                 device: str | torch.device = "cpu", **options) -> Workload:
    """Build the built-in workload ``name`` with ``seed`` (data and initial weights).

    ``dtype`` defaults to float64 for ``quadratic``, ``least-squares`` and ``logistic`` (so a
    suboptimality of 1e-10 is measurable) and float32 otherwise. ``options`` override the
    entry's defaults (``WORKLOADS[name].defaults``), e.g. ``lam=1e-2`` or ``eigenvalues=[...]``.
    """
    entry = WORKLOADS.get(name)
    if entry is None:
        raise UnknownWorkloadError(f"unknown workload {name!r}; choose one of {', '.join(WORKLOADS)}, "
                                   "or give your own with --model/--data")
    unknown = sorted(set(options) - set(entry.defaults))
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in entry.defaults.items())
        raise WorkloadOptionError(
            f"workload {name!r} takes no option {', '.join(unknown)}; its options: {valid}")
    seed = _seed_option(seed)
    dtype = entry.default_dtype if dtype is None else dtype
    device = _check_dtype_device(dtype, device)
    parts = entry.build(seed, dtype, device, **{**entry.defaults, **options})
    return Workload(name=name, seed=seed, **parts)


# -- the user's own workload --------------------------------------------------------------------

_SPEC = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else "(no message)"


def _resolve(spec, option: str):
    """``pkg.mod:attr`` → the object, by ``importlib.import_module`` and ``getattr`` only."""
    m = _SPEC.match(spec.strip()) if isinstance(spec, str) else None
    if m is None:
        raise UserWorkloadError("syntax", f"{option} {spec!r} is not of the form package.module:function; "
                                          f"write e.g. {option} mypkg.models:build")
    modname, attr = m["module"], m["attr"]
    try:
        module = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name and (modname == exc.name or modname.startswith(exc.name + ".")):
            raise UserWorkloadError(
                "module_not_found", f"{option} {spec}: module {exc.name!r} not found; check the "
                "spelling and run from its folder or add it to PYTHONPATH") from exc
        raise UserWorkloadError(
            "raised", f"{option} {spec}: importing {modname!r} raised ModuleNotFoundError: "
            f"{_first_line(exc)}; install what it imports") from exc
    except Exception as exc:  # noqa: BLE001 -- any failure of user code is reported, not masked
        raise UserWorkloadError(
            "raised", f"{option} {spec}: importing {modname!r} raised {type(exc).__name__}: "
            f"{_first_line(exc)}; fix the module so it imports") from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
            hint = f"; callables there: {', '.join(names[:10])}" if names else ""
            raise UserWorkloadError("attribute_missing", f"{option} {spec}: {modname!r} has no attribute "
                                    f"{attr!r}{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserWorkloadError("not_callable", f"{option} {spec}: {attr!r} is not callable (type "
                                f"{type(obj).__name__}); point at a function that takes no arguments")
    return obj


def _call(fn, spec: str, option: str, seed: int):
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return fn()
    except Exception as exc:  # noqa: BLE001 -- user code
        raise UserWorkloadError("raised", f"{option} {spec} raised {type(exc).__name__}: {_first_line(exc)}; "
                                "it is called with no arguments and must succeed") from exc


def _tensor(v, what: str, spec: str) -> Tensor:
    if isinstance(v, Tensor):
        return v.detach()
    if isinstance(v, np.ndarray) and v.dtype != object:
        return torch.from_numpy(np.array(v))
    raise UserWorkloadError("return_type", f"--data {spec} returned {what} of type {type(v).__name__}; "
                            "return torch tensors (or numpy arrays)")


def _data_tensors(obj, spec: str) -> tuple[Tensor, Tensor]:
    from torch.utils.data import Dataset, IterableDataset, TensorDataset

    if isinstance(obj, (tuple, list)):
        if len(obj) != 2:
            raise UserWorkloadError("return_type", f"--data {spec} returned a {type(obj).__name__} of length "
                                    f"{len(obj)}; return a pair (X, y)")
        X, y = _tensor(obj[0], "X", spec), _tensor(obj[1], "y", spec)
    elif isinstance(obj, TensorDataset) and len(obj.tensors) == 2:
        X, y = obj.tensors[0].detach(), obj.tensors[1].detach()
    elif isinstance(obj, Dataset) and not isinstance(obj, IterableDataset) and hasattr(obj, "__len__"):
        n = len(obj)
        if n == 0:
            raise UserWorkloadError(
                "empty", f"--data {spec} returned an empty Dataset; give at least one example")
        xs, ys = [], []
        for i in range(n):
            try:
                item = obj[i]
            except Exception as exc:  # noqa: BLE001 -- user code
                raise UserWorkloadError("raised", f"--data {spec}: dataset[{i}] raised {type(exc).__name__}: "
                                        f"{_first_line(exc)}") from exc
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise UserWorkloadError(
                    "return_type", f"--data {spec}: dataset[{i}] is a {type(item).__name__}, not an "
                    "(input, target) pair; return (x, y) from __getitem__")
            xs.append(item[0] if isinstance(item[0], Tensor) else torch.as_tensor(item[0]))
            ys.append(item[1] if isinstance(item[1], Tensor) else torch.as_tensor(item[1]))
        try:
            X, y = torch.stack(xs), torch.stack(ys)
        except RuntimeError as exc:
            raise UserWorkloadError(
                "return_type", f"--data {spec}: examples have different shapes "
                f"({_first_line(exc)}); make every x (and every y) the same shape") from exc
    else:
        raise UserWorkloadError("return_type", f"--data {spec} returned a {type(obj).__name__}; return a "
                                "map-style torch Dataset of (x, y) pairs or a tuple (X, y) of tensors")
    if X.ndim == 0 or y.ndim == 0:
        raise UserWorkloadError(
            "return_type", f"--data {spec}: X and y need a leading example dimension, got shapes "
            f"{tuple(X.shape)} and {tuple(y.shape)}")
    if X.shape[0] != y.shape[0]:
        raise UserWorkloadError("length_mismatch", f"--data {spec}: X has {X.shape[0]} examples but y has "
                                f"{y.shape[0]}; give one target per example")
    if X.shape[0] == 0:
        raise UserWorkloadError("empty", f"--data {spec} returned no examples; give at least one")
    return X, y


def _check_trainable(model: nn.Module, model_spec: str) -> None:
    """A model without parameters, or with every one frozen, would fail inside the optimizer
    or the first probe (an internal error after setup): refuse it before training."""
    params = list(model.parameters())
    kind = type(model).__name__
    if not params:
        raise UserWorkloadError("no_parameters", f"--model {model_spec}: the {kind} has no "
                                "parameters, so there is nothing to train; return a module "
                                "with nn.Parameter weights")
    if not any(p.requires_grad for p in params):
        raise UserWorkloadError("frozen", f"--model {model_spec}: all {len(params)} parameter "
                                f"tensors of the {kind} are frozen (requires_grad=False); "
                                "unfreeze the ones to train with p.requires_grad_(True)")


def _check_fit(model: nn.Module, criterion: Callable, X: Tensor, y: Tensor, model_spec: str,
               data_spec: str, loss_spec: str) -> None:
    """One forward and one loss on two examples, with gradients on: the pieces fit, the loss
    is a scalar, and it depends on the parameters (a detached output has no ``grad_fn``)."""
    k = min(2, X.shape[0])
    try:
        with torch.enable_grad():
            out = model(X[:k])
    except Exception as exc:  # noqa: BLE001 -- user code
        raise UserWorkloadError(
            "raised", f"--model {model_spec} raised {type(exc).__name__} on inputs of shape "
            f"{tuple(X[:k].shape)} from --data {data_spec}: {_first_line(exc)}") from exc
    try:
        with torch.enable_grad():
            value = criterion(out, y[:k])
    except Exception as exc:  # noqa: BLE001 -- user code
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise UserWorkloadError(
            "raised", f"--loss {loss_spec} raised {type(exc).__name__} on outputs {shape} "
            f"and targets {tuple(y[:k].shape)}: {_first_line(exc)}") from exc
    if not (isinstance(value, Tensor) and value.numel() == 1 and value.is_floating_point()):
        got = f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
        raise UserWorkloadError("return_type", f"--loss {loss_spec} returned {got}; return a scalar float "
                                "tensor (reduce with .mean())")
    if value.grad_fn is None:
        raise UserWorkloadError(
            "detached", f"--model {model_spec} with --loss {loss_spec}: the loss has no gradient "
            "(no grad_fn): the model's output or the loss is detached from the parameters "
            "(.detach(), torch.no_grad(), .item() or numpy inside); keep it differentiable")


def _resolve_loss(loss_spec, seed: int) -> tuple[Callable, str, bool]:
    """(criterion, name, known non-negative)."""
    if isinstance(loss_spec, str) and loss_spec in LOSSES:
        return LOSSES[loss_spec], loss_spec, True
    if not (isinstance(loss_spec, str) and ":" in loss_spec):
        raise UserWorkloadError(
            "syntax", f"--loss {loss_spec!r} is neither a built-in loss ({', '.join(LOSSES)}) "
            "nor of the form package.module:function")
    obj = _resolve(loss_spec, "--loss")
    if isinstance(obj, type) and issubclass(obj, nn.Module):  # e.g. torch.nn:MSELoss
        obj = _call(obj, loss_spec, "--loss", seed)
    return obj, loss_spec, False


def load_user_workload(model_spec: str, data_spec: str, loss_spec: str = "mse", *, seed: int = 0,
                       dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
                       name: str | None = None) -> Workload:
    """A workload from the user's own code: ``--model pkg.mod:fn --data pkg.mod:fn --loss NAME``.

    * ``model_spec``: a function taking no arguments and returning a ``torch.nn.Module``; it is
      called with torch's generator seeded by ``seed`` (the global RNG is restored afterwards).
    * ``data_spec``: a function taking no arguments and returning a map-style
      ``torch.utils.data.Dataset`` of ``(x, y)`` pairs or a tuple ``(X, y)`` of tensors (numpy
      arrays are accepted); all of it is held in memory.
    * ``loss_spec``: ``mse`` (PyTorch's MSELoss: mean of squares, no 1/2), ``cross-entropy``
      (logits vs class indices), ``bce-logits`` (logits vs 0/1), or ``pkg.mod:fn`` returning a
      scalar tensor from ``(outputs, targets)`` (an ``nn.Module`` class is instantiated).

    Floating inputs, floating targets and the model are cast to ``dtype`` (default float32);
    integer targets stay integer for cross-entropy and become ``dtype`` for mse / bce-logits.
    One forward pass and one loss evaluation on two examples check that the pieces fit.
    Nothing is known about the objective: ``convex=False``; ``f_lower=0`` for the built-in
    (non-negative) losses, ``None`` for the user's own. Every failure raises
    :class:`UserWorkloadError` naming the spec, what was wrong and how to fix it.
    """
    dtype = torch.float32 if dtype is None else dtype
    device = _check_dtype_device(dtype, device)
    seed = _seed_option(seed)
    model_fn = _resolve(model_spec, "--model")
    data_fn = _resolve(data_spec, "--data")
    criterion, loss_name, nonnegative = _resolve_loss(loss_spec, seed)

    model = _call(model_fn, model_spec, "--model", seed)
    if not isinstance(model, nn.Module):
        raise UserWorkloadError("return_type", f"--model {model_spec} returned a {type(model).__name__}; "
                                "return a torch.nn.Module")
    X, y = _data_tensors(_call(data_fn, data_spec, "--data", seed), data_spec)

    if X.is_floating_point():
        X = X.to(dtype)
    if y.is_floating_point() or loss_name in ("mse", "bce-logits"):
        y = y.to(dtype)
    elif loss_name == "cross-entropy":
        y = y.long()
    X, y = X.to(device), y.to(device)
    model = model.to(dtype=dtype, device=device)

    _check_trainable(model, model_spec)
    _check_fit(model, criterion, X, y, model_spec, data_spec, loss_spec)

    n_params = sum(p.numel() for p in model.parameters())
    return Workload(
        name=name or f"user:{model_spec}",
        description=(f"user model {model_spec} ({type(model).__name__}, {n_params} parameters) on "
                     f"{data_spec} (n={X.shape[0]}, x shape {tuple(X.shape[1:])}), loss {loss_name}; "
                     "nothing known about convexity or constants"),
        model=model, criterion=criterion, loss_name=loss_name, X=X, y=y,
        convex=False, f_star=None, f_lower=0.0 if nonnegative else None, seed=seed,
        info={"f_lower_source": "the loss is non-negative" if nonnegative else "unknown (user's loss)"},
        options={"model": model_spec, "data": data_spec, "loss": loss_spec},
    )


# --- a workload named by a request (the CLI's options, a worker's JSON) -------------------


@dataclass(frozen=True)
class WorkloadRequest:
    """Which workload to build, as plain JSON-able values: a built-in ``name`` with its
    ``options``, or the user's ``model``/``data``/``loss`` (``pkg.mod:fn``); ``seed`` and
    ``dtype`` (``"float32"``, ``"float64"`` or None for the workload's default)."""

    name: str | None = None
    model: str | None = None
    data: str | None = None
    loss: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    dtype: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "data": self.data, "loss": self.loss,
                "options": dict(self.options), "seed": self.seed, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "WorkloadRequest":
        return cls(name=d.get("name"), model=d.get("model"), data=d.get("data"),
                   loss=d.get("loss"), options=dict(d.get("options") or {}),
                   seed=int(d.get("seed") or 0), dtype=d.get("dtype"))


def resolve(request: WorkloadRequest, device: str | torch.device = "cpu",
            search_path: str | None = None) -> Workload:
    """The :class:`Workload` a request names, on ``device``; ``search_path`` (the user's
    folder) goes on ``sys.path`` first so ``--model mymodule:fn`` finds ``./mymodule.py``."""
    import sys

    from ..bounds.errors import InvalidValueError

    r = request
    if r.dtype not in (None, "float32", "float64"):
        raise InvalidValueError(f"dtype {r.dtype!r}: give float32 or float64")
    torch_dtype = None if r.dtype is None else getattr(torch, r.dtype)
    if r.model or r.data:
        if r.name:
            raise InvalidValueError("give either --workload or --model/--data, not both")
        if not (r.model and r.data):
            raise InvalidValueError("--model and --data go together (and optionally --loss)")
        if search_path and search_path not in sys.path:
            sys.path.insert(0, search_path)
        return load_user_workload(r.model, r.data, r.loss or "mse", seed=r.seed,
                                  dtype=torch_dtype, device=device)
    if not r.name:
        raise InvalidValueError("give --workload NAME (quadratic, least-squares, logistic, "
                                "mlp-digits, cnn-digits, three-node) or --model/--data")
    if r.loss:
        raise InvalidValueError("--loss applies to --model/--data; a built-in workload has its own")
    return get_workload(r.name, seed=r.seed, dtype=torch_dtype, device=device, **dict(r.options))
