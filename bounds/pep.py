r"""Performance estimation: exact worst cases of fixed-step first-order methods, in cvxpy.

A *fixed-step method* evaluates gradients at points :math:`P_0, P_1, \dots, P_{N-1}` and outputs
:math:`P_N`, where every point is the start plus a fixed linear combination of the gradients
seen so far:

.. math:: P_{i+1} = P_0 - \frac{1}{L} \sum_{j \le i} A_{ij} \nabla f(P_j), \qquad i = 0..N-1.

Gradient descent, heavy ball, Nesterov's fast gradient methods and OGM are all of this form
(:func:`gd`, :func:`heavy_ball`, :func:`fgm`, :func:`fgm_strongly_convex`, :func:`ogm`); any other
is given by its matrix (:class:`FixedStepMethod`). The worst case of a metric (``f(P_N) - f*``,
``||P_N - x*||^2``, ``||grad f(P_N)||^2``, the smallest squared gradient norm) over a function
class (L-smooth convex, L-smooth mu-strongly convex, L-smooth non-convex) under an initial
condition (``||P_0 - x*||^2 <= R^2``, ``f(P_0) - f* <= Delta``, ``f(P_0) - f(P_N) <= Delta``) is a
semidefinite program over the Gram matrix of the points and gradients, with the class's
interpolation inequalities for every pair of points (Taylor, Hendrickx & Glineur 2017,
"Smooth strongly convex interpolation and exact worst-case performance of first-order methods",
Math. Program. 161:307-345, Theorem 4; the smooth non-convex class is the case mu = -L of the
same inequality, Taylor's thesis Theorem 3.10). For the convex classes this SDP's value *is*
the worst case over functions in every dimension.

How it is solved, and why it is fast
------------------------------------
* **Basis.** When every new point uses its latest gradient (``A_ii != 0``; true of all the
  methods above), the Gram matrix is written in the basis ``P_0 - x*, ..., P_N - x*, grad f(P_N)``
  instead of ``P_0 - x*`` and the gradients. Gradients of short-recurrence methods are then
  differences of a few consecutive points, so each interpolation inequality touches a few
  neighbouring entries of the Gram matrix.
* **Dual with chordal sparsity.** The program solved is the Lagrange dual: a linear matrix
  inequality ``sum_p lambda_p Q_p + sum_I tau_I B_I - sum_k nu_k C_k >= 0`` plus one equality per
  function value. Its sparsity pattern is banded, which Clarabel's chordal decomposition turns
  into many small cones (a 102 x 102 dense cone at N = 100 costs ~90 s; the banded one ~0.1 s).
  Any feasible dual point is an *upper* bound on the worst case; its multipliers ``lambda`` are
  the certificate (which interpolation inequalities are combined to prove the bound).
* **Constraint generation, verified.** It starts from the inequalities between each point and
  the optimum and between consecutive points (a relaxation: its value can only be larger), then
  recovers the primal Gram matrix and function values (Clarabel completes the dual of the
  decomposed cone) and evaluates *every* pair's inequality on them, adding the violated ones
  and solving again. When none is violated, the relaxation's optimum is feasible for the full
  program, so the two values coincide: the result is exact, to the solver's tolerance, which
  is reported (``max_violation``, ``primal_value`` vs ``value``). If the loop stops with
  violations, ``exact`` is False and ``value`` is only an upper bound.
* **Batched construction.** Every pair's inequality is one row of a sparse matrix built with
  numpy index arrays; cvxpy sees one LMI and one equality, never one constraint per pair.
* **Scaling.** The program is solved with L = 1 and R = 1 (or Delta = 1) and rescaled; a second
  pass divides the objective by the first pass's value, so the solver's absolute tolerances
  become relative ones (measured: within 2e-7 relative of the exact values with Clarabel).

Solver status is part of every result; ``optimal_inaccurate`` is reported, never hidden.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .errors import ApproxAuditError, InvalidValueError

__all__ = [
    "PEPError",
    "FixedStepMethod",
    "FunctionClass",
    "WorstCase",
    "worst_case",
    "solve_program",
    "Program",
    "gd",
    "heavy_ball",
    "fgm",
    "fgm_strongly_convex",
    "ogm",
    "ogm_theta",
    "METRICS",
    "INITIAL_CONDITIONS",
    "CLASSES",
    "METHODS",
]

METRICS = {
    "f-gap": "f(x_N) - f*",
    "dist": "||x_N - x*||^2",
    "grad": "||grad f(x_N)||^2",
    "min-grad": "min_{0<=k<=N} ||grad f(x_k)||^2 (over every point, the output included)",
    "min-grad-before": "min_{0<=k<N} ||grad f(x_k)||^2 (over the points where a step was taken)",
}
INITIAL_CONDITIONS = {
    "distance": "||x_0 - x*||^2 <= R^2",
    "gap": "f(x_0) - f* <= Delta",
    "gap-last": "f(x_0) - f(x_N) <= Delta",
}
CLASSES = {
    "smooth-convex": "L-smooth convex",
    "smooth-strongly-convex": "L-smooth mu-strongly convex (0 < mu < L)",
    "smooth-nonconvex": "L-smooth, not necessarily convex (curvature in [-L, L])",
}


class PEPError(InvalidValueError):
    """A performance-estimation problem that cannot be posed (degenerate parameters, bad method)."""


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedStepMethod:
    r"""A method whose points are fixed linear combinations of the start and past gradients.

    ``coefficients`` is the ``N x N`` lower-triangular matrix ``A`` of
    ``P_{i+1} = P_0 - (1/L) sum_{j<=i} A[i, j] grad f(P_j)``; ``P_0..P_{N-1}`` are where the
    gradients are taken and ``P_N`` is the output. Steps are in units of ``1/L``, so the same
    method applies to every ``L``. :meth:`from_increments` takes Drori & Teboulle's form
    ``P_{i+1} = P_i - (1/L) sum_{j<=i} h[i, j] grad f(P_j)`` instead.
    """

    coefficients: np.ndarray
    name: str = "fixed-step"

    def __post_init__(self):
        A = np.array(self.coefficients, dtype=float)
        if A.ndim == 0 and A.size == 1:
            A = A.reshape(1, 1)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 1:
            raise PEPError(f"the step-coefficient matrix must be square N x N with N >= 1, "
                           f"got shape {A.shape}")
        if not np.all(np.isfinite(A)):
            raise PEPError("the step-coefficient matrix has a non-finite entry")
        if np.any(np.abs(np.triu(A, 1)) > 0):
            raise PEPError("the step-coefficient matrix must be lower-triangular: point i+1 can "
                           "only use gradients at points 0..i")
        A.setflags(write=False)
        object.__setattr__(self, "coefficients", A)

    @property
    def horizon(self) -> int:
        return self.coefficients.shape[0]

    @classmethod
    def from_increments(cls, h, name: str = "fixed-step") -> "FixedStepMethod":
        h = np.array(h, dtype=float)
        if h.ndim != 2 or h.shape[0] != h.shape[1]:
            raise PEPError(f"the step matrix must be square N x N, got shape {h.shape}")
        return cls(np.cumsum(np.tril(h), axis=0), name=name)

    @classmethod
    def from_points(cls, points: Sequence[np.ndarray], name: str) -> "FixedStepMethod":
        """From coefficient vectors ``v_i`` with ``P_i = P_0 + sum_j v_i[j] grad f(P_j)/L``."""
        N = len(points) - 1
        A = np.zeros((N, N))
        for i in range(1, N + 1):
            A[i - 1, :] = -np.asarray(points[i])[:N]
        return cls(A, name=name)

    def to_dict(self) -> dict:
        return {"name": self.name, "horizon": self.horizon,
                "coefficients": self.coefficients.tolist()}


class _Run:
    """Runs a method's recurrence on coefficient vectors (in units of grad/L)."""

    def __init__(self, N: int):
        self.N = N

    def zero(self) -> np.ndarray:
        return np.zeros(self.N + 1)

    def grad(self, j: int) -> np.ndarray:
        v = np.zeros(self.N + 1)
        v[j] = 1.0
        return v


def _check_horizon(N) -> int:
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
        raise PEPError(f"the horizon N must be an integer >= 1, got {N!r}")
    return int(N)


def gd(N: int, h: float | Sequence[float] = 1.0) -> FixedStepMethod:
    """Gradient descent ``x_{k+1} = x_k - (h_k/L) grad f(x_k)``; ``h`` one number or N numbers."""
    N = _check_horizon(N)
    hs = np.broadcast_to(np.asarray(h, dtype=float), (N,)) if np.ndim(h) == 0 else np.asarray(h, float)
    if hs.shape != (N,):
        raise PEPError(f"gd needs one step or N = {N} steps, got {len(hs)}")
    if np.any(hs <= 0) or not np.all(np.isfinite(hs)):
        raise PEPError("gradient-descent steps h must be finite and > 0 (step = h/L)")
    A = np.tril(np.ones((N, N))) * hs[None, :]
    return FixedStepMethod(A, name=f"gd(h={_fmt(h)})")


def heavy_ball(N: int, alpha: float, beta: float) -> FixedStepMethod:
    """Polyak's heavy ball ``x_{k+1} = x_k - (alpha/L) grad f(x_k) + beta (x_k - x_{k-1})``,
    ``x_{-1} = x_0``."""
    N = _check_horizon(N)
    if not (alpha > 0 and math.isfinite(alpha)):
        raise PEPError(f"heavy ball needs a step alpha > 0 (step = alpha/L), got {alpha}")
    if not (0 <= beta < 1):
        raise PEPError(f"heavy ball needs a momentum 0 <= beta < 1, got {beta}")
    r = _Run(N)
    pts = [r.zero()]
    prev = r.zero()
    for k in range(N):
        x = pts[-1]
        nxt = x - alpha * r.grad(k) + beta * (x - prev)
        prev = x
        pts.append(nxt)
    return FixedStepMethod.from_points(pts, name=f"heavy-ball(alpha={_fmt(alpha)}, beta={_fmt(beta)})")


def fgm(N: int) -> FixedStepMethod:
    """Nesterov's fast gradient method for smooth convex functions, momentum ``k/(k+3)``.

    ``x_{k+1} = y_k - grad f(y_k)/L``, ``y_{k+1} = x_{k+1} + k/(k+3) (x_{k+1} - x_k)``,
    ``y_0 = x_0``; gradients at ``y_0..y_{N-1}``, output ``x_N``.
    """
    N = _check_horizon(N)
    return _nesterov(N, [k / (k + 3) for k in range(N)], name="fgm")


def fgm_strongly_convex(N: int, mu_over_L: float) -> FixedStepMethod:
    """Nesterov's method with constant momentum ``(sqrt(L)-sqrt(mu))/(sqrt(L)+sqrt(mu))``.

    ``y_k = x_k + q (x_k - x_{k-1})``, ``x_{k+1} = y_k - grad f(y_k)/L``, ``x_{-1} = x_0``;
    gradients at ``y_0..y_{N-1}``, output ``x_N`` (d'Aspremont, Scieur & Taylor 2021, §4.5).
    """
    N = _check_horizon(N)
    if not (0 < mu_over_L < 1):
        raise PEPError(f"the strongly convex fast gradient method needs 0 < mu/L < 1, got {mu_over_L}")
    s = math.sqrt(mu_over_L)
    q = (1 - s) / (1 + s)
    return _nesterov(N, [q] * N, name=f"fgm-strongly-convex(mu/L={_fmt(mu_over_L)})")


def _nesterov(N: int, momenta: Sequence[float], name: str) -> FixedStepMethod:
    # Points: y_0..y_{N-1} (gradients), output x_N.
    r = _Run(N)
    x_prev = r.zero()          # x_0
    y = r.zero()               # y_0 = x_0
    ys = [y]
    for k in range(N):
        x = y - r.grad(k)      # x_{k+1}
        if k == N - 1:
            ys.append(x)
            break
        beta = momenta[k]
        y = x + beta * (x - x_prev)
        x_prev = x
        ys.append(y)
    return FixedStepMethod.from_points(ys, name=name)


def ogm_theta(N: int) -> list[float]:
    """OGM's sequence: theta_0 = 1, theta_i = (1+sqrt(1+4 theta_{i-1}^2))/2 for i < N, and the
    last one with 8 in place of 4 (Kim & Fessler 2016)."""
    th = [1.0]
    for i in range(1, N + 1):
        c = 8.0 if i == N else 4.0
        th.append((1 + math.sqrt(1 + c * th[-1] ** 2)) / 2)
    return th


def ogm(N: int) -> FixedStepMethod:
    """Kim & Fessler's optimized gradient method (Math. Program. 159, 2016, eq. (OGM1)).

    ``y_{i+1} = x_i - grad f(x_i)/L``,
    ``x_{i+1} = y_{i+1} + (theta_i - 1)/theta_{i+1} (y_{i+1} - y_i)
    + theta_i/theta_{i+1} (y_{i+1} - x_i)``; gradients at ``x_0..x_{N-1}``, output ``x_N``;
    ``f(x_N) - f* <= L R^2/(2 theta_N^2)``, tight.
    """
    N = _check_horizon(N)
    th = ogm_theta(N)
    r = _Run(N)
    x = r.zero()
    y = r.zero()
    pts = [x]
    for i in range(N):
        y_new = x - r.grad(i)
        x = y_new + (th[i] - 1) / th[i + 1] * (y_new - y) + th[i] / th[i + 1] * (y_new - x)
        y = y_new
        pts.append(x)
    return FixedStepMethod.from_points(pts, name="ogm")


METHODS = {
    "gd": "gradient descent, step h/L (--step)",
    "heavy-ball": "heavy ball, step alpha/L and momentum beta (--step, --momentum)",
    "fgm": "Nesterov's fast gradient method, momentum k/(k+3)",
    "fgm-strongly-convex": "Nesterov's method with constant momentum (needs mu)",
    "ogm": "Kim & Fessler's optimized gradient method",
}


def _fmt(x) -> str:
    if np.ndim(x):
        return "[" + ",".join(_fmt(v) for v in np.ravel(x)) + "]"
    return f"{float(x):.6g}"


# --------------------------------------------------------------------------------------------
# Function classes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionClass:
    """``kind`` in CLASSES, with its constants (``L > 0``; ``0 < mu < L`` for strongly convex)."""

    kind: str
    L: float = 1.0
    mu: float = 0.0

    def __post_init__(self):
        if self.kind not in CLASSES:
            raise PEPError(f"unknown function class {self.kind!r}; choose one of "
                           f"{', '.join(CLASSES)}")
        if not (self.L > 0 and math.isfinite(self.L)):
            raise PEPError(f"L must be finite and > 0, got {self.L}")
        if self.kind == "smooth-strongly-convex":
            if not self.mu > 0:
                raise PEPError(f"a strongly convex class needs mu > 0, got mu = {self.mu} "
                               "(use --class smooth-convex for mu = 0)")
            if self.mu >= self.L:
                raise PEPError(f"mu must be < L, got mu = {self.mu} >= L = {self.L} (mu = L is a "
                               "single quadratic, not a class a worst case is taken over)")
        elif self.mu != 0:
            raise PEPError(f"mu is only used by the smooth-strongly-convex class, got mu = {self.mu}")

    @property
    def curvature_low(self) -> float:
        """The lower curvature bound of the interpolation inequality, in units of L."""
        if self.kind == "smooth-nonconvex":
            return -1.0
        return self.mu / self.L

    @property
    def has_minimizer(self) -> bool:
        return self.kind != "smooth-nonconvex"


# --------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorstCase:
    """The worst case of ``metric`` for ``method`` over ``function_class``.

    ``value`` is the dual optimum (an upper bound on the worst case once the solver's tolerance
    is allowed for) in the caller's units; ``primal_value`` the metric at the recovered
    worst-case Gram matrix (a lower bound, to ``max_violation``). ``exact`` is True when every
    interpolation inequality holds at the recovered point (to ``tolerance``), so the two
    coincide. ``certificate`` lists the multipliers of the inequalities that are active in the
    proof, largest first.
    """

    value: float
    primal_value: float
    exact: bool
    status: str
    solver: str
    method: str
    function_class: str
    metric: str
    initial: dict
    horizon: int
    constants: dict
    tolerance: float
    max_violation: float
    rounds: int
    n_constraints: int
    n_pairs_total: int
    solve_time: float
    total_time: float
    basis: str
    note: str = ""
    certificate: tuple = field(default=(), repr=False)
    solver_settings: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "optimal" and self.exact

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in (
            "value", "primal_value", "exact", "status", "solver", "method", "function_class",
            "metric", "initial", "horizon", "constants", "tolerance", "max_violation", "rounds",
            "n_constraints", "n_pairs_total", "solve_time", "total_time", "basis", "note",
            "solver_settings")}
        d["certificate"] = [dict(c) for c in self.certificate]
        return d


# --------------------------------------------------------------------------------------------
# The program
# --------------------------------------------------------------------------------------------

_SOLVERS = ("clarabel", "scs")
_CLARABEL_TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12,
                   "tol_ktratio": 1e-10, "max_iter": 400}
_CLARABEL_ATTEMPTS = ({}, {"static_regularization_constant": 1e-7},
                      {"static_regularization_constant": 1e-6, "max_iter": 400})


class _Geometry:
    """Coefficient rows of points and gradients in the chosen Gram basis (units L = 1)."""

    def __init__(self, method: FixedStepMethod, has_star: bool):
        A = method.coefficients
        N = A.shape[0]
        self.N = N
        self.m = N + 1 + (1 if has_star else 0)       # points 0..N, then x* if any
        self.star = N + 1 if has_star else None
        dim = N + 2
        self.dim = dim
        X = np.zeros((self.m, dim))
        Gr = np.zeros((self.m, dim))
        diag = np.abs(np.diag(A))
        if np.all(diag > 1e-9 * max(1.0, np.abs(A).max())):
            # basis: P_0 - x*, ..., P_N - x*, grad f(P_N)
            self.basis = "points"
            for i in range(N + 1):
                X[i, i] = 1.0
            # (P_{i+1} - P_0) = -A g  =>  g = -A^{-1} (P_{1..N} - P_0)
            from scipy.linalg import solve_triangular

            Ainv = solve_triangular(A, np.eye(N), lower=True)
            scale = np.abs(Ainv).max()
            Ainv[np.abs(Ainv) < 1e-13 * scale] = 0.0
            # rows for g_0..g_{N-1}: -Ainv @ [ -1 | I ] over basis columns 0..N
            D = np.zeros((N, dim))
            D[:, 0] = -1.0
            D[:, 1:N + 1] = np.eye(N)
            Gr[:N] = -Ainv @ D
            Gr[N, N + 1] = 1.0
        else:
            # basis: P_0 - x*, grad f(P_0), ..., grad f(P_N)
            self.basis = "gradients"
            X[0, 0] = 1.0
            for i in range(1, N + 1):
                X[i, 0] = 1.0
                X[i, 1:i + 1] = -A[i - 1, :i]
            for i in range(N + 1):
                Gr[i, 1 + i] = 1.0
        # x*: zero rows (x* is the origin of the basis, its gradient is 0)
        self.X = X
        self.Gr = Gr


def _pairs_initial(geo: _Geometry) -> np.ndarray:
    N = geo.N
    pairs = []
    pts = range(N + 1)
    if geo.star is not None:
        pairs += [(i, geo.star) for i in pts] + [(geo.star, i) for i in pts]
    pairs += [(i, i + 1) for i in range(N)] + [(i + 1, i) for i in range(N)]
    return np.array(pairs, dtype=int)


def _all_pairs(m: int) -> np.ndarray:
    I, J = np.nonzero(~np.eye(m, dtype=bool))
    return np.stack([I, J], axis=1)


def _interp_forms(geo: _Geometry, pairs: np.ndarray, c_low: float):
    """Rows ``a`` (over function values) and symmetric matrices ``Q`` (flattened) such that the
    inequality for pair (i, j) reads ``a . F - <Q, G> >= 0`` (L = 1, curvature in [c_low, 1])."""
    I, J = pairs[:, 0], pairs[:, 1]
    dx = geo.X[I] - geo.X[J]
    gj = geo.Gr[J]
    dg = geo.Gr[I] - geo.Gr[J]
    coef = 1.0 / (2.0 * (1.0 - c_low))
    # <g_j, dx> + coef (||dg||^2 + c ||dx||^2 - 2 c <dg, dx>)
    Q = 0.5 * (np.einsum("pa,pb->pab", gj, dx) + np.einsum("pa,pb->pab", dx, gj))
    Q += coef * np.einsum("pa,pb->pab", dg, dg)
    if c_low != 0.0:
        Q += coef * c_low * np.einsum("pa,pb->pab", dx, dx)
        Q -= coef * c_low * (np.einsum("pa,pb->pab", dg, dx) + np.einsum("pa,pb->pab", dx, dg))
    return I, J, Q.reshape(len(pairs), -1)


def _pair_values(geo: _Geometry, F: np.ndarray, G: np.ndarray, c_low: float) -> np.ndarray:
    """Every pair's interpolation slack ``a . F - <Q, G>`` at once (m x m; diagonal 0)."""
    X, Gr = geo.X, geo.Gr
    XX = X @ G @ X.T
    GG = Gr @ G @ Gr.T
    XG = X @ G @ Gr.T            # <x_i, g_j>
    dXX = np.diag(XX)
    dGG = np.diag(GG)
    dXG = np.diag(XG)
    nx = dXX[:, None] + dXX[None, :] - 2 * XX               # ||x_i - x_j||^2
    ng = dGG[:, None] + dGG[None, :] - 2 * GG               # ||g_i - g_j||^2
    gj_dx = XG - dXG[None, :]                               # <g_j, x_i - x_j>
    dg_dx = dXG[:, None] - XG.T - XG + dXG[None, :]         # <g_i - g_j, x_i - x_j>
    coef = 1.0 / (2.0 * (1.0 - c_low))
    rhs = gj_dx + coef * (ng + c_low * nx - 2 * c_low * dg_dx)
    S = F[:, None] - F[None, :] - rhs
    np.fill_diagonal(S, 0.0)
    return S


def worst_case(
    method: FixedStepMethod,
    function_class: FunctionClass | str = "smooth-convex",
    metric: str = "f-gap",
    initial: dict | None = None,
    *,
    L: float | None = None,
    mu: float | None = None,
    solver: str = "clarabel",
    tolerance: float = 1e-6,
    max_rounds: int = 25,
    full: bool = False,
    certificate: bool = True,
) -> WorstCase:
    """The worst case of ``metric`` after ``method.horizon`` steps over ``function_class``.

    ``initial`` maps ``"distance"`` to R (``||x_0 - x*|| <= R``), ``"gap"`` to Delta
    (``f(x_0) - f* <= Delta``) and/or ``"gap-last"`` to Delta (``f(x_0) - f(x_N) <= Delta``); several
    at once are all imposed. ``full=True`` poses every pair's inequality from the start (the
    reference formulation, slow for large N); otherwise constraints are generated and the
    result is verified against every pair (see the module docstring). ``tolerance`` is the
    relative violation, in units of the optimum, below which an inequality counts as satisfied.
    """
    t_start = time.perf_counter()
    posed = _pose(method, function_class, metric, initial, L, mu, solver)
    solved = _solve_rounds(posed, tolerance, max_rounds, full)
    if solved.unbounded:
        return _unbounded(method, posed.cls, metric, posed.initial, posed.N, posed.solver,
                          solved.status, solved.rounds, solved.pairs, posed.all_pairs,
                          solved.solve_time, t_start, posed.geo, tolerance)
    return _report(posed, solved, tolerance, certificate, t_start)


@dataclass
class Program:
    """A solved PEP kept with its program, so that exact certificates can be built from it
    (``bounds.certify``): the numeric worst case alone proves nothing."""

    worst: WorstCase
    posed: "_Posed"
    solved: "_Solved"

    def margin_dual(self, target: float) -> dict | None:
        """A dual point proving ``metric <= target`` (caller's units) with its residual matrix
        ``S >= t I``, ``t`` as large as the solver finds; None when the solver finds none."""
        scale = self.solved.scale
        return _solve_margin(self.posed, self.solved.pairs, scale,
                             target / self.posed.metric_scale)

    def tightened(self, eps: float) -> dict | None:
        """The primal worst case with every inequality tightened by ``eps`` (scaled units)."""
        return _solve_tightened(self.posed, self.solved.scale, eps)


def solve_program(method: FixedStepMethod, function_class: FunctionClass | str = "smooth-convex",
                  metric: str = "f-gap", initial: dict | None = None, *, L: float | None = None,
                  mu: float | None = None, solver: str = "clarabel", tolerance: float = 1e-6,
                  max_rounds: int = 25) -> Program:
    """:func:`worst_case` (same solves, same value), keeping the program and the dual point."""
    t_start = time.perf_counter()
    posed = _pose(method, function_class, metric, initial, L, mu, solver)
    solved = _solve_rounds(posed, tolerance, max_rounds, False)
    if solved.unbounded:
        worst = _unbounded(method, posed.cls, metric, posed.initial, posed.N, posed.solver,
                           solved.status, solved.rounds, solved.pairs, posed.all_pairs,
                           solved.solve_time, t_start, posed.geo, tolerance)
    else:
        worst = _report(posed, solved, tolerance, False, t_start)
    return Program(worst, posed, solved)


@dataclass
class _Posed:
    """The program in scaled units (L = 1, R or Delta = 1), before any solve.

    Kept apart from the solve so the terms can be inspected and the rounds rerun on them.
    """

    method: FixedStepMethod
    cls: FunctionClass
    metric: str
    initial: dict
    solver: str
    N: int
    geo: _Geometry
    c_low: float
    metric_scale: float
    relaxed_note: str
    obj_terms: list
    init_terms: list
    extra_terms: list
    all_pairs: np.ndarray


@dataclass
class _Solved:
    """What the cutting-plane rounds ended on: the last solve's result and the pairs it used."""

    result: dict | None
    pairs: np.ndarray
    rounds: int
    solve_time: float
    status: str
    scale: float
    max_violation: float
    exact: bool
    unbounded: bool = False


def _validate(method, function_class, metric, initial, L, mu, solver):
    """Reject bad inputs before anything is built: every error ``worst_case`` raises up front."""
    if isinstance(function_class, str):
        function_class = FunctionClass(function_class, L=1.0 if L is None else L,
                                       mu=0.0 if mu is None else mu)
    elif L is not None or mu is not None:
        raise PEPError("give L and mu either in the FunctionClass or as keywords, not both")
    if not isinstance(method, FixedStepMethod):
        raise PEPError(f"method must be a FixedStepMethod, got {type(method).__name__}")
    if metric not in METRICS:
        raise PEPError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    solver = solver.lower()
    if solver not in _SOLVERS:
        raise PEPError(f"unknown solver {solver!r}; choose clarabel or scs")
    initial = dict(initial or {})
    if not initial:
        raise PEPError("an initial condition is needed (distance=R, gap=Delta or gap-last=Delta): "
                       "without one the worst case is unbounded")
    for k, v in initial.items():
        if k not in INITIAL_CONDITIONS:
            raise PEPError(f"unknown initial condition {k!r}; choose from {', '.join(INITIAL_CONDITIONS)}")
        if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and v > 0):
            raise PEPError(f"the initial condition {k} needs a finite value > 0, got {v!r}")
    cls = function_class
    if not cls.has_minimizer:
        if metric in ("f-gap", "dist"):
            raise PEPError(f"the metric {metric!r} needs a minimizer x*; the smooth non-convex class "
                           "has none: use grad, min-grad or min-grad-before")
        if "distance" in initial:
            raise PEPError("the smooth non-convex class has no minimizer x*: use the initial "
                           "condition gap-last (f(x_0) - f(x_N) <= Delta) or gap")
    return cls, initial, solver


def _pose(method, function_class, metric, initial, L, mu, solver) -> _Posed:
    """Validate, choose units and the Gram basis, and build the objective and condition terms."""
    cls, initial, solver = _validate(method, function_class, metric, initial, L, mu, solver)
    Lval = cls.L
    # units: x scale s_x, f scale s_f = L s_x^2
    if "distance" in initial:
        s_x = float(initial["distance"])
        s_f = Lval * s_x**2
    else:
        s_f = float(initial.get("gap", initial.get("gap-last")))
        s_x = math.sqrt(s_f / Lval)
    metric_scale = {"f-gap": s_f, "dist": s_x**2, "grad": (Lval * s_x) ** 2,
                    "min-grad": (Lval * s_x) ** 2, "min-grad-before": (Lval * s_x) ** 2}[metric]

    has_star = cls.has_minimizer or "gap" in initial
    geo = _Geometry(method, has_star=has_star)
    relaxed_note = ""
    if not cls.has_minimizer and "gap" in initial:
        relaxed_note = ("smooth non-convex with f(x_0) - f* <= Delta: x* is modelled as a stationary "
                        "point with f(x_i) - ||grad f(x_i)||^2/(2L) >= f*, a relaxation; the value is "
                        "an upper bound on the worst case, not proven exact")
    return _Posed(
        method=method, cls=cls, metric=metric, initial=initial, solver=solver,
        N=method.horizon, geo=geo, c_low=cls.curvature_low, metric_scale=metric_scale,
        relaxed_note=relaxed_note, obj_terms=_objective_terms(geo, metric),
        init_terms=_initial_terms(geo, initial, s_x, s_f),
        extra_terms=_relaxation_terms(geo) if relaxed_note else [],
        all_pairs=_all_pairs(geo.m))


def _objective_terms(geo: _Geometry, metric: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Objective terms (the program maximises their min): (a over F, C over G)."""
    nF, dim = geo.N + 1, geo.dim
    obj_terms: list[tuple[np.ndarray, np.ndarray]] = []
    if metric == "f-gap":
        a = np.zeros(nF); a[geo.N] = 1.0
        obj_terms.append((a, np.zeros((dim, dim))))
    elif metric == "dist":
        v = geo.X[geo.N]
        obj_terms.append((np.zeros(nF), np.outer(v, v)))
    elif metric == "grad":
        v = geo.Gr[geo.N]
        obj_terms.append((np.zeros(nF), np.outer(v, v)))
    else:
        last = geo.N + 1 if metric == "min-grad" else geo.N
        for i in range(last):
            v = geo.Gr[i]
            obj_terms.append((np.zeros(nF), np.outer(v, v)))
    return obj_terms


def _initial_terms(geo: _Geometry, initial: dict, s_x: float,
                   s_f: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Initial conditions: (b over F, B over G, r) with b.F + <B,G> <= r (scaled units)."""
    nF, dim = geo.N + 1, geo.dim
    init_terms: list[tuple[np.ndarray, np.ndarray, float]] = []
    for k, v in initial.items():
        if k == "distance":
            e = geo.X[0]
            init_terms.append((np.zeros(nF), np.outer(e, e), (float(v) / s_x) ** 2))
        elif k == "gap":
            b = np.zeros(nF); b[0] = 1.0
            init_terms.append((b, np.zeros((dim, dim)), float(v) / s_f))
        else:  # gap-last
            b = np.zeros(nF); b[0] = 1.0; b[geo.N] -= 1.0
            init_terms.append((b, np.zeros((dim, dim)), float(v) / s_f))
    return init_terms


def _relaxation_terms(geo: _Geometry) -> list[tuple[np.ndarray, np.ndarray]]:
    """Extra necessary conditions for the non-convex "gap" relaxation: f_i - ||g_i||^2/2 >= f*."""
    nF = geo.N + 1
    extra_terms: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(geo.N + 1):
        a = np.zeros(nF); a[i] = 1.0
        v = geo.Gr[i]
        extra_terms.append((a, 0.5 * np.outer(v, v)))   # a.F - <Q,G> >= 0
    return extra_terms


def _solve_rounds(posed: _Posed, tolerance: float, max_rounds: int, full: bool) -> _Solved:
    """Solve, check every pair at the recovered point, add the violated pairs, solve again."""
    geo, c_low, solver = posed.geo, posed.c_low, posed.solver
    all_pairs = posed.all_pairs
    pairs = all_pairs if full else _pairs_initial(geo)
    pair_set = {tuple(p) for p in pairs.tolist()}

    scale = 1.0
    rounds = 0
    total_solve = 0.0
    status = "unknown"
    result = None
    max_viol = float("nan")
    exact = False
    while True:
        rounds += 1
        res = _solve_dual(geo, pairs, c_low, posed.obj_terms, posed.init_terms,
                          posed.extra_terms, scale, solver)
        total_solve += res["solve_time"]
        status = res["status"]
        if status in ("infeasible", "infeasible_inaccurate"):
            # the dual is infeasible: the worst case is unbounded
            return _Solved(result=None, pairs=pairs, rounds=rounds, solve_time=total_solve,
                           status=status, scale=scale, max_violation=max_viol, exact=False,
                           unbounded=True)
        if res["value"] is None or not math.isfinite(res["value"]):
            raise ApproxAuditError(f"the solver {solver} returned status {status} with no value "
                                   f"for N = {posed.N}; try --solver {'scs' if solver == 'clarabel' else 'clarabel'}")
        if scale == 1.0 and res["value"] > 1e-12 and abs(math.log10(res["value"])) > 0.5:
            # second pass with the objective normalised: relative tolerances
            scale = 1.0 / res["value"]
            continue
        result = res
        F, G = res["F"], res["G"]
        slack = _pair_values(geo, F, G, c_low)
        ref = max(1.0, abs(res["value"]))
        viol = -slack / ref
        np.fill_diagonal(viol, -np.inf)
        max_viol = float(max(viol.max(), 0.0))
        if full or max_viol <= tolerance:
            exact = max_viol <= tolerance and not posed.relaxed_note
            break
        if rounds >= max_rounds:
            exact = False
            break
        # add the violated pairs (most violated first, at most 4m per round)
        I, J = np.nonzero(viol > tolerance)
        order = np.argsort(-viol[I, J])[: 4 * geo.m]
        new = [(int(I[k]), int(J[k])) for k in order if (int(I[k]), int(J[k])) not in pair_set]
        if not new:
            exact = False
            break
        pair_set.update(new)
        pairs = np.array(sorted(pair_set), dtype=int)
    return _Solved(result=result, pairs=pairs, rounds=rounds, solve_time=total_solve,
                   status=status, scale=scale, max_violation=max_viol, exact=exact)


def _report(posed: _Posed, solved: _Solved, tolerance: float, certificate: bool,
            t_start: float) -> WorstCase:
    """Back to the caller's units, with the certificate and a note when not proven exact."""
    result, scale, metric_scale = solved.result, solved.scale, posed.metric_scale
    cls, pairs, max_viol = posed.cls, solved.pairs, solved.max_violation
    value = result["value"] / scale * metric_scale
    primal = result["primal"] / scale * metric_scale
    cert = ()
    if certificate:
        cert = _certificate(result, pairs, posed.geo, scale, metric_scale)
    note = posed.relaxed_note
    if not solved.exact and not posed.relaxed_note:
        note = (f"after {solved.rounds} rounds some interpolation inequality is still violated by "
                f"{max_viol:.2e} (relative): the value is an upper bound, not proven exact")
    return WorstCase(
        value=float(value), primal_value=float(primal), exact=bool(solved.exact),
        status=solved.status, solver=posed.solver, method=posed.method.name,
        function_class=cls.kind, metric=posed.metric,
        initial={k: float(v) for k, v in posed.initial.items()}, horizon=posed.N,
        constants={"L": cls.L, "mu": cls.mu}, tolerance=tolerance, max_violation=max_viol,
        rounds=solved.rounds, n_constraints=int(len(pairs)),
        n_pairs_total=int(len(posed.all_pairs)), solve_time=solved.solve_time,
        total_time=time.perf_counter() - t_start, basis=posed.geo.basis,
        note=note, certificate=cert, solver_settings=result.get("settings", {}))


def _unbounded(method, cls, metric, initial, N, solver, status, rounds, pairs, all_pairs,
               total_solve, t_start, geo, tolerance) -> WorstCase:
    return WorstCase(
        value=math.inf, primal_value=math.inf, exact=status == "infeasible", status="unbounded",
        solver=solver, method=method.name, function_class=cls.kind, metric=metric,
        initial={k: float(v) for k, v in initial.items()}, horizon=N,
        constants={"L": cls.L, "mu": cls.mu}, tolerance=tolerance, max_violation=0.0,
        rounds=rounds, n_constraints=int(len(pairs)), n_pairs_total=int(len(all_pairs)),
        solve_time=total_solve, total_time=time.perf_counter() - t_start, basis=geo.basis,
        note="the dual program is infeasible: the worst case is unbounded under this initial "
             "condition (the solver's certificate; status " + status + ")")


def _dual_program(geo, pairs, c_low, obj_terms, init_terms, extra_terms, scale) -> dict:
    """The dual's variables and affine pieces: shared by the value, margin and tightened solves."""
    import cvxpy as cp
    import scipy.sparse as sps

    dim = geo.dim
    nF = geo.N + 1
    I, J, Qflat = _interp_forms(geo, pairs, c_low)
    P = len(pairs)
    # function-value incidence: f_i - f_j (x* has f = 0 and no column)
    rows = np.r_[np.arange(P), np.arange(P)]
    cols = np.r_[I, J]
    vals = np.r_[np.ones(P), -np.ones(P)]
    keep = cols < nF
    Aint = sps.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(P, nF))

    lam = cp.Variable(P, nonneg=True)
    nu = cp.Variable(len(obj_terms), nonneg=True)
    tau = cp.Variable(len(init_terms), nonneg=True)
    Qs = sps.csr_matrix(Qflat)
    Cs = sps.csr_matrix(np.array([C.ravel() for _, C in obj_terms]))
    Bs = sps.csr_matrix(np.array([B.ravel() for _, B, _r in init_terms]))
    aobj = np.array([a for a, _ in obj_terms])          # (k, nF)
    binit = np.array([b for b, _, _ in init_terms])     # (I, nF)
    r = np.array([rr for _, _, rr in init_terms])

    Svec = Qs.T @ lam + Bs.T @ tau - scale * (Cs.T @ nu)
    Fbal = Aint.T @ lam + scale * (aobj.T @ nu) - binit.T @ tau
    ex = None
    if extra_terms:
        ex = cp.Variable(len(extra_terms), nonneg=True)
        Es = sps.csr_matrix(np.array([E.ravel() for _, E in extra_terms]))
        ea = np.array([a for a, _ in extra_terms])
        Svec = Svec + Es.T @ ex
        Fbal = Fbal + ea.T @ ex
    S = cp.reshape(Svec, (dim, dim), order="C")
    return {"lam": lam, "nu": nu, "tau": tau, "ex": ex, "S": S, "Fbal": Fbal, "r": r}


def _solve_dual(geo, pairs, c_low, obj_terms, init_terms, extra_terms, scale, solver) -> dict:
    import cvxpy as cp

    nF = geo.N + 1
    d = _dual_program(geo, pairs, c_low, obj_terms, init_terms, extra_terms, scale)
    lam, nu, tau, S, Fbal, r = d["lam"], d["nu"], d["tau"], d["S"], d["Fbal"], d["r"]
    lmi = 0.5 * (S + S.T) >> 0
    eq = Fbal == 0
    cons = [lmi, eq, cp.sum(nu) == 1]
    prob = cp.Problem(cp.Minimize(r @ tau), cons)
    t0 = time.perf_counter()
    used = _run_solver(prob, solver)
    solve_time = time.perf_counter() - t0
    status = prob.status
    if status not in ("optimal", "optimal_inaccurate"):
        return {"status": status, "value": None if prob.value is None or not np.isfinite(prob.value) else prob.value,
                "solve_time": solve_time}
    G = np.asarray(lmi.dual_value, dtype=float)
    G = 0.5 * (G + G.T)
    # cvxpy's dual of ``expr == 0`` in a minimisation is the primal vector F itself
    F = np.asarray(eq.dual_value, dtype=float).ravel()
    prim = _primal_objective(F, G, obj_terms, scale)
    Ffull = np.r_[F, np.zeros(geo.m - nF)]
    return {"status": status, "value": float(prob.value), "primal": float(prim), "F": Ffull,
            "G": G, "lam": np.asarray(lam.value).ravel(), "solve_time": solve_time,
            "settings": used,
            "stats": prob.solver_stats, **_multipliers(d)}


def _multipliers(d: dict) -> dict:
    """The dual point's other multipliers (objective, initial conditions, extra terms)."""
    ex = d["ex"]
    return {"nu": np.asarray(d["nu"].value, dtype=float).ravel(),
            "tau": np.asarray(d["tau"].value, dtype=float).ravel(),
            "ex": np.zeros(0) if ex is None else np.asarray(ex.value, dtype=float).ravel()}


def _run_solver(prob, solver: str) -> dict:
    """Solve with Clarabel's defaults first; when they stop at reduced accuracy, a larger static
    regularisation usually reaches full accuracy (measured on the non-convex class at N = 9..10)."""
    import cvxpy as cp

    attempts = _CLARABEL_ATTEMPTS if solver == "clarabel" else ({"eps": 1e-9, "max_iters": 200000},)
    used = {}
    for opts in attempts:
        try:
            with warnings.catch_warnings():   # the status is reported in the result instead
                warnings.simplefilter("ignore", UserWarning)
                prob.solve(solver=cp.CLARABEL if solver == "clarabel" else cp.SCS, **opts)
        except cp.error.SolverError as exc:
            raise ApproxAuditError(f"the solver {solver} failed: {exc}") from None
        used = dict(opts)
        if prob.status == "optimal":
            break
    return used


def _solve_margin(posed: _Posed, pairs: np.ndarray, scale: float, target: float) -> dict | None:
    """A dual point whose residual matrix is as positive definite as possible (``S >= t I``)
    among those proving ``metric <= target`` (scaled units): the room exact rounding needs."""
    import cvxpy as cp

    d = _dual_program(posed.geo, pairs, posed.c_low, posed.obj_terms, posed.init_terms,
                      posed.extra_terms, scale)
    t = cp.Variable()
    S = d["S"]
    cons = [0.5 * (S + S.T) - t * _margin_projector(posed.geo) >> 0, d["Fbal"] == 0,
            cp.sum(d["nu"]) == 1, d["r"] @ d["tau"] <= scale * target, t <= 1]
    prob = cp.Problem(cp.Maximize(t), cons)
    _run_solver(prob, posed.solver)
    if prob.status not in ("optimal", "optimal_inaccurate") or t.value is None:
        return None
    return {"status": prob.status, "t": float(t.value), "value": float(d["r"] @ d["tau"].value),
            "lam": np.asarray(d["lam"].value, dtype=float).ravel(), **_multipliers(d)}


def _margin_projector(geo: _Geometry) -> np.ndarray:
    """The identity, less the directions no form can see: without x* the functions' values and
    gradients are translation invariant, so the residual always vanishes along a translation."""
    if geo.star is not None:
        return np.eye(geo.dim)
    import scipy.linalg

    null = scipy.linalg.null_space(np.vstack([geo.X[1:] - geo.X[0], geo.Gr]))
    return np.eye(geo.dim) - null @ null.T


def _solve_tightened(posed: _Posed, scale: float, eps: float) -> dict | None:
    """The worst case with every interpolation inequality and initial condition tightened by
    ``eps`` (scaled units), over every pair: a primal point rounding cannot push out."""
    import cvxpy as cp

    pairs = posed.all_pairs
    d = _dual_program(posed.geo, pairs, posed.c_low, posed.obj_terms, posed.init_terms,
                      posed.extra_terms, scale)
    S = d["S"]
    lmi = 0.5 * (S + S.T) >> 0
    eq = d["Fbal"] == 0
    obj = (d["r"] - eps) @ d["tau"] - eps * cp.sum(d["lam"])
    prob = cp.Problem(cp.Minimize(obj), [lmi, eq, cp.sum(d["nu"]) == 1])
    if posed.solver == "clarabel":   # a primal point accurate enough to round
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            prob.solve(solver=cp.CLARABEL, **_CLARABEL_TIGHT)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        _run_solver(prob, posed.solver)
    if prob.status not in ("optimal", "optimal_inaccurate") or lmi.dual_value is None:
        return None
    G = np.asarray(lmi.dual_value, dtype=float)
    F = np.asarray(eq.dual_value, dtype=float).ravel()
    return {"status": prob.status, "value": float(prob.value) / scale, "F": F,
            "G": 0.5 * (G + G.T)}


def _primal_objective(F, G, obj_terms, scale) -> float:
    return scale * min(float(a @ F + np.sum(C * G)) for a, C in obj_terms)


def _certificate(result, pairs, geo, scale, metric_scale) -> tuple:
    lam = result["lam"]
    if lam is None:
        return ()
    top = np.max(lam) if len(lam) else 0.0
    idx = np.argsort(-lam)
    out = []
    name = lambda i: "x*" if i == geo.star else f"x{i}"  # noqa: E731
    for k in idx:
        if lam[k] <= 1e-7 * max(top, 1e-300):
            break
        i, j = int(pairs[k, 0]), int(pairs[k, 1])
        out.append((("i", name(i)), ("j", name(j)), ("multiplier", float(lam[k] / scale))))
    return tuple(out)
