"""``Bound``: one theorem's guarantee as a frozen, evaluable, printable value."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Literal, Mapping

import numpy as np
import sympy as sp

from . import symbols as S
from .assumptions import ASSUMPTIONS
from .citation import Citation
from .errors import (ApproxAuditError, InvalidValueError, MissingValueError,
                     UnreachableTargetError)
from .quantities import Quantity
from .symbols import sympy_sign

ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*(\.[a-z0-9_]+)?$")
VERIFICATION_KINDS = ("literature", "derivation", "pep", "calibration")
Kind = Literal["upper", "lower"]
Monotone = Literal["decreasing", "increasing", "constant"]

# Largest horizon iterations_to searches before declaring a target unreachable.
_MAX_K = 2**62


@dataclass(frozen=True)
class ConditionResult:
    """Whether one condition holds at given values, and by how much.

    ``slack`` is ``rhs - lhs`` for ``lhs <= rhs`` (positive: holds with room). ``ratio`` is
    ``lhs / rhs``: "eta = 0.1 exceeds 1/L = 0.031 by 3.2x" reads ``ratio = 3.2``. Where a
    value is missing, ``holds`` is ``None`` and ``missing`` names what is needed.
    """

    condition: str
    holds: bool | None
    slack: float | None = None
    lhs: float | None = None
    rhs: float | None = None
    missing: tuple[str, ...] = ()

    @property
    def ratio(self) -> float | None:
        if self.lhs is None or self.rhs in (None, 0.0):
            return None
        return self.lhs / self.rhs

    def to_dict(self) -> dict:
        return {
            "condition": self.condition,
            "holds": self.holds,
            "slack": self.slack,
            "lhs": self.lhs,
            "rhs": self.rhs,
            "ratio": self.ratio,
            "missing": list(self.missing),
        }


@dataclass(frozen=True)
class IterationsResult:
    """The smallest horizon at which a bound's right-hand side reaches a target."""

    K: int
    value: float
    method: Literal["closed_form", "monotone_search", "already"]


def sides(rel: sp.Basic) -> tuple[sp.Expr, sp.Expr, bool]:
    """(small side, large side, strict) of an inequality, so that it reads small <= large."""
    if isinstance(rel, (sp.LessThan, sp.StrictLessThan)):
        return rel.lhs, rel.rhs, isinstance(rel, sp.StrictLessThan)
    if isinstance(rel, (sp.GreaterThan, sp.StrictGreaterThan)):
        return rel.rhs, rel.lhs, isinstance(rel, sp.StrictGreaterThan)
    raise TypeError(f"conditions must be inequalities, got {rel!r}")


@dataclass(frozen=True)
class CompiledCondition:
    """One inequality ``small <= large`` (or ``<``) with both sides compiled to numpy."""

    text: str
    names: tuple[str, ...]
    small_fn: Callable[..., Any]
    large_fn: Callable[..., Any]
    strict: bool

    def sides_at(self, values: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
        """Both sides at ``values`` (arrays broadcast); None when a name has no value."""
        if any(nm not in values for nm in self.names):
            return None
        args = [np.asarray(values[nm], dtype=float) for nm in self.names]
        with np.errstate(all="ignore"):
            small = np.asarray(self.small_fn(*args), dtype=float)
            large = np.asarray(self.large_fn(*args), dtype=float)
        return small, large


@functools.lru_cache(maxsize=4096)
def compile_condition(rel: sp.Basic) -> CompiledCondition:
    """``rel`` compiled once (conditions are catalogue expressions: never user text)."""
    small, large, strict = sides(rel)
    names = tuple(sorted(S.names_in(rel)))
    return CompiledCondition(sp.sstr(rel), names, _lambdify(small, list(names)),
                             _lambdify(large, list(names)), strict)


def _lambdify(expr: sp.Expr, names: list[str]) -> Callable[..., Any]:
    # Catalogue expressions only: user text never reaches lambdify (see parser.py).
    return sp.lambdify([S.SYMBOLS[nm].symbol for nm in names], expr, modules="numpy", cse=True)


def _as_array(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InvalidValueError(f"{name}={value!r} is not a number") from None
    if not np.all(np.isfinite(arr)):
        raise InvalidValueError(f"{name}={value!r} is not finite; give a finite number")
    return arr


def validate_value(name: str, value: Any) -> np.ndarray:
    """``value`` as a float array after checking it lies in ``name``'s domain."""
    info = S.info(name)
    arr = _as_array(name, value)
    lo_ok = arr >= info.lower if info.lower_inclusive else arr > info.lower
    if not np.all(lo_ok):
        rel = ">=" if info.lower_inclusive else ">"
        raise InvalidValueError(f"{name}={_fmt(arr)} must be {rel} {info.lower:g} ({info.meaning})")
    if np.isfinite(info.upper) and not np.all(arr < info.upper):
        raise InvalidValueError(f"{name}={_fmt(arr)} must be < {info.upper:g} ({info.meaning})")
    if info.integer and not np.all(arr == np.round(arr)):
        raise InvalidValueError(f"{name}={_fmt(arr)} must be an integer ({info.meaning})")
    return arr


def _fmt(arr: np.ndarray) -> str:
    return f"{float(arr):g}" if arr.ndim == 0 else f"[{float(arr.min()):g}..{float(arr.max()):g}]"


def _scalar_or_array(arr: np.ndarray) -> float | np.ndarray:
    return float(arr) if arr.ndim == 0 else arr


@dataclass(frozen=True)
class Bound:
    """A guarantee ``quantity <= rhs`` (or ``>=`` for ``kind="lower"``) with its hypotheses.

    Fields are values: the right-hand side and conditions are sympy expressions over the
    canonical symbol table (:mod:`approx_audit.bounds.symbols`). Methods evaluate, check and
    print it; none mutates it.
    """

    id: str
    algorithm: str
    setting: str
    quantity: Quantity
    rhs: sp.Expr
    assumptions: tuple[str, ...]
    conditions_: tuple[sp.Basic, ...]
    citation: Citation
    verified: tuple[str, ...]
    summary: str
    kind: Kind = "upper"
    expectation: bool = False
    tight: bool = False
    monotone_in_K: Monotone | None = "decreasing"
    step_rule: sp.Expr | None = None
    order_hint: sp.Expr | None = None
    verification_note: str = ""
    doc: str = ""
    substituted: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not ID_PATTERN.match(self.id):
            raise ValueError(f"bound id {self.id!r} is not family.setting.author_year[.variant]")
        if self.kind not in ("upper", "lower"):
            raise ValueError(f"{self.id}: kind must be 'upper' or 'lower'")
        if not isinstance(self.quantity, Quantity):
            raise ValueError(f"{self.id}: quantity must be a Quantity")
        unknown = [a for a in self.assumptions if a not in ASSUMPTIONS]
        if unknown:
            raise ValueError(f"{self.id}: unknown assumptions {unknown}")
        bad = [v for v in self.verified if v not in VERIFICATION_KINDS]
        if bad or not self.verified:
            raise ValueError(f"{self.id}: verified must be a non-empty subset of {VERIFICATION_KINDS}")
        for cond in self.conditions_:
            if cond not in (sp.true, sp.false):
                sides(cond)
        # every free symbol must come from the canonical table
        S.names_in(self.rhs)
        for cond in self.conditions_:
            S.names_in(cond)

    # ------------------------------------------------------------------ introspection
    @property
    def symbols(self) -> frozenset[str]:
        """Table names used by the right-hand side or a condition."""
        used = set(S.names_in(self.rhs))
        for cond in self.conditions_:
            used |= S.names_in(cond)
        return frozenset(used)

    @property
    def rhs_symbols(self) -> tuple[str, ...]:
        return tuple(sorted(S.names_in(self.rhs)))

    @property
    def constants(self) -> tuple[str, ...]:
        """Problem constants (not hyper-parameters, horizon or sizes) the bound depends on."""
        return tuple(nm for nm in sorted(self.symbols) if S.SYMBOLS[nm].role == "problem")

    @property
    def relation(self) -> str:
        return "<=" if self.kind == "upper" else ">="

    def condition_strings(self) -> list[str]:
        return [sp.sstr(c) for c in self.conditions_]

    # ------------------------------------------------------------------ evaluation
    @cached_property
    def _rhs_fn(self) -> Callable[..., Any]:
        return _lambdify(self.rhs, list(self.rhs_symbols))

    @cached_property
    def _condition_fns(self) -> list[tuple[str, tuple[str, ...], Callable, Callable, bool]]:
        out = []
        for cond in self.conditions_:
            if cond in (sp.true, sp.false):
                continue
            c = compile_condition(cond)
            out.append((c.text, c.names, c.small_fn, c.large_fn, c.strict))
        return out

    def horizon_mask(self, K: np.ndarray, **values: Any) -> np.ndarray:
        """Element-wise over the horizons ``K``: do the conditions in K hold at ``values``?

        A condition that cannot be evaluated (a missing value, a non-finite side) fails.
        """
        K = np.asarray(K, dtype=float)
        keep = np.ones(K.shape, dtype=bool)
        for cond in self.conditions_:
            if cond in (sp.true, sp.false) or "K" not in S.names_in(cond):
                continue
            c = compile_condition(cond)
            at = c.sides_at({**values, "K": K})
            if at is None:
                return np.zeros(K.shape, dtype=bool)
            small, large = np.broadcast_arrays(*at, K)[:2]
            ok = np.isfinite(small) & np.isfinite(large)
            with np.errstate(invalid="ignore"):
                ok &= (small < large) if c.strict else (small <= large)
            keep &= ok
        return keep

    def _values(self, values: Mapping[str, Any], needed: tuple[str, ...]) -> list[np.ndarray]:
        missing = [nm for nm in needed if nm not in values]
        if missing:
            what = ", ".join(f"{nm} ({S.SYMBOLS[nm].meaning})" for nm in missing)
            raise MissingValueError(f"bound {self.id} needs a value for {what}")
        arrays = [validate_value(nm, values[nm]) for nm in needed]
        try:
            return list(np.broadcast_arrays(*arrays)) if arrays else []
        except ValueError:
            raise InvalidValueError(
                f"values for {', '.join(needed)} have shapes that do not broadcast") from None

    def _check_names(self, values: Mapping[str, Any]) -> None:
        for nm in values:
            S.info(nm)  # raises UnknownSymbolError with close matches

    def evaluate(self, **values: Any) -> float | np.ndarray:
        """The right-hand side at ``values``; arrays broadcast (``K`` may be a grid).

        >>> from approx_audit.bounds import catalogue
        >>> b = catalogue.get("gd.smooth_convex.drori_teboulle_2014")
        >>> round(b.evaluate(L=1.0, R=1.0, eta=1.0, K=1), 6)
        0.166667
        """
        self._check_names(values)
        args = self._values(values, self.rhs_symbols)
        with np.errstate(over="ignore", under="ignore"):
            out = np.asarray(self._rhs_fn(*args), dtype=float)
        if args:
            out = np.broadcast_to(out, args[0].shape).copy() if out.shape != args[0].shape else out
        return _scalar_or_array(out)

    def condition_mask(self, **values: Any) -> np.ndarray:
        """Element-wise: do all conditions hold at these (broadcast) values?"""
        masks = []
        for _, names, small_fn, large_fn, strict in self._condition_fns:
            args = self._values(values, names)
            small = np.asarray(small_fn(*args), dtype=float)
            large = np.asarray(large_fn(*args), dtype=float)
            masks.append(small < large if strict else small <= large * (1 + 1e-12) + 1e-300)
        if any(c == sp.false for c in self.conditions_):
            masks.append(np.zeros((), dtype=bool))
        shape = np.broadcast_shapes(*(np.shape(v) for v in values.values()))
        mask = np.logical_and.reduce(np.broadcast_arrays(*masks)) if masks else np.ones((), bool)
        return np.broadcast_to(mask, np.broadcast_shapes(shape, np.shape(mask))).copy()

    def conditions(self, **values: Any) -> list[ConditionResult]:
        """Each condition, whether it holds at ``values``, and its slack.

        A condition over a grid holds if it holds at every point; slack and sides are reported
        at the point where it is tightest. Missing values give ``holds=None``.
        """
        self._check_names(values)
        results: list[ConditionResult] = []
        for cond in self.conditions_:
            if cond == sp.false:
                results.append(ConditionResult("False", False))
        for text, names, small_fn, large_fn, strict in self._condition_fns:
            missing = tuple(nm for nm in names if nm not in values)
            if missing:
                results.append(ConditionResult(text, None, missing=missing))
                continue
            args = self._values(values, names)
            small = np.atleast_1d(np.asarray(small_fn(*args), dtype=float))
            large = np.atleast_1d(np.asarray(large_fn(*args), dtype=float))
            small, large = np.broadcast_arrays(small, large)
            slack = large - small
            tol = 1e-12 * np.maximum(np.abs(small), np.abs(large))
            ok = slack > 0 if strict else slack >= -tol
            worst = int(np.argmin(slack))
            results.append(ConditionResult(
                text, bool(np.all(ok)), float(slack.flat[worst]),
                float(small.flat[worst]), float(large.flat[worst])))
        return results

    # ------------------------------------------------------------------ horizons and orders
    def iterations_to(self, target: float, /, **values: Any) -> int:
        """Smallest ``K >= 1`` with ``rhs(K) <= target`` (see :meth:`iterations_to_details`)."""
        return self.iterations_to_details(target, **values).K

    def iterations_to_details(self, target: float, /, **values: Any) -> IterationsResult:
        """Smallest ``K >= 1`` with ``rhs(K) <= target``, exact where sympy can invert the bound.

        The closed form (sympy ``solve`` on the bound with numbers substituted) is accepted only
        after the integer answer is checked on the numeric bound; otherwise a doubling search
        then bisection over integers runs, which needs the bound to be non-increasing in K.
        """
        eps_arr = _as_array("target", target)
        if eps_arr.ndim != 0 or eps_arr <= 0:
            raise InvalidValueError(f"target {target!r} must be a single positive number")
        eps_v = float(eps_arr)
        if "K" in values:
            raise InvalidValueError("iterations_to finds K; do not give a value for K")
        if "K" not in self.rhs_symbols:
            raise ApproxAuditError(f"bound {self.id} does not depend on K; nothing to invert")
        others = tuple(nm for nm in self.rhs_symbols if nm != "K")
        self._check_names(values)
        arrays = self._values(values, others)
        if any(a.ndim != 0 for a in arrays):
            raise InvalidValueError("iterations_to takes single values, not grids")
        point = {nm: float(a) for nm, a in zip(others, arrays)}

        def f(kv: float) -> float:
            with np.errstate(over="ignore", under="ignore"):
                return float(self.evaluate(K=kv, **point))

        if f(1) <= eps_v:
            return IterationsResult(1, f(1), "already")
        if self.monotone_in_K != "decreasing":
            raise ApproxAuditError(
                f"bound {self.id} is not declared non-increasing in K; cannot invert it")
        closed = self._closed_form_K(eps_v, point)
        if closed is not None and f(closed) <= eps_v and (closed == 1 or f(closed - 1) > eps_v):
            return IterationsResult(closed, f(closed), "closed_form")
        lo, hi = 1, 2
        while f(hi) > eps_v:
            lo, hi = hi, hi * 2
            if hi > _MAX_K:
                raise UnreachableTargetError(
                    f"bound {self.id} stays above eps={eps_v:g} (it is {f(_MAX_K):.6g} at "
                    f"K=2^62); its floor is above the target: lower the step size or the target")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if f(mid) <= eps_v else (mid, hi)
        return IterationsResult(hi, f(hi), "monotone_search")

    def _closed_form_K(self, eps_v: float, point: dict[str, float]) -> int | None:
        expr = self.rhs.subs({S.SYMBOLS[nm].symbol: sp.Float(v, 30) for nm, v in point.items()})
        # sympy's solve can run for minutes on transcendental equations (K in an exponent or a
        # log); there the monotone search is exact and fast. Rational functions of K are solved.
        if expr.count_ops() > 80 or not expr.is_rational_function(S.K):
            return None
        kk = sp.Symbol("kk", positive=True)  # a real stand-in for the integer K
        try:
            roots = sp.solve(sp.Eq(expr.subs(S.K, kk), sp.Float(eps_v, 30)), kk)
        except (NotImplementedError, ValueError, TypeError):
            return None
        best = None
        for root in roots:
            try:
                val = complex(sp.N(root))
            except (TypeError, ValueError):
                continue
            if abs(val.imag) > 1e-9 * max(1.0, abs(val.real)) or val.real <= 0:
                continue
            cand = max(1, math.ceil(val.real - 1e-9))
            best = cand if best is None else min(best, cand)
        return best

    def order(self) -> sp.Expr:
        """The right-hand side's big-O in ``K`` as ``K -> oo``.

        Factories declare it where sympy cannot find it (a geometric rate ``(1 - mu/L)**K``
        needs ``mu <= L``, which symbol assumptions cannot express); the catalogue test checks
        every order numerically against the right-hand side.
        """
        if self.order_hint is not None:
            return self.order_hint
        if S.K not in self.rhs.free_symbols:
            return sp.Integer(1)
        try:
            return sp.Order(self.rhs, (S.K, sp.oo)).expr
        except (NotImplementedError, ValueError, TypeError, sp.PoleError):
            return self.rhs

    # ------------------------------------------------------------------ printing
    def latex(self) -> str:
        q = self.quantity.latex
        lhs = rf"\mathbb{{E}}\left[{q}\right]" if self.expectation else q
        rel = r"\le" if self.kind == "upper" else r"\ge"
        return f"{lhs} {rel} {S.latex(self.rhs)}"

    def mathml(self) -> str:
        """Presentation MathML of the whole statement, one ``<math>`` element."""
        from .mathml import statement_mathml  # local: keeps import of bound.py light

        return statement_mathml(self)

    def __str__(self) -> str:
        e = "E[" + self.quantity.value + "]" if self.expectation else self.quantity.value
        return f"{self.id}: {e} {self.relation} {sp.sstr(self.rhs)}"

    # ------------------------------------------------------------------ transformation
    def substitute(self, **values: Any) -> "Bound":
        """A copy with symbols replaced by numbers or sympy expressions over the table.

        Conditions that become ``True`` are dropped; one that becomes ``False`` stays, so the
        copy reports that it does not apply. Strings must go through the safe parser first.
        """
        subs: dict[sp.Symbol, sp.Expr] = {}
        record = []
        for nm, v in values.items():
            info = S.info(nm)
            if isinstance(v, str):
                raise TypeError("parse text with approx_audit.bounds.parse_expression first")
            if isinstance(v, sp.Basic):
                S.names_in(v)
                expr = v
            else:
                validate_value(nm, v)
                expr = sp.nsimplify(v, rational=True)
            subs[info.symbol] = expr
            record.append((nm, sp.sstr(expr)))
        rhs = self.rhs.subs(subs)
        conds = []
        for cond in self.conditions_:
            new = cond.subs(subs) if cond not in (sp.true, sp.false) else cond
            if new == sp.true:
                continue
            conds.append(new)
        return dataclasses.replace(self, rhs=rhs, conditions_=tuple(conds),
                                   substituted=self.substituted + tuple(record))

    # ------------------------------------------------------------------ monotonicity
    def direction(self, name: str, samples: int = 48, seed: int = 0) -> str:
        """How the right-hand side moves as constant ``name`` grows, over the valid region.

        ``increasing`` / ``decreasing`` / ``constant`` / ``non-monotone``. Proven by sympy
        from the symbols' signs where it can, else read off finite differences at random
        draws that satisfy the conditions (then prefixed ``sampled:``).
        """
        sym = S.info(name).symbol
        if sym not in self.rhs.free_symbols:
            return "constant"
        sign = sympy_sign(sp.diff(self.rhs, sym))
        if sign is not None:
            return {1: "increasing", -1: "decreasing", 0: "constant"}[sign]
        from .sampling import draw

        pts = draw(self, size=samples, seed=seed)
        up = dict(pts)
        step = 1.0 if S.SYMBOLS[name].integer else 1e-6 * np.maximum(np.abs(pts[name]), 1e-12)
        up[name] = pts[name] + step
        keep = self.condition_mask(**up) & self.condition_mask(**pts)
        diff = np.asarray(self.evaluate(**up)) - np.asarray(self.evaluate(**pts))
        diff = diff[np.broadcast_to(keep, diff.shape)]
        if diff.size == 0:
            return "sampled:unknown"
        if np.all(diff >= 0):
            return "sampled:increasing"
        if np.all(diff <= 0):
            return "sampled:decreasing"
        return "sampled:non-monotone"

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "algorithm": self.algorithm,
            "setting": self.setting,
            "quantity": self.quantity.value,
            "kind": self.kind,
            "relation": self.relation,
            "assumptions": list(self.assumptions),
            "conditions": self.condition_strings(),
            "rhs": sp.sstr(self.rhs),
            "latex": self.latex(),
            "symbols": sorted(self.symbols),
            "step_rule": None if self.step_rule is None else sp.sstr(self.step_rule),
            "citation": self.citation.to_dict(),
            "tight": self.tight,
            "expectation": self.expectation,
            "monotone_in_K": self.monotone_in_K,
            "verified": list(self.verified),
            "verification_note": self.verification_note,
            "summary": self.summary,
            "substituted": dict(self.substituted),
        }
