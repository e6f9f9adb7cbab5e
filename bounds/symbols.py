"""The canonical symbol table: one sympy symbol per constant, with its assumptions.

Papers use clashing letters (Bottou et al. write ``c`` for strong convexity and ``mu`` for a
descent constant; Hardt et al. write ``L`` for the loss's Lipschitz constant and ``beta`` for
smoothness). Every factory maps its paper onto this table and says how in its docstring.

Conventions shared by the whole catalogue:

* ``K`` counts iterations: ``x_0`` is the starting point and ``x_K`` the point after ``K``
  updates. A bound on a minimum or an average is over ``x_0 .. x_{K-1}`` unless it says so.
* ``R = ||x_0 - x*||`` and ``Delta = f(x_0) - f*`` (or ``f(x_0) - f_inf`` for non-convex
  problems, whose minimum need not be attained).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

import sympy as sp

from .errors import UnknownSymbolError

Role = Literal["problem", "hyperparameter", "horizon", "size"]


@dataclass(frozen=True)
class SymbolInfo:
    """One entry of the table: the symbol, what it means, and where values may be drawn from."""

    name: str
    symbol: sp.Symbol
    meaning: str
    role: Role
    integer: bool = False
    # Natural range (inclusive-exclusive) used for random draws in tests and for validation:
    # a value outside it is an error (e.g. a momentum of 1.5).
    lower: float = 0.0
    upper: float = float("inf")
    lower_inclusive: bool = False

    @property
    def latex(self) -> str:
        return latex(self.symbol)


def _entries() -> list[SymbolInfo]:
    pos_int = dict(integer=True, lower=1.0, lower_inclusive=True)
    return [
        SymbolInfo("L", sp.Symbol("L", positive=True), "smoothness: gradient Lipschitz constant", "problem"),
        SymbolInfo("mu", sp.Symbol("mu", positive=True),
                   "strong convexity or PL constant", "problem"),
        SymbolInfo("R", sp.Symbol("R", positive=True), "initial distance ||x_0 - x*||", "problem"),
        SymbolInfo("Delta", sp.Symbol("Delta", positive=True),
                   "initial gap f(x_0) - f* (f(x_0) - f_inf if non-convex)", "problem"),
        SymbolInfo("sigma", sp.Symbol("sigma", positive=True),
                   "gradient-noise standard deviation: E||g - grad f||^2 <= sigma^2", "problem"),
        SymbolInfo("G", sp.Symbol("G", positive=True),
                   "gradient-norm bound: ||g|| <= G (a.s. or in second moment, per assumption); "
                   "also the Lipschitz constant of a loss", "problem"),
        SymbolInfo("G_inf", sp.Symbol("G_inf", positive=True),
                   "l_inf gradient bound: ||g||_inf <= G_inf almost surely", "problem"),
        SymbolInfo("D", sp.Symbol("D", positive=True),
                   "domain radius: max ||x - x_0|| over the feasible set", "problem"),
        SymbolInfo("M", sp.Symbol("M", positive=True), "Hessian Lipschitz constant", "problem"),
        SymbolInfo("K", sp.Symbol("K", positive=True, integer=True), "number of iterations",
                   "horizon", **pos_int),
        SymbolInfo("eta", sp.Symbol("eta", positive=True), "step size (learning rate)",
                   "hyperparameter"),
        SymbolInfo("beta", sp.Symbol("beta", positive=True), "momentum coefficient (heavy ball)",
                   "hyperparameter", upper=1.0),
        SymbolInfo("beta1", sp.Symbol("beta1", nonnegative=True),
                   "first-moment decay (Adam momentum)", "hyperparameter", upper=1.0,
                   lower_inclusive=True),
        SymbolInfo("beta2", sp.Symbol("beta2", positive=True), "second-moment decay (Adam)",
                   "hyperparameter", upper=1.0),
        SymbolInfo("eps", sp.Symbol("eps", positive=True),
                   "denominator offset of adaptive methods", "hyperparameter"),
        SymbolInfo("c", sp.Symbol("c", positive=True),
                   "step-size scale of a decaying schedule (eta_k = c/(gamma + k) or <= c/k)",
                   "hyperparameter"),
        SymbolInfo("gamma", sp.Symbol("gamma", positive=True),
                   "step-size offset of a decaying schedule eta_k = c/(gamma + k)",
                   "hyperparameter"),
        SymbolInfo("C0", sp.Symbol("C0", nonnegative=True),
                   "initial consensus distance sqrt((1/N) sum_i ||x_i,0 - mean_j x_j,0||^2) of "
                   "N ranks", "problem", lower_inclusive=True),
        SymbolInfo("Su", sp.Symbol("Su", nonnegative=True),
                   "largest spread of the ranks' local updates over the run: max_t sqrt((1/N) "
                   "sum_i ||u_i,t - mean_j u_j,t||^2), u_i,t the local optimizer step of rank i",
                   "problem", lower_inclusive=True),
        SymbolInfo("rho_W", sp.Symbol("rho_W", nonnegative=True),
                   "||W - 11^T/N||_2 of a doubly-stochastic mixing matrix W: the per-step "
                   "contraction of the ranks' disagreement under gossip (< 1 for a connected W with "
                   "a positive diagonal)", "hyperparameter", lower_inclusive=True, upper=1.0),
        SymbolInfo("alpha_ea", sp.Symbol("alpha_ea", positive=True),
                   "EASGD moving rate a = eta * rho (elastic pull towards the center)",
                   "hyperparameter", upper=1.0),
        SymbolInfo("H", sp.Symbol("H", positive=True, integer=True),
                   "local steps between parameter averagings (local SGD)", "hyperparameter",
                   **pos_int),
        SymbolInfo("n", sp.Symbol("n", positive=True, integer=True), "number of training samples",
                   "size", **pos_int),
        SymbolInfo("d", sp.Symbol("d", positive=True, integer=True), "dimension (parameters)",
                   "size", **pos_int),
    ]


SYMBOLS: dict[str, SymbolInfo] = {info.name: info for info in _entries()}
# Reverse map: sympy Symbol -> table name (the printed name may differ, e.g. beta_1).
_BY_SYMBOL: dict[sp.Symbol, str] = {info.symbol: info.name for info in SYMBOLS.values()}

# Module-level handles so factories read like the math: ``L * R**2 / (2 * K)``.
L = SYMBOLS["L"].symbol
mu = SYMBOLS["mu"].symbol
R = SYMBOLS["R"].symbol
Delta = SYMBOLS["Delta"].symbol
sigma = SYMBOLS["sigma"].symbol
G = SYMBOLS["G"].symbol
G_inf = SYMBOLS["G_inf"].symbol
D = SYMBOLS["D"].symbol
M = SYMBOLS["M"].symbol
K = SYMBOLS["K"].symbol
eta = SYMBOLS["eta"].symbol
beta = SYMBOLS["beta"].symbol
beta1 = SYMBOLS["beta1"].symbol
beta2 = SYMBOLS["beta2"].symbol
eps = SYMBOLS["eps"].symbol
c = SYMBOLS["c"].symbol
gamma = SYMBOLS["gamma"].symbol
n = SYMBOLS["n"].symbol
d = SYMBOLS["d"].symbol
C0 = SYMBOLS["C0"].symbol
Su = SYMBOLS["Su"].symbol
rho_W = SYMBOLS["rho_W"].symbol
alpha_ea = SYMBOLS["alpha_ea"].symbol
H = SYMBOLS["H"].symbol
# Iteration index inside step-size rules (eta_k = c/(gamma + k)); not a free constant.
k = sp.Symbol("k", positive=True, integer=True)


# Printed names: the table's plain names (``eps``, ``G_inf``) round-trip through the parser;
# LaTeX and MathML show the usual letters instead.
_DISPLAY = {
    SYMBOLS["eps"].symbol: sp.Symbol("epsilon", positive=True),
    SYMBOLS["G_inf"].symbol: sp.Symbol("G_\u221e", positive=True),  # MathML prints G with sub ∞
    SYMBOLS["beta1"].symbol: sp.Symbol("beta_1", nonnegative=True),
    SYMBOLS["beta2"].symbol: sp.Symbol("beta_2", positive=True),
    SYMBOLS["C0"].symbol: sp.Symbol("C_0", nonnegative=True),
    SYMBOLS["Su"].symbol: sp.Symbol("S_u", nonnegative=True),
    SYMBOLS["alpha_ea"].symbol: sp.Symbol("a", positive=True),
}


def for_display(expr: sp.Basic) -> sp.Basic:
    """``expr`` with symbols renamed for LaTeX and MathML printing only."""
    return expr.xreplace(_DISPLAY)


def latex(expr: sp.Basic) -> str:
    """LaTeX of an expression over the table, with the display names (``G_{\\infty}``)."""
    return sp.latex(for_display(expr),
                    symbol_names={_DISPLAY[SYMBOLS["G_inf"].symbol]: r"G_{\infty}"})


def info(name: str) -> SymbolInfo:
    """The table entry for ``name``; unknown names raise an error listing close matches."""
    try:
        return SYMBOLS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(SYMBOLS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownSymbolError(
            f"unknown symbol {name!r}{hint} (known: {', '.join(SYMBOLS)})"
        ) from None


def name_of(symbol: sp.Symbol) -> str:
    """Table name of a sympy symbol from this table (``beta_1`` -> ``beta1``)."""
    try:
        return _BY_SYMBOL[symbol]
    except KeyError:
        raise UnknownSymbolError(f"symbol {symbol} is not in the canonical table") from None


def names_in(expr: sp.Basic) -> set[str]:
    """Table names of the free symbols of ``expr``."""
    return {name_of(s) for s in expr.free_symbols}


def sympy_sign(expr: sp.Expr) -> int | None:
    """+1 / -1 / 0 when sympy can prove the sign of ``expr`` from symbol assumptions."""
    if expr.is_zero:
        return 0
    if expr.is_nonnegative:
        return 1
    if expr.is_nonpositive:
        return -1
    return None
