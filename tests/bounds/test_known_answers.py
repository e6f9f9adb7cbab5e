"""Known-answer tests: run each method exactly and compare with its catalogue bound.

Every test here runs an optimizer *exactly* (numpy, float64) on a problem whose iterates can be
computed, measures the quantity a catalogue bound talks about, and asserts

* ``observed <= rhs * (1 + 1e-9)`` for an upper bound,
* ``observed >= rhs * (1 - 1e-9)`` for a lower bound,

at values of the constants where the bound's conditions hold (``check`` asserts that too, so a
test cannot silently run outside a bound's scope). Tight bounds are also checked to be
*attained* on their worst-case instance, and each such test also shows that the same bound
with its constant lowered by 1% would be violated, so these tests can fail.

Stochastic methods are not simulated by Monte Carlo: on a quadratic with additive noise of
known first and second moments the iterates are linear in the noise, so their first and second
moments (and those of running averages) propagate exactly; expectation bounds are checked
against those exact expectations.

Indexing follows the factory docstrings: ``x_0`` is the start and ``K`` counts updates. A
failure here means either a wrong constant / misread indexing in the catalogue or a bug in the
method implemented below; the assertion message prints the numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from approx_audit.bounds import catalogue

RTOL = 1e-9
TINY = 1e-300

# Every catalogue id exercised by at least one test below (kept by hand; see the last test).
COVERED_IDS = (
    "adagrad.nonconvex.defossez_2022",
    "adam.nonconvex.defossez_2022",
    "agd.smooth_convex.beck_teboulle_2009",
    "agd.smooth_convex.bubeck_2015",
    "agd.smooth_strongly_convex.bubeck_2015",
    "agd.smooth_strongly_convex.daspremont_2021",
    "first_order.smooth_convex.nesterov_2018",
    "first_order.smooth_strongly_convex.bubeck_2015",
    "gd.pl.karimi_2016",
    "gd.smooth_convex.beck_2017",
    "gd.smooth_convex.drori_teboulle_2014",
    "gd.smooth_convex.nesterov_2018",
    "gd.smooth_nonconvex.beck_2017",
    "gd.smooth_strongly_convex.beck_2017",
    "gd.smooth_strongly_convex.beck_2017.gap",
    "gd.smooth_strongly_convex.nesterov_2018",
    "gd.smooth_strongly_convex.nesterov_2018.gap",
    "heavy_ball.quadratic.polyak_1964",
    "newton.local.nesterov_2004",
    "rmsprop.nonconvex.defossez_2022",
    "sgd.convex.bubeck_2015",
    "sgd.nonconvex.bottou_2018",
    "sgd.nonconvex.ghadimi_lan_2013",
    "sgd.pl.karimi_2016",
    "sgd.pl.karimi_2016.constant_step",
    "sgd.smooth_convex.bubeck_2015",
    "sgd.strongly_convex.bottou_2018",
    "sgd.strongly_convex.bottou_2018.diminishing",
    "sgd.strongly_convex.bubeck_2015",
)


# ====================================================================== helpers
def applicable(bound_id: str, **values) -> bool:
    """Do all of the bound's conditions hold at ``values`` (every broadcast entry)?"""
    return bool(np.all(catalogue.get(bound_id).condition_mask(**values)))


def check(bound_id: str, observed, **values) -> np.ndarray:
    """Assert the bound's conditions hold at ``values`` and that ``observed`` obeys the bound.

    ``observed`` and the values broadcast together (``K`` is usually a grid of horizons).
    Returns the right-hand side as an array.
    """
    b = catalogue.get(bound_id)
    mask = np.asarray(b.condition_mask(**values))
    assert np.all(mask), (
        f"{bound_id}: the test runs outside the bound's conditions: "
        f"{[r.to_dict() for r in b.conditions(**values) if not r.holds]}")
    rhs = np.asarray(b.evaluate(**values), dtype=float)
    obs = np.asarray(observed, dtype=float)
    rhs, obs = np.broadcast_arrays(rhs, obs)
    assert np.all(np.isfinite(obs)), f"{bound_id}: non-finite observed values"
    if b.kind == "upper":
        ok = obs <= rhs * (1 + RTOL) + TINY
    else:
        ok = obs >= rhs * (1 - RTOL) - TINY
    if not np.all(ok):
        i = tuple(np.argwhere(~ok)[0])  # first violating point
        where = {nm: float(np.broadcast_to(np.asarray(v, dtype=float), ok.shape)[i])
                 for nm, v in values.items()}
        pytest.fail(f"{bound_id} ({b.kind}) violated: observed {float(obs[i]):.12g} vs rhs "
                    f"{float(rhs[i]):.12g} (ratio {float(obs[i] / rhs[i]):.9g}) at {where}; "
                    f"{int((~ok).sum())} of {ok.size} points violate it")
    return rhs


def Ks(n: int) -> np.ndarray:
    """Horizons 1..n as floats (the catalogue validates K as an integer-valued float)."""
    return np.arange(1, n + 1, dtype=float)


# ---------------------------------------------------------------------- problems
class Quadratic:
    """``f(x) = sum_i lam_i x_i^2 / 2`` (diagonal; ``x* = 0``, ``f* = 0``)."""

    def __init__(self, lam):
        self.lam = np.asarray(lam, dtype=float)
        self.L = float(self.lam.max())
        self.mu = float(self.lam.min())

    def f(self, x):
        return 0.5 * np.sum(self.lam * np.asarray(x) ** 2, axis=-1)

    def grad(self, x):
        return self.lam * np.asarray(x)


class Huber:
    """1-D Huber ``f(x) = L x^2/2`` for ``|x| <= a``, ``L a |x| - L a^2/2`` outside, plus ``mu x^2/2``.

    L-smooth overall when the Huber part has curvature ``L - mu`` (pass ``L_h = L - mu``);
    ``x* = 0``, ``f* = 0``.
    """

    def __init__(self, L_h, a, mu=0.0):
        self.Lh, self.a, self.mu = float(L_h), float(a), float(mu)
        self.L = self.Lh + self.mu

    def f(self, x):
        x = np.asarray(x, dtype=float)
        ax = np.abs(x)
        hub = np.where(ax <= self.a, self.Lh * x**2 / 2, self.Lh * self.a * ax - self.Lh * self.a**2 / 2)
        return np.sum(hub + self.mu * x**2 / 2, axis=-1)

    def grad(self, x):
        x = np.asarray(x, dtype=float)
        return self.Lh * np.clip(x, -self.a, self.a) + self.mu * x


class NesterovWorst:
    """Nesterov's (2004, eq. 2.1.2) worst function ``f_d`` on ``R^d``.

    ``f(x) = L/4 (1/2 [x_1^2 + sum_{i<d} (x_i - x_{i+1})^2 + x_d^2] - x_1) = L/8 x^T A x - L/4 x_1``
    with ``A = tridiag(-1, 2, -1)``, ``||A|| <= 4`` (so L-smooth) and ``x*_i = 1 - i/(d+1)``.
    """

    def __init__(self, L, d):
        self.L, self.d = float(L), int(d)
        A = 2 * np.eye(d) - np.eye(d, k=1) - np.eye(d, k=-1)
        self.A = A
        e1 = np.zeros(d)
        e1[0] = 1.0
        self.e1 = e1
        self.xstar = np.linalg.solve(A, e1)
        self.fstar = float(self.f(self.xstar))

    def f(self, x):
        x = np.asarray(x, dtype=float)
        return self.L / 8 * np.einsum("...i,ij,...j->...", x, self.A, x) - self.L / 4 * x[..., 0]

    def grad(self, x):
        return self.L / 4 * (self.A @ np.asarray(x, dtype=float) - self.e1)

    def span_min(self, k):
        """``min f`` over ``span(e_1..e_k)``: the best any span method can do after k gradients."""
        z = np.zeros(self.d)
        z[:k] = np.linalg.solve(self.A[:k, :k], self.e1[:k])
        return float(self.f(z))


# ---------------------------------------------------------------------- methods
def gd(grad, x0, eta, n):
    """Gradient descent; returns iterates ``x_0..x_n`` as an array of shape (n+1, dim)."""
    xs = [np.atleast_1d(np.asarray(x0, dtype=float))]
    for _ in range(n):
        xs.append(xs[-1] - eta * grad(xs[-1]))
    return np.array(xs)


def agd_bubeck_convex(grad, x0, L, n):
    """Bubeck (2015) Thm 3.19 scheme; returns ``[y_2, ..., y_{n+1}]`` (``y_{K+1}`` after K steps)."""
    lam_prev = 0.0
    lam = (1 + math.sqrt(1 + 4 * lam_prev**2)) / 2  # lambda_1 = 1
    x = y = np.atleast_1d(np.asarray(x0, dtype=float))
    out = []
    for _ in range(n):  # t = 1..n
        lam_next = (1 + math.sqrt(1 + 4 * lam**2)) / 2
        g_t = (1 - lam) / lam_next
        y_new = x - grad(x) / L
        x = (1 - g_t) * y_new + g_t * y
        y = y_new
        out.append(y)
        lam = lam_next
    return np.array(out)


def fista(grad, x0, L, n):
    """Beck & Teboulle (2009) FISTA with no prox; returns ``[x_1, ..., x_n]``."""
    x_prev = np.atleast_1d(np.asarray(x0, dtype=float))
    y = x_prev.copy()
    t = 1.0
    out = []
    for _ in range(n):
        x = y - grad(y) / L
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        y = x + (t - 1) / t_next * (x - x_prev)
        x_prev, t = x, t_next
        out.append(x)
    return np.array(out)


def agd_bubeck_strongly_convex(grad, x0, L, mu, n):
    """Bubeck (2015) Thm 3.18 scheme; returns ``[y_2, ..., y_{n+1}]``."""
    kappa = L / mu
    q = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
    x = y = np.atleast_1d(np.asarray(x0, dtype=float))
    out = []
    for _ in range(n):
        y_new = x - grad(x) / L
        x = (1 + q) * y_new - q * y
        y = y_new
        out.append(y)
    return np.array(out)


def agd_constant_momentum(grad, x0, L, mu, n):
    """d'Aspremont et al. (2021) constant momentum; returns ``[x_1, ..., x_n]``."""
    q = (math.sqrt(L) - math.sqrt(mu)) / (math.sqrt(L) + math.sqrt(mu))
    x = x_prev = np.atleast_1d(np.asarray(x0, dtype=float))
    out = []
    for _ in range(n):
        yk = x + q * (x - x_prev)
        x_prev, x = x, yk - grad(yk) / L
        out.append(x)
    return np.array(out)


# ====================================================================== 1. GD on Huber (tight)
@pytest.mark.parametrize("h", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("L,R", [(1.0, 1.0), (3.0, 0.5), (0.2, 7.0)])
def test_gd_drori_teboulle_attained_on_huber(h, L, R):
    """Drori-Teboulle's exact worst case is reached by GD on the Huber function.

    With kink ``a = R/(2Kh + 1)`` and ``x_0 = R``, every iterate before ``x_K`` stays in the
    linear region (each step moves by ``h a``), ``x_K = a(Kh + 1)`` and
    ``f(x_K) = L R^2/(4Kh + 2)``. Fails if the catalogue's constant or its ``h = L eta``
    mapping is off (a 1% smaller right-hand side is shown to be violated), or if the Beck /
    Nesterov bounds on the same runs are wrong.
    """
    eta = h / L
    obs, delta = [], []
    for K in range(1, 21):
        a = R / (2 * K * h + 1)
        prob = Huber(L, a)
        xs = gd(prob.grad, [R], eta, K)
        assert np.all(xs[:, 0] >= a * (1 - 1e-12)), "left the linear region"
        obs.append(float(prob.f(xs[-1])))
        delta.append(float(prob.f(xs[0])))
    obs, delta, K = np.array(obs), np.array(delta), Ks(20)
    vals = dict(L=L, R=R, eta=eta, K=K)
    rhs = check("gd.smooth_convex.drori_teboulle_2014", obs, **vals)
    np.testing.assert_allclose(obs, L * R**2 / (4 * K * h + 2), rtol=1e-12)
    np.testing.assert_allclose(obs, rhs, rtol=RTOL)  # attained
    assert np.all(obs > 0.99 * rhs), "a 1% smaller constant would not be caught"
    check("gd.smooth_convex.beck_2017", obs, **vals)
    check("gd.smooth_convex.nesterov_2018", obs, Delta=delta, **vals)


# ====================================================================== 2. GD on 2-D quadratics
GD_QUAD_IDS = (
    "gd.smooth_strongly_convex.nesterov_2018", "gd.smooth_strongly_convex.nesterov_2018.gap",
    "gd.smooth_strongly_convex.beck_2017", "gd.smooth_strongly_convex.beck_2017.gap",
    "gd.pl.karimi_2016", "gd.smooth_convex.beck_2017", "gd.smooth_convex.drori_teboulle_2014",
    "gd.smooth_convex.nesterov_2018", "gd.smooth_nonconvex.beck_2017",
)


@pytest.mark.parametrize("mu,L", [(0.1, 1.0), (1.0, 10.0), (0.01, 1.0), (2.0, 2.0), (0.5, 0.7)])
@pytest.mark.parametrize("h", [0.05, 0.5, 1.0, "2/(mu+L)", 1.5, 1.95])
@pytest.mark.parametrize("R,theta", [(1.0, 0.7), (3.0, 2.2)])
def test_gd_quadratic_2d(mu, L, h, R, theta):
    """GD on ``(mu x1^2 + L x2^2)/2`` from a point with both coordinates nonzero.

    Every GD bound whose conditions hold at this step (``eta = h/L``) is checked for
    ``K = 1..80``: distances and gaps for the strongly convex bounds, the PL bound with PL
    constant ``mu``, the smooth convex bounds and the non-convex min-gradient bound. Fails if a
    contraction factor or constant is too optimistic for a quadratic.
    """
    eta = 2 / (mu + L) if h == "2/(mu+L)" else h / L
    prob = Quadratic([mu, L])
    x0 = R * np.array([math.cos(theta), math.sin(theta)])
    n = 80
    xs = gd(prob.grad, x0, eta, n)
    K = Ks(n)
    gap = prob.f(xs[1:])
    dist = np.sum(xs[1:] ** 2, axis=1)
    gn2 = np.sum(prob.grad(xs) ** 2, axis=1)
    min_gn2 = np.minimum.accumulate(gn2)[:n]  # min over x_0..x_{K-1}
    delta = float(prob.f(x0))
    vals = dict(L=L, mu=mu, R=R, eta=eta, K=K, Delta=delta)
    observed = {
        "gd.smooth_strongly_convex.nesterov_2018": dist,
        "gd.smooth_strongly_convex.beck_2017": dist,
        "gd.smooth_nonconvex.beck_2017": min_gn2,
    }
    checked = []
    for bid in GD_QUAD_IDS:
        if applicable(bid, **vals):
            check(bid, observed.get(bid, gap), **vals)
            checked.append(bid)
    # Every step here is < 2/L, so at least the non-convex and Nesterov convex bounds apply.
    assert "gd.smooth_nonconvex.beck_2017" in checked and "gd.pl.karimi_2016" in checked


@pytest.mark.parametrize("mu,L", [(0.1, 1.0), (1.0, 10.0), (0.3, 0.5), (1e-3, 1.0)])
@pytest.mark.parametrize("R", [1.0, 2.5])
def test_gd_nesterov_distance_attained_at_two_over_mu_plus_L(mu, L, R):
    """At ``eta = 2/(mu+L)`` both eigen-directions contract by ``(L-mu)/(L+mu)`` exactly.

    So ``||x_K||^2 = ((L-mu)/(L+mu))^(2K) R^2``, which is the bound's right-hand side: the
    bound is attained, and a 1% smaller one is violated. The gap version holds too.
    """
    eta = 2 / (mu + L)
    prob = Quadratic([mu, L])
    x0 = np.array([1.0, 1.0]) / math.sqrt(2) * R
    n = 40
    xs = gd(prob.grad, x0, eta, n)
    K = Ks(n)
    dist = np.sum(xs[1:] ** 2, axis=1)
    vals = dict(L=L, mu=mu, R=R, eta=eta, K=K)
    rhs = check("gd.smooth_strongly_convex.nesterov_2018", dist, **vals)
    np.testing.assert_allclose(dist, rhs, rtol=1e-9)
    assert np.all(dist > 0.99 * rhs)
    check("gd.smooth_strongly_convex.nesterov_2018.gap", prob.f(xs[1:]), **vals)


def test_gd_pl_attained_when_mu_equals_L():
    """With ``mu = L`` the PL factor ``1 - mu eta (2 - L eta) = (1 - L eta)^2`` is GD's exact rate.

    On ``f = L ||x||^2/2`` the bound is attained for every K and step; a 1% smaller bound is
    violated (the test can fail on the constant and on the exponent's indexing).
    """
    L, x0 = 2.0, np.array([1.0, -2.0])
    prob = Quadratic([L, L])
    for eta in (0.3 / L, 1.4 / L, 1.9 / L):
        xs = gd(prob.grad, x0, eta, 30)
        gap = prob.f(xs[1:])
        rhs = check("gd.pl.karimi_2016", gap, L=L, mu=L, eta=eta, K=Ks(30), Delta=float(prob.f(x0)))
        np.testing.assert_allclose(gap, rhs, rtol=1e-9)
        assert np.all(gap > 0.99 * rhs)


# ====================================================================== 3. GD, non-convex
def _cos1d(x):
    return 1 - np.cos(x[..., 0]), np.sin(x)


_W = (1.0, 0.5, 0.25)


def _cos2d(x):
    """``(1 - cos x1) + 0.5 (1 - cos x2) + 0.25 (1 - cos(x1 - x2))``: L <= 1.5, f_inf = 0."""
    x1, x2 = x[..., 0], x[..., 1]
    f = _W[0] * (1 - np.cos(x1)) + _W[1] * (1 - np.cos(x2)) + _W[2] * (1 - np.cos(x1 - x2))
    g = np.stack([_W[0] * np.sin(x1) + _W[2] * np.sin(x1 - x2),
                  _W[1] * np.sin(x2) - _W[2] * np.sin(x1 - x2)], axis=-1)
    return f, g


@pytest.mark.parametrize("problem,L,x0", [
    (_cos1d, 1.0, [3.0]), (_cos1d, 1.0, [3.1]), (_cos1d, 1.0, [-2.5]), (_cos1d, 1.0, [2.0]),
    (_cos1d, 1.0, [3.14159]),
    (_cos2d, 1.5, [3.0, -2.9]), (_cos2d, 1.5, [2.0, 3.1]), (_cos2d, 1.5, [-3.1, 0.3]),
])
@pytest.mark.parametrize("h", [0.3, 1.0, 1.5, 1.9])
def test_gd_nonconvex_on_cosines(problem, L, x0, h):
    """GD on sums of ``1 - cos``: smooth, bounded below by 0, and non-convex where started.

    Checks ``min_{k<K} ||grad f(x_k)||^2 <= Delta/(K eta (1 - L eta/2))`` for K = 1..60. The
    start lies in a region of negative curvature, so convexity plays no part.
    """
    eta = h / L
    x = np.array(x0, dtype=float)
    gn2, fvals = [], []
    for _ in range(61):
        f, g = problem(x)
        fvals.append(float(f))
        gn2.append(float(np.sum(g**2)))
        x = x - eta * g
    assert np.cos(x0[0]) < 0, "start should be in a non-convex region"
    min_gn2 = np.minimum.accumulate(gn2)[:60]
    check("gd.smooth_nonconvex.beck_2017", min_gn2, L=L, eta=eta, K=Ks(60), Delta=fvals[0])


@pytest.mark.parametrize("L,x0", [(1.0, 1.0), (4.0, -0.3), (0.5, 10.0)])
def test_gd_nonconvex_attained_after_one_step(L, x0):
    """On ``f = L x^2/2`` with ``eta = 1/L`` and ``K = 1`` the min-gradient bound is an equality.

    ``||grad f(x_0)||^2 = L^2 x_0^2`` and ``Delta/(eta (1 - L eta/2)) = (L x_0^2/2)(2L)``; a
    wrong constant in the bound (e.g. a missing factor 2) would break the equality.
    """
    obs = (L * x0) ** 2
    rhs = check("gd.smooth_nonconvex.beck_2017", obs, L=L, eta=1 / L, K=1.0, Delta=L * x0**2 / 2)
    assert math.isclose(obs, float(rhs), rel_tol=1e-12)
    assert obs > 0.99 * float(rhs)


# ====================================================================== 4. AGD
def _spread_quadratic(L, d, lo, seed):
    rng = np.random.default_rng(seed)
    lam = L * np.logspace(np.log10(lo), 0, d)
    x0 = rng.normal(size=d)
    return Quadratic(lam), x0


@pytest.mark.parametrize("L,seed", [(1.0, 0), (10.0, 1), (0.3, 2)])
def test_agd_convex_on_quadratics(L, seed):
    """Bubeck's AGD and FISTA on quadratics with eigenvalues spread over ``[1e-3 L, L]``.

    ``f(y_{K+1})`` (Bubeck) and ``f(x_K)`` (FISTA) must stay below ``2 L R^2/(K+1)^2`` for
    K = 1..300. Fails if the schemes' indexing were shifted by a step the wrong way.
    """
    prob, x0 = _spread_quadratic(L, 30, 1e-3, seed)
    n = 300
    R = float(np.linalg.norm(x0))
    vals = dict(L=L, R=R, K=Ks(n))
    check("agd.smooth_convex.bubeck_2015", prob.f(agd_bubeck_convex(prob.grad, x0, L, n)), **vals)
    check("agd.smooth_convex.beck_teboulle_2009", prob.f(fista(prob.grad, x0, L, n)), **vals)


@pytest.mark.parametrize("L,R,a", [(1.0, 1.0, 0.01), (1.0, 1.0, 0.2), (5.0, 3.0, 0.05), (1.0, 2.0, 2.0)])
def test_agd_convex_on_huber(L, R, a):
    """Bubeck's AGD and FISTA on the 1-D Huber function (non-quadratic, only convex)."""
    prob = Huber(L, a)
    n = 200
    vals = dict(L=L, R=R, K=Ks(n))
    check("agd.smooth_convex.bubeck_2015", prob.f(agd_bubeck_convex(prob.grad, [R], L, n)), **vals)
    check("agd.smooth_convex.beck_teboulle_2009", prob.f(fista(prob.grad, [R], L, n)), **vals)


@pytest.mark.parametrize("kappa", [2.0, 10.0, 100.0, 1000.0])
@pytest.mark.parametrize("L,seed", [(1.0, 3), (7.0, 4)])
def test_agd_strongly_convex_on_quadratics(kappa, L, seed):
    """Strongly convex AGD schemes on quadratics with eigenvalues in ``[mu, L]`` (ends included).

    Bubeck's scheme (bound on ``f(y_{K+1})``) and the constant-momentum scheme (bound on
    ``f(x_K)`` with ``Delta = f(x_0) - f*``), K = 1..300.
    """
    mu = L / kappa
    prob, x0 = _spread_quadratic(L, 20, 1 / kappa, seed)
    n = 300
    R = float(np.linalg.norm(x0))
    vals = dict(L=L, mu=mu, R=R, K=Ks(n), Delta=float(prob.f(x0)))
    check("agd.smooth_strongly_convex.bubeck_2015",
          prob.f(agd_bubeck_strongly_convex(prob.grad, x0, L, mu, n)), **vals)
    check("agd.smooth_strongly_convex.daspremont_2021",
          prob.f(agd_constant_momentum(prob.grad, x0, L, mu, n)), **vals)


@pytest.mark.parametrize("L,mu,a,R", [(1.0, 0.01, 0.05, 1.0), (1.0, 0.1, 0.5, 3.0), (4.0, 0.004, 0.01, 2.0)])
def test_agd_strongly_convex_on_huber_plus_quadratic(L, mu, a, R):
    """Both strongly convex AGD schemes on Huber(curvature ``L - mu``) + ``mu x^2/2`` (not quadratic)."""
    prob = Huber(L - mu, a, mu)
    n = 200
    vals = dict(L=L, mu=mu, R=R, K=Ks(n), Delta=float(prob.f([R])))
    check("agd.smooth_strongly_convex.bubeck_2015",
          prob.f(agd_bubeck_strongly_convex(prob.grad, [R], L, mu, n)), **vals)
    check("agd.smooth_strongly_convex.daspremont_2021",
          prob.f(agd_constant_momentum(prob.grad, [R], L, mu, n)), **vals)


# ====================================================================== 5. lower bounds
def test_nesterov_worst_function_matches_closed_form():
    """The instance built here is Nesterov's: ``x*_i = 1 - i/(d+1)``, ``f* = -L/8 d/(d+1)``."""
    L, d = 2.0, 9
    prob = NesterovWorst(L, d)
    i = np.arange(1, d + 1)
    np.testing.assert_allclose(prob.xstar, 1 - i / (d + 1), rtol=1e-12)
    assert math.isclose(prob.fstar, -L / 8 * d / (d + 1), rel_tol=1e-12)
    assert np.linalg.eigvalsh(L / 4 * prob.A).max() <= L  # L-smooth
    for k in range(1, d + 1):
        assert math.isclose(prob.span_min(k), -L / 8 * k / (k + 1), rel_tol=1e-12)


@pytest.mark.parametrize("K", [1, 2, 3, 5, 8, 13, 21, 34])
@pytest.mark.parametrize("L", [1.0, 4.0])
def test_first_order_lower_bound_on_worst_function(K, L):
    """Span methods on ``f_{2K+1}`` in ``d = 2K+1`` stay above ``3 L R^2/(32 (K+1)^2)``.

    Checks (i) the span property (x_K has zeros beyond coordinate K, exactly), (ii) the best
    any span method can do, ``min f over span(e_1..e_K)``, is above the bound, and (iii) GD
    with step ``1/L``, Bubeck's AGD and FISTA after K gradients are above it. Also checks the
    AGD upper bounds on this instance.
    """
    d = 2 * K + 1
    prob = NesterovWorst(L, d)
    x0 = np.zeros(d)
    R = float(np.linalg.norm(prob.xstar))
    vals = dict(L=L, R=R, K=float(K), d=float(d))
    xs_gd = gd(prob.grad, x0, 1 / L, K)[-1]
    y_agd = agd_bubeck_convex(prob.grad, x0, L, K)[-1]
    x_fista = fista(prob.grad, x0, L, K)[-1]
    for x in (xs_gd, y_agd, x_fista):
        assert np.all(x[K:] == 0.0) and np.all(x[:K] != 0.0)
    check("first_order.smooth_convex.nesterov_2018", prob.span_min(K) - prob.fstar, **vals)
    for x in (xs_gd, y_agd, x_fista):
        check("first_order.smooth_convex.nesterov_2018", prob.f(x) - prob.fstar, **vals)
    check("agd.smooth_convex.bubeck_2015", prob.f(y_agd) - prob.fstar, **vals)
    check("agd.smooth_convex.beck_teboulle_2009", prob.f(x_fista) - prob.fstar, **vals)
    check("gd.smooth_convex.drori_teboulle_2014", prob.f(xs_gd) - prob.fstar, eta=1 / L, **vals)


def test_first_order_lower_bound_constant_is_nearly_sharp():
    """The best span method on ``f_{2K+1}`` is within 2% of the lower bound at ``K = 50``.

    ``(f*_K - f*)/rhs = 8 (K+1)^2/((2K+1)(4K+3)) -> 1``, so a lower bound with a constant 5%
    larger than 3/32 would be violated here: the instance really tests the constant.
    """
    K, L = 50, 1.0
    prob = NesterovWorst(L, 2 * K + 1)
    R = float(np.linalg.norm(prob.xstar))
    best = prob.span_min(K) - prob.fstar
    rhs = check("first_order.smooth_convex.nesterov_2018", best, L=L, R=R, K=float(K), d=2.0 * K + 1)
    ratio = best / float(rhs)
    assert math.isclose(ratio, 8 * (K + 1) ** 2 / ((2 * K + 1) * (4 * K + 3)), rel_tol=1e-9)
    assert 1 <= ratio < 1.02
    assert best < 1.05 * float(rhs)


def test_lower_bounds_below_upper_bounds_on_random_draws():
    """Catalogue consistency: no lower bound exceeds an upper bound for the same class.

    For many random ``(L, mu, R, Delta, K)``: the strongly convex lower bound is below both AGD
    strongly convex bounds and the GD strongly convex / PL bounds at their best steps; the
    smooth convex lower bound (in ``d = 2K+1``) is below the AGD convex bounds and below GD's
    exact worst case (Drori-Teboulle) at ``eta = 1/L``. Fails if a rate or constant on either
    side is misstated by enough to cross.
    """
    rng = np.random.default_rng(7)
    n = 5000
    L = 10.0 ** rng.uniform(-2, 2, n)
    mu = L * 10.0 ** rng.uniform(-4, -1e-3, n)
    R = 10.0 ** rng.uniform(-2, 2, n)
    K = np.floor(10.0 ** rng.uniform(0, 3.5, n))
    Delta = R**2 * (mu + rng.uniform(0, 1, n) * (L - mu)) / 2  # mu R^2/2 <= Delta <= L R^2/2
    sc = dict(L=L, mu=mu, R=R, K=K, Delta=Delta)
    lower = np.asarray(catalogue.get("first_order.smooth_strongly_convex.bubeck_2015").evaluate(**sc))
    assert np.all(catalogue.get("first_order.smooth_strongly_convex.bubeck_2015").condition_mask(**sc))
    uppers = {
        "agd.smooth_strongly_convex.bubeck_2015": sc,
        "agd.smooth_strongly_convex.daspremont_2021": sc,
        "gd.smooth_strongly_convex.beck_2017.gap": dict(sc, eta=1 / L),
        "gd.smooth_strongly_convex.nesterov_2018.gap": dict(sc, eta=2 / (mu + L)),
        "gd.pl.karimi_2016": dict(sc, eta=1 / L),
        "gd.smooth_convex.drori_teboulle_2014": dict(sc, eta=1 / L),
    }
    for bid, vals in uppers.items():
        b = catalogue.get(bid)
        assert np.all(b.condition_mask(**vals)), bid
        up = np.asarray(b.evaluate(**vals))
        assert np.all(lower <= up * (1 + RTOL)), (bid, float(np.max(lower / up)))
    cv = dict(L=L, R=R, K=K, d=2 * K + 1)
    lower_c = np.asarray(catalogue.get("first_order.smooth_convex.nesterov_2018").evaluate(**cv))
    for bid, vals in {"agd.smooth_convex.bubeck_2015": cv,
                      "agd.smooth_convex.beck_teboulle_2009": cv,
                      "gd.smooth_convex.drori_teboulle_2014": dict(cv, eta=1 / L),
                      "gd.smooth_convex.beck_2017": dict(cv, eta=1 / L)}.items():
        up = np.asarray(catalogue.get(bid).evaluate(**vals))
        assert np.all(lower_c <= up * (1 + RTOL)), (bid, float(np.max(lower_c / up)))


# ====================================================================== 6. heavy ball
def _heavy_ball_draws(n, seed):
    rng = np.random.default_rng(seed)
    mu = 10.0 ** rng.uniform(-2, 1, n)
    L = mu * 10.0 ** rng.uniform(0, 3, n)
    eta = rng.uniform(0, 1, n) * 4.5 / L
    beta = rng.uniform(0, 1, n).clip(1e-6, 1 - 1e-9)
    return mu, L, eta, beta


def _hb_radius_grid(mu, L, eta, beta, m=201):
    """``lam`` on a grid over ``[mu, L]`` (ends included) and the trace ``t = 1 + beta - eta lam``."""
    s = np.linspace(0, 1, m)
    lam = mu[:, None] + s[None, :] * (L - mu)[:, None]
    lam[:, -1] = L  # exact endpoint
    return lam, 1 + beta[:, None] - eta[:, None] * lam


def _hb_eig_radius(t, beta):
    """Spectral radius of ``[[t, -beta], [1, 0]]`` via numpy's eigenvalue solver."""
    Ms = np.zeros(t.shape + (2, 2))
    Ms[..., 0, 0] = t
    Ms[..., 0, 1] = -np.broadcast_to(beta[:, None], t.shape)
    Ms[..., 1, 0] = 1.0
    return np.abs(np.linalg.eigvals(Ms)).max(axis=-1)


def test_heavy_ball_spectral_radius_on_random_draws():
    """Where the conditions hold, every eigen-direction's iteration matrix has radius ``sqrt(beta)``.

    ``[[1 + beta - eta lam, -beta], [1, 0]]`` has determinant ``beta``; its roots are complex
    conjugate (modulus exactly ``sqrt(beta)``) iff ``|1 + beta - eta lam| <= 2 sqrt(beta)``,
    which is checked in this well-conditioned form on a grid over ``[mu, L]``; numpy's
    eigenvalues are also checked (to 1e-6: double roots lose half the digits). The radius at
    ``lam = mu`` equals ``sqrt(beta)``: the bound is attained (tight), so ``0.99 sqrt(beta)``
    would be violated.
    """
    b = catalogue.get("heavy_ball.quadratic.polyak_1964")
    mu, L, eta, beta = _heavy_ball_draws(20000, 11)
    ok = np.asarray(b.condition_mask(mu=mu, L=L, eta=eta, beta=beta))
    assert ok.sum() > 300
    mu, L, eta, beta = mu[ok], L[ok], eta[ok], beta[ok]
    rhs = np.asarray(b.evaluate(mu=mu, L=L, eta=eta, beta=beta))
    np.testing.assert_allclose(rhs, np.sqrt(beta), rtol=1e-15)
    lam, t = _hb_radius_grid(mu, L, eta, beta)
    assert np.all(np.abs(t) <= 2 * np.sqrt(beta)[:, None] * (1 + RTOL))
    # closed-form radius per grid point: sqrt(beta) for complex roots, else the larger real root
    disc = t**2 - 4 * beta[:, None]
    real_root = (np.abs(t) + np.sqrt(np.maximum(disc, 0.0))) / 2
    radius = np.where(disc <= 0, np.sqrt(beta)[:, None], real_root).max(axis=1)
    check("heavy_ball.quadratic.polyak_1964", radius, mu=mu, L=L, eta=eta, beta=beta)
    np.testing.assert_allclose(radius, rhs, rtol=RTOL)  # attained
    assert np.all(radius > 0.99 * rhs)
    eig_radius = _hb_eig_radius(t, beta).max(axis=1)
    np.testing.assert_allclose(eig_radius, rhs, rtol=1e-6)


@pytest.mark.parametrize("which", [0, 1])
def test_heavy_ball_conditions_matter(which):
    """Violating either step condition (the other holding) makes the radius exceed ``sqrt(beta)``.

    ``which = 0``: ``(1 - sqrt(eta mu))^2 > beta`` (too little momentum for the flattest
    direction, two real roots at ``lam = mu``). ``which = 1``: ``(1 - sqrt(eta L))^2 > beta``
    with ``eta L > 1`` (step too large for the steepest direction).
    """
    mu, L, eta, beta = _heavy_ball_draws(40000, 12 + which)
    c_mu = (1 - np.sqrt(eta * mu)) ** 2
    c_L = (1 - np.sqrt(eta * L)) ** 2
    if which == 0:
        sel = (c_mu > beta * (1 + 1e-6)) & (c_L <= beta)
        lam_bad = mu
    else:
        sel = (c_L > beta * (1 + 1e-6)) & (c_mu <= beta) & (eta * L > 1)
        lam_bad = L
    assert sel.sum() > 100
    b = catalogue.get("heavy_ball.quadratic.polyak_1964")
    assert not np.any(b.condition_mask(mu=mu[sel], L=L[sel], eta=eta[sel], beta=beta[sel]))
    t = 1 + beta[sel] - eta[sel] * lam_bad[sel]
    disc = t**2 - 4 * beta[sel]
    assert np.all(disc > 0)
    radius = (np.abs(t) + np.sqrt(disc)) / 2
    assert np.all(radius > np.sqrt(beta[sel]))


@pytest.mark.parametrize("mu,L,tuning", [
    (0.1, 1.0, "polyak"), (0.01, 1.0, "polyak"), (1.0, 4.0, "polyak"),
    (0.1, 1.0, "loose"), (0.05, 2.0, "loose"),
])
def test_heavy_ball_iterates_decay_at_sqrt_beta(mu, L, tuning):
    """Run heavy ball 2000 steps on ``(mu x1^2 + L x2^2)/2``: ``||z_k||^(1/k)`` approaches ``sqrt(beta)``.

    ``z_k = (x_k, x_{k-1})`` (never zero since the iteration matrix is invertible); its norm is
    tracked in log scale to avoid underflow. ``polyak``: Polyak's tuning (double roots at both
    ends, decay ``k sqrt(beta)^k``); ``loose``: a larger momentum than needed.
    """
    if tuning == "polyak":
        eta = 4 / (math.sqrt(L) + math.sqrt(mu)) ** 2
        beta = ((math.sqrt(L) - math.sqrt(mu)) / (math.sqrt(L) + math.sqrt(mu))) ** 2
    else:
        eta = 1 / L
        beta = min(0.999, (1 - math.sqrt(eta * mu)) ** 2 * 1.2)
    vals = dict(mu=mu, L=L, eta=eta, beta=beta)
    lam = np.array([mu, L])
    x_prev = x = np.array([1.0, -0.7])
    logscale = 0.0
    n = 2000
    for _ in range(n):
        x, x_prev = x - eta * lam * x + beta * (x - x_prev), x
        s = math.sqrt(np.sum(x**2) + np.sum(x_prev**2))
        x, x_prev, logscale = x / s, x_prev / s, logscale + math.log(s)
    z0 = math.sqrt(2 * np.sum(np.array([1.0, -0.7]) ** 2))
    rate = math.exp((logscale - math.log(z0)) / n)
    rhs = float(check("heavy_ball.quadratic.polyak_1964", rate / 1.05, **vals))
    assert rate >= 0.95 * rhs


# ====================================================================== 7. Newton
@pytest.mark.parametrize("M,mu,frac", [(1.0, 1.0, 0.99), (1.0, 1.0, 0.5), (3.0, 0.2, 0.9), (0.1, 2.0, 0.3)])
@pytest.mark.parametrize("dim", [1, 2])
def test_newton_local_on_cubic(M, mu, frac, dim):
    """Newton on ``f(x) = sum_i mu x_i^2/2 + M/6 |x_i|^3`` (Hessian ``mu + M|x_i|``, M-Lipschitz).

    ``x* = 0`` and the Hessian there is ``mu I``. Starting at ``||x_0|| = R = frac * 2mu/(3M)``,
    ``||x_K||^2`` must stay below ``(2mu/(3M))^2 (3MR/(2mu))^(2^(K+1))`` for K = 1..6 (while
    the bound is representable). Newton here is ``x+ = M x|x|/(2(mu + M|x|))`` per coordinate.
    """
    R = frac * 2 * mu / (3 * M)
    direction = np.ones(dim) / math.sqrt(dim) if dim > 1 else np.ones(1)
    direction = direction * np.array([1.0, -1.0][:dim])
    x = R * direction
    obs, Kv = [], []
    for K in range(1, 7):
        g = mu * x + M / 2 * x * np.abs(x)
        H = mu + M * np.abs(x)
        x = x - g / H
        obs.append(float(np.sum(x**2)))
        Kv.append(float(K))
    rhs = np.asarray(catalogue.get("newton.local.nesterov_2004").evaluate(M=M, mu=mu, R=R, K=np.array(Kv)))
    keep = rhs > 1e-280
    assert keep[0]
    check("newton.local.nesterov_2004", np.array(obs)[keep], M=M, mu=mu, R=R, K=np.array(Kv)[keep])


# ====================================================================== 8. SGD, exact moments
def sgd_moments(lam, x0, var, etas, weights=None):
    """Exact moments of SGD on ``f = sum lam_i x_i^2/2`` with ``g = grad f(x) + xi``.

    ``xi_k`` independent over time, ``E xi = 0``, ``E xi_i^2 = var_i``. Per coordinate
    ``x_{k+1} = a_k x_k - eta_k xi_k`` with ``a_k = 1 - eta_k lam``; with a running weighted
    sum ``S_k = sum_{j<=k} w_j x_j`` the state ``(x, S)`` is linear in the noise, so its
    second-moment matrix propagates exactly. Returns ``(Ex2, ES2)``, each of shape
    ``(n+1, dim)``: ``E x_k^2`` and ``E S_k^2`` for k = 0..n.
    """
    lam, x0, var = (np.asarray(v, dtype=float) for v in (lam, x0, var))
    n = len(etas)
    w = np.ones(n + 1) if weights is None else np.asarray(weights, dtype=float)
    mxx, mxs, mss = x0**2, w[0] * x0**2, (w[0] * x0) ** 2
    Ex2, ES2 = [mxx], [mss]
    for k in range(n):
        a, e, wk = 1 - etas[k] * lam, etas[k], w[k + 1]
        mxx, mxs, mss = (a * a * mxx + var * e * e,
                         a * (wk * a * mxx + mxs) + var * e * e * wk,
                         wk * wk * a * a * mxx + 2 * wk * a * mxs + mss + var * wk * wk * e * e)
        Ex2.append(mxx)
        ES2.append(mss)
    return np.array(Ex2), np.array(ES2)


def _weighted_sum_second_moment_direct(lam, x0, var, etas, w):
    """Independent closed form of ``E (sum_{k=0}^n w_k x_k)^2`` for one coordinate (for the self-test)."""
    n = len(etas)
    a = 1 - np.asarray(etas) * lam
    P = np.concatenate([[1.0], np.cumprod(a)])  # P_k = prod_{m<k} a_m
    mean = x0 * np.sum(w * P)
    C = np.zeros(n)  # C_j = sum_{k>j} w_k prod_{m=j+1}^{k-1} a_m
    C[n - 1] = w[n]
    for j in range(n - 2, -1, -1):
        C[j] = w[j + 1] + a[j + 1] * C[j + 1]
    return mean**2 + var * np.sum((np.asarray(etas) * C) ** 2)


def test_sgd_moment_propagation_matches_closed_forms():
    """The exact-moment helper agrees with two independent closed forms.

    Constant step: ``E x_k^2 = a^(2k) x_0^2 + eta^2 var (1 - a^(2k))/(1 - a^2)``. Any steps and
    weights: the weighted sum's second moment from the explicit noise coefficients.
    """
    lam, x0, var, eta, n = 0.7, 1.3, 0.4, 0.2, 50
    Ex2, _ = sgd_moments([lam], [x0], [var], [eta] * n)
    a = 1 - eta * lam
    k = np.arange(n + 1)
    np.testing.assert_allclose(Ex2[:, 0], a ** (2 * k) * x0**2 + eta**2 * var * (1 - a ** (2 * k)) / (1 - a**2),
                               rtol=1e-12)
    rng = np.random.default_rng(5)
    etas = rng.uniform(0.01, 2.5, 30)
    w = rng.uniform(0, 2, 31)
    _, ES2 = sgd_moments([lam], [x0], [var], etas, w)
    for m in (1, 7, 30):
        direct = _weighted_sum_second_moment_direct(lam, x0, var, etas[:m], w[: m + 1])
        assert math.isclose(ES2[m, 0], direct, rel_tol=1e-10)


SGD_SETTINGS = [
    # lam, x0, sigma, share of the variance per coordinate
    dict(lam=(1.0,), x0=(2.0,), sigma=0.5, share=(1.0,)),
    dict(lam=(0.2, 1.0), x0=(1.0, -1.5), sigma=1.0, share=(0.3, 0.7)),
    dict(lam=(0.05, 2.0, 0.5), x0=(3.0, 1.0, -2.0), sigma=0.1, share=(0.2, 0.2, 0.6)),
    dict(lam=(1.0, 4.0), x0=(0.01, 0.02), sigma=2.0, share=(0.5, 0.5)),  # noise dominated
]
SGD_IDS = [f"setting{i}" for i in range(len(SGD_SETTINGS))]
N_SGD = 200


def _setup(s):
    lam = np.array(s["lam"], dtype=float)
    x0 = np.array(s["x0"], dtype=float)
    var = s["sigma"] ** 2 * np.array(s["share"], dtype=float)
    prob = Quadratic(lam)
    return prob, lam, x0, var, float(prob.f(x0)), float(np.linalg.norm(x0))


def _moment_quantities(lam, var, Ex2):
    """Per k: ``E f(x_k) - f*``, ``E||grad f(x_k)||^2`` and ``E||g_k||^2``."""
    Ef = 0.5 * Ex2 @ lam
    Egrad2 = Ex2 @ lam**2
    return Ef, Egrad2, Egrad2 + var.sum()


@pytest.mark.parametrize("s", SGD_SETTINGS, ids=SGD_IDS)
@pytest.mark.parametrize("h", [0.1, 0.5, 1.0, 1.5, 1.9])
def test_sgd_constant_step(s, h):
    """Constant-step SGD bounds against exact expectations, step ``eta = h/L``, K = 1..200.

    Last iterate (Bottou Thm 4.6 where ``eta <= 1/L``), average squared gradient over
    ``x_0..x_{K-1}`` (Bottou Thm 4.8, ``eta <= 1/L``; Ghadimi-Lan, ``eta < 2/L``), PL with a
    constant step (``eta < 1/(2 mu)``, ``G^2 = max_{k<K} E||g_k||^2``), the averaged iterates
    of Bubeck Thm 6.1 (``x_0..x_{K-1}``, ``G^2`` as above) and Thm 6.3 (``x_1..x_K``,
    ``eta < 1/L``).
    """
    prob, lam, x0, var, delta, R = _setup(s)
    sigma, L, mu = s["sigma"], prob.L, prob.mu
    eta = h / L
    n = N_SGD
    K = Ks(n)
    Ex2, ES2 = sgd_moments(lam, x0, var, [eta] * n)  # S_k = x_0 + ... + x_k
    Ef, Egrad2, Eg2 = _moment_quantities(lam, var, Ex2)
    avg_grad2 = np.cumsum(Egrad2)[:n] / K  # over x_0..x_{K-1}
    G = np.sqrt(np.maximum.accumulate(Eg2)[:n])  # max over g_0..g_{K-1}
    vals = dict(L=L, mu=mu, sigma=sigma, eta=eta, K=K, Delta=delta, R=R, G=G)
    checked = []

    def run(bid, obs):
        if applicable(bid, **vals):
            check(bid, obs, **vals)
            checked.append(bid)

    run("sgd.strongly_convex.bottou_2018", Ef[1:])
    run("sgd.nonconvex.bottou_2018", avg_grad2)
    run("sgd.nonconvex.ghadimi_lan_2013", avg_grad2)
    run("sgd.pl.karimi_2016.constant_step", Ef[1:])
    # E f(mean of x_0..x_{K-1}) = sum_i lam_i/2 E[S_{K-1,i}^2] / K^2
    run("sgd.convex.bubeck_2015", 0.5 * (ES2[:n] @ lam) / K**2)
    # mean of x_1..x_K = (S_K - x_0)/K: use weights w_0 = 0
    _, ES2b = sgd_moments(lam, x0, var, [eta] * n, np.r_[0.0, np.ones(n)])
    run("sgd.smooth_convex.bubeck_2015", 0.5 * (ES2b[1:] @ lam) / K**2)
    assert "sgd.nonconvex.ghadimi_lan_2013" in checked and "sgd.convex.bubeck_2015" in checked
    if h <= 1:
        assert {"sgd.strongly_convex.bottou_2018", "sgd.nonconvex.bottou_2018"} <= set(checked)


@pytest.mark.parametrize("lam,sigma,x0", [(1.0, 0.5, 2.0), (3.0, 2.0, -0.1), (0.2, 1.0, 5.0)])
def test_sgd_bottou_attained_after_one_step(lam, sigma, x0):
    """On ``f = lam x^2/2`` with ``eta = 1/L = 1/lam`` one SGD step lands on the noise floor exactly.

    ``x_1 = -xi_0/lam`` so ``E f(x_1) = sigma^2/(2 lam)``, which equals Bottou's right-hand side
    at ``K = 1`` (``(1 - eta mu) = 0`` leaves the floor ``eta L sigma^2/(2 mu)``). A 1% smaller
    bound is violated.
    """
    Ex2, _ = sgd_moments([lam], [x0], [sigma**2], [1 / lam])
    obs = 0.5 * lam * Ex2[1, 0]
    rhs = check("sgd.strongly_convex.bottou_2018", obs, L=lam, mu=lam, sigma=sigma, eta=1 / lam,
                K=1.0, Delta=lam * x0**2 / 2)
    assert math.isclose(obs, float(rhs), rel_tol=1e-12) and obs > 0.99 * float(rhs)


@pytest.mark.parametrize("s", SGD_SETTINGS, ids=SGD_IDS)
@pytest.mark.parametrize("c_mu,slack", [(1.5, 1.0), (3.0, 1.0), (3.0, 4.0), (1.05, 1.0)])
def test_sgd_bottou_diminishing(s, c_mu, slack):
    """Bottou Thm 4.7: steps ``c/(gamma + k + 1)`` with ``c = c_mu/mu > 1/mu`` and ``gamma + 1 = slack c L``.

    ``E f(x_K) - f* <= nu/(gamma + K + 1)`` for K = 1..400, exact expectations.
    """
    prob, lam, x0, var, delta, R = _setup(s)
    L, mu = prob.L, prob.mu
    c = c_mu / mu
    gamma = slack * c * L - 1
    n = 400
    etas = c / (gamma + np.arange(n) + 1)
    Ex2, _ = sgd_moments(lam, x0, var, etas)
    Ef = 0.5 * Ex2 @ lam
    check("sgd.strongly_convex.bottou_2018.diminishing", Ef[1:],
          L=L, mu=mu, sigma=s["sigma"], c=c, gamma=gamma, K=Ks(n), Delta=delta)


@pytest.mark.parametrize("s", SGD_SETTINGS, ids=SGD_IDS)
def test_sgd_pl_karimi_decreasing_step(s):
    """Karimi Thm 4: steps ``(2k+1)/(2 mu (k+1)^2)``, ``E f(x_K) - f* <= L G^2/(2 K mu^2)``.

    ``G^2 = max_{k<K} E||g_k||^2`` along the run (the first step ``1/(2mu)`` may be far above
    ``2/L``; the bound does not need a step condition). PL constant of the quadratic: ``mu``.
    """
    prob, lam, x0, var, delta, R = _setup(s)
    n = 400
    k = np.arange(n)
    etas = (2 * k + 1) / (2 * prob.mu * (k + 1) ** 2)
    Ex2, _ = sgd_moments(lam, x0, var, etas)
    Ef, _, Eg2 = _moment_quantities(lam, var, Ex2)
    G = np.sqrt(np.maximum.accumulate(Eg2)[:n])
    check("sgd.pl.karimi_2016", Ef[1:], L=prob.L, mu=prob.mu, G=G, K=Ks(n))


@pytest.mark.parametrize("s", SGD_SETTINGS, ids=SGD_IDS)
def test_sgd_bubeck_strongly_convex_weighted_average(s):
    """Bubeck Thm 6.2: steps ``2/(mu(k+2))``, weights ``2s/(K(K+1))`` on ``x_{s-1}``, s = 1..K.

    ``E f(xbar_K) - f* <= 2 G^2/(mu (K+1))`` with ``G^2 = max_{k<K} E||g_k||^2``; the weighted
    average's second moment is exact (running sum with weight ``k+1`` on ``x_k``).
    """
    prob, lam, x0, var, delta, R = _setup(s)
    n = 400
    k = np.arange(n)
    etas = 2 / (prob.mu * (k + 2))
    Ex2, ES2 = sgd_moments(lam, x0, var, etas, np.arange(1, n + 2, dtype=float))
    _, _, Eg2 = _moment_quantities(lam, var, Ex2)
    K = Ks(n)
    Ef_avg = 0.5 * (ES2[:n] @ lam) * (2 / (K * (K + 1))) ** 2
    G = np.sqrt(np.maximum.accumulate(Eg2)[:n])
    check("sgd.strongly_convex.bubeck_2015", Ef_avg, mu=prob.mu, G=G, K=K)


# ====================================================================== 9. adaptive methods
def _logcosh(x):
    """``f(x) = sum log cosh(x_i)``: ``|grad_i| <= 1`` (G_inf = 1), ``L = 1``, ``f* = 0``."""
    ax = np.abs(x)
    return float(np.sum(ax + np.log1p(np.exp(-2 * ax)) - math.log(2))), np.tanh(x)


def defossez(x0, alpha, beta1, beta2, eps, n, adam):
    """Défossez et al.'s algorithm on log-cosh with exact (noise-free) gradients.

    ``m_n = beta1 m_{n-1} + g_n``, ``v_n = beta2 v_{n-1} + g_n^2``,
    ``x_n = x_{n-1} - alpha_n m_n/sqrt(eps + v_n)``; Adagrad: ``beta2 = 1``, ``alpha_n = alpha``;
    Adam: ``alpha_n = alpha (1 - beta1) sqrt((1 - beta2^n)/(1 - beta2))``. Returns
    ``||grad F(x_j)||^2`` for j = 0..n-1, ``f(x_0)`` and ``max_j ||grad F(x_j)||_inf``.
    """
    x = np.array(x0, dtype=float)
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    gn2, ginf = [], 0.0
    f0 = _logcosh(x)[0]
    for i in range(1, n + 1):
        _, g = _logcosh(x)
        gn2.append(float(np.sum(g**2)))
        ginf = max(ginf, float(np.max(np.abs(g))))
        m = beta1 * m + g
        v = beta2 * v + g**2
        a = alpha * (1 - beta1) * math.sqrt((1 - beta2**i) / (1 - beta2)) if adam else alpha
        x = x - a * m / np.sqrt(eps + v)
    return np.array(gn2), f0, ginf


def _tau_average(gn2, beta1):
    n = len(gn2)
    p = 1 - beta1 ** (n - np.arange(n)) if beta1 > 0 else np.ones(n)
    return float(np.sum(p * gn2) / np.sum(p))


ADAPTIVE_STARTS = [[2.0], [0.5, -3.0, 8.0], [20.0, 20.0]]
ADAPTIVE_N = [1, 5, 50, 500]


@pytest.mark.parametrize("x0", ADAPTIVE_STARTS, ids=["d1", "d3", "far"])
@pytest.mark.parametrize("alpha,eps", [(0.01, 1e-8), (0.3, 1e-8), (3.0, 1e-2)])
def test_adagrad_defossez(x0, alpha, eps):
    """Adagrad (Défossez Thm 1) with exact gradients: uniform average of ``||grad||^2`` over x_0..x_{N-1}.

    Checked with the global ``G_inf = 1`` of log-cosh and with the smaller ``G_inf`` seen
    along the run (the almost-sure bound an auditor would measure).
    """
    d = len(x0)
    for N in ADAPTIVE_N:
        gn2, f0, ginf = defossez(x0, alpha, 0.0, 1.0, eps, N, adam=False)
        obs = _tau_average(gn2, 0.0)
        for G_inf in (1.0, ginf):
            check("adagrad.nonconvex.defossez_2022", obs, L=1.0, Delta=f0, G_inf=G_inf, eta=alpha,
                  eps=eps, K=float(N), d=float(d))


@pytest.mark.parametrize("x0", ADAPTIVE_STARTS, ids=["d1", "d3", "far"])
@pytest.mark.parametrize("alpha,eps,beta2", [(0.01, 1e-8, 0.999), (0.3, 1e-8, 0.9), (1.0, 1e-2, 0.99)])
def test_rmsprop_defossez(x0, alpha, eps, beta2):
    """Adam with ``beta1 = 0`` (Défossez Thm 2) with exact gradients; uniform average."""
    d = len(x0)
    for N in ADAPTIVE_N:
        gn2, f0, ginf = defossez(x0, alpha, 0.0, beta2, eps, N, adam=True)
        obs = _tau_average(gn2, 0.0)
        for G_inf in (1.0, ginf):
            check("rmsprop.nonconvex.defossez_2022", obs, L=1.0, Delta=f0, G_inf=G_inf, eta=alpha,
                  eps=eps, beta2=beta2, K=float(N), d=float(d))


@pytest.mark.parametrize("x0", ADAPTIVE_STARTS, ids=["d1", "d3", "far"])
@pytest.mark.parametrize("alpha,eps,beta1,beta2", [
    (0.01, 1e-8, 0.9, 0.999), (0.3, 1e-8, 0.5, 0.9), (1.0, 1e-2, 0.8, 0.99), (0.1, 1e-8, 0.0, 0.999),
])
def test_adam_defossez(x0, alpha, eps, beta1, beta2):
    """Adam with momentum (Défossez Thm 4): ``P(tau = j) ∝ 1 - beta1^(N-j)``, ``N > beta1/(1-beta1)``."""
    d = len(x0)
    for N in ADAPTIVE_N:
        if not N > beta1 / (1 - beta1):
            continue
        gn2, f0, ginf = defossez(x0, alpha, beta1, beta2, eps, N, adam=True)
        obs = _tau_average(gn2, beta1)
        for G_inf in (1.0, ginf):
            check("adam.nonconvex.defossez_2022", obs, L=1.0, Delta=f0, G_inf=G_inf, eta=alpha,
                  eps=eps, beta1=beta1, beta2=beta2, K=float(N), d=float(d))


# ====================================================================== coverage
def test_every_calibration_bound_is_covered():
    """Each bound whose ``verified`` claims "calibration" is exercised by a test in this file.

    ``COVERED_IDS`` is maintained by hand (tests may run in any order or selection); every id in
    it must exist in the catalogue.
    """
    ids = set(catalogue.ids())
    unknown = set(COVERED_IDS) - ids
    assert not unknown, f"COVERED_IDS names bounds not in the catalogue: {sorted(unknown)}"
    claimed = {b.id for b in catalogue if "calibration" in b.verified}
    missing = claimed - set(COVERED_IDS)
    assert not missing, f"bounds claim calibration but no known-answer test covers them: {sorted(missing)}"
