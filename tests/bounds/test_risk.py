"""Issue 19: the risk certificates of bounds/risk.py against independent exact computations
(scipy's binomial CDF, an independent kl and bisection, a Monte-Carlo KL)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import rel_entr
from scipy.stats import binom, norm

from approx_audit.bounds import risk
from approx_audit.bounds.errors import InvalidValueError

GRID_M = [1, 2, 7, 30, 114, 359, 1000]
DELTAS = [1e-3, 0.025, 0.1, 0.5, 0.9]


def _ks(m):
    return sorted({0, 1, m // 10, m // 3, m // 2, max(0, m - 1), m})


CASES = [(m, k, d) for m in GRID_M for k in _ks(m) for d in DELTAS]


@pytest.mark.parametrize("m,k,delta", CASES)
def test_binomial_inversion_is_the_largest_p_with_cdf_at_least_delta(m, k, delta):
    p = risk.binomial_tail_inversion(m, k, delta)
    assert 0.0 <= p <= 1.0
    assert binom.cdf(k, m, p) >= delta
    if k < m:
        assert p < 1.0
        assert binom.cdf(k, m, p + 1e-9) < delta
    else:
        assert p == 1.0


@pytest.mark.parametrize("m", GRID_M)
@pytest.mark.parametrize("delta", DELTAS)
def test_no_errors_matches_the_closed_form(m, delta):
    assert risk.binomial_tail_inversion(m, 0, delta) == pytest.approx(1 - delta ** (1 / m),
                                                                      abs=1e-12)


@pytest.mark.parametrize("m,k,delta", CASES)
def test_hoeffding_above_kl_above_exact(m, k, delta):
    b = risk.test_set_bounds(m, k, delta)
    assert b.hoeffding >= b.kl - 1e-12
    assert b.kl >= b.exact - 1e-12
    assert b.hoeffding == pytest.approx(k / m + math.sqrt(math.log(1 / delta) / (2 * m)))
    assert b.to_dict()["exact"] == b.exact


def _kl_indep(q, p):
    return float(rel_entr(q, p) + rel_entr(1 - q, 1 - p))


def _bisect_indep(x, b, iters=200):
    lo, hi = x, 1.0
    for _ in range(iters):
        mid = (lo + hi) / 2
        if _kl_indep(x, mid) <= b:
            lo = mid
        else:
            hi = mid
    return lo


@pytest.mark.parametrize("x", [0.0, 1e-4, 0.01, 0.1, 0.37, 0.5, 0.9, 0.999])
@pytest.mark.parametrize("b", [1e-6, 1e-3, 0.05, 0.5, 3.0])
def test_kl_inverse_against_an_independent_bisection(x, b):
    y = risk.kl_inverse(x, b)
    assert x <= y <= 1.0
    assert y == pytest.approx(_bisect_indep(x, b), abs=1e-10)
    assert _kl_indep(x, y) <= b + 1e-12


@pytest.mark.parametrize("x", [0.0, 1e-4, 0.1, 0.37, 0.999])
def test_kl_inverse_with_no_slack_is_x(x):
    # the naive q·ln(q/p) + … rounds to ≤ 0 up to ~1e-10 above x; risk's kl does not
    assert risk.kl_inverse(x, 0.0) == pytest.approx(x, abs=1e-15)


def test_kl_bernoulli_values():
    assert risk.kl_bernoulli(0.3, 0.3) == 0.0
    assert risk.kl_bernoulli(0.0, 0.5) == pytest.approx(math.log(2))
    assert risk.kl_bernoulli(0.2, 0.6) == pytest.approx(_kl_indep(0.2, 0.6))
    assert risk.kl_bernoulli(0.5, 0.0) == math.inf
    assert risk.kl_inverse(1.0, 0.1) == 1.0


def test_diag_gaussian_kl_against_monte_carlo():
    rng = np.random.default_rng(19)
    d = 6
    mq, mp = rng.normal(size=d), rng.normal(size=d)
    sq, sp = rng.uniform(0.3, 1.5, d), rng.uniform(0.3, 1.5, d)
    x = mq + sq * rng.standard_normal((200_000, d))
    mc = float((norm.logpdf(x, mq, sq) - norm.logpdf(x, mp, sp)).sum(1).mean())
    exact = risk.kl_diag_gaussians(mq, sq, mp, sp)
    assert exact == pytest.approx(mc, rel=0.02, abs=0.02)


def test_kl_of_a_distribution_with_itself_is_zero():
    mu, sigma = np.linspace(-1, 1, 50), np.linspace(0.01, 2, 50)
    assert risk.kl_diag_gaussians(mu, sigma, mu, sigma) == 0.0
    assert risk.pac_bayes_kl(0.1, 0.0, 1000, 0.025) == risk.kl_inverse(
        0.1, math.log(2 * math.sqrt(1000) / 0.025) / 1000)


def test_pac_bayes_bounds_and_monte_carlo_certificate():
    n, kl, delta = 5000, 120.0, 0.025
    rhs = (kl + math.log(2 * math.sqrt(n) / delta)) / n
    assert risk.pac_bayes_rhs(kl, n, delta) == pytest.approx(rhs)
    tight = risk.pac_bayes_kl(0.05, kl, n, delta)
    assert _kl_indep(0.05, tight) == pytest.approx(rhs, rel=1e-9)
    assert tight <= risk.pac_bayes_classic(0.05, kl, n, delta)
    assert risk.pac_bayes_classic(0.05, kl, n, delta) == pytest.approx(0.05 + math.sqrt(rhs / 2))
    assert risk.pac_bayes_lambda(0.05, kl, n, delta, 0.5) == pytest.approx(
        0.05 / 0.75 + rhs / (0.5 * 0.75))
    mc = risk.pac_bayes_monte_carlo(0.05, 1000, kl, n, delta, 0.01)
    stage1 = risk.kl_inverse(0.05, math.log(2 / 0.01) / 1000)
    assert mc["emp_risk_upper"] == stage1 > 0.05
    assert mc["risk_bound"] == risk.pac_bayes_kl(stage1, kl, n, delta) > tight
    assert mc["confidence"] == pytest.approx(1 - delta - 0.01)


@pytest.mark.parametrize("call", [
    lambda: risk.binomial_tail_inversion(0, 0, 0.1),
    lambda: risk.binomial_tail_inversion(10, 11, 0.1),
    lambda: risk.binomial_tail_inversion(10, 2, 0.0),
    lambda: risk.binomial_tail_inversion(10, 2, 1.0),
    lambda: risk.binomial_tail_inversion(10.5, 2, 0.1),
    lambda: risk.binomial_tail_inversion(True, 0, 0.1),
    lambda: risk.hoeffding_bound(10, -1, 0.1),
    lambda: risk.kl_test_set_bound(10, 2, float("nan")),
    lambda: risk.kl_bernoulli(1.5, 0.5),
    lambda: risk.kl_inverse(0.1, -1.0),
    lambda: risk.pac_bayes_kl(0.1, -1.0, 100, 0.05),
    lambda: risk.pac_bayes_kl(0.1, 1.0, 0, 0.05),
    lambda: risk.pac_bayes_lambda(0.1, 1.0, 100, 0.05, 2.0),
    lambda: risk.pac_bayes_monte_carlo(0.1, 100, 1.0, 100, 0.6, 0.5),
    lambda: risk.kl_diag_gaussians([0.0], [0.0], [0.0], [1.0]),
    lambda: risk.kl_diag_gaussians([0.0, 1.0], [1.0], [0.0], [1.0]),
    lambda: risk.kl_diag_gaussians([np.inf], [1.0], [0.0], [1.0]),
])
def test_bad_input_is_one_line(call):
    with pytest.raises(InvalidValueError) as info:
        call()
    assert "\n" not in str(info.value)
