"""Exact optima of the convex workloads, checked against independent solvers.

The references here share no code with ``bounds/optima.py``: least squares is solved from the
normal equations, logistic regression by scipy (trust-region Newton, gradient tolerance
1e-12 with its own objective written with ``scipy.special``), and the Hessians are rebuilt here.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, special

from approx_audit.bounds import ApproxAuditError, InvalidValueError
from approx_audit.bounds.optima import (InvalidDataError, least_squares_optimum, logistic_optimum,
                                        regularized_gradient, regularized_hessian,
                                        regularized_objective, smoothness_constants)

LAM = 1e-3


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    return X, 2.0 * y - 1.0


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((80, 5)) * np.array([3.0, 1.0, 0.5, 0.1, 2.0]) + 0.3
    y = np.where(X @ rng.standard_normal(5) + 0.5 * rng.standard_normal(80) > 0, 1.0, -1.0)
    return X, y


def _aug(X):
    return np.hstack([X, np.ones((len(X), 1))])


def _ref_logistic(X, y, lam):
    """Independent reference: scipy trust-exact (Newton trust region), objective via scipy.special."""
    Xt, n = _aug(X), len(X)

    def fun(t):
        return -np.mean(special.log_expit(y * (Xt @ t))) + 0.5 * lam * t @ t

    def jac(t):
        return -Xt.T @ (y * special.expit(-y * (Xt @ t))) / n + lam * t

    def hess(t):
        p = special.expit(Xt @ t)
        return Xt.T @ (Xt * (p * (1 - p))[:, None]) / n + lam * np.eye(Xt.shape[1])

    res = optimize.minimize(fun, np.zeros(Xt.shape[1]), jac=jac, hess=hess, method="trust-exact",
                            options={"gtol": 1e-12, "maxiter": 500})
    # Strong convexity: f(θ) − f* ≤ ‖∇f‖²/(2 lam) and ‖θ − θ*‖ ≤ ‖∇f‖/lam.
    g = np.linalg.norm(jac(res.x))
    assert g**2 / (2 * lam) < 1e-14 * abs(res.fun), res
    return res.x, fun(res.x), hess


@pytest.mark.parametrize("data", ["cancer", "synthetic"])
def test_least_squares_matches_normal_equations(data, request):
    X, y = request.getfixturevalue(data)
    Xt, n = _aug(X), len(X)
    theta = np.linalg.solve(Xt.T @ Xt / n + LAM * np.eye(Xt.shape[1]), Xt.T @ y / n)
    r = Xt @ theta - y
    f_ref = 0.5 * r @ r / n + 0.5 * LAM * theta @ theta

    opt = least_squares_optimum(X, y, LAM)
    assert opt.status == "optimal" and opt.solver == "CLARABEL"
    assert opt.f_star == pytest.approx(f_ref, rel=1e-12)
    np.testing.assert_allclose(opt.theta, theta, rtol=0, atol=1e-9)
    assert opt.grad_norm < 1e-12 and opt.gap_bound < 1e-20


@pytest.mark.parametrize("data", ["cancer", "synthetic"])
def test_logistic_matches_scipy(data, request):
    X, y = request.getfixturevalue(data)
    theta_ref, f_ref, _ = _ref_logistic(X, y, LAM)

    opt = logistic_optimum(X, y, LAM)
    assert opt.status == "optimal" and opt.solver == "CLARABEL"
    assert opt.f_star == pytest.approx(f_ref, rel=1e-12)
    np.testing.assert_allclose(opt.theta, theta_ref, rtol=0, atol=1e-8)
    assert opt.grad_norm < 1e-12 and opt.gap_bound < 1e-20
    # The certificate is also checked by its definition: the objective's own value there.
    assert regularized_objective("logistic", X, y, LAM, opt.w, opt.b) == opt.f_star


def test_optimum_is_a_minimum_under_perturbation(cancer):
    # Near the optimum f(θ*+δ) − f* ≈ δᵀHδ/2 ≥ lam‖δ‖²/2 = 5e-12, far above rounding.
    X, y = cancer
    rng = np.random.default_rng(0)
    for solve, loss in ((least_squares_optimum, "least_squares"), (logistic_optimum, "logistic")):
        opt = solve(X, y, LAM)
        for _ in range(5):
            d = 1e-4 * rng.standard_normal(X.shape[1] + 1)
            d /= np.linalg.norm(d) / 1e-4
            f = regularized_objective(loss, X, y, LAM, opt.w + d[:-1], opt.b + d[-1])
            assert f - opt.f_star >= 0.5 * LAM * 1e-8 * (1 - 1e-3)


def test_gradient_and_hessian_match_finite_differences(synthetic):
    X, y = synthetic
    rng = np.random.default_rng(1)
    t = 0.3 * rng.standard_normal(X.shape[1] + 1)
    for loss in ("least_squares", "logistic"):
        f = lambda u: regularized_objective(loss, X, y, LAM, u[:-1], u[-1])  # noqa: E731
        g = regularized_gradient(loss, X, y, LAM, t[:-1], t[-1])
        H = regularized_hessian(loss, X, y, LAM, t[:-1], t[-1])
        h = 1e-6
        e = np.eye(len(t))
        g_fd = np.array([(f(t + h * e[i]) - f(t - h * e[i])) / (2 * h) for i in range(len(t))])
        np.testing.assert_allclose(g, g_fd, rtol=1e-6, atol=1e-8)
        gf = lambda u: regularized_gradient(loss, X, y, LAM, u[:-1], u[-1])  # noqa: E731
        H_fd = np.array([(gf(t + h * e[i]) - gf(t - h * e[i])) / (2 * h) for i in range(len(t))])
        np.testing.assert_allclose(H, H_fd, rtol=1e-6, atol=1e-8)


def test_least_squares_constants_are_the_hessian_eigenvalues(cancer):
    X, _ = cancer
    Xt, n = _aug(X), len(X)
    ev = np.linalg.eigvalsh(Xt.T @ Xt / n + LAM * np.eye(Xt.shape[1]))
    c = smoothness_constants(X, LAM, loss="least_squares")
    assert (c.L_kind, c.mu_kind) == ("exact", "exact")
    assert c.L == pytest.approx(ev[-1], rel=1e-12)
    assert c.mu == pytest.approx(ev[0], rel=1e-9)
    assert c.mu > LAM


def test_logistic_constants_bound_the_hessian_and_are_attained(cancer):
    X, y = cancer
    _, _, hess = _ref_logistic(X, y, LAM)
    c = smoothness_constants(X, LAM, loss="logistic")
    assert c.mu == LAM and c.L_kind == "exact" and c.mu_kind == "exact"
    assert "1/4" in c.L_source
    opt = logistic_optimum(X, y, LAM)
    rng = np.random.default_rng(2)
    points = [opt.theta] + [s * rng.standard_normal(X.shape[1] + 1) for s in (0.01, 0.1, 1.0, 10.0)]
    for t in points:
        ev = np.linalg.eigvalsh(hess(t))
        assert ev[-1] <= c.L * (1 + 1e-12)
        assert ev[0] >= c.mu * (1 - 1e-12)
    # L is attained at θ = 0, where every σ'(0) = 1/4.
    assert np.linalg.eigvalsh(hess(np.zeros(X.shape[1] + 1)))[-1] == pytest.approx(c.L, rel=1e-12)
    # mu is approached far out along a direction no data point is orthogonal to.
    v = rng.standard_normal(X.shape[1] + 1)
    far = np.linalg.eigvalsh(hess(1e3 * v / np.linalg.norm(v)))[0]
    assert far - LAM < 1e-3 * LAM


def test_failed_solver_is_recorded_and_newton_still_certifies(synthetic):
    X, y = synthetic
    opt = logistic_optimum(X, y, LAM, solver="NO_SUCH_SOLVER")
    assert opt.status.startswith("solver_error")
    ref = logistic_optimum(X, y, LAM)
    assert opt.f_star == pytest.approx(ref.f_star, rel=1e-13)
    assert opt.grad_norm < 1e-12


@pytest.mark.parametrize("lam", [0.0, -1.0, float("nan"), float("inf"), "abc"])
def test_bad_lam(lam, synthetic):
    X, y = synthetic
    with pytest.raises(InvalidValueError, match="lam="):
        least_squares_optimum(X, y, lam)
    with pytest.raises(InvalidValueError, match="lam="):
        smoothness_constants(X, lam, loss="logistic")


@pytest.mark.parametrize("X, y, match", [
    (np.ones(5), np.ones(5), r"X has shape \(5,\); give a 2-D array"),
    (np.ones((0, 3)), np.ones(0), r"X has shape \(0, 3\)"),
    (np.ones((5, 2)), np.ones(4), r"y has shape \(4,\) but X has 5 rows"),
    (np.array([[1.0, np.nan]]), np.ones(1), "NaN or infinite"),
    (np.ones((3, 2)), np.array([1.0, np.inf, 1.0]), "y contains NaN"),
    (np.array([["a", "b"]]), np.ones(1), "dtype"),
])
def test_bad_data(X, y, match):
    with pytest.raises(InvalidDataError, match=match) as info:
        least_squares_optimum(X, y, LAM)
    assert isinstance(info.value, ApproxAuditError)
    assert "\n" not in str(info.value)


def test_logistic_labels_must_be_pm1():
    X = np.eye(3)
    with pytest.raises(InvalidDataError, match=r"-1 or \+1.*y = 2\*y - 1"):
        logistic_optimum(X, np.array([0.0, 1.0, 1.0]), LAM)


def test_unknown_loss_and_wrong_w_length():
    with pytest.raises(InvalidValueError, match="choose one of least_squares, logistic"):
        smoothness_constants(np.eye(2), LAM, loss="hinge")
    with pytest.raises(InvalidDataError, match="w has 3 entries but X has 2 columns"):
        regularized_objective("least_squares", np.eye(2), np.ones(2), LAM, np.ones(3), 0.0)
