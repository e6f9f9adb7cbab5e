"""Exhaustive search for the 3-node network in the plane (d = 2): an ε-free, solver-free check.

For n points in general position in R², every dichotomy {x : w·x + c > 0} that a line cuts is
met by the following construction: take the line through two points x_i, x_j, then rotate it
slightly about the midpoint (x_i and x_j go to opposite sides, either way round) or shift it
slightly (both to the same side, either side), and take either orientation. Proof of
completeness: given a strict separator of a dichotomy with both sides non-empty, translate it
until it touches a point and rotate it about that point until it touches a second one; no
label changed, and the two touching points' labels are one of the four assignments made
above. With the two constant dichotomies this lists all ``n² − n + 2`` of them (Cover 1965).
Each listed dichotomy is *computed from explicit weights*, so every one is realisable.

The best pair of dichotomies for AND output, and for every threshold output table, is then
found by matrix products over all pairs: O(K²·n) with K ≈ n² — polynomial for fixed d,
which is Megiddo's observation that the problem is only hard when d grows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .errors import StudyInputError
from .network import AND, LTF_TABLES, Network, check_data

MAX_EXHAUSTIVE_POINTS = 40


@dataclass(frozen=True)
class ExhaustiveResult:
    """The optimum ``errors`` (exact), a network attaining it, how many dichotomies were listed."""

    errors: int
    network: Network
    n_dichotomies: int
    time: float
    output: str

    def to_dict(self) -> dict:
        return {"errors": self.errors, "n_dichotomies": self.n_dichotomies, "time_s": self.time,
                "output": self.output, "network": self.network.to_dict()}


def _check_general_position(X: np.ndarray) -> None:
    n = X.shape[0]
    scale = max(1.0, float(np.abs(X).max()))
    diff = X[None, :, :] - X[:, None, :]
    if n >= 2 and np.min(np.linalg.norm(diff, axis=2)[np.triu_indices(n, 1)]) <= 1e-9 * scale:
        raise StudyInputError("exhaustive search needs distinct points; X has duplicates")
    for i in range(n):
        u = diff[i]  # x_j − x_i
        cross = u[:, None, 0] * u[None, :, 1] - u[:, None, 1] * u[None, :, 0]
        cross[i, :] = cross[:, i] = np.inf
        np.fill_diagonal(cross, np.inf)
        if np.min(np.abs(cross)) <= 1e-9 * scale ** 2:
            raise StudyInputError("exhaustive search needs points in general position "
                                  "(no three collinear); perturb X slightly")


def halfplane_dichotomies(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All dichotomies of planar points in general position by open half-planes.

    Returns ``(D, w, c)``: ``D`` is K×n boolean with ``D[k] = (X @ w[k] + c[k] > 0)`` evaluated
    in floating point from the explicit weights, rows distinct.
    """
    n = X.shape[0]
    ws, cs = [np.zeros(2), np.zeros(2)], [1.0, -1.0]  # constants: all on, all off
    for i in range(n):
        for j in range(i + 1, n):
            u = X[j] - X[i]
            nrm = np.array([-u[1], u[0]])
            f = X @ nrm - nrm @ X[i]
            others = np.ones(n, bool)
            others[[i, j]] = False
            m = np.min(np.abs(f[others])) if others.any() else 1.0
            p0 = (X[i] + X[j]) / 2
            along = np.abs((X - p0) @ u).max()
            delta = m / (2 * along) if along > 0 else 1.0
            for w, c in ((nrm + delta * u, -nrm @ X[i] - delta * u @ p0),
                         (nrm - delta * u, -nrm @ X[i] + delta * u @ p0),
                         (nrm, -nrm @ X[i] + m / 2), (nrm, -nrm @ X[i] - m / 2)):
                ws += [w, -w]
                cs += [c, -c]
    W, C = np.array(ws), np.array(cs)
    G = X @ W.T + C  # n × K
    if np.any(G == 0):
        raise StudyInputError("a constructed line passes exactly through a point; the points "
                              "are too close to degenerate for exhaustive search")
    D = (G > 0).T
    _, keep = np.unique(np.packbits(D, axis=1), axis=0, return_index=True)
    keep = np.sort(keep)
    return D[keep], W[keep], C[keep]


def _quadrant_counts(D: np.ndarray, mask: np.ndarray) -> dict[int, np.ndarray]:
    """K×K counts of the masked points in each quadrant (index 2*h1 + h2) for every pair."""
    A = D[:, mask].astype(np.float64)
    total = float(mask.sum())
    c11 = A @ A.T
    c10 = A.sum(axis=1)[:, None] - c11
    c01 = A.sum(axis=1)[None, :] - c11
    return {3: c11, 2: c10, 1: c01, 0: total - c11 - c10 - c01}


def exhaustive_train(X, y, output: str = "and") -> ExhaustiveResult:
    """Minimum number of misclassified points, by listing every pair of half-plane dichotomies.

    Exact (no margin, no solver, no tolerance) for d = 2 and points in general position,
    ``n ≤ 40``; ``output`` is ``"and"`` or ``"threshold"`` (any of the 14 threshold tables).
    Guarantee: ``result.network.errors(X, y) == result.errors`` and no network of that output
    class does better.
    """
    X, y = check_data(X, y)
    if X.shape[1] != 2:
        raise StudyInputError(f"exhaustive search is implemented for d = 2, got d = {X.shape[1]}")
    if X.shape[0] > MAX_EXHAUSTIVE_POINTS:
        raise StudyInputError(f"exhaustive search is limited to n <= {MAX_EXHAUSTIVE_POINTS}, "
                              f"got n = {X.shape[0]}")
    if output not in ("and", "threshold"):
        raise StudyInputError(f"output must be 'and' or 'threshold', got {output!r}")
    t0 = time.perf_counter()
    _check_general_position(X)
    D, W, C = halfplane_dichotomies(X)
    pos = _quadrant_counts(D, y == 1)
    neg = _quadrant_counts(D, y == -1)
    tables = [AND] if output == "and" else list(LTF_TABLES)
    best = None
    for table in tables:
        # an error is a + point in a quadrant mapped to 0, or a − point in one mapped to 1
        err = sum(neg[q] if table[q] else pos[q] for q in range(4))
        k = int(np.argmin(err))
        val = int(round(err.flat[k]))
        if best is None or val < best[0]:
            best = (val, table, np.unravel_index(k, err.shape))
    val, table, (k1, k2) = best
    net = Network(np.stack([W[k1], W[k2]]), np.array([C[k1], C[k2]]), tuple(table))
    if net.errors(X, y) != val:
        raise RuntimeError("exhaustive search: pair count disagrees with the network's errors")
    return ExhaustiveResult(val, net, int(D.shape[0]), time.perf_counter() - t0, output)
