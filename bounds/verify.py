r"""Exact re-check of a PEP certificate or counterexample, with the standard library only.

A reviewer should not have to trust a solver, numpy or this package's PEP code to accept a
``check`` result, so this module rebuilds the problem from the JSON document alone in rational
arithmetic (:mod:`fractions`) and checks it; it imports nothing else (a test runs it where
``import cvxpy`` fails).

The document (``format`` = ``approx-audit-pep/1``) states the problem in the caller's units:
function class (``L``, ``mu``), the method's step matrix ``A`` (``x_{i+1} = x_0 - (1/L)
sum_{j<=i} A[i][j] g_j``; the exact rationals of the doubles used), metric, initial
conditions and the claim. Everything is checked in the scaled units L = 1, R = 1 (or
Delta = 1); the metric scale is recomputed here. Points are ``x_0..x_N`` and, when the class has
a minimizer, ``x* = `` index ``N + 1`` with ``g* = 0`` and ``f* = 0``.

* ``proof``: multipliers ``lam_ij >= 0`` of the interpolation inequalities (Taylor, Hendrickx &
  Glineur 2017, Thm 4), ``tau >= 0`` of the initial conditions, ``nu >= 0`` (sum 1) of the
  objective terms. Checked: the function values cancel exactly; the residual quadratic form
  ``S`` is positive semidefinite by an exact LDL^T; ``sum tau r <= claim * factor``. Then for
  every function of the class, ``metric <= claim * factor``.
* ``counterexample``: ``x_0``, ``g_0..g_N``, ``f_0..f_N`` (scaled units; ``x = R x~``,
  ``g = L R g~``, ``f = L R^2 f~``); the iterates are recomputed from the method; checked:
  every pair's interpolation inequality and every initial condition hold exactly (so a
  function of the class through these points exists) and the metric exceeds the claim.
"""

from __future__ import annotations

import json
from fractions import Fraction

FORMAT = "approx-audit-pep/1"
CLASSES = ("smooth-convex", "smooth-strongly-convex", "smooth-nonconvex")
METRICS = ("f-gap", "dist", "grad", "min-grad", "min-grad-before")
INITIALS = ("distance", "gap", "gap-last")


class Malformed(ValueError):
    """The document does not describe a checkable certificate."""


def q(v) -> Fraction:
    """A rational from ``"p/q"``, ``"p"`` or an int; floats are refused (they are not exact)."""
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise Malformed(f"expected a rational as a string 'p/q' or an int, got {v!r}")
    try:
        return Fraction(v)
    except (ValueError, ZeroDivisionError):
        raise Malformed(f"not a rational: {v!r}") from None


def qs(v: Fraction) -> str:
    """The string form :func:`q` reads back."""
    return str(v)


class Problem:
    """The scaled problem a document describes: constants, method, and the forms' pieces."""

    def __init__(self, p: dict):
        if not isinstance(p, dict):
            raise Malformed("'problem' must be an object")
        self.kind = p.get("class")
        if self.kind not in CLASSES:
            raise Malformed(f"unknown class {self.kind!r}")
        self.L, self.mu = q(p.get("L")), q(p.get("mu", 0))
        if self.L <= 0 or (self.kind == "smooth-strongly-convex" and not 0 < self.mu < self.L):
            raise Malformed("need L > 0 (and 0 < mu < L for strongly convex)")
        self.c = Fraction(-1) if self.kind == "smooth-nonconvex" else self.mu / self.L
        self.metric = p.get("metric")
        if self.metric not in METRICS:
            raise Malformed(f"unknown metric {self.metric!r}")
        self.A = _matrix(p.get("method", {}).get("coefficients") if isinstance(p.get("method"), dict) else None)
        self.N = len(self.A)
        self.initial = _initial(p.get("initial"))
        self.has_star = self.kind != "smooth-nonconvex" or "gap" in self.initial
        self.star = self.N + 1 if self.has_star else None
        self.claim = q(p.get("claim"))
        self._units()

    def _units(self) -> None:
        ini = self.initial
        if "distance" in ini:
            sx2 = ini["distance"] ** 2
            sf = self.L * sx2
        else:
            sf = ini.get("gap", ini.get("gap-last"))
            sx2 = sf / self.L
        self.r = {k: (v * v / sx2 if k == "distance" else v / sf) for k, v in ini.items()}
        self.metric_scale = {"f-gap": sf, "dist": sx2}.get(self.metric, self.L ** 2 * sx2)
        self.claim_scaled = self.claim / self.metric_scale

    @property
    def m(self) -> int:
        return self.N + 1 + (1 if self.has_star else 0)

    def objective_terms(self):
        """Each term as (f index or None, 'x'/'g' vector index or None): f_N, ||x_N||^2, ||g_i||^2."""
        N = self.N
        if self.metric == "f-gap":
            return [("f", N)]
        if self.metric == "dist":
            return [("x", N)]
        if self.metric == "grad":
            return [("g", N)]
        return [("g", i) for i in range(N + 1 if self.metric == "min-grad" else N)]


def _matrix(rows) -> list:
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise Malformed("method.coefficients must be a non-empty square matrix")
    A = [[q(v) for v in r] for r in rows]
    N = len(A)
    if any(len(r) != N for r in A):
        raise Malformed("method.coefficients must be square")
    if any(A[i][j] != 0 for i in range(N) for j in range(i + 1, N)):
        raise Malformed("method.coefficients must be lower-triangular")
    return A


def _initial(ini) -> dict:
    if not isinstance(ini, dict) or not ini:
        raise Malformed("'initial' must be a non-empty object")
    out = {}
    for k, v in ini.items():
        if k not in INITIALS:
            raise Malformed(f"unknown initial condition {k!r}")
        out[k] = q(v)
        if out[k] <= 0:
            raise Malformed(f"initial condition {k} must be > 0")
    return out


# ---------------------------------------------------------------------------------------------
# sparse rational vectors (dict index -> Fraction) and the forms
# ---------------------------------------------------------------------------------------------


def _axpy(a: Fraction, x: dict, y: dict) -> dict:
    out = dict(y)
    for k, v in x.items():
        s = out.get(k, 0) + a * v
        if s:
            out[k] = s
        else:
            out.pop(k, None)
    return out


def _basis(P: Problem):
    """Points and gradients as sparse vectors over a basis of the Gram matrix: ``x_0..x_N, g_N``
    when every step uses its latest gradient (sparse for short recurrences), else
    ``x_0, g_0..g_N``. Either is an invertible change of variables: PSD-ness is the same."""
    N, A = P.N, P.A
    if all(A[i][i] != 0 for i in range(N)):
        X = [{i: Fraction(1)} for i in range(N + 1)]
        Gs = []
        for i in range(N):   # A[i][i] g_i = -(x_{i+1} - x_0) - sum_{j<i} A[i][j] g_j
            v = _axpy(Fraction(-1), X[i + 1], X[0])
            for j in range(i):
                if A[i][j]:
                    v = _axpy(-A[i][j], Gs[j], v)
            Gs.append({k: w / A[i][i] for k, w in v.items()})
        Gs.append({N + 1: Fraction(1)})
    else:
        Gs = [{1 + i: Fraction(1)} for i in range(N + 1)]
        X = [{0: Fraction(1)}]
        for i in range(N):
            v = {0: Fraction(1)}
            for j in range(i + 1):
                if A[i][j]:
                    v = _axpy(-A[i][j], Gs[j], v)
            X.append(v)
    if P.has_star:
        X.append({})
        Gs.append({})
    return X, Gs, N + 2


def _add_outer(S: list, a: Fraction, u: dict, v: dict) -> None:
    """S += a (u v^T + v u^T) / 2."""
    h = a / 2
    for i, ui in u.items():
        for j, vj in v.items():
            t = h * ui * vj
            S[i][j] += t
            S[j][i] += t


def _pair_quadratic(S: list, w: Fraction, P: Problem, X, Gs, i: int, j: int) -> None:
    """S += w Q_ij, the quadratic part of f_i - f_j - <Q_ij, G> >= 0 (L = 1, curvature c)."""
    c = P.c
    k = 1 / (2 * (1 - c))
    dx = _axpy(Fraction(-1), X[j], X[i])
    dg = _axpy(Fraction(-1), Gs[j], Gs[i])
    _add_outer(S, w, Gs[j], dx)
    _add_outer(S, w * k, dg, dg)
    if c:
        _add_outer(S, w * k * c, dx, dx)
        _add_outer(S, -2 * w * k * c, dg, dx)


def psd_ldlt(S: list) -> tuple[bool, str]:
    """Exact LDL^T: positive semidefinite iff every pivot is >= 0 and a zero pivot's column is
    zero (else a 2 x 2 principal minor is negative). Works on the lower triangle."""
    n = len(S)
    M = [row[:] for row in S]
    for k in range(n):
        d = M[k][k]
        if d < 0:
            return False, f"pivot {k} is negative ({float(d):.3e})"
        if d == 0:
            if any(M[i][k] != 0 for i in range(k + 1, n)):
                return False, f"pivot {k} is zero with a nonzero column"
            continue
        for i in range(k + 1, n):
            if not M[i][k]:
                continue
            li = M[i][k] / d
            row = M[i]
            for j in range(k + 1, i + 1):
                if M[j][k]:
                    row[j] -= li * M[j][k]
    return True, "LDL^T pivots all >= 0"


# ---------------------------------------------------------------------------------------------
# proofs and counterexamples
# ---------------------------------------------------------------------------------------------


def _check_proof(P: Problem, d: dict) -> tuple[str, str]:
    factor = q(d.get("factor", "1"))
    if factor < 1:
        raise Malformed("the inflation factor must be >= 1")
    X, Gs, n = _basis(P)
    S = [[Fraction(0)] * n for _ in range(n)]
    fbal = [Fraction(0)] * (P.N + 1)
    for item in d.get("pairs", []):
        if not (isinstance(item, list) and len(item) == 3):
            raise Malformed("each pair is [i, j, multiplier]")
        i, j, w = _index(item[0], P), _index(item[1], P), q(item[2])
        if i == j or w < 0:
            raise Malformed(f"pair ({i}, {j}): need i != j and a multiplier >= 0")
        _pair_quadratic(S, w, P, X, Gs, i, j)
        if i <= P.N:
            fbal[i] += w
        if j <= P.N:
            fbal[j] -= w
    nus = [q(v) for v in d.get("objective", [])]
    terms = P.objective_terms()
    if len(nus) != len(terms) or any(v < 0 for v in nus) or sum(nus) != 1:
        raise Malformed(f"'objective' needs {len(terms)} multipliers >= 0 summing to 1")
    for nu, (kind, i) in zip(nus, terms):
        if kind == "f":
            fbal[i] += nu
        else:
            v = (X if kind == "x" else Gs)[i]
            _add_outer(S, -nu, v, v)
    taus = d.get("initial", {})
    if not isinstance(taus, dict) or set(taus) != set(P.initial):
        raise Malformed(f"'initial' needs a multiplier for each of {sorted(P.initial)}")
    bound = Fraction(0)
    for k, v in taus.items():
        tau = q(v)
        if tau < 0:
            raise Malformed("initial-condition multipliers must be >= 0")
        bound += tau * P.r[k]
        if k == "distance":
            _add_outer(S, tau, X[0], X[0])
        else:
            fbal[0] -= tau
            if k == "gap-last":
                fbal[P.N] += tau
    _extra(P, d.get("extra", []), S, fbal, Gs)
    if any(fbal):
        bad = next(i for i, v in enumerate(fbal) if v)
        return "malformed", f"the function values do not cancel (f_{bad} has {fbal[bad]})"
    target = P.claim_scaled * factor
    if bound > target:
        return "malformed", f"sum tau r = {float(bound):.12g} exceeds claim x factor = {float(target):.12g}"
    ok, why = psd_ldlt(S)
    if not ok:
        return "malformed", f"the residual matrix is not PSD: {why}"
    return "proved", (f"metric <= claim x {factor} for every function of the class "
                      f"(exact: values cancel, residual {n}x{n} PSD by LDL^T, sum tau r <= bound)")


def _extra(P: Problem, extra, S, fbal, Gs) -> None:
    """f_i - f* >= ||g_i||^2 / (2L): valid when x* is a minimizer (used by relaxations)."""
    if extra and not P.has_star:
        raise Malformed("'extra' inequalities need x*")
    for item in extra:
        if not (isinstance(item, list) and len(item) == 2):
            raise Malformed("each extra is [i, multiplier]")
        i, w = _index(item[0], P), q(item[1])
        if w < 0 or i > P.N:
            raise Malformed("extra: need a point 0..N and a multiplier >= 0")
        fbal[i] += w
        _add_outer(S, w / 2, Gs[i], Gs[i])


def _index(v, P: Problem) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < P.m:
        raise Malformed(f"point index {v!r} out of range 0..{P.m - 1}")
    return v


def _vec(v, d=None) -> list:
    if not isinstance(v, list) or (d is not None and len(v) != d):
        raise Malformed("vectors must be lists of the same length")
    return [q(x) for x in v]


def _dot(u, v) -> Fraction:
    return sum((a * b for a, b in zip(u, v)), Fraction(0))


def _check_counterexample(P: Problem, d: dict) -> tuple[str, str]:
    if P.kind == "smooth-nonconvex" and P.has_star:
        raise Malformed("counterexamples need an exact interpolation class (not the relaxation)")
    x0 = _vec(d.get("x0"))
    dim = len(x0)
    g = d.get("g")
    if not isinstance(g, list) or len(g) != P.N + 1:
        raise Malformed(f"'g' must list N + 1 = {P.N + 1} gradients")
    g = [_vec(v, dim) for v in g]
    f = _vec(d.get("f"), P.N + 1)
    xs = [x0]
    for i in range(P.N):   # the method's iterates, exactly
        xi = list(x0)
        for j in range(i + 1):
            if P.A[i][j]:
                xi = [a - P.A[i][j] * b for a, b in zip(xi, g[j])]
        xs.append(xi)
    if P.has_star:
        xs.append([Fraction(0)] * dim)
        g = g + [[Fraction(0)] * dim]
        f = f + [Fraction(0)]
    k = 1 / (2 * (1 - P.c))
    for i in range(P.m):
        for j in range(P.m):
            if i == j:
                continue
            dx = [a - b for a, b in zip(xs[i], xs[j])]
            dg = [a - b for a, b in zip(g[i], g[j])]
            rhs = _dot(g[j], dx) + k * (_dot(dg, dg) + P.c * _dot(dx, dx) - 2 * P.c * _dot(dg, dx))
            if f[i] - f[j] < rhs:
                return "malformed", f"interpolation inequality ({i}, {j}) fails by {float(rhs - f[i] + f[j]):.3e}"
    init = {"distance": _dot(xs[0], xs[0]), "gap": f[0], "gap-last": f[0] - f[P.N]}
    for name, r in P.r.items():
        if init[name] > r:
            return "malformed", f"initial condition {name} fails ({float(init[name]):.12g} > {float(r):.12g})"
    vals = [f[i] if kind == "f" else _dot(*(2 * [(xs if kind == "x" else g)[i]]))
            for kind, i in P.objective_terms()]
    worst = min(vals)
    if worst <= P.claim_scaled:
        return "malformed", (f"the metric {float(worst):.12g} does not exceed the claim "
                             f"{float(P.claim_scaled):.12g} (scaled units)")
    return "refuted", (f"a function of the class through {P.m} points has metric "
                       f"{float(worst * P.metric_scale):.12g} > claim {float(P.claim):.12g} (exact)")


def verify(doc: dict) -> tuple[str, str]:
    """``("proved" | "refuted" | "malformed", one-line reason)`` for a certificate document."""
    try:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise Malformed(f"not an {FORMAT} document")
        P = Problem(doc.get("problem"))
        kind = doc.get("kind")
        if kind == "proof" and isinstance(doc.get("proof"), dict):
            return _check_proof(P, doc["proof"])
        if kind == "counterexample" and isinstance(doc.get("counterexample"), dict):
            return _check_counterexample(P, doc["counterexample"])
        raise Malformed("'kind' must be proof (with 'proof') or counterexample (with 'counterexample')")
    except Malformed as exc:
        return "malformed", str(exc)
    except (TypeError, AttributeError, KeyError, IndexError) as exc:
        return "malformed", f"malformed document: {type(exc).__name__}: {exc}"


def verify_file(path: str) -> tuple[str, str]:
    """:func:`verify` on a JSON file; unreadable or non-JSON files are malformed."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        return "malformed", f"cannot read {path}: {exc}"
    return verify(doc)
