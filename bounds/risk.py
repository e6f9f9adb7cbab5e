"""Risk certificates for a trained classifier: the test-set bound and the PAC-Bayes-kl bound.

Stated as in the primary texts (see /work/shared/research/theorems.md, section 8):

* Langford (JMLR 6, 2005), Def. 3.2 and Thm 3.3: for a classifier fixed before m test
  examples are drawn, with ĉ_S errors on them, Pr(c_D ≤ Bin̄(m, ĉ_S, δ)) ≥ 1 − δ, where
  Bin̄(m, k, δ) = max{p : Bin(m, k, p) ≥ δ} and Bin(m, k, p) = P[X ≤ k], X ~ Binomial(m, p).
  Its relaxations: Cor. 3.7, kl(ĉ_S/m ‖ c_D) ≤ ln(1/δ)/m; Cor. 3.8 (Hoeffding),
  c_D ≤ ĉ_S/m + √(ln(1/δ)/(2m)).
* Pérez-Ortiz, Rivasplata, Shawe-Taylor & Szepesvári (JMLR 22, 2021), Thm 1 (Maurer's form):
  for losses in [0, 1] and a prior Q0 independent of the n bound examples, with probability
  ≥ 1 − δ for every posterior Q, kl(L̂_S(Q) ‖ L(Q)) ≤ [KL(Q‖Q0) + ln(2√n/δ)]/n; the classic
  relaxation L ≤ L̂ + √((KL + ln(2√n/δ))/(2n)) and the λ-bound; and their §6.2 Monte-Carlo
  certificate for a stochastic network, L(Q) ≤ f*(f*(L̂_S(Q̂_m), ln(2/δ′)/m), [KL + ln(2√n/δ)]/n)
  with probability ≥ 1 − δ − δ′, where f*(x, b) = sup{y ∈ [x, 1] : kl(x‖y) ≤ b}.

Every inversion is a bisection on an exact, monotone function run to the resolution of a
double (no normal approximation), and returns a member of the set whose supremum it computes:
the largest double found to satisfy the defining inequality. Torch-free (numpy and scipy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from .errors import InvalidValueError

__all__ = ["TestSetBounds", "binomial_cdf", "binomial_tail_inversion", "hoeffding_bound",
           "kl_bernoulli", "kl_diag_gaussians", "kl_inverse", "kl_test_set_bound",
           "pac_bayes_classic", "pac_bayes_kl", "pac_bayes_lambda", "pac_bayes_monte_carlo",
           "pac_bayes_rhs", "test_set_bounds"]

_MAX_BISECTIONS = 2000   # the float bracket closes in ≤ ~1100 halvings; a guard, never reached


# -- validation -------------------------------------------------------------------------------

def _count(name: str, value, low: int) -> int:
    """An integer ≥ low (bools and non-integral floats refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidValueError(f"{name}={value!r} must be an integer >= {low}")
    return int(value)


def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidValueError(f"{name}={value!r} must be a real number")
    x = float(value)
    if not math.isfinite(x):
        raise InvalidValueError(f"{name}={value!r} must be finite")
    return x


def _confidence(name: str, value) -> float:
    x = _real(name, value)
    if not 0.0 < x < 1.0:
        raise InvalidValueError(f"{name}={value!r} must be in (0, 1), e.g. {name}=0.025")
    return x


def _unit(name: str, value) -> float:
    x = _real(name, value)
    if not 0.0 <= x <= 1.0:
        raise InvalidValueError(f"{name}={value!r} must be in [0, 1] (a 0-1 risk)")
    return x


def _nonneg(name: str, value) -> float:
    x = _real(name, value)
    if x < 0.0:
        raise InvalidValueError(f"{name}={value!r} must be >= 0")
    return x


# -- bisection --------------------------------------------------------------------------------

def _largest_true(pred, lo: float, hi: float) -> float:
    """The largest double in [lo, hi) found by bisection with ``pred`` true, given pred(lo)
    true and pred(hi) false; stops when no double lies strictly between the ends."""
    for _ in range(_MAX_BISECTIONS):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            return lo
        if pred(mid):
            lo = mid
        else:
            hi = mid
    return lo   # pragma: no cover -- the bracket of doubles is exhausted long before


# -- Langford 2005 ----------------------------------------------------------------------------

def _errors_of(m: int, k: int) -> tuple[int, int]:
    """(m, k) validated: m ≥ 1 examples, 0 ≤ k ≤ m errors."""
    m = _count("m", m, 1)
    k = _count("k", k, 0)
    if k > m:
        raise InvalidValueError(f"k={k} errors exceed the m={m} test examples")
    return m, k


def _test_set_args(m: int, k: int, delta: float) -> tuple[int, int, float]:
    """The arguments every test-set bound takes, validated (one line each)."""
    m, k = _errors_of(m, k)
    return m, k, _confidence("delta", delta)


def binomial_cdf(m: int, k: int, p: float) -> float:
    """Bin(m, k, p) = P[X ≤ k] for X ~ Binomial(m, p) (Langford Def. 3.1), exact (scipy)."""
    m, k = _errors_of(m, k)
    return float(binom.cdf(k, m, _unit("p", p)))


def binomial_tail_inversion(m: int, k: int, delta: float) -> float:
    """Bin̄(m, k, δ) = max{p : Bin(m, k, p) ≥ δ} (Langford Def. 3.2, Thm 3.3).

    Bin(m, k, p) falls continuously from 1 at p = 0 to 0 at p = 1 (k < m), so the max is the
    root of Bin = δ; bisection keeps the side where Bin ≥ δ. k = 0 starts from the closed form
    1 − δ^{1/m} (Cor. 3.4's exact value), moved down to where the computed CDF agrees; k = m
    gives 1 (Bin = 1 everywhere)."""
    m, k, delta = _test_set_args(m, k, delta)
    if k == m:
        return 1.0

    def ok(p: float) -> bool:
        return float(binom.cdf(k, m, p)) >= delta

    if k == 0:
        p = -math.expm1(math.log(delta) / m)      # 1 − δ^{1/m} without cancellation
        while p > 0.0 and not ok(p):              # rounding of (1 − p)^m: at most a few ulps
            p = math.nextafter(p, 0.0)
        hi = math.nextafter(p, 1.0)
        return p if not ok(hi) else _largest_true(ok, hi, 1.0)
    return _largest_true(ok, 0.0, 1.0)


def kl_test_set_bound(m: int, k: int, delta: float) -> float:
    """Langford Cor. 3.7: the largest p with kl(k/m ‖ p) ≤ ln(1/δ)/m."""
    m, k, delta = _test_set_args(m, k, delta)
    return kl_inverse(k / m, math.log(1.0 / delta) / m)


def hoeffding_bound(m: int, k: int, delta: float) -> float:
    """Langford Cor. 3.8: k/m + √(ln(1/δ)/(2m)) (as stated: not clipped at 1)."""
    m, k, delta = _test_set_args(m, k, delta)
    return k / m + math.sqrt(math.log(1.0 / delta) / (2 * m))


@dataclass(frozen=True)
class TestSetBounds:
    """The test-set bound of Langford Thm 3.3 and its two relaxations, for m examples and k
    errors at confidence 1 − δ (exact ≤ kl ≤ Hoeffding always)."""

    __test__ = False    # not a pytest class

    m: int
    k: int
    delta: float
    exact: float        # Bin̄(m, k, δ), Thm 3.3
    kl: float           # Cor. 3.7
    hoeffding: float    # Cor. 3.8

    def to_dict(self) -> dict:
        return {"m": self.m, "k": self.k, "delta": self.delta, "exact": self.exact,
                "kl": self.kl, "hoeffding": self.hoeffding}


def test_set_bounds(m: int, k: int, delta: float) -> TestSetBounds:
    """All three test-set bounds at once (the certificate and what it relaxes to)."""
    return TestSetBounds(int(m), int(k), float(delta), binomial_tail_inversion(m, k, delta),
                         kl_test_set_bound(m, k, delta), hoeffding_bound(m, k, delta))


test_set_bounds.__test__ = False    # a library function named test_*: not a pytest test


# -- kl between Bernoullis and its inversion --------------------------------------------------

def _log1p_minus(t: float) -> float:
    """ln(1 + t) − t without cancellation near t = 0 (the series there: error < t⁶)."""
    if abs(t) < 1e-4:
        return t * t * (-0.5 + t * (1 / 3 - t * (0.25 - t * 0.2)))
    return math.log1p(t) - t


def _kl(q: float, p: float) -> float:
    """kl(q‖p) on validated inputs, with 0·ln 0 = 0 and +inf where p excludes q.

    For 0 < q < 1, written as −q·g((p − q)/q) − (1 − q)·g((q − p)/(1 − q)) with
    g(t) = ln(1 + t) − t (the linear parts cancel exactly), so kl ≈ (p − q)²/(2q(1 − q)) keeps its relative accuracy
    near p = q, where q·ln(q/p) + … loses it all to rounding (an inversion with b = 0 would
    otherwise stop 1e-10 above x)."""
    if (q > 0.0 and p <= 0.0) or (q < 1.0 and p >= 1.0):
        return math.inf
    if q == 0.0:
        return -math.log1p(-p)
    if q == 1.0:
        return -math.log(p)
    out = -q * _log1p_minus((p - q) / q) - (1.0 - q) * _log1p_minus((q - p) / (1.0 - q))
    return max(out, 0.0)   # g ≤ 0, so out ≥ 0 up to the last rounding


def kl_bernoulli(q: float, p: float) -> float:
    """kl(q‖p) = q ln(q/p) + (1 − q) ln((1 − q)/(1 − p)), the KL between Bernoulli(q) and
    Bernoulli(p) (+inf where p ∈ {0, 1} excludes q)."""
    return _kl(_unit("q", q), _unit("p", p))


def kl_inverse(x: float, b: float) -> float:
    """f*(x, b) = sup{y ∈ [x, 1] : kl(x‖y) ≤ b} (Pérez-Ortiz et al. 2021 §6.2; Langford's
    kl bound). kl(x‖·) increases on [x, 1], so bisection keeps the side where kl ≤ b."""
    x = _unit("x", x)
    b = _nonneg("b", b)
    if x >= 1.0 or _kl(x, 1.0) <= b:
        return 1.0
    return _largest_true(lambda y: _kl(x, y) <= b, x, 1.0)


# -- PAC-Bayes (Pérez-Ortiz et al. 2021) ------------------------------------------------------

def pac_bayes_rhs(kl: float, n: int, delta: float) -> float:
    """[KL(Q‖Q0) + ln(2√n/δ)]/n, the right-hand side of Thm 1."""
    kl = _nonneg("kl", kl)
    n = _count("n", n, 1)
    delta = _confidence("delta", delta)
    return (kl + math.log(2.0 * math.sqrt(n) / delta)) / n


def pac_bayes_kl(emp_risk: float, kl: float, n: int, delta: float) -> float:
    """Thm 1 inverted: L(Q) ≤ f*(L̂_S(Q), [KL + ln(2√n/δ)]/n)."""
    return kl_inverse(_unit("emp_risk", emp_risk), pac_bayes_rhs(kl, n, delta))


def pac_bayes_classic(emp_risk: float, kl: float, n: int, delta: float) -> float:
    """The classic relaxation of Thm 1: L̂ + √((KL + ln(2√n/δ))/(2n)) (by Pinsker)."""
    emp_risk = _unit("emp_risk", emp_risk)
    return emp_risk + math.sqrt(pac_bayes_rhs(kl, n, delta) / 2.0)


def pac_bayes_lambda(emp_risk: float, kl: float, n: int, delta: float, lam: float) -> float:
    """The λ-bound: L̂/(1 − λ/2) + (KL + ln(2√n/δ))/(nλ(1 − λ/2)), for λ ∈ (0, 2)."""
    emp_risk = _unit("emp_risk", emp_risk)
    lam = _real("lam", lam)
    if not 0.0 < lam < 2.0:
        raise InvalidValueError(f"lam={lam!r} must be in (0, 2)")
    return emp_risk / (1 - lam / 2) + pac_bayes_rhs(kl, n, delta) / (lam * (1 - lam / 2))


def pac_bayes_monte_carlo(mc_risk: float, mc_samples: int, kl: float, n: int, delta: float,
                          delta_prime: float) -> dict:
    """The §6.2 certificate of a stochastic network, with probability ≥ 1 − δ − δ′:
    L̂_S(Q) ≤ f*(L̂_S(Q̂_m), ln(2/δ′)/m) from the m weight samples, then
    L(Q) ≤ f*(that, [KL + ln(2√n/δ)]/n). Returns both stages and the total confidence."""
    mc_risk = _unit("mc_risk", mc_risk)
    mc_samples = _count("mc_samples", mc_samples, 1)
    delta_prime = _confidence("delta_prime", delta_prime)
    delta = _confidence("delta", delta)
    if delta + delta_prime >= 1.0:
        raise InvalidValueError(f"delta + delta_prime = {delta + delta_prime:g} must be < 1")
    emp_upper = kl_inverse(mc_risk, math.log(2.0 / delta_prime) / mc_samples)
    return {"mc_risk": mc_risk, "mc_samples": mc_samples, "emp_risk_upper": emp_upper,
            "risk_bound": pac_bayes_kl(emp_upper, kl, n, delta),
            "confidence": 1.0 - delta - delta_prime}


def kl_diag_gaussians(mu_q, sigma_q, mu_p, sigma_p) -> float:
    """KL(N(μq, diag σq²) ‖ N(μp, diag σp²)) in nats, closed form:
    Σ_i [ln(σp_i/σq_i) + (σq_i² + (μq_i − μp_i)²)/(2σp_i²) − 1/2]."""
    arrays = []
    for name, v in (("mu_q", mu_q), ("sigma_q", sigma_q), ("mu_p", mu_p), ("sigma_p", sigma_p)):
        a = np.asarray(v, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise InvalidValueError(f"{name} has a non-finite entry")
        arrays.append(a)
    mq, sq, mp, sp = arrays
    if not (mq.shape == sq.shape == mp.shape == sp.shape):
        raise InvalidValueError(f"shapes differ: mu_q {mq.shape}, sigma_q {sq.shape}, "
                                f"mu_p {mp.shape}, sigma_p {sp.shape}")
    if np.any(sq <= 0) or np.any(sp <= 0):
        raise InvalidValueError("sigma_q and sigma_p must be > 0 everywhere")
    ratio = (sq / sp) ** 2
    terms = 0.5 * (ratio - 1.0 - np.log(ratio)) + 0.5 * ((mq - mp) / sp) ** 2
    return float(max(terms.sum(), 0.0))
