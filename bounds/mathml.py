"""Presentation MathML for bound statements (sympy prints the right-hand side)."""

from __future__ import annotations

import html.entities
import re
from typing import TYPE_CHECKING

import sympy as sp

from .quantities import Quantity
from .symbols import for_display

if TYPE_CHECKING:  # pragma: no cover
    from .bound import Bound

_NS = "http://www.w3.org/1998/Math/MathML"

_F = "<mi>f</mi>"
_GRAD = "<mo>&#8711;</mo><mi>f</mi>"


def _sub(base: str, sub: str) -> str:
    return f"<msub>{base}{sub}</msub>"


def _norm_sq(inner: str) -> str:
    return (f"<msup><mrow><mo>&#8214;</mo>{inner}<mo>&#8214;</mo></mrow><mn>2</mn></msup>")


_XK = _sub("<mi>x</mi>", "<mi>K</mi>")
_XSTAR = "<msup><mi>x</mi><mo>&#8902;</mo></msup>"
_FSTAR = "<msup><mi>f</mi><mo>&#8902;</mo></msup>"
_Xk = _sub("<mi>x</mi>", "<mi>k</mi>")

_QUANTITY = {
    Quantity.LAST_ITERATE_GAP:
        f"<mrow>{_F}<mo>(</mo>{_XK}<mo>)</mo><mo>&#8722;</mo>{_FSTAR}</mrow>",
    Quantity.AVERAGED_ITERATE_GAP:
        f"<mrow>{_F}<mo>(</mo>{_sub('<mover><mi>x</mi><mo>&#175;</mo></mover>', '<mi>K</mi>')}"
        f"<mo>)</mo><mo>&#8722;</mo>{_FSTAR}</mrow>",
    Quantity.MIN_GRAD_NORM_SQ:
        "<mrow><munder><mo>min</mo><mrow><mn>0</mn><mo>&#8804;</mo><mi>k</mi><mo>&lt;</mo>"
        f"<mi>K</mi></mrow></munder>{_norm_sq(_GRAD + '<mo>(</mo>' + _XK.replace('K', 'k') + '<mo>)</mo>')}</mrow>",
    Quantity.AVG_GRAD_NORM_SQ:
        "<mrow><mfrac><mn>1</mn><mi>K</mi></mfrac><munderover><mo>&#8721;</mo><mrow><mi>k</mi>"
        "<mo>=</mo><mn>0</mn></mrow><mrow><mi>K</mi><mo>&#8722;</mo><mn>1</mn></mrow></munderover>"
        f"{_norm_sq(_GRAD + '<mo>(</mo>' + _XK.replace('K', 'k') + '<mo>)</mo>')}</mrow>",
    Quantity.RANDOM_ITERATE_GRAD_NORM_SQ:
        f"<mrow>{_norm_sq(_GRAD + '<mo>(</mo>' + _sub('<mi>x</mi>', '<mi>&#964;</mi>') + '<mo>)</mo>')}</mrow>",
    Quantity.LAST_ITERATE_DIST_SQ:
        f"<mrow>{_norm_sq(_XK + '<mo>&#8722;</mo>' + _XSTAR)}</mrow>",
    Quantity.ASYMPTOTIC_RATE:
        "<mrow><munder><mo>lim sup</mo><mrow><mi>k</mi><mo>&#8594;</mo><mi>&#8734;</mi></mrow>"
        f"</munder><msup><mrow><mo>&#8214;</mo>{_XK.replace('K', 'k')}<mo>&#8722;</mo>{_XSTAR}"
        "<mo>&#8214;</mo></mrow><mrow><mn>1</mn><mo>/</mo><mi>k</mi></mrow></msup></mrow>",
    Quantity.UNIFORM_STABILITY:
        "<mrow><msub><mi>&#949;</mi><mtext>stab</mtext></msub></mrow>",
    Quantity.PARAMETER_DIVERGENCE:
        f"<mrow><mo>&#8214;</mo>{_XK}<mo>&#8722;</mo>"
        f"{_sub('<msup><mi>x</mi><mo>&#8242;</mo></msup>', '<mi>K</mi>')}<mo>&#8214;</mo></mrow>",
    Quantity.CONSENSUS_DISTANCE:
        "<msqrt><mfrac><mn>1</mn><mi>N</mi></mfrac><munderover><mo>&#8721;</mo><mrow><mi>i</mi>"
        "<mo>=</mo><mn>1</mn></mrow><mi>N</mi></munderover>"
        + _norm_sq(_sub("<mi>x</mi>", "<mrow><mi>i</mi><mo>,</mo><mi>K</mi></mrow>")
                   + "<mo>&#8722;</mo>"
                   + _sub("<mover><mi>x</mi><mo>&#175;</mo></mover>", "<mi>K</mi>"))
        + "</msqrt>",
}


def quantity_mathml(quantity: Quantity) -> str:
    return _QUANTITY[quantity]


def _numeric_entities(text: str) -> str:
    # sympy emits HTML named entities (&InvisibleTimes;) that plain XML parsers reject.
    def repl(match: re.Match) -> str:
        chars = html.entities.html5.get(match.group(1) + ";")
        return "".join(f"&#{ord(ch)};" for ch in chars) if chars else match.group(0)

    return re.sub(r"&([A-Za-z][A-Za-z0-9]*);", repl, text)


def expr_mathml(expr: sp.Expr) -> str:
    return _numeric_entities(sp.mathml(for_display(expr), printer="presentation"))


def statement_mathml(bound: "Bound") -> str:
    lhs = quantity_mathml(bound.quantity)
    if bound.expectation:
        lhs = f"<mrow><mi mathvariant=\"double-struck\">E</mi><mo>[</mo>{lhs}<mo>]</mo></mrow>"
    rel = "&#8804;" if bound.kind == "upper" else "&#8805;"
    return (f'<math xmlns="{_NS}" display="block"><mrow>{lhs}<mo>{rel}</mo>'
            f"{expr_mathml(bound.rhs)}</mrow></math>")
