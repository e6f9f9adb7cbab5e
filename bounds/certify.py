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
from typing import Callable, Iterable

from . import pep
from .bound import Bound
from .errors import InvalidValueError

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

    def to_dict(self) -> dict:
        return {"K": self.K, "params": self.params, "worst_case": self.worst_case,
                "bound": self.bound, "ratio": self.ratio, "status": self.status,
                "solver": self.solver, "exact": self.exact, "solver_status": self.solver_status}


@dataclass(frozen=True)
class CheckResult:
    id: str
    rows: tuple
    valid: bool              # no row below the worst case beyond tolerance
    tight_ok: bool | None    # for bounds marked tight: every row matches
    certifies: bool          # passing proves the bound on these points
    complete: bool           # every solve was optimal and exact
    note: str = ""
    spec: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.valid and self.complete and self.tight_ok is not False

    def to_dict(self) -> dict:
        return {"id": self.id, "rows": [r.to_dict() for r in self.rows], "valid": self.valid,
                "tight_ok": self.tight_ok, "certifies": self.certifies, "complete": self.complete,
                "passed": self.passed, "note": self.note, "spec": self.spec,
                "tolerance": {"valid_rel": REL_TOL, "tight_rel": TIGHT_TOL}}


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


def check_bound(bound: Bound, horizons: Iterable[int] = range(1, 11), *, solver: str = "clarabel",
                points: Iterable[dict] | None = None) -> CheckResult:
    """Check a catalogue bound against exact worst cases at every horizon and parameter point."""
    spec = SPECS.get(bound.id)
    if spec is None:
        raise InvalidValueError(
            f"no PEP formulation for {bound.id!r}: PEP checks deterministic bounds of fixed-step "
            f"methods; checkable ids: {', '.join(sorted(SPECS))}")
    needed = sorted(spec.points[0])
    rows = []
    for p in (spec.points if points is None else tuple(points)):
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
            w = pep.worst_case(method, fc, spec.metric, spec.initial(p), solver=solver,
                               certificate=False)
            b = float(bound.evaluate(**used, K=int(K)))
            status, ratio = compare(w, b, bound.tight)
            rows.append(CheckRow(int(K), dict(p), w.value, b, ratio, status, solver,
                                 w.exact, w.status))
    valid = all(r.status != "invalid" for r in rows)
    tight_ok = None if not bound.tight else all(r.status == "tight" for r in rows)
    complete = all(r.exact and r.solver_status == "optimal" for r in rows)
    return CheckResult(bound.id, tuple(rows), valid, tight_ok, spec.certifies, complete,
                       note=spec.note,
                       spec={"class": spec.function_class, "metric": spec.metric})


def check_claim(claim_rhs, method_factory: Callable[[int], pep.FixedStepMethod],
                function_class: pep.FunctionClass, metric: str, initial: dict,
                horizons: Iterable[int], values: dict, *, solver: str = "clarabel"):
    """Check a user's claim ``metric <= claim_rhs`` (a sympy expression from the safe parser)."""
    import sympy as sp

    from .symbols import SYMBOLS

    rows = []
    for K in horizons:
        w = pep.worst_case(method_factory(int(K)), function_class, metric, initial,
                           solver=solver, certificate=False)
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
        status, ratio = compare(w, b, tight=False)
        rows.append(CheckRow(int(K), dict(values), w.value, b, ratio, status, solver, w.exact,
                             w.status))
    valid = all(r.status != "invalid" for r in rows)
    complete = all(r.exact and r.solver_status == "optimal" for r in rows)
    return CheckResult("claim", tuple(rows), valid, None, True, complete)
