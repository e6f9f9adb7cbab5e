"""Checking deterministic bounds against PEP worst cases: the catalogue's and users' claims.

A deterministic upper bound ``B(K, constants)`` on a metric is *valid* at a horizon when it is
at least the exact worst case ``W(K)`` over the function class (less the solver's tolerance,
``REL_TOL`` relative); a bound marked tight must equal it (``TIGHT_TOL`` relative). A catalogue
bound whose check passes at every horizon and parameter point tried, through a formulation that
*certifies* it (the PEP's class and initial condition are exactly the theorem's, or a superset
of its functions), carries ``pep`` in its ``verified`` field; the tests enforce both directions.

Some checks are only *necessary*: Karimi et al.'s PL bound is checked on the smooth strongly
convex class, a subset of PL functions, so passing does not prove it; failing would disprove it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Iterable

import numpy as np
import scipy.linalg

from . import pep
from .bound import Bound
from .errors import InvalidValueError
from .verify import FORMAT, qs, verify

REL_TOL = 1e-6      # a bound below the worst case by more than this (relative) is invalid
TIGHT_TOL = 1e-5    # a tight bound must match the worst case to this (relative)


def _fista(K: int) -> pep.FixedStepMethod:
    # y_1 = x_0, t_1 = 1; x_k = y_k - g(y_k)/L; y_{k+1} = x_k + (t_k - 1)/t_{k+1} (x_k - x_{k-1})
    r = pep._Run(K)
    t = 1.0
    x_prev = r.zero()
    y = r.zero()
    pts = [y]
    for k in range(K):
        x = y - r.grad(k)
        if k == K - 1:
            pts.append(x)
            break
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        y = x + (t - 1) / t_next * (x - x_prev)
        x_prev, t = x, t_next
        pts.append(y)
    return pep.FixedStepMethod.from_points(pts, name="fista")


def _bubeck_agd(K: int, q: float | None = None) -> pep.FixedStepMethod:
    # Bubeck (2015) Thm 3.19 / 3.18: y_{t+1} = x_t - g(x_t)/L;
    # x_{t+1} = (1 - gamma_t) y_{t+1} + gamma_t y_t  (gamma_t = (1 - lambda_t)/lambda_{t+1}),
    # or x_{t+1} = (1 + q) y_{t+1} - q y_t; x_1 = y_1; gradients at x_1..x_K, output y_{K+1}.
    r = pep._Run(K)
    lam = [0.0]
    for _ in range(K + 2):
        lam.append((1 + math.sqrt(1 + 4 * lam[-1] ** 2)) / 2)
    x = r.zero()
    y = r.zero()
    pts = [x]
    for t in range(1, K + 1):
        y_new = x - r.grad(t - 1)
        if t == K:
            pts.append(y_new)
            break
        if q is None:
            gamma = (1 - lam[t]) / lam[t + 1]
            x = (1 - gamma) * y_new + gamma * y
        else:
            x = (1 + q) * y_new - q * y
        y = y_new
        pts.append(x)
    return pep.FixedStepMethod.from_points(pts, name="agd-bubeck")


@dataclass(frozen=True)
class CheckSpec:
    """How a catalogue bound maps onto a PEP, and the parameter points it is checked at."""

    method: Callable[[int, dict], pep.FixedStepMethod]
    function_class: str
    metric: str
    initial: Callable[[dict], dict]
    points: tuple                     # parameter dicts (L, R, mu, Delta, eta ...)
    certifies: bool = True
    horizon: Callable[[int], int] = lambda K: K
    note: str = ""


def _gd(K, p):
    return pep.gd(K, p["L"] * p["eta"])


_DIST = lambda p: {"distance": p["R"]}                        # noqa: E731
_DIST_GAP = lambda p: {"distance": p["R"], "gap": p["Delta"]}  # noqa: E731

SPECS: dict[str, CheckSpec] = {
    "gd.smooth_convex.beck_2017": CheckSpec(
        _gd, "smooth-convex", "f-gap", _DIST,
        ({"L": 1.0, "R": 1.0, "eta": 1.0}, {"L": 2.0, "R": 0.5, "eta": 0.25})),
    "gd.smooth_convex.drori_teboulle_2014": CheckSpec(
        _gd, "smooth-convex", "f-gap", _DIST,
        ({"L": 1.0, "R": 1.0, "eta": 1.0}, {"L": 2.0, "R": 0.5, "eta": 0.25})),
    "gd.smooth_convex.nesterov_2018": CheckSpec(
        _gd, "smooth-convex", "f-gap", _DIST_GAP,
        ({"L": 1.0, "R": 1.0, "Delta": 0.5, "eta": 1.0},
         {"L": 1.0, "R": 1.0, "Delta": 0.1, "eta": 1.5})),
    "gd.smooth_nonconvex.beck_2017": CheckSpec(
        _gd, "smooth-nonconvex", "min-grad-before", lambda p: {"gap-last": p["Delta"]},
        ({"L": 1.0, "Delta": 1.0, "eta": 1.0}, {"L": 1.0, "Delta": 1.0, "eta": 1.5}),
        note="checked with f(x_0) - f(x_K) <= Delta, a weaker assumption than "
             "f(x_0) - f* <= Delta (f(x_K) >= f*): a bound above this worst case is certified"),
    "gd.smooth_strongly_convex.beck_2017": CheckSpec(
        _gd, "smooth-strongly-convex", "dist", _DIST,
        ({"L": 1.0, "mu": 0.1, "R": 1.0, "eta": 1.0}, {"L": 1.0, "mu": 0.1, "R": 1.0, "eta": 0.5})),
    "gd.smooth_strongly_convex.beck_2017.gap": CheckSpec(
        _gd, "smooth-strongly-convex", "f-gap", _DIST,
        ({"L": 1.0, "mu": 0.1, "R": 1.0, "eta": 1.0}, {"L": 1.0, "mu": 0.1, "R": 1.0, "eta": 0.5})),
    "gd.smooth_strongly_convex.nesterov_2018": CheckSpec(
        _gd, "smooth-strongly-convex", "dist", _DIST,
        ({"L": 1.0, "mu": 0.1, "R": 1.0, "eta": 2 / 1.1}, {"L": 1.0, "mu": 0.1, "R": 1.0, "eta": 1.0})),
    "gd.smooth_strongly_convex.nesterov_2018.gap": CheckSpec(
        _gd, "smooth-strongly-convex", "f-gap", _DIST,
        ({"L": 1.0, "mu": 0.1, "R": 1.0, "eta": 2 / 1.1}, {"L": 1.0, "mu": 0.1, "R": 1.0, "eta": 1.0})),
    "gd.pl.karimi_2016": CheckSpec(
        _gd, "smooth-strongly-convex", "f-gap", lambda p: {"gap": p["Delta"]},
        ({"L": 1.0, "mu": 0.1, "Delta": 1.0, "eta": 1.0}, {"L": 1.0, "mu": 0.1, "Delta": 1.0, "eta": 1.5}),
        certifies=False,
        note="necessary check only: smooth strongly convex functions are a subset of PL functions"),
    "agd.smooth_convex.bubeck_2015": CheckSpec(
        lambda K, p: _bubeck_agd(K), "smooth-convex", "f-gap", _DIST,
        ({"L": 1.0, "R": 1.0},)),
    "agd.smooth_convex.beck_teboulle_2009": CheckSpec(
        lambda K, p: _fista(K), "smooth-convex", "f-gap", _DIST, ({"L": 1.0, "R": 1.0},)),
    "agd.smooth_strongly_convex.bubeck_2015": CheckSpec(
        lambda K, p: _bubeck_agd(K, q=(1 - math.sqrt(p["mu"] / p["L"])) / (1 + math.sqrt(p["mu"] / p["L"]))),
        "smooth-strongly-convex", "f-gap", _DIST, ({"L": 1.0, "mu": 0.1, "R": 1.0},)),
    "agd.smooth_strongly_convex.daspremont_2021": CheckSpec(
        lambda K, p: pep.fgm_strongly_convex(K, p["mu"] / p["L"]),
        "smooth-strongly-convex", "f-gap", _DIST_GAP,
        ({"L": 1.0, "mu": 0.1, "R": 1.0, "Delta": 0.5}, {"L": 1.0, "mu": 0.1, "R": 1.0, "Delta": 0.05})),
}


@dataclass(frozen=True)
class CheckRow:
    K: int
    params: dict
    worst_case: float
    bound: float
    ratio: float            # worst / bound: tightness (1 = tight; > 1 = invalid)
    status: str             # valid | invalid | tight | not-tight | solver-<status>
    solver: str
    exact: bool
    solver_status: str
    outcome: str = "inconclusive"     # proved | refuted | inconclusive (exactly verified or not)
    factor: str | None = None         # the proof's inflation factor, e.g. "1+1e-09"
    evidence: str = ""                # one line: the certificate, counterexample or the numbers
    document: dict | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"K": self.K, "params": self.params, "worst_case": self.worst_case,
                "bound": self.bound, "ratio": self.ratio, "status": self.status,
                "solver": self.solver, "exact": self.exact, "solver_status": self.solver_status,
                "outcome": self.outcome, "factor": self.factor, "evidence": self.evidence}


@dataclass(frozen=True)
class CheckResult:
    id: str
    rows: tuple
    valid: bool              # no row refuted by a verified counterexample
    tight_ok: bool | None    # for bounds marked tight: every row matches
    certifies: bool          # passing proves the bound on these points
    complete: bool           # every solve was optimal and exact
    note: str = ""
    spec: dict = field(default_factory=dict)

    @property
    def proved(self) -> bool:
        """Every row carries an exactly verified dual certificate."""
        return all(r.outcome == "proved" for r in self.rows)

    @property
    def refuted(self) -> bool:
        """Some row carries an exactly verified counterexample."""
        return any(r.outcome == "refuted" for r in self.rows)

    @property
    def passed(self) -> bool:
        return self.proved and self.tight_ok is not False

    def to_dict(self) -> dict:
        counts = {k: sum(r.outcome == k for r in self.rows)
                  for k in ("proved", "refuted", "inconclusive")}
        return {"id": self.id, "rows": [r.to_dict() for r in self.rows], "valid": self.valid,
                "tight_ok": self.tight_ok, "certifies": self.certifies, "complete": self.complete,
                "proved": self.proved, "outcomes": counts,
                "passed": self.passed, "note": self.note, "spec": self.spec,
                "tolerance": {"tight_rel": TIGHT_TOL, "max_inflation": MAX_INFLATION}}


def compare(worst: pep.WorstCase, bound_value: float, tight: bool) -> tuple[str, float]:
    """The status of one horizon: ``invalid`` when the bound is below the worst case beyond
    ``REL_TOL`` (relative to the worst case)."""
    w = worst.value
    if worst.status not in ("optimal", "unbounded"):
        return f"solver-{worst.status}", float("nan")
    if math.isinf(w):
        return ("invalid" if math.isfinite(bound_value) else "valid"), math.inf
    ratio = w / bound_value if bound_value > 0 else (math.inf if w > 0 else 1.0)
    if bound_value < w - REL_TOL * max(abs(w), 1e-300):
        return "invalid", ratio
    if tight:
        return ("tight" if abs(ratio - 1) <= TIGHT_TOL else "not-tight"), ratio
    return "valid", ratio


def _row(prog: pep.Program, b: float, K: int, params: dict, tight: bool, solver: str) -> CheckRow:
    """One horizon: the numeric comparison for the ratio, the exact evidence for the outcome;
    ``status`` is ``invalid`` only for a verified refutation."""
    w = prog.worst
    _, ratio = compare(w, b, tight)
    ev = decide(prog, b)
    if ev.outcome == "refuted":
        status = "invalid"
    elif ev.outcome == "inconclusive":
        status = "inconclusive"
    elif tight:
        status = "tight" if abs(ratio - 1) <= TIGHT_TOL else "not-tight"
    else:
        status = "valid"
    factor = None if ev.factor is None else _factor_text(ev.factor)
    return CheckRow(K, params, w.value, b, ratio, status, solver, w.exact, w.status,
                    outcome=ev.outcome, factor=factor, evidence=ev.summary, document=ev.document)


def check_bound(bound: Bound, horizons: Iterable[int] = range(1, 11), *, solver: str = "clarabel",
                points: Iterable[dict] | None = None,
                progress: Callable[[int, int], None] | None = None) -> CheckResult:
    """Check a catalogue bound against exact worst cases at every horizon and parameter point;
    ``progress(done, total)`` is called after each solved program (a progress bar)."""
    spec = SPECS.get(bound.id)
    if spec is None:
        raise InvalidValueError(
            f"no PEP formulation for {bound.id!r}: PEP checks deterministic bounds of fixed-step "
            f"methods; checkable ids: {', '.join(sorted(SPECS))}")
    needed = sorted(spec.points[0])
    rows = []
    horizons = [int(K) for K in horizons]
    grid = spec.points if points is None else tuple(points)
    for p in grid:
        missing = [k for k in needed if k not in p]
        if missing:
            raise InvalidValueError(f"checking {bound.id} needs {', '.join(missing)}=VALUE "
                                    f"(it uses {', '.join(needed)})")
        used = {k: v for k, v in p.items() if k in bound.symbols}
        failed = [c for c in bound.conditions(**used) if c.holds is False]
        if failed:
            raise InvalidValueError(
                f"condition {failed[0].condition} of {bound.id} fails at "
                f"{', '.join(f'{k}={v:g}' for k, v in used.items())}: the theorem claims nothing there")
        for K in horizons:
            method = spec.method(int(K), p)
            fc = pep.FunctionClass(spec.function_class, L=p["L"], mu=p.get("mu", 0.0))
            prog = pep.solve_program(method, fc, spec.metric, spec.initial(p), solver=solver)
            b = float(bound.evaluate(**used, K=int(K)))
            rows.append(_row(prog, b, int(K), dict(p), bound.tight, solver))
            if progress is not None:
                progress(len(rows), len(grid) * len(horizons))
    valid = not any(r.outcome == "refuted" for r in rows)
    tight_ok = None if not bound.tight else all(r.status == "tight" for r in rows)
    complete = all(r.exact and r.solver_status == "optimal" for r in rows)
    return CheckResult(bound.id, tuple(rows), valid, tight_ok, spec.certifies, complete,
                       note=spec.note,
                       spec={"class": spec.function_class, "metric": spec.metric})


def check_claim(claim_rhs, method_factory: Callable[[int], pep.FixedStepMethod],
                function_class: pep.FunctionClass, metric: str, initial: dict,
                horizons: Iterable[int], values: dict, *, solver: str = "clarabel",
                progress: Callable[[int, int], None] | None = None):
    """Check a user's claim ``metric <= claim_rhs`` (a sympy expression from the safe parser);
    ``progress(done, total)`` after each solved program."""
    import sympy as sp

    from .symbols import SYMBOLS

    rows = []
    horizons = [int(K) for K in horizons]
    for K in horizons:
        prog = pep.solve_program(method_factory(int(K)), function_class, metric, initial,
                                 solver=solver)
        subs = dict(values)
        subs["K"] = int(K)
        expr = claim_rhs.subs({SYMBOLS[k].symbol if k in SYMBOLS else sp.Symbol(k): v
                               for k, v in subs.items()})
        if expr.free_symbols:
            names = ", ".join(sorted(str(s) for s in expr.free_symbols))
            raise InvalidValueError(f"the claim needs values for: {names} (give NAME=VALUE)")
        b = float(expr)
        if not math.isfinite(b):
            raise InvalidValueError(f"the claim evaluates to {b} at K = {K}")
        rows.append(_row(prog, b, int(K), dict(values), False, solver))
        if progress is not None:
            progress(len(rows), len(horizons))
    valid = not any(r.outcome == "refuted" for r in rows)
    complete = all(r.exact and r.solver_status == "optimal" for r in rows)
    return CheckResult("claim", tuple(rows), valid, None, True, complete)


# --------------------------------------------------------------------------------------------
# Exact evidence: a rounded dual certificate or a rounded counterexample, checked by verify
# --------------------------------------------------------------------------------------------

DEN = 2 ** 40                     # multipliers and coordinates are rounded to this grid
MAX_INFLATION = 1e-4              # the largest factor - 1 a proof may need
INFLATIONS = (0, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4)
TIGHTENINGS = (1e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4)   # relative margins of the counterexample's inequalities


@dataclass(frozen=True)
class Evidence:
    """One row's outcome (proved | refuted | inconclusive), its factor, and the document
    :func:`verify.verify` accepts (None when inconclusive)."""

    outcome: str
    summary: str
    factor: Fraction | None = None
    document: dict | None = None


def _rat(x: float) -> Fraction:
    return Fraction(round(float(x) * DEN), DEN)


def _problem_doc(prog: pep.Program, claim: float) -> dict:
    posed = prog.posed
    A = posed.method.coefficients
    return {"class": posed.cls.kind, "L": qs(Fraction(posed.cls.L)), "mu": qs(Fraction(posed.cls.mu)),
            "method": {"name": posed.method.name,
                       "coefficients": [[qs(Fraction(float(v))) for v in row] for row in A]},
            "metric": posed.metric,
            "initial": {k: qs(Fraction(float(v))) for k, v in posed.initial.items()},
            "claim": qs(Fraction(float(claim)))}


def _columns(posed, pairs) -> list[dict]:
    """Each multiplier's column in the exact equality system (function values, then sum nu)."""
    nF = posed.N + 1
    cols = []
    for i, j in pairs.tolist():
        c = {}
        if i < nF:
            c[i] = 1
        if j < nF:
            c[j] = c.get(j, 0) - 1
        cols.append(c)
    for a, _ in posed.obj_terms:
        cols.append({**{k: int(v) for k, v in enumerate(a) if v}, nF: 1})
    for b, _, _ in posed.init_terms:
        cols.append({k: -int(v) for k, v in enumerate(b) if v})
    for a, _ in posed.extra_terms:
        cols.append({k: int(v) for k, v in enumerate(a) if v})
    return cols


def _restore(cols: list[dict], z: np.ndarray, rows: int) -> list[Fraction] | None:
    """Round ``z`` and re-solve the largest well-conditioned subset exactly so the equalities
    hold in rationals; None when a re-solved multiplier comes out negative."""
    top = float(np.max(np.abs(z))) if len(z) else 0.0
    active = [k for k in range(len(z)) if z[k] > 1e-12 * top]
    M = np.zeros((rows, len(active)))
    for a, k in enumerate(active):
        for r, v in cols[k].items():
            M[r, a] = v
    _, R, piv = scipy.linalg.qr(M * z[active], pivoting=True, mode="economic")
    d = np.abs(np.diag(R))
    rank = int(np.sum(d > 1e-10 * d[0])) if len(d) else 0
    basic = [active[p] for p in piv[:rank]]
    out = [Fraction(0)] * len(z)
    for k in active:
        out[k] = _rat(z[k])
    rhs = [Fraction(0)] * rows
    rhs[rows - 1] = Fraction(1)
    for k in active:
        if k not in basic:
            for r, v in cols[k].items():
                rhs[r] -= v * out[k]
    sol = _gauss([[Fraction(cols[k].get(r, 0)) for k in basic] for r in range(rows)], rhs)
    if sol is None or any(v < 0 for v in sol):
        return None
    for k, v in zip(basic, sol):
        out[k] = v
    return out


def _gauss(M: list, rhs: list) -> list | None:
    """Exact solution of M x = rhs (M has full column rank), or None when inconsistent."""
    rows, n = len(M), len(M[0]) if M else 0
    A = [M[r][:] + [rhs[r]] for r in range(rows)]
    piv_rows = []
    r0 = 0
    for c in range(n):
        p = next((r for r in range(r0, rows) if A[r][c] != 0), None)
        if p is None:
            return None
        A[r0], A[p] = A[p], A[r0]
        inv = 1 / A[r0][c]
        A[r0] = [v * inv for v in A[r0]]
        for r in range(rows):
            if r != r0 and A[r][c] != 0:
                f = A[r][c]
                A[r] = [a - f * b for a, b in zip(A[r], A[r0])]
        piv_rows.append(r0)
        r0 += 1
    if any(A[r][n] != 0 for r in range(r0, rows)):
        return None
    return [A[r][n] for r in piv_rows]


def _dual_vector(d: dict, scale: float) -> np.ndarray:
    return np.r_[d["lam"] / scale, d["nu"], d["tau"] / scale, d["ex"] / scale]


def _proof_doc(prog, claim, z, factor) -> dict | None:
    posed, pairs = prog.posed, prog.solved.pairs
    exact = _restore(_columns(posed, pairs), z, posed.N + 2)
    if exact is None:
        return None
    P, k, n_i = len(pairs), len(posed.obj_terms), len(posed.init_terms)
    lam, nu, tau, ex = exact[:P], exact[P:P + k], exact[P + k:P + k + n_i], exact[P + k + n_i:]
    proof = {"factor": qs(factor),
             "pairs": [[int(i), int(j), qs(w)] for (i, j), w in zip(pairs.tolist(), lam) if w],
             "objective": [qs(v) for v in nu],
             "initial": {name: qs(v) for name, v in zip(posed.initial, tau)},
             "extra": [[i, qs(w)] for i, w in enumerate(ex) if w]}
    return {"format": FORMAT, "kind": "proof", "problem": _problem_doc(prog, claim), "proof": proof}


def _try_proof(prog: pep.Program, claim: float) -> Evidence | None:
    """Mix the optimal dual point with one of positive margin, just enough to fit under
    claim x factor, round it and check it exactly; the smallest factor that passes wins."""
    solved, posed = prog.solved, prog.posed
    top = prog.margin_dual(claim * (1 + MAX_INFLATION))
    if top is None or not top["t"] > 0:
        return None
    r = np.array([rr for _, _, rr in posed.init_terms])
    scale = solved.scale
    z_opt, z_top = _dual_vector(solved.result, scale), _dual_vector(top, scale)
    k = len(solved.pairs) + len(posed.obj_terms)
    v_opt, v_top = (float(r @ z[k:k + len(r)]) for z in (z_opt, z_top))
    c_s = claim / posed.metric_scale
    for delta in INFLATIONS:
        target = c_s * (1 + delta) * (1 - 1e-12)
        theta = 1.0 if v_top <= v_opt else (target - v_opt) / (v_top - v_opt)
        factor = 1 + Fraction(delta).limit_denominator(10 ** 12)
        tries = [] if theta < 0 else [(1 - min(theta, 1.0)) * z_opt + min(theta, 1.0) * z_top]
        for z in tries + [None]:
            if z is None:   # the mixture failed: a margin solve at this very target
                d = prog.margin_dual(claim * (1 + delta) * (1 - 1e-12)) if delta else None
                if d is None or not d["t"] > 0:
                    break
                z = _dual_vector(d, scale)
            doc = _proof_doc(prog, claim, z, factor)
            if doc is not None and verify(doc)[0] == "proved":
                npairs = len(doc["proof"]["pairs"])
                return Evidence("proved", f"proved x {_factor_text(factor)}: {npairs} interpolation "
                                f"multipliers, residual {posed.geo.dim}x{posed.geo.dim} PSD "
                                "(exact LDL^T)", factor, doc)
    return None


def _factor_text(f: Fraction) -> str:
    return "1" if f == 1 else f"(1+{float(f - 1):.0e})"


def _counterexample_doc(prog, claim, t) -> dict:
    geo, N = prog.posed.geo, prog.posed.N
    lam, U = np.linalg.eigh(t["G"])
    keep = lam > 1e-14 * max(float(lam.max()), 1e-300)
    V = U[:, keep] * np.sqrt(lam[keep])
    ce = {"x0": [qs(_rat(v)) for v in geo.X[0] @ V],
          "g": [[qs(_rat(v)) for v in geo.Gr[j] @ V] for j in range(N + 1)],
          "f": [qs(_rat(v)) for v in t["F"][:N + 1]],
          "units": "scaled: x = R x~, g = L R g~, f = L R^2 f~ (or Delta for the gap conditions)"}
    return {"format": FORMAT, "kind": "counterexample", "problem": _problem_doc(prog, claim),
            "counterexample": ce}


def _repair_values(doc: dict) -> bool:
    """Given the rounded points and gradients, the largest function values satisfying every
    interpolation inequality exactly: shortest paths from x* (f* = 0) over the difference
    constraints ``f_j <= f_i - rhs_ij``; False when a negative cycle leaves none (or no x*)."""
    from .verify import Problem, _dot, q

    P = Problem(doc["problem"])
    if not P.has_star or P.kind == "smooth-nonconvex":
        return False
    ce = doc["counterexample"]
    x0, g = [q(v) for v in ce["x0"]], [[q(v) for v in row] for row in ce["g"]]
    xs = [x0]
    for i in range(P.N):
        xs.append([a - sum((P.A[i][j] * g[j][c] for j in range(i + 1)), Fraction(0))
                   for c, a in enumerate(x0)])
    xs.append([Fraction(0)] * len(x0))
    g = g + [[Fraction(0)] * len(x0)]
    m, k, c = P.m, 1 / (2 * (1 - P.c)), P.c
    D = [[Fraction(0)] * m for _ in range(m)]
    for i in range(m):
        for j in range(m):
            if i != j:
                dx = [a - b for a, b in zip(xs[i], xs[j])]
                dg = [a - b for a, b in zip(g[i], g[j])]
                D[i][j] = -(_dot(g[j], dx) + k * (_dot(dg, dg) + c * _dot(dx, dx) - 2 * c * _dot(dg, dx)))
    star, N = m - 1, P.N
    for name, r in P.r.items():
        if name != "distance":
            src = star if name == "gap" else N
            D[src][0] = min(D[src][0], r)
    for w in range(m):
        Dw = D[w]
        for i in range(m):
            a = D[i][w]
            row = D[i]
            for j in range(m):
                t = a + Dw[j]
                if t < row[j]:
                    row[j] = t
    if any(D[i][i] < 0 for i in range(m)):
        return False
    ce["f"] = [qs(D[star][j]) for j in range(N + 1)]
    return True


def _try_refute(prog: pep.Program, claim: float) -> Evidence | None:
    """The worst case with every inequality tightened a little, rounded to rationals and
    checked exactly: all of them still hold and the claim is still exceeded."""
    posed = prog.posed
    if posed.relaxed_note:
        return None
    c_s = claim / posed.metric_scale
    w_s = prog.worst.value / posed.metric_scale
    for rel in TIGHTENINGS:
        t = prog.tightened(rel * w_s)
        if t is None:
            continue
        if t["value"] <= c_s:
            break
        doc = _counterexample_doc(prog, claim, t)
        outcome, why = verify(doc)
        if outcome != "refuted" and _repair_values(doc):
            outcome, why = verify(doc)
        if outcome == "refuted":
            dim = len(doc["counterexample"]["x0"])
            return Evidence("refuted", f"refuted: counterexample in R^{dim} ({why})", None, doc)
    return None


def decide(prog: pep.Program, claim: float) -> Evidence:
    """proved, refuted, or inconclusive with the numbers that were not enough."""
    w = prog.worst
    if w.status not in ("optimal", "optimal_inaccurate") or not math.isfinite(w.value):
        return Evidence("inconclusive", f"inconclusive: solver status {w.status}, value {w.value}")
    if w.value <= claim * (1 + MAX_INFLATION):
        ev = _try_proof(prog, claim)
        if ev is not None:
            return ev
    if w.value > claim:
        ev = _try_refute(prog, claim)
        if ev is not None:
            return ev
    margin = w.value / claim - 1 if claim > 0 else math.inf
    return Evidence("inconclusive", (
        f"inconclusive: numeric worst case {w.value:.10g} vs bound {claim:.10g} (margin "
        f"{margin:+.2e}), solver {w.solver} {w.status}, max violation {w.max_violation:.1e}; no "
        f"exact certificate up to x (1+{MAX_INFLATION:.0e}) and no exact counterexample"))
