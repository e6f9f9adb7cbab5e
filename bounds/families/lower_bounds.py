"""Lower bounds for every first-order method whose iterates stay in the span of past gradients.

``x_k in x_0 + span{grad f(x_0), ..., grad f(x_{k-1})}``: gradient descent, heavy ball,
Nesterov's methods, OGM, and (coordinate-wise preconditioning aside) SGD with momentum all
qualify; Adam and other diagonal preconditioners do not. A lower bound says how far any such
method is from the best possible after K gradient evaluations, on a worst-case instance.
"""

from __future__ import annotations

import sympy as sp

from ..bound import Bound
from ..catalogue import register
from ..quantities import Quantity
from ..symbols import K, L, R, d, mu
from ._common import NESTEROV_2018, cite
from .accelerated import BUBECK_2015


@register
def first_order_smooth_convex_nesterov_2018() -> Bound:
    r"""No span method beats ``3 L R^2 / (32 (K + 1)^2)`` on L-smooth convex functions.

    .. math:: f(x_K) - f^\star \ge \frac{3 L \|x_0 - x^\star\|^2}{32 (K + 1)^2}

    For ``1 <= K <= (d - 1)/2`` there is an L-smooth convex quadratic on ``R^d`` (Nesterov's
    tridiagonal "worst function in the world") on which every span method has at least this
    gap after ``K`` gradient evaluations. The same theorem gives
    ``||x_K - x*||^2 >= R^2 / 8``.

    Nesterov (2018; same numbering in 2004), Theorem 2.1.7. Bubeck (2015) Theorem 3.14 states
    the same with ``(t + 1)^2`` after ``t - 1`` calls.
    """
    return Bound(
        id="first_order.smooth_convex.nesterov_2018",
        algorithm="first_order",
        setting="smooth_convex",
        quantity=Quantity.LAST_ITERATE_GAP,
        kind="lower",
        rhs=3 * L * R**2 / (32 * (K + 1) ** 2),
        assumptions=("l_smooth", "convex", "minimizer_exists"),
        conditions_=(sp.Le(2 * K + 1, d),),
        citation=cite(NESTEROV_2018, "Theorem 2.1.7"),
        verified=("literature", "calibration"),
        verification_note="Statement from secondary notes, consistent with Bubeck Theorem 3.14 "
                          "(read); gradient descent and AGD on the hard instance stay above it "
                          "in the tests.",
        summary="Lower bound, smooth convex: 3 L R^2/(32 (K+1)^2) for K <= (d-1)/2",
    )


@register
def first_order_smooth_strongly_convex_bubeck_2015() -> Bound:
    r"""No span method beats the accelerated rate on L-smooth mu-strongly convex functions.

    .. math:: f(x_K) - f^\star \ge \frac{\mu}{2}
              \Big(\frac{\sqrt{\kappa} - 1}{\sqrt{\kappa} + 1}\Big)^{2K} \|x_0 - x^\star\|^2,
              \qquad \kappa = L/\mu > 1

    The instance lives in ``l_2`` (infinite dimension); in ``R^d`` it holds while ``K`` is small
    next to ``d``. Bubeck writes ``x_t`` after ``t - 1`` oracle calls with exponent
    ``2(t - 1)``; here ``K = t - 1``. Nesterov (2018) Theorem 2.1.13 states the same.

    Bubeck (2015), Theorem 3.15 (p. 283).
    """
    q = (sp.sqrt(L / mu) - 1) / (sp.sqrt(L / mu) + 1)
    return Bound(
        id="first_order.smooth_strongly_convex.bubeck_2015",
        algorithm="first_order",
        setting="smooth_strongly_convex",
        quantity=Quantity.LAST_ITERATE_GAP,
        kind="lower",
        rhs=mu / 2 * q ** (2 * K) * R**2,
        assumptions=("l_smooth", "strongly_convex", "minimizer_exists"),
        conditions_=(sp.Lt(mu, L),),
        citation=cite(BUBECK_2015, "Theorem 3.15 (p. 283)"),
        verified=("literature",),
        verification_note="Theorem read in a text copy of the monograph; Nesterov's Theorem "
                          "2.1.13 (secondary) agrees.",
        summary="Lower bound, smooth strongly convex: mu/2 q^(2K) R^2, q = (sqrt(kappa)-1)/(sqrt(kappa)+1)",
        order_hint=q ** (2 * K),
    )
