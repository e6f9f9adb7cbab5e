"""Exact optima and smoothness constants of the convex workloads (numpy + cvxpy; never torch).

Both problems regularise the intercept too, so that the strong-convexity constant is exactly
``lam``-based and the optimum is unique and attained. With ``θ = (w, b)`` and
``X̃ = [X, 1]`` (the data with a column of ones):

* least squares:  ``f(θ) = (1/(2n)) ‖X̃θ − y‖² + (lam/2) ‖θ‖²``;
* logistic:       ``f(θ) = (1/n) Σᵢ log(1 + exp(−yᵢ x̃ᵢ·θ)) + (lam/2) ‖θ‖²``,
  labels ``yᵢ ∈ {−1, +1}``
  (the same function as binary cross-entropy with logits on 0/1 labels ``(y + 1)/2``).

How ``f*`` is obtained: cvxpy solves the problem (Clarabel; the logistic term through
``cp.logistic``, i.e. the exponential cone), then a few Newton steps in float64 polish the
solution until the gradient norm stops decreasing (typically ~1e-15). Because ``f`` is
``mu``-strongly convex with ``mu >= lam``, ``f(θ) − f* <= ‖∇f(θ)‖² / (2 lam)`` for every θ:
the returned ``gap_bound`` is that certificate, so the reported ``f_star`` is an upper bound on
the true optimum that exceeds it by at most ``gap_bound`` (plus float64 rounding in evaluating
``f``, ~1e-16 relative). The cvxpy solution is only a warm start; the certificate does not
depend on the solver's own tolerances.

>>> import numpy as np
>>> X = np.array([[1.0], [2.0], [3.0]]); y = np.array([1.0, 2.0, 3.0])
>>> opt = least_squares_optimum(X, y, lam=1e-3)
>>> opt.grad_norm < 1e-12
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np

from .errors import ApproxAuditError, InvalidValueError

Loss = Literal["least_squares", "logistic"]
LOSSES: tuple[str, ...] = ("least_squares", "logistic")

_MAX_NEWTON_STEPS = 50


class InvalidDataError(ApproxAuditError, ValueError):
    """Data given to an exact-optimum solver has the wrong shape, non-finite entries or bad labels."""


@dataclass(frozen=True)
class ConvexOptimum:
    """The exact minimiser of a regularised convex problem, and how it was obtained.

    ``f_star`` is ``f`` at ``(w, b)``, evaluated in float64; ``grad_norm`` is ``‖∇f(w, b)‖₂``
    there and ``gap_bound = grad_norm² / (2 lam)`` bounds ``f_star − min f`` (strong
    convexity). ``solver`` names the warm-start solver and ``status`` is its cvxpy status
    (``"optimal"``, ``"optimal_inaccurate"``, or ``"solver_error: ..."`` when cvxpy failed and
    Newton's method started from zero instead); ``newton_steps`` counts the polishing steps.
    """

    loss: str
    f_star: float
    w: np.ndarray = field(repr=False)
    b: float
    grad_norm: float
    gap_bound: float
    lam: float
    solver: str
    status: str
    newton_steps: int

    @property
    def theta(self) -> np.ndarray:
        """``(w, b)`` as one vector (the intercept last)."""
        return np.append(self.w, self.b)


@dataclass(frozen=True)
class SmoothnessConstants:
    """Global smoothness ``L`` and strong-convexity ``mu`` of a regularised convex problem.

    ``*_kind`` is ``"exact"`` (the constant itself: the sup / inf of the Hessian's extreme
    eigenvalue over all θ) or ``"upper"`` / ``"lower"`` (a bound on it in that direction);
    ``*_source`` says how it was obtained, in one line.
    """

    loss: str
    L: float
    mu: float
    L_kind: str
    mu_kind: str
    L_source: str
    mu_source: str


# -- validation ------------------------------------------------------------------------------

def _check_lam(lam: float) -> float:
    try:
        lam = float(lam)
    except (TypeError, ValueError):
        raise InvalidValueError(
            f"lam={lam!r} is not a number; give a positive L2 weight such as 1e-3") from None
    if not math.isfinite(lam) or lam <= 0:
        raise InvalidValueError(
            f"lam={lam!r} must be a finite number > 0 (the L2 weight makes the optimum unique "
            "and mu = lam); give e.g. lam=1e-3")
    return lam


def _check_X(X) -> np.ndarray:
    X = np.asarray(X)
    if X.dtype == object or not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise InvalidDataError(f"X has dtype {X.dtype}; give a real-valued array of shape (n, d)")
    X = X.astype(np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise InvalidDataError(f"X has shape {X.shape}; give a 2-D array of shape (n, d) with n, d >= 1")
    if not np.all(np.isfinite(X)):
        raise InvalidDataError("X contains NaN or infinite entries; remove or impute them first")
    return X


def _check_y(y, n: int, loss: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n:
        raise InvalidDataError(f"y has shape {y.shape} but X has {n} rows; give y of shape ({n},)")
    if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
        raise InvalidDataError(f"y has dtype {y.dtype}; give real-valued targets")
    y = y.astype(np.float64)
    if not np.all(np.isfinite(y)):
        raise InvalidDataError("y contains NaN or infinite entries; remove them first")
    if loss == "logistic" and not np.all(np.abs(y) == 1.0):
        bad = np.unique(y[np.abs(y) != 1.0])[:5]
        raise InvalidDataError(
            f"logistic labels must be -1 or +1, got values such as {bad.tolist()}; "
            "map 0/1 labels with y = 2*y - 1")
    return y


def _augment(X: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((X.shape[0], 1))])


# -- objectives, gradients, Hessians (float64) -----------------------------------------------

def _sigmoid(t: np.ndarray) -> np.ndarray:
    # exp(-log(1 + exp(-t))) keeps full relative precision for large |t| of either sign.
    return np.exp(-np.logaddexp(0.0, -t))


def _ls_parts(Xt, y, lam, theta):
    r = Xt @ theta - y
    n = Xt.shape[0]
    value = 0.5 * float(r @ r) / n + 0.5 * lam * float(theta @ theta)
    grad = Xt.T @ r / n + lam * theta
    return value, grad


def _ls_hessian(Xt, y, lam, theta):
    n = Xt.shape[0]
    return Xt.T @ Xt / n + lam * np.eye(Xt.shape[1])


def _logistic_parts(Xt, y, lam, theta):
    m = y * (Xt @ theta)
    n = Xt.shape[0]
    value = float(np.sum(np.logaddexp(0.0, -m))) / n + 0.5 * lam * float(theta @ theta)
    grad = -Xt.T @ (y * _sigmoid(-m)) / n + lam * theta
    return value, grad


def _logistic_hessian(Xt, y, lam, theta):
    z = Xt @ theta
    s = _sigmoid(z)
    D = s * (1.0 - s)
    n = Xt.shape[0]
    return (Xt.T * D) @ Xt / n + lam * np.eye(Xt.shape[1])


_PARTS: dict[str, tuple[Callable, Callable]] = {
    "least_squares": (_ls_parts, _ls_hessian),
    "logistic": (_logistic_parts, _logistic_hessian),
}


def _prepare(loss, X, y, lam, w, b):
    loss = _check_loss(loss)
    X = _check_X(X)
    y = _check_y(y, X.shape[0], loss)
    lam = _check_lam(lam)
    theta = np.append(np.asarray(w, dtype=np.float64).reshape(-1), float(b))
    if theta.shape[0] != X.shape[1] + 1:
        raise InvalidDataError(f"w has {theta.shape[0] - 1} entries but X has {X.shape[1]} columns; "
                               "give one weight per column")
    return _PARTS[loss], _augment(X), y, lam, theta


def regularized_objective(loss: Loss, X, y, lam: float, w, b: float) -> float:
    """``f(w, b)`` of the problem named by ``loss`` (see the module docstring), in float64."""
    (parts, _), Xt, y, lam, theta = _prepare(loss, X, y, lam, w, b)
    return parts(Xt, y, lam, theta)[0]


def regularized_gradient(loss: Loss, X, y, lam: float, w, b: float) -> np.ndarray:
    """``∇f(w, b)`` as one vector ``(∂f/∂w, ∂f/∂b)``, in float64."""
    (parts, _), Xt, y, lam, theta = _prepare(loss, X, y, lam, w, b)
    return parts(Xt, y, lam, theta)[1]


def regularized_hessian(loss: Loss, X, y, lam: float, w, b: float) -> np.ndarray:
    """``∇²f(w, b)`` over ``(w, b)`` (intercept last), in float64."""
    (_, hessian), Xt, y, lam, theta = _prepare(loss, X, y, lam, w, b)
    return hessian(Xt, y, lam, theta)


def _check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise InvalidValueError(f"loss={loss!r} is not known; choose one of {', '.join(LOSSES)}")
    return loss


# -- solving -----------------------------------------------------------------------------------

def _cvxpy_solve(loss: str, Xt: np.ndarray, y: np.ndarray, lam: float, solver: str):
    import cvxpy as cp  # lazily: cvxpy is slow to import and only the exact optima need it

    n, p = Xt.shape
    theta = cp.Variable(p)
    z = Xt @ theta
    if loss == "least_squares":
        data_term = cp.sum_squares(z - y) / (2 * n)
    else:
        data_term = cp.sum(cp.logistic(-cp.multiply(y, z))) / n
    problem = cp.Problem(cp.Minimize(data_term + (lam / 2) * cp.sum_squares(theta)))
    try:
        problem.solve(solver=solver)
    except cp.error.SolverError as exc:
        return None, f"solver_error: {exc}".splitlines()[0]
    if theta.value is None or problem.status not in ("optimal", "optimal_inaccurate"):
        return None, f"solver_error: cvxpy status {problem.status}"
    return np.asarray(theta.value, dtype=np.float64), str(problem.status)


def _newton_polish(parts, hessian, Xt, y, lam, theta):
    """Damped Newton in float64 until the gradient norm stops decreasing.

    Far from the optimum (Newton decrement² > 1e-8) it backtracks on ``f`` (Armijo); near it,
    full steps are taken (quadratic convergence), because differences in ``f`` fall below float64
    rounding there while the gradient norm still measures progress.
    """
    value, grad = parts(Xt, y, lam, theta)
    best = (float(np.linalg.norm(grad)), theta, value)
    stalls = steps = 0
    while steps < _MAX_NEWTON_STEPS and stalls < 2 and best[0] > 0.0:
        H = hessian(Xt, y, lam, theta)
        step = np.linalg.solve(H, grad)
        decrement = float(grad @ step)
        t = 1.0
        if decrement > 1e-8:
            while t > 1e-12:
                if parts(Xt, y, lam, theta - t * step)[0] <= value - 1e-4 * t * decrement:
                    break
                t *= 0.5
        theta = theta - t * step
        value, grad = parts(Xt, y, lam, theta)
        steps += 1
        gnorm = float(np.linalg.norm(grad))
        if gnorm < best[0]:
            stalls = 0 if gnorm < 0.5 * best[0] else stalls + 1
            best = (gnorm, theta, value)
        else:
            stalls += 1
    return best, steps


def _optimum(loss: str, X, y, lam: float, solver: str) -> ConvexOptimum:
    X = _check_X(X)
    y = _check_y(y, X.shape[0], loss)
    lam = _check_lam(lam)
    Xt = _augment(X)
    parts, hessian = _PARTS[loss]
    theta0, status = _cvxpy_solve(loss, Xt, y, lam, solver)
    if theta0 is None:  # recorded in ``status``; Newton with backtracking converges from anywhere
        theta0 = np.zeros(Xt.shape[1])
    (gnorm, theta, value), steps = _newton_polish(parts, hessian, Xt, y, lam, theta0)
    w = theta[:-1].copy()
    w.setflags(write=False)
    return ConvexOptimum(loss=loss, f_star=float(value), w=w, b=float(theta[-1]), grad_norm=gnorm,
                         gap_bound=gnorm**2 / (2 * lam), lam=lam, solver=solver, status=status,
                         newton_steps=steps)


def least_squares_optimum(X, y, lam: float, *, solver: str = "CLARABEL") -> ConvexOptimum:
    """Exact minimiser of ``(1/(2n))‖Xw + b − y‖² + (lam/2)(‖w‖² + b²)``.

    cvxpy (``solver``, Clarabel by default) gives a warm start; Newton steps in float64 (one
    suffices for a quadratic, a few more remove rounding) bring ‖∇f‖ to ~1e-15. See
    :class:`ConvexOptimum` for the certificate ``gap_bound``.
    """
    return _optimum("least_squares", X, y, lam, solver)


def logistic_optimum(X, y, lam: float, *, solver: str = "CLARABEL") -> ConvexOptimum:
    """Exact minimiser of ``mean log(1 + exp(−y(x·w + b))) + (lam/2)(‖w‖² + b²)``, y = ±1.

    cvxpy (``solver``, Clarabel by default; the exponential cone through ``cp.logistic``) gives a
    warm start; damped Newton in float64 polishes it until ‖∇f‖ stops decreasing (~1e-15).
    See :class:`ConvexOptimum` for the certificate ``gap_bound``.
    """
    return _optimum("logistic", X, y, lam, solver)


def smoothness_constants(X, lam: float, *, loss: Loss) -> SmoothnessConstants:
    """Global ``L`` and ``mu`` of the regularised problem named by ``loss``, with how each is known.

    With ``X̃ = [X, 1]`` and ``G = X̃ᵀX̃ / n``:

    * least squares: the Hessian is constant, ``G + lam·I``, so ``L = λ_max(G) + lam`` and
      ``mu = λ_min(G) + lam`` are both **exact** (``numpy.linalg.eigvalsh`` in float64).
    * logistic: the Hessian is ``X̃ᵀ D(θ) X̃ / n + lam·I`` with ``D = diag(σ'(x̃ᵢ·θ))`` and
      ``0 < σ'(t) <= 1/4``, with equality at ``t = 0``. Hence ``L = λ_max(G)/4 + lam`` bounds
      the Hessian everywhere and is attained at ``θ = 0``: it is the **exact** global
      smoothness constant (not merely an upper bound). ``mu = lam`` is the **exact** global
      strong-convexity constant: ``λ_min(∇²f) > lam`` at every θ, and it tends to ``lam`` as
      ``θ = t·v``, ``t → ∞``, for any ``v`` orthogonal to no ``x̃ᵢ`` (then every σ' → 0). Along a
      particular trajectory the local curvature is larger than ``lam``.
    """
    loss = _check_loss(loss)
    X = _check_X(X)
    lam = _check_lam(lam)
    Xt = _augment(X)
    eig = np.linalg.eigvalsh(Xt.T @ Xt / Xt.shape[0])
    lo, hi = max(float(eig[0]), 0.0), float(eig[-1])
    if loss == "least_squares":
        return SmoothnessConstants(
            loss=loss, L=hi + lam, mu=lo + lam, L_kind="exact", mu_kind="exact",
            L_source="λ_max(X̃ᵀX̃/n) + λ: the least-squares Hessian is constant (eigvalsh, float64)",
            mu_source="λ_min(X̃ᵀX̃/n) + λ: the least-squares Hessian is constant (eigvalsh, float64)")
    return SmoothnessConstants(
        loss=loss, L=hi / 4 + lam, mu=lam, L_kind="exact", mu_kind="exact",
        L_source=("λ_max(X̃ᵀX̃)/(4n) + λ: bounds the logistic Hessian everywhere since σ'(t) ≤ 1/4, "
                  "with equality at θ = 0, so it is the global constant"),
        mu_source=("λ: the L2 term; the data term's curvature σ'(x̃·θ) → 0 as ‖θ‖ → ∞, "
                   "so no larger global constant exists"))
