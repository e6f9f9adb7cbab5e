"""Gradient descent with a constant step: ``x_{k+1} = x_k - eta * grad f(x_k)``.

PyTorch: ``torch.optim.SGD(params, lr=eta)`` on the full batch, with ``momentum=0``,
``dampening=0`` and ``weight_decay=0``, is exactly this method. Weight decay ``lambda`` makes it
gradient descent on ``f + lambda/2 ||x||^2``, whose constants are ``L + lambda`` and ``mu + lambda``.
"""

from __future__ import annotations

import sympy as sp

from ..bound import Bound
from ..catalogue import register
from ..quantities import Quantity
from ..symbols import Delta, K, L, R, eta, mu
from ._common import BECK_2017, KARIMI_2016, NESTEROV_2018, cite

_SMOOTH_CONVEX = ("l_smooth", "convex", "minimizer_exists")
_SMOOTH_STRONGLY_CONVEX = ("l_smooth", "strongly_convex", "minimizer_exists")


@register
def gd_smooth_convex_beck_2017() -> Bound:
    r"""GD on an L-smooth convex function, any constant step ``eta <= 1/L``.

    .. math:: f(x_K) - f^\star \le \frac{\|x_0 - x^\star\|^2}{2 \eta K}

    Assumptions: ``l_smooth``, ``convex``, ``minimizer_exists``. Condition: ``0 < eta <= 1/L``.
    Not tight: the exact worst case is ``gd.smooth_convex.drori_teboulle_2014``, about half.

    Beck (2017) Theorem 10.21 states ``L R^2 / (2k)`` for the constant step ``1/L``; Remark 10.22
    extends the proof to any step ``1/L_k`` satisfying the sufficient-decrease inequality with
    ``L_k >= L``, which a constant ``eta <= 1/L`` does (take ``L_k = 1/eta``), giving the form
    above. Beck's theorem is for proximal gradient; with no non-smooth part it is GD.
    """
    return Bound(
        id="gd.smooth_convex.beck_2017",
        algorithm="gd",
        setting="smooth_convex",
        quantity=Quantity.LAST_ITERATE_GAP,
        rhs=R**2 / (2 * eta * K),
        assumptions=_SMOOTH_CONVEX,
        conditions_=(sp.Le(eta, 1 / L),),
        citation=cite(BECK_2017, "Theorem 10.21 (eq. 10.26) with Remark 10.22"),
        verified=("literature", "derivation", "calibration", "pep"),
        verification_note="Theorem 10.21 and Remark 10.22 read in a full-text copy of Chapter 10; "
                          "checked on quadratics and Huber functions in tests/bounds/test_known_answers.py.",
        summary="GD, smooth convex: R^2/(2 eta K) for eta <= 1/L",
        step_rule=eta,
    )


@register
def gd_smooth_convex_drori_teboulle_2014() -> Bound:
    r"""GD on an L-smooth convex function, step ``h/L`` with ``0 < h <= 1``: the exact worst case.

    .. math:: f(x_K) - f^\star \le \frac{L \|x_0 - x^\star\|^2}{4 K h + 2}, \qquad h = L \eta

    Assumptions: ``l_smooth``, ``convex``, ``minimizer_exists``. Condition: ``eta <= 1/L``.
    Tight: for every K the one-dimensional Huber function with kink at ``R/(2Kh + 1)`` attains it
    (the test suite runs GD on it and recovers the bound to rounding).

    The paper writes the step as ``h/L``; here ``h = L * eta`` so the step is the learning rate.
    Drori & Teboulle (2014), Theorem 3.1 (restated with this range of ``h`` in PEPit's
    ``gradient_descent`` example).
    """
    return Bound(
        id="gd.smooth_convex.drori_teboulle_2014",
        algorithm="gd",
        setting="smooth_convex",
        quantity=Quantity.LAST_ITERATE_GAP,
        rhs=L * R**2 / (4 * K * L * eta + 2),
        assumptions=_SMOOTH_CONVEX,
        conditions_=(sp.Le(eta, 1 / L),),
        citation=cite(
            dict(authors=("Yoel Drori", "Marc Teboulle"),
                 title="Performance of first-order methods for smooth convex minimization: "
                       "a novel approach",
                 year=2014, venue="Mathematical Programming 145(1-2):451-482",
                 url="https://arxiv.org/abs/1206.3209"),
            "Theorem 3.1"),
        verified=("literature", "calibration", "pep"),
        verification_note="Statement and range 0<h<=1 from two secondary sources (PEPit's "
                          "docstring citing Theorem 3.1; a paper note); attainment on the Huber "
                          "function checked exactly in the tests.",
        summary="GD, smooth convex, tight: L R^2/(4 K L eta + 2) for eta <= 1/L",
        tight=True,
        step_rule=eta,
    )


@register
def gd_smooth_convex_nesterov_2018() -> Bound:
    r"""GD on an L-smooth convex function, step ``0 < eta < 2/L``, in terms of both R and Delta.

    .. math:: f(x_K) - f^\star \le \frac{2 \Delta R^2}{2 R^2 + K \eta (2 - L\eta) \Delta}

    with ``Delta = f(x_0) - f*``. At ``eta = 1/L`` and using ``Delta <= L R^2/2`` this gives
    Corollary 2.1.2's ``2 L R^2/(K + 4)``. The only bound here that covers steps in
    ``(1/L, 2/L)``. Not tight.

    Nesterov (2018; same numbering in the 2004 edition), Theorem 2.1.14.
    """
    return Bound(
        id="gd.smooth_convex.nesterov_2018",
        algorithm="gd",
        setting="smooth_convex",
        quantity=Quantity.LAST_ITERATE_GAP,
        rhs=2 * Delta * R**2 / (2 * R**2 + K * eta * (2 - L * eta) * Delta),
        assumptions=_SMOOTH_CONVEX + ("lower_bounded",),
        conditions_=(sp.Lt(eta, 2 / L),),
        citation=cite(NESTEROV_2018, "Theorem 2.1.14 (and Corollary 2.1.2, eq. 2.1.39)"),
        verified=("literature", "calibration", "pep"),
        verification_note="Formula and 0<h<2/L from quoted page crops of the 2018 edition "
                          "(secondary); checked on quadratics and Huber functions in the tests.",
        summary="GD, smooth convex: 2 Delta R^2/(2R^2 + K eta (2 - L eta) Delta) for eta < 2/L",
        step_rule=eta,
    )


@register
def gd_smooth_strongly_convex_nesterov_2018() -> Bound:
    r"""GD on an L-smooth mu-strongly convex function: distance contracts for ``eta <= 2/(mu+L)``.

    .. math:: \|x_K - x^\star\|^2 \le \Big(1 - \frac{2 \eta \mu L}{\mu + L}\Big)^K \|x_0 - x^\star\|^2

    Tight at ``eta = 2/(mu + L)``: a quadratic with Hessian eigenvalues ``{mu, L}`` attains it
    (rate ``((L - mu)/(L + mu))^(2K)``). Not tight at smaller steps.

    Nesterov (2018; same numbering in 2004), Theorem 2.1.15.
    """
    return Bound(
        id="gd.smooth_strongly_convex.nesterov_2018",
        algorithm="gd",
        setting="smooth_strongly_convex",
        quantity=Quantity.LAST_ITERATE_DIST_SQ,
        rhs=(1 - 2 * eta * mu * L / (mu + L)) ** K * R**2,
        assumptions=_SMOOTH_STRONGLY_CONVEX,
        conditions_=(sp.Le(eta, 2 / (mu + L)), sp.Le(mu, L)),
        citation=cite(NESTEROV_2018, "Theorem 2.1.15"),
        verified=("literature", "calibration", "pep"),
        verification_note="Formula and step range from quoted page crops (secondary); "
                          "attainment at eta=2/(mu+L) checked on a quadratic in the tests.",
        summary="GD, smooth strongly convex: distance (1 - 2 eta mu L/(mu+L))^K R^2",
        step_rule=eta,
        order_hint=(1 - 2 * eta * mu * L / (mu + L)) ** K,
    )


@register
def gd_smooth_strongly_convex_nesterov_2018_gap() -> Bound:
    r"""GD on an L-smooth mu-strongly convex function: function gap for ``eta <= 2/(mu+L)``.

    .. math:: f(x_K) - f^\star \le \frac{L}{2}\Big(1 - \frac{2\eta\mu L}{\mu+L}\Big)^K \|x_0 - x^\star\|^2

    Theorem 2.1.15's distance bound combined with ``f(x) - f* <= L/2 ||x - x*||^2`` (smoothness
    at the minimizer). At ``eta = 2/(mu+L)`` it is the theorem's stated
    ``L/2 ((L-mu)/(L+mu))^(2K) R^2``.

    Nesterov (2018), Theorem 2.1.15.
    """
    return Bound(
        id="gd.smooth_strongly_convex.nesterov_2018.gap",
        algorithm="gd",
        setting="smooth_strongly_convex",
        quantity=Quantity.LAST_ITERATE_GAP,
        rhs=L / 2 * (1 - 2 * eta * mu * L / (mu + L)) ** K * R**2,
        assumptions=_SMOOTH_STRONGLY_CONVEX,
        conditions_=(sp.Le(eta, 2 / (mu + L)), sp.Le(mu, L)),
        citation=cite(NESTEROV_2018, "Theorem 2.1.15"),
        verified=("literature", "derivation", "calibration", "pep"),
        summary="GD, smooth strongly convex: gap L/2 (1 - 2 eta mu L/(mu+L))^K R^2",
        step_rule=eta,
        order_hint=(1 - 2 * eta * mu * L / (mu + L)) ** K,
    )


@register
def gd_smooth_strongly_convex_beck_2017() -> Bound:
    r"""GD on an L-smooth mu-strongly convex function: distance for ``eta <= 1/L``.

    .. math:: \|x_K - x^\star\|^2 \le (1 - \mu\eta)^K \|x_0 - x^\star\|^2

    Beck (2017) Theorem 10.29 states ``(1 - mu/L)^k`` for the step ``1/L``. For any
    ``eta <= 1/L`` the same one-step argument gives ``1 - mu*eta``:
    ``||x+ - x*||^2 = ||x - x*||^2 - 2 eta <g, x - x*> + eta^2 ||g||^2`` with
    ``<g, x - x*> >= f - f* + mu/2 ||x - x*||^2`` and ``||g||^2 <= 2L (f - f*)``. Not tight
    (the exact rate at ``1/L`` is ``(1 - mu/L)^2`` per step).
    """
    return Bound(
        id="gd.smooth_strongly_convex.beck_2017",
        algorithm="gd",
        setting="smooth_strongly_convex",
        quantity=Quantity.LAST_ITERATE_DIST_SQ,
        rhs=(1 - mu * eta) ** K * R**2,
        assumptions=_SMOOTH_STRONGLY_CONVEX,
        conditions_=(sp.Le(eta, 1 / L), sp.Le(mu, L)),
        citation=cite(BECK_2017, "Theorem 10.29"),
        verified=("literature", "derivation", "calibration", "pep"),
        verification_note="Theorem 10.29 read in a full-text copy of Chapter 10 (step 1/L); the "
                          "general-step form is derived in the docstring.",
        summary="GD, smooth strongly convex: distance (1 - mu eta)^K R^2 for eta <= 1/L",
        step_rule=eta,
        order_hint=(1 - mu * eta) ** K,
    )


@register
def gd_smooth_strongly_convex_beck_2017_gap() -> Bound:
    r"""GD on an L-smooth mu-strongly convex function: function gap for ``eta <= 1/L``.

    .. math:: f(x_K) - f^\star \le \frac{L}{2} (1 - \mu\eta)^K \|x_0 - x^\star\|^2

    Beck (2017) Theorem 10.29 states ``F(x^{k+1}) - F_opt <= L/2 (1 - mu/L)^{k+1} R^2`` for the
    step ``1/L``; the general step follows from ``gd.smooth_strongly_convex.beck_2017`` and
    ``f - f* <= L/2 ||x - x*||^2``.
    """
    return Bound(
        id="gd.smooth_strongly_convex.beck_2017.gap",
        algorithm="gd",
        setting="smooth_strongly_convex",
        quantity=Quantity.LAST_ITERATE_GAP,
        rhs=L / 2 * (1 - mu * eta) ** K * R**2,
        assumptions=_SMOOTH_STRONGLY_CONVEX,
        conditions_=(sp.Le(eta, 1 / L), sp.Le(mu, L)),
        citation=cite(BECK_2017, "Theorem 10.29"),
        verified=("literature", "derivation", "calibration", "pep"),
        summary="GD, smooth strongly convex: gap L/2 (1 - mu eta)^K R^2 for eta <= 1/L",
        step_rule=eta,
        order_hint=(1 - mu * eta) ** K,
    )


@register
def gd_pl_karimi_2016() -> Bound:
    r"""GD under the Polyak-Lojasiewicz inequality, step ``0 < eta < 2/L``.

    .. math:: f(x_K) - f^\star \le \big(1 - \mu\eta(2 - L\eta)\big)^K (f(x_0) - f^\star)

    PL here is ``1/2 ||grad f(x)||^2 >= mu (f(x) - f*)``, with the minimum attained. At
    ``eta = 1/L`` this is Karimi et al.'s Theorem 1, ``(1 - mu/L)^K``. Other steps: the descent
    lemma ``f(x+) <= f(x) - eta (1 - L eta/2) ||g||^2`` and PL give the per-step factor above.
    No convexity needed. Not tight in general.

    Karimi, Nutini & Schmidt (2016), Theorem 1.
    """
    return Bound(
        id="gd.pl.karimi_2016",
        algorithm="gd",
        setting="pl",
        quantity=Quantity.LAST_ITERATE_GAP,
        rhs=(1 - mu * eta * (2 - L * eta)) ** K * Delta,
        assumptions=("l_smooth", "pl", "lower_bounded"),
        conditions_=(sp.Lt(eta, 2 / L), sp.Le(mu, L)),
        citation=cite(KARIMI_2016, "Theorem 1"),
        verified=("literature", "derivation", "calibration"),
        verification_note="Theorem 1's rate (step 1/L) from secondary notes; the general-step "
                          "factor is derived in the docstring and checked on quadratics.",
        summary="GD under PL: (1 - mu eta (2 - L eta))^K Delta for eta < 2/L",
        step_rule=eta,
        order_hint=(1 - mu * eta * (2 - L * eta)) ** K,
    )


@register
def gd_smooth_nonconvex_beck_2017() -> Bound:
    r"""GD on an L-smooth function bounded below, step ``0 < eta < 2/L``: a stationary point.

    .. math:: \min_{0 \le k < K} \|\nabla f(x_k)\|^2 \le \frac{f(x_0) - f_{\inf}}{K \eta (1 - L\eta/2)}

    Summing the descent lemma ``f(x_{k+1}) <= f(x_k) - eta (1 - L eta/2) ||grad f(x_k)||^2`` over
    ``k < K``. At ``eta = 1/L`` this is ``2 L Delta / K``, Beck (2017) Theorem 10.15(c)
    (``min_{n <= k} ||G(x^n)||^2 <= 2 L (F(x^0) - F_opt)/(k + 1)`` over ``k + 1`` points).
    The order ``1/K`` is optimal for first-order methods (Carmon et al. 2020); the constant is not
    tight.
    """
    return Bound(
        id="gd.smooth_nonconvex.beck_2017",
        algorithm="gd",
        setting="smooth_nonconvex",
        quantity=Quantity.MIN_GRAD_NORM_SQ,
        rhs=Delta / (K * eta * (1 - L * eta / 2)),
        assumptions=("l_smooth", "lower_bounded"),
        conditions_=(sp.Lt(eta, 2 / L),),
        citation=cite(BECK_2017, "Theorem 10.15(c) (eq. 10.17)"),
        verified=("literature", "derivation", "calibration", "pep"),
        verification_note="Theorem 10.15(c) read in a full-text copy of Chapter 10 (step 1/L); "
                          "the general step is the same telescoping with the descent lemma.",
        summary="GD, smooth non-convex: min ||grad||^2 <= Delta/(K eta (1 - L eta/2))",
        step_rule=eta,
    )
