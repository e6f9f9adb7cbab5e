"""Instances: noisy planted 3-node networks, and Blum–Rivest reductions from Set-Splitting.

* :func:`planted_instance` — points drawn from N(0, I_d), labelled by a random 3-node network
  (the *teacher*) and then a fixed number of labels flipped. The teacher's error count is an
  upper bound on the optimum, known without any solver.
* :func:`reduction_instance` — Blum & Rivest's map from a Set-Splitting instance (elements
  ``0..k-1``, subsets ``c_j``) to labelled points of ``{0,1}^k``: the origin is ``+``, each
  unit vector ``e_i`` is ``−``, each subset's indicator is ``+``. With ``gadget=True`` three
  coordinates and six points are appended (``+`` at 101, 011; ``−`` at 100, 010, 001, 111 in
  the new coordinates) that rule out every output function other than AND; then a consistent
  network with *any* threshold output exists iff the instance is splittable
  (Blum & Rivest 1992, Neural Networks 5(1):117–127).
* :func:`set_splitting_brute_force` — the ground truth for small Set-Splitting instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from .errors import StudyInputError
from .network import AND, Network

# Output tables with exactly one or three ones: the non-degenerate threshold outputs
# (AND-type: + points fill one quadrant; OR-type: − points fill one quadrant).
_NONDEGENERATE_LTF = tuple(t for t in ((a, b, c, d) for a in (0, 1) for b in (0, 1)
                                       for c in (0, 1) for d in (0, 1)) if sum(t) in (1, 3))

MAX_BRUTE_FORCE_ELEMENTS = 24


@dataclass(frozen=True)
class Instance:
    """A labelled data set ``X`` (n×d), ``y`` in {+1, −1}^n, with how it was made in ``meta``."""

    name: str
    kind: str  # "planted" or "reduction"
    X: np.ndarray
    y: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        return int(self.X.shape[1])


def planted_instance(n: int, d: int, *, noise: float = 0.1, output: str = "and",
                     seed: int = 0) -> Instance:
    """Points x_i ~ N(0, I_d) labelled by a random teacher network; ``round(noise·n)`` flipped.

    The teacher has unit-norm Gaussian weight vectors; each bias puts its unit "on" for about
    70 % of the points. ``output="and"`` uses AND; ``output="threshold"`` draws one of the eight
    non-degenerate threshold output tables. Guarantee: ``meta["teacher_errors"]`` is exactly the
    number of flipped labels and the teacher (``meta["teacher"]``) attains it, so
    ``OPT ≤ teacher_errors``. Deterministic in ``seed``.
    """
    if n < 1 or d < 1:
        raise StudyInputError(f"planted instance needs n >= 1 and d >= 1, got n={n}, d={d}")
    if not 0 <= noise < 0.5:
        raise StudyInputError(f"noise must lie in [0, 0.5), got {noise}")
    if output not in ("and", "threshold"):
        raise StudyInputError(f"output must be 'and' or 'threshold', got {output!r}")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((2, d))
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    b = -np.quantile(X @ W.T, 0.3, axis=0)
    table = AND if output == "and" else _NONDEGENERATE_LTF[rng.integers(len(_NONDEGENERATE_LTF))]
    teacher = Network(W, b, tuple(int(v) for v in table))
    y = teacher.predict(X)
    flips = int(round(noise * n))
    flipped = np.sort(rng.choice(n, size=flips, replace=False)) if flips else np.zeros(0, int)
    y[flipped] *= -1
    meta = {"n": n, "d": d, "noise": noise, "output": output, "seed": seed,
            "teacher": teacher.to_dict(), "teacher_errors": teacher.errors(X, y),
            "flipped": flipped.tolist()}
    return Instance(f"planted-n{n}-d{d}-s{seed}", "planted", X, y, meta)


def _check_subsets(n_elements: int, subsets) -> tuple[tuple[int, ...], ...]:
    if n_elements < 1:
        raise StudyInputError(f"a Set-Splitting instance needs >= 1 element, got {n_elements}")
    out = []
    for c in subsets:
        c = tuple(sorted({int(i) for i in c}))
        if len(c) < 2:
            raise StudyInputError(f"subset {c} has fewer than 2 elements; the reduction "
                                  "needs subsets of size >= 2")
        if c[0] < 0 or c[-1] >= n_elements:
            raise StudyInputError(f"subset {c} has elements outside 0..{n_elements - 1}")
        out.append(c)
    return tuple(out)


def random_set_splitting(n_elements: int, n_subsets: int, *, subset_size: int = 3,
                         seed: int = 0) -> tuple[tuple[int, ...], ...]:
    """``n_subsets`` distinct random subsets of size ``subset_size`` of ``{0..n_elements-1}``.

    Deterministic in ``seed``. Raises if fewer distinct subsets exist than requested.
    """
    if not 2 <= subset_size <= n_elements:
        raise StudyInputError(f"subset_size must lie in [2, n_elements={n_elements}], "
                              f"got {subset_size}")
    pool = list(combinations(range(n_elements), subset_size))
    if n_subsets > len(pool):
        raise StudyInputError(f"only {len(pool)} distinct subsets of size {subset_size} "
                              f"exist, asked for {n_subsets}")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(pool), size=n_subsets, replace=False))
    return tuple(pool[i] for i in pick)


def set_splitting_brute_force(n_elements: int, subsets) -> tuple[int, ...] | None:
    """A split or ``None``: exhaustive over all 2^(k−1) two-colourings (element k−1 in S2).

    Returns S1 as a sorted tuple (S2 is the complement) such that no subset lies inside S1 or
    inside S2, or ``None`` when no such split exists (the instance is unsplittable).
    Exact for ``n_elements ≤ 24``.
    """
    subsets = _check_subsets(n_elements, subsets)
    if n_elements > MAX_BRUTE_FORCE_ELEMENTS:
        raise StudyInputError(f"brute force handles at most {MAX_BRUTE_FORCE_ELEMENTS} "
                              f"elements, got {n_elements}")
    colourings = np.arange(2 ** (n_elements - 1), dtype=np.int64)  # bit i set: element i in S1
    ok = np.ones(colourings.shape, dtype=bool)
    for c in subsets:
        mask = sum(1 << i for i in c)
        inside = colourings & mask
        ok &= (inside != 0) & (inside != mask)
    hits = np.flatnonzero(ok)
    if hits.size == 0:
        return None
    c = int(colourings[hits[0]])
    return tuple(i for i in range(n_elements) if c >> i & 1)


def reduction_instance(n_elements: int, subsets, *, gadget: bool = True,
                       name: str | None = None) -> Instance:
    """Blum & Rivest's labelled points for a Set-Splitting instance (see the module docstring).

    ``n = 1 + n_elements + len(subsets) (+ 6 with the gadget)`` points in
    ``d = n_elements (+ 3)`` dimensions. Guarantee (Blum & Rivest 1992): a network with AND
    output (without the gadget) or with any threshold output (with it) classifies every point
    correctly iff the instance is splittable.
    """
    subsets = _check_subsets(n_elements, subsets)
    k = n_elements
    d = k + (3 if gadget else 0)
    rows, labels = [np.zeros(d)], [1]
    for i in range(k):
        e = np.zeros(d)
        e[i] = 1.0
        rows.append(e)
        labels.append(-1)
    for c in subsets:
        v = np.zeros(d)
        v[list(c)] = 1.0
        rows.append(v)
        labels.append(1)
    if gadget:
        for tail, lab in (((1, 0, 1), 1), ((0, 1, 1), 1), ((1, 0, 0), -1), ((0, 1, 0), -1),
                          ((0, 0, 1), -1), ((1, 1, 1), -1)):
            v = np.zeros(d)
            v[k:] = tail
            rows.append(v)
            labels.append(lab)
    meta = {"n_elements": k, "subsets": [list(c) for c in subsets], "gadget": gadget}
    return Instance(name or f"reduction-k{k}-m{len(subsets)}{'-g' if gadget else ''}",
                    "reduction", np.array(rows), np.array(labels), meta)


def blum_rivest_network(n_elements: int, split, *, gadget: bool = True) -> Network:
    """The consistent AND network Blum & Rivest build from a split ``S1`` (S2 = complement).

    Unit k has weight −1 on the elements of S_k and ``n_elements`` on the others, threshold
    −1/2 (i.e. bias +1/2); with the gadget, unit 1 adds (+1, +1, −1) and unit 2 (−1, −1, +1)
    on the three extra coordinates. It misclassifies no point of
    ``reduction_instance(n_elements, subsets, gadget=gadget)`` whenever ``split`` splits them.
    """
    k = n_elements
    s1 = {int(i) for i in split}
    d = k + (3 if gadget else 0)
    W = np.full((2, d), float(k))
    for i in range(k):
        W[0 if i in s1 else 1, i] = -1.0
    if gadget:
        W[0, k:] = (1.0, 1.0, -1.0)
        W[1, k:] = (-1.0, -1.0, 1.0)
    return Network(W, np.array([0.5, 0.5]), AND)


def all_subsets_instance(n_elements: int, size: int) -> tuple[tuple[int, ...], ...]:
    """All ``size``-subsets of ``n_elements`` elements: splittable iff ``n_elements ≤ 2(size − 1)``.

    (Pigeonhole: a split avoids a monochromatic subset iff both colour classes have at most
    ``size − 1`` elements.) E.g. all 3-subsets of 5 elements is unsplittable, of 4 splittable.
    """
    return tuple(combinations(range(n_elements), size))


#: The Fano plane: 7 points, 7 lines of 3 — a classic 3-uniform hypergraph that is not 2-colourable.
FANO_PLANE = ((0, 1, 2), (0, 3, 4), (0, 5, 6), (1, 3, 5), (1, 4, 6), (2, 3, 6), (2, 4, 5))
