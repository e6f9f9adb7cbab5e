"""Machine checks of the consensus bounds (bounds/families/decentralized.py).

The bounds are derived, not read off a paper, so the derivation is checked here on random
instances of the three updates — the same formulas the multi-process implementation applies —
and the constants are shown to be the smallest possible (attained), while the plausible wrong
ones (|λ₂| for a non-normal W, Lian et al.'s squared ρ) fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from approx_audit.bounds import catalogue

DPSGD = catalogue.get("dpsgd.consensus.lian_2017")
EASGD = catalogue.get("easgd.consensus.zhang_2015")
LOCAL = catalogue.get("local_sgd.consensus.stich_2019")


def consensus(X: np.ndarray) -> float:
    return float(np.sqrt(((X - X.mean(axis=0)) ** 2).sum() / X.shape[0]))


def spread(U: np.ndarray) -> float:
    return consensus(U)


def birkhoff(N: int, rng, symmetric: bool) -> np.ndarray:
    """A random doubly-stochastic matrix: a convex combination of permutation matrices
    (symmetrized, it stays doubly stochastic)."""
    w = rng.dirichlet(np.ones(4))
    W = sum(wi * np.eye(N)[rng.permutation(N)] for wi in w)
    W = 0.3 * np.eye(N) + 0.7 * W
    return (W + W.T) / 2 if symmetric else W


def sigma2(W: np.ndarray) -> float:
    N = W.shape[0]
    return float(np.linalg.norm(W - np.full((N, N), 1 / N), 2))


@pytest.mark.parametrize("symmetric", [True, False])
def test_dpsgd_recursion_and_unrolled_bound_hold_on_random_instances(symmetric):
    rng = np.random.default_rng(0 if symmetric else 1)
    for trial in range(40):
        N, d = int(rng.integers(2, 9)), int(rng.integers(1, 6))
        W = birkhoff(N, rng, symmetric)
        assert np.allclose(W.sum(0), 1) and np.allclose(W.sum(1), 1) and (W >= 0).all()
        rho = sigma2(W)
        X = rng.normal(size=(N, d)) * rng.uniform(0, 3)
        c0, cs, ss = consensus(X), [consensus(X)], []
        for t in range(30):
            U = rng.normal(size=(N, d)) * rng.uniform(0, 0.5)
            ss.append(spread(U))
            Xn = W @ X + U                       # x_i <- sum_j W_ij x_j + u_i
            assert consensus(Xn) <= rho * consensus(X) + spread(U) + 1e-12
            X = Xn
            cs.append(consensus(X))
        if rho < 1:
            K = np.arange(1, 31)
            pred = np.asarray(DPSGD.evaluate(rho_W=rho, C0=c0, Su=max(ss), K=K))
            assert np.all(np.asarray(cs[1:]) <= pred * (1 + 1e-12) + 1e-12)


def test_dpsgd_constant_is_attained_along_the_top_singular_vector():
    rng = np.random.default_rng(2)
    for _ in range(20):
        N = int(rng.integers(3, 9))
        W = birkhoff(N, rng, symmetric=bool(rng.integers(0, 2)))
        M = W - np.full((N, N), 1 / N)
        _, s, Vt = np.linalg.svd(M)
        v = Vt[0]                                # ⊥ 1: M's null space contains 1
        assert abs(v.sum()) < 1e-9
        X = np.outer(v, rng.normal(size=3))
        ratio = consensus(W @ X) / consensus(X)
        assert ratio == pytest.approx(sigma2(W), rel=1e-9)
        assert ratio == pytest.approx(float(DPSGD.evaluate(rho_W=sigma2(W), C0=1.0, Su=0.0,
                                                           K=1)), rel=1e-9)


def test_lambda2_is_not_a_per_step_contraction_for_a_non_normal_W():
    """|λ₂| < ‖W − J‖₂ for a non-normal doubly-stochastic W: a bound written with |λ₂| fails
    at the first step from the worst disagreement."""
    rng = np.random.default_rng(3)
    found = 0
    for _ in range(200):
        N = int(rng.integers(3, 7))
        W = birkhoff(N, rng, symmetric=False)
        ev = sorted(np.abs(np.linalg.eigvals(W)), reverse=True)
        lam2 = float(ev[1])
        if sigma2(W) <= lam2 * 1.05 or sigma2(W) >= 1:
            continue
        _, _, Vt = np.linalg.svd(W - np.full((N, N), 1 / N))
        X = np.outer(Vt[0], [1.0])
        c1 = consensus(W @ X)
        wrong = float(DPSGD.evaluate(rho_W=lam2, C0=consensus(X), Su=0.0, K=1))
        right = float(DPSGD.evaluate(rho_W=sigma2(W), C0=consensus(X), Su=0.0, K=1))
        assert c1 > wrong * (1 + 1e-6)
        assert c1 <= right * (1 + 1e-12)
        found += 1
    assert found >= 5


def test_lian_squared_rho_is_the_factor_of_the_squared_distance_only():
    """Ring of 4 (weights 1/3): ρ_W = 1/3; Lian et al.'s ρ = max(|λ₂|, |λ_N|)² = 1/9 bounds
    c² per step, not c. Used for c, it fails on the slowest eigenvector."""
    N = 4
    W = np.zeros((N, N))
    for i in range(N):
        for j in (i - 1, i, i + 1):
            W[i, j % N] += 1 / 3
    lam = np.linalg.eigvalsh(W)
    rho_lian = max(abs(lam[0]), abs(sorted(lam)[-2])) ** 2
    assert sigma2(W) == pytest.approx(1 / 3) and rho_lian == pytest.approx(1 / 9)
    v = np.linalg.eigh(W)[1][:, np.argsort(-np.abs(lam))[1]]
    X = np.outer(v, [1.0, -2.0])
    c1 = consensus(W @ X)
    assert c1 == pytest.approx(consensus(X) / 3)
    assert c1 ** 2 <= rho_lian * consensus(X) ** 2 * (1 + 1e-12)
    assert c1 > float(DPSGD.evaluate(rho_W=rho_lian, C0=consensus(X), Su=0.0, K=1))


def test_easgd_recursion_is_attained_and_holds():
    rng = np.random.default_rng(4)
    for _ in range(40):
        N, d = int(rng.integers(2, 9)), int(rng.integers(1, 5))
        a = float(rng.uniform(0.01, 1.0)) / N     # the center's own update is stable for a < 2/N
        X = rng.normal(size=(N, d))
        center = rng.normal(size=d)
        c0, cs, ss = consensus(X), [], []
        for t in range(25):
            U = rng.normal(size=(N, d)) * rng.uniform(0, 0.3)
            ss.append(spread(U))
            Xn = X + U - a * (X - center)
            center = center + a * (X - center).sum(axis=0)
            assert consensus(Xn) <= (1 - a) * consensus(X) + spread(U) + 1e-12
            X = Xn
            cs.append(consensus(X))
        pred = np.asarray(EASGD.evaluate(alpha_ea=a, C0=c0, Su=max(ss), K=np.arange(1, 26)))
        assert np.all(np.asarray(cs) <= pred * (1 + 1e-12) + 1e-12)
        # no local steps: the disagreement shrinks by exactly (1 - a) per step
        X = rng.normal(size=(N, d))
        Xn = X - a * (X - center)
        assert consensus(Xn) == pytest.approx((1 - a) * consensus(X), rel=1e-9)


def test_local_sgd_drift_and_reset():
    rng = np.random.default_rng(5)
    for _ in range(30):
        N, d, H = int(rng.integers(2, 7)), int(rng.integers(1, 5)), int(rng.integers(1, 8))
        X = rng.normal(size=(N, d)) * rng.uniform(0, 1)
        c0, cs, ss = consensus(X), [], []
        for t in range(40):
            U = rng.normal(size=(N, d)) * rng.uniform(0, 0.3)
            ss.append(spread(U))
            X = X + U
            if (t + 1) % H == 0:
                X = np.broadcast_to(X.mean(axis=0), X.shape).copy()
            cs.append(consensus(X))
        K = np.arange(1, 41)
        pred = np.asarray(LOCAL.evaluate(H=H, C0=c0, Su=max(ss), K=K))
        assert np.all(np.asarray(cs) <= pred * (1 + 1e-12) + 1e-12)
        assert np.all(pred[K % H == 0] == 0)
    # attained: identical steps on a line, one rank against the rest
    U = np.zeros((2, 1))
    U[0], U[1] = 1.0, -1.0
    X = np.zeros((2, 1))
    for t in range(3):
        X = X + U
    assert consensus(X) == pytest.approx(float(LOCAL.evaluate(H=5, C0=0.0, Su=spread(U), K=3)))
