"""The safe parser: whitelisted text becomes sympy; anything else is a one-line error."""

from __future__ import annotations

import builtins

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from unittest import mock

from approx_audit.bounds import ExpressionError, parse_number
from approx_audit.bounds import parse_expression as _parse_expression
from approx_audit.bounds import symbols as S


def _boom(*args, **kwargs):
    raise AssertionError("user text reached a code-evaluating function")


def parse_expression(text, allowed=None):
    """The parser under test, with eval/exec/sympify/parse_expr made to fail if reached."""
    import sympy.parsing.sympy_parser as spp

    with mock.patch.object(builtins, "eval", _boom), mock.patch.object(builtins, "exec", _boom), \
            mock.patch.object(sp, "sympify", _boom), mock.patch.object(spp, "parse_expr", _boom):
        return _parse_expression(text, allowed)


@pytest.mark.parametrize("text, expected", [
    ("L*R**2/(4*K + 2)", S.L * S.R**2 / (4 * S.K + 2)),
    ("1/L", 1 / S.L),
    ("-eta + 2", 2 - S.eta),
    ("+mu", S.mu),
    ("sqrt(mu/L)", sp.sqrt(S.mu / S.L)),
    ("log(1 + K*G_inf**2/eps)", sp.log(1 + S.K * S.G_inf**2 / S.eps)),
    ("exp(-K*sqrt(mu/L))", sp.exp(-S.K * sp.sqrt(S.mu / S.L))),
    ("Max(L, 2*mu)", sp.Max(S.L, 2 * S.mu)),
    ("Min(1/L, 0.5)", sp.Min(1 / S.L, sp.Float(0.5))),
    ("(1 - beta1)**2", (1 - S.beta1) ** 2),
    ("2.5e-3", sp.Float(2.5e-3)),
])
def test_whitelisted_expressions_parse(text, expected):
    assert sp.simplify(parse_expression(text) - expected) == 0


@pytest.mark.parametrize("text, fragment", [
    ("__import__('os').system('true')", "not allowed"),
    ("os.system", "attribute"),
    ("L^2", "'**'"),
    ("L // 2", "'//'"),
    ("[1, 2]", "not allowed"),
    ("lambda: 1", "lambda"),
    ("L if mu else R", "not allowed"),
    ("Lipschitz", "unknown name"),
    ("mu < L", "comparisons"),
    ("sqrt(L, mu)", "argument"),
    ("sqrt(x=L)", "keyword"),
    ("'text'", "not a number"),
    ("True", "not a number"),
    ("1/0", "not finite"),
    ("10**10**10", "too large"),
    ("", "empty"),
    ("L +", "cannot parse"),
    ("(" * 500 + "L" + ")" * 500, ""),
    ("x" * 2000, "longer"),
    ("sqrt", "function"),
])
def test_rejected_text_gives_a_one_line_error(text, fragment):
    with pytest.raises(ExpressionError) as info:
        parse_expression(text)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ExpressionError, match="did you mean sigma"):
        parse_expression("sigm * 2")


def test_allowed_restricts_names():
    assert parse_expression("L*R", allowed={"L", "R"}) == S.L * S.R
    with pytest.raises(ExpressionError, match="unknown name 'mu'"):
        parse_expression("mu", allowed={"L"})


def test_parse_number():
    assert parse_number("1/4") == 0.25
    assert parse_number("sqrt(2)**2") == pytest.approx(2.0)
    with pytest.raises(ExpressionError):
        parse_number("L")
    with pytest.raises(ExpressionError, match="real"):
        parse_number("sqrt(-1)")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_random_text_never_executes_code(text):
    """Any string either parses to a sympy expression or raises ExpressionError."""
    try:
        expr = parse_expression(text)
    except ExpressionError:
        return
    assert isinstance(expr, sp.Basic)
    assert expr.free_symbols <= {info.symbol for info in S.SYMBOLS.values()}


_NAMES = sorted(S.SYMBOLS)
_leaf = st.one_of(
    st.sampled_from(_NAMES).map(lambda n: (n, S.SYMBOLS[n].symbol)),
    st.integers(1, 9).map(lambda i: (str(i), sp.Integer(i))),
)


def _combine(children):
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(
        lambda t: (f"({t[0][0]} {t[1]} {t[2][0]})",
                   {"+": t[0][1] + t[2][1], "-": t[0][1] - t[2][1],
                    "*": t[0][1] * t[2][1], "/": t[0][1] / t[2][1]}[t[1]]))
    power = st.tuples(children, st.integers(-3, 3)).map(
        lambda t: (f"({t[0][0]})**({t[1]})", t[0][1] ** t[1]))
    func = st.tuples(st.sampled_from(["sqrt", "exp", "log"]), children).map(
        lambda t: (f"{t[0]}({t[1][0]})", getattr(sp, t[0])(t[1][1])))
    neg = children.map(lambda c: (f"-({c[0]})", -c[1]))
    return st.one_of(binary, power, func, neg)


@settings(max_examples=200, deadline=None)
@given(st.recursive(_leaf, _combine, max_leaves=8))
def test_whitelisted_expressions_round_trip(pair):
    """Text built from the grammar parses to the expression built directly from the tree."""
    text, expected = pair
    try:
        parsed = parse_expression(text)
    except ExpressionError as exc:
        # e.g. (K - K)**(-1), (log(1))**(-1) (refused before sympy builds zoo), or sqrt(-D)
        msg = str(exc)
        assert "not finite" in msg or "not real" in msg or "division by zero" in msg, msg
        # and never an expression sympy proves finite and real
        assert expected.has(sp.zoo, sp.oo, -sp.oo, sp.nan) or expected.is_real is not True, (
            text, expected)
        return
    assert parsed == expected or sp.simplify(parsed - expected) == 0
    # and the printed form parses back to the same expression
    again = parse_expression(sp.sstr(parsed))
    assert sp.simplify(again - parsed) == 0
