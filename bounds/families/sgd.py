"""Stochastic gradient descent: ``x_{k+1} = x_k - eta_k g_k`` with ``E[g_k | x_k] = grad f(x_k)``.

PyTorch: ``torch.optim.SGD(lr=eta)`` with ``momentum=0``, ``weight_decay=0`` on mini-batches
drawn independently (with replacement) is this method; a mini-batch of size ``b`` divides the
per-example noise variance ``sigma^2`` by ``b``. Epoch-wise shuffling (PyTorch's default
``DataLoader(shuffle=True)``) samples without replacement, which these theorems do not cover
exactly. Schedules: ``torch.optim.lr_scheduler.LambdaLR`` with the step rule given per bound.
"""

from __future__ import annotations

import sympy as sp

from ..bound import Bound
from ..catalogue import register
from ..quantities import Quantity
from ..symbols import Delta, G, K, L, R, c, eta, gamma, k, mu, sigma
from ._common import BOTTOU_2018, KARIMI_2016, cite
from .accelerated import BUBECK_2015

_NOISE = ("unbiased_gradients", "bounded_variance")


@register
def sgd_strongly_convex_bottou_2018() -> Bound:
    r"""SGD with a fixed step on a smooth strongly convex function: linear rate to a noise floor.

    .. math:: \mathbb{E}[f(x_K) - f^\star] \le \frac{\eta L \sigma^2}{2\mu}
              + (1 - \eta\mu)^K \Big(f(x_0) - f^\star - \frac{\eta L \sigma^2}{2\mu}\Big)

    Notation: Bottou et al. write ``c`` for strong convexity (here ``mu``) and ``mu``, ``mu_G``
    for descent constants; with unbiased gradients ``mu = mu_G = 1``. Their variance bound
    ``V[g] <= M + M_V ||grad F||^2`` is taken with ``M = sigma^2`` and ``M_V = 0``, so
    ``M_G = 1`` and the step condition ``alpha <= mu/(L M_G)`` reads ``eta <= 1/L``. They start
    at ``w_1``; ``E[F(w_k)]`` after ``k - 1`` steps is our ``K = k - 1``.
    Not monotone in K when ``Delta`` is below the floor. Not tight.

    Bottou, Curtis & Nocedal (2018), Theorem 4.6 (eqs. 4.13-4.14).
    """
    floor = eta * L * sigma**2 / (2 * mu)
    return Bound(
        id="sgd.strongly_convex.bottou_2018",
        algorithm="sgd",
        setting="strongly_convex",
        quantity=Quantity.LAST_ITERATE_GAP,
        rhs=floor + (1 - eta * mu) ** K * (Delta - floor),
        assumptions=("l_smooth", "strongly_convex", "lower_bounded") + _NOISE,
        conditions_=(sp.Le(eta, 1 / L), sp.Le(mu, L)),
        citation=cite(BOTTOU_2018, "Theorem 4.6 (eqs. 4.13-4.14)"),
        verified=("literature", "calibration"),
        verification_note="Read in a full-text copy of arXiv:1606.04838; checked against the "
                          "exact expectation of SGD on a noisy quadratic in the tests.",
        summary="SGD fixed step, strongly convex: eta L sigma^2/(2 mu) + (1-eta mu)^K (Delta - floor)",
        expectation=True,
        monotone_in_K=None,
        step_rule=eta,
        order_hint=sp.Integer(1),
    )


@register
def sgd_strongly_convex_bottou_2018_diminishing() -> Bound:
    r"""SGD with steps ``c/(gamma + k + 1)`` on a smooth strongly convex function: O(1/K).

    .. math:: \mathbb{E}[f(x_K) - f^\star] \le \frac{\nu}{\gamma + K + 1},\quad
              \nu = \max\Big(\frac{c^2 L \sigma^2}{2(c\mu - 1)},\ (\gamma + 1)(f(x_0) - f^\star)\Big)

    Bottou et al.'s step ``alpha_k = beta/(gamma + k)`` for ``k >= 1`` is our
    ``eta_k = c/(gamma + k + 1)`` for ``k >= 0`` (``c`` is their ``beta``). Conditions
    ``beta > 1/(c mu)`` (their c, mu) and ``alpha_1 <= mu/(L M_G)`` become ``c > 1/mu`` and
    ``c/(gamma + 1) <= 1/L`` with unbiased gradients, ``M = sigma^2``, ``M_V = 0`` (see
    ``sgd.strongly_convex.bottou_2018``). Not tight.

    Bottou, Curtis & Nocedal (2018), Theorem 4.7 (eqs. 4.20-4.22).
    """
    nu = sp.Max(c**2 * L * sigma**2 / (2 * (c * mu - 1)), (gamma + 1) * Delta)
    return Bound(
        id="sgd.strongly_convex.bottou_2018.diminishing",
        algorithm="sgd",
        setting="strongly_convex",
        quantity=Quantity.LAST_ITERATE_GAP,
        rhs=nu / (gamma + K + 1),
        assumptions=("l_smooth", "strongly_convex", "lower_bounded") + _NOISE,
        conditions_=(sp.Gt(c, 1 / mu), sp.Le(c / (gamma + 1), 1 / L), sp.Le(mu, L)),
        citation=cite(BOTTOU_2018, "Theorem 4.7 (eqs. 4.20-4.22)"),
        verified=("literature", "calibration"),
        verification_note="Read in a full-text copy of arXiv:1606.04838; checked against the "
                          "exact expectation of SGD on a noisy quadratic in the tests.",
        summary="SGD eta_k = c/(gamma+k+1), strongly convex: nu/(gamma + K + 1)",
        expectation=True,
        step_rule=c / (gamma + k + 1),
        order_hint=1 / K,
    )


@register
def sgd_nonconvex_bottou_2018() -> Bound:
    r"""SGD with a fixed step on a smooth non-convex function: average squared gradient.

    .. math:: \mathbb{E}\Big[\frac1K \sum_{k=0}^{K-1} \|\nabla f(x_k)\|^2\Big]
              \le \eta L \sigma^2 + \frac{2 (f(x_0) - f_{\inf})}{K \eta}

    Unbiased gradients with ``M = sigma^2``, ``M_V = 0`` (so ``mu = mu_G = M_G = 1``); the
    average over Bottou et al.'s ``w_1..w_K`` is ours over ``x_0..x_{K-1}``. Condition
    ``eta <= 1/L``. Not tight.

    Bottou, Curtis & Nocedal (2018), Theorem 4.8 (eq. 4.28b).
    """
    return Bound(
        id="sgd.nonconvex.bottou_2018",
        algorithm="sgd",
        setting="nonconvex",
        quantity=Quantity.AVG_GRAD_NORM_SQ,
        rhs=eta * L * sigma**2 + 2 * Delta / (K * eta),
        assumptions=("l_smooth", "lower_bounded") + _NOISE,
        conditions_=(sp.Le(eta, 1 / L),),
        citation=cite(BOTTOU_2018, "Theorem 4.8 (eq. 4.28b)"),
        verified=("literature", "calibration"),
        verification_note="Read in a full-text copy of arXiv:1606.04838; checked against the "
                          "exact expectation of SGD on a noisy quadratic in the tests.",
        summary="SGD fixed step, non-convex: eta L sigma^2 + 2 Delta/(K eta)",
        expectation=True,
        step_rule=eta,
        order_hint=sp.Integer(1),
    )


@register
def sgd_nonconvex_ghadimi_lan_2013() -> Bound:
    r"""SGD with a fixed step ``eta < 2/L`` on a smooth non-convex function, random output.

    .. math:: \mathbb{E}\|\nabla f(x_\tau)\|^2 \le
              \frac{2 (f(x_0) - f^\star) + L \sigma^2 K \eta^2}{K \eta (2 - L\eta)}

    The randomized stochastic gradient method returns ``x_tau`` with
    ``P(tau = k) ∝ 2 gamma_k - L gamma_k^2``: uniform over ``x_0..x_{K-1}`` for a constant step,
    so the left side equals the expected average squared gradient norm over those iterates.
    From Theorem 2.1(a), ``(1/L) E||grad f(x_R)||^2 <= (D_f^2 + sigma^2 sum gamma_k^2) /
    sum (2 gamma_k - L gamma_k^2)`` with ``D_f^2 = 2 (f(x_1) - f*)/L`` and ``gamma_k = eta``.
    Not tight.

    Ghadimi & Lan (2013), Theorem 2.1(a) (eqs. 2.3-2.5).
    """
    return Bound(
        id="sgd.nonconvex.ghadimi_lan_2013",
        algorithm="sgd",
        setting="nonconvex",
        quantity=Quantity.RANDOM_ITERATE_GRAD_NORM_SQ,
        rhs=(2 * Delta + L * sigma**2 * K * eta**2) / (K * eta * (2 - L * eta)),
        assumptions=("l_smooth", "lower_bounded") + _NOISE,
        conditions_=(sp.Lt(eta, 2 / L),),
        citation=cite(
            dict(authors=("Saeed Ghadimi", "Guanghui Lan"),
                 title="Stochastic First- and Zeroth-Order Methods for Nonconvex Stochastic "
                       "Programming",
                 year=2013, venue="SIAM Journal on Optimization 23(4):2341-2368",
                 url="https://arxiv.org/abs/1309.5549"),
            "Theorem 2.1(a) (eqs. 2.3-2.5)"),
        verified=("literature", "calibration"),
        verification_note="Statement from a formal restatement citing arXiv v1 p. 6 and an "
                          "independent derivation note (secondary); checked against the exact "
                          "expectation of SGD on a noisy quadratic in the tests.",
        summary="SGD fixed step, non-convex, random output: (2 Delta + L sigma^2 K eta^2)/(K eta (2 - L eta))",
        expectation=True,
        step_rule=eta,
        order_hint=sp.Integer(1),
    )


@register
def sgd_pl_karimi_2016() -> Bound:
    r"""SGD with steps ``(2k + 1)/(2 mu (k + 1)^2)`` under PL: O(1/K).

    .. math:: \mathbb{E}[f(x_K) - f^\star] \le \frac{L G^2}{2 K \mu^2}

    Assumes ``E||g_k||^2 <= G^2`` along the iterates (Karimi et al.'s ``C``), unbiased
    gradients, L-smoothness and PL. Derivation (checked here): the descent lemma and PL give
    ``e_{k+1} <= (1 - 2 mu eta_k) e_k + L G^2 eta_k^2 / 2``; with this step
    ``1 - 2 mu eta_k = k^2/(k + 1)^2``, so ``(k+1)^2 e_{k+1} <= k^2 e_k + L G^2/(2 mu^2)``,
    which telescopes. Not tight.

    Karimi, Nutini & Schmidt (2016), Theorem 4.
    """
    return Bound(
        id="sgd.pl.karimi_2016",
        algorithm="sgd",
        setting="pl",
        quantity=Quantity.LAST_ITERATE_GAP,
        rhs=L * G**2 / (2 * K * mu**2),
        assumptions=("l_smooth", "pl", "unbiased_gradients", "bounded_second_moment"),
        conditions_=(sp.Le(mu, L),),
        citation=cite(KARIMI_2016, "Theorem 4 (decreasing step)"),
        verified=("literature", "derivation", "calibration"),
        verification_note="Setup from formal restatements (secondary); the rate is re-derived "
                          "in the docstring and checked on a noisy quadratic in the tests.",
        summary="SGD eta_k = (2k+1)/(2 mu (k+1)^2) under PL: L G^2/(2 K mu^2)",
        expectation=True,
        step_rule=(2 * k + 1) / (2 * mu * (k + 1) ** 2),
    )


@register
def sgd_pl_karimi_2016_constant_step() -> Bound:
    r"""SGD with a constant step ``eta < 1/(2 mu)`` under PL: linear rate to a floor.

    .. math:: \mathbb{E}[f(x_K) - f^\star] \le (1 - 2\mu\eta)^K (f(x_0) - f^\star)
              + \frac{L G^2 \eta}{4\mu}

    Same assumptions as ``sgd.pl.karimi_2016``; unrolling
    ``e_{k+1} <= (1 - 2 mu eta) e_k + L G^2 eta^2/2`` and bounding the geometric sum by
    ``1/(2 mu eta)``. Not tight.

    Karimi, Nutini & Schmidt (2016), Theorem 4 (constant step).
    """
    return Bound(
        id="sgd.pl.karimi_2016.constant_step",
        algorithm="sgd",
        setting="pl",
        quantity=Quantity.LAST_ITERATE_GAP,
        rhs=(1 - 2 * mu * eta) ** K * Delta + L * G**2 * eta / (4 * mu),
        assumptions=("l_smooth", "pl", "lower_bounded", "unbiased_gradients",
                     "bounded_second_moment"),
        conditions_=(sp.Lt(eta, 1 / (2 * mu)), sp.Le(mu, L)),
        citation=cite(KARIMI_2016, "Theorem 4 (constant step)"),
        verified=("literature", "derivation", "calibration"),
        verification_note="Setup from formal restatements (secondary); the rate is re-derived "
                          "in the docstring and checked on a noisy quadratic in the tests.",
        summary="SGD constant step under PL: (1 - 2 mu eta)^K Delta + L G^2 eta/(4 mu)",
        expectation=True,
        step_rule=eta,
        order_hint=sp.Integer(1),
    )


@register
def sgd_convex_bubeck_2015() -> Bound:
    r"""SGD with a constant step on a convex function: the averaged iterate.

    .. math:: \mathbb{E}\big[f(\bar x_K)\big] - f^\star \le \frac{\|x_0 - x^\star\|^2}{2\eta K}
              + \frac{\eta G^2}{2}, \qquad \bar x_K = \frac1K \sum_{k=0}^{K-1} x_k

    Assumes ``E||g_k||^2 <= G^2`` along the iterates; no smoothness. Bubeck's Theorem 6.1
    (stochastic mirror descent, here with ``Phi = ||x||^2/2``, i.e. SGD) proves, via inequality
    (4.10), ``E f(xbar) - f* <= R^2/(eta t) + eta B^2/2`` where ``R^2`` bounds
    ``Phi(x*) - Phi(x_1)``; unconstrained, that Bregman term is ``||x_0 - x*||^2/2``, giving the
    form above. With ``eta = R/(G sqrt(K))`` it is ``R G/sqrt(K)``. Not tight.

    Bubeck (2015), Theorem 6.1 (p. 331).
    """
    return Bound(
        id="sgd.convex.bubeck_2015",
        algorithm="sgd",
        setting="convex",
        quantity=Quantity.AVERAGED_ITERATE_GAP,
        rhs=R**2 / (2 * eta * K) + eta * G**2 / 2,
        assumptions=("convex", "minimizer_exists", "unbiased_gradients", "bounded_second_moment"),
        conditions_=(),
        citation=cite(BUBECK_2015, "Theorem 6.1 (p. 331) and its proof via eq. (4.10)"),
        verified=("literature", "derivation", "calibration"),
        verification_note="Theorem 6.1 read in a text copy of the monograph; the unconstrained "
                          "general-step form is derived in the docstring and checked exactly "
                          "on a noisy quadratic in the tests.",
        summary="SGD constant step, convex, averaged iterate: R^2/(2 eta K) + eta G^2/2",
        expectation=True,
        step_rule=eta,
        order_hint=sp.Integer(1),
    )


@register
def sgd_smooth_convex_bubeck_2015() -> Bound:
    r"""SGD with a constant step ``eta < 1/L`` on a smooth convex function: variance only.

    .. math:: \mathbb{E}\big[f(\bar x_K)\big] - f^\star \le \frac{\|x_0 - x^\star\|^2}{2\eta K}
              + \frac{\eta \sigma^2}{2(1 - L\eta)}, \qquad \bar x_K = \frac1K\sum_{k=1}^{K} x_k

    Note the average is over the iterates *after* each step. Bubeck's Theorem 6.3 runs stochastic
    mirror descent with step ``1/(L + 1/h)`` and shows, before choosing ``h``,
    ``E f(x_{s+1}) - f* <= (L + 1/h) E(D(x*, x_s) - D(x*, x_{s+1})) + h sigma^2 / 2``. Summing,
    ``D(x*, x_1) = R^2/2`` unconstrained, and writing the step ``eta = 1/(L + 1/h)`` (so
    ``h = eta/(1 - L eta)``) gives the form above. Not tight.

    Bubeck (2015), Theorem 6.3 (p. 332) and its proof.
    """
    return Bound(
        id="sgd.smooth_convex.bubeck_2015",
        algorithm="sgd",
        setting="smooth_convex",
        quantity=Quantity.AVERAGED_ITERATE_GAP,
        rhs=R**2 / (2 * eta * K) + eta * sigma**2 / (2 * (1 - L * eta)),
        assumptions=("l_smooth", "convex", "minimizer_exists") + _NOISE,
        conditions_=(sp.Lt(eta, 1 / L),),
        citation=cite(BUBECK_2015, "Theorem 6.3 (p. 332) and its proof"),
        verified=("literature", "derivation", "calibration"),
        verification_note="Theorem 6.3 and the displayed per-step inequality of its proof read "
                          "in a text copy of the monograph; re-parametrized in the docstring; "
                          "checked exactly on a noisy quadratic in the tests.",
        summary="SGD constant step, smooth convex, average of x_1..x_K: R^2/(2 eta K) + eta sigma^2/(2(1 - L eta))",
        expectation=True,
        step_rule=eta,
        order_hint=sp.Integer(1),
    )


@register
def sgd_strongly_convex_bubeck_2015() -> Bound:
    r"""SGD with steps ``2/(mu (k + 2))`` on a strongly convex function: weighted average.

    .. math:: \mathbb{E}\Big[f\Big(\sum_{s=1}^{K} \frac{2 s}{K (K + 1)} x_{s-1}\Big)\Big]
              - f^\star \le \frac{2 G^2}{\mu (K + 1)}

    Bubeck's ``x_1`` is our ``x_0`` and his step ``eta_s = 2/(alpha (s + 1))`` for ``s >= 1`` is
    ``2/(mu (k + 2))`` for ``k >= 0``. Assumes ``E||g||^2 <= G^2`` (his ``B^2``) on the feasible
    set; no smoothness. Not tight.

    Bubeck (2015), Theorem 6.2 (p. 331).
    """
    return Bound(
        id="sgd.strongly_convex.bubeck_2015",
        algorithm="sgd",
        setting="strongly_convex",
        quantity=Quantity.AVERAGED_ITERATE_GAP,
        rhs=2 * G**2 / (mu * (K + 1)),
        assumptions=("strongly_convex", "minimizer_exists", "unbiased_gradients",
                     "bounded_second_moment"),
        conditions_=(),
        citation=cite(BUBECK_2015, "Theorem 6.2 (p. 331)"),
        verified=("literature", "calibration"),
        verification_note="Theorem 6.2 read in a text copy of the monograph; checked on a noisy "
                          "quadratic in the tests.",
        summary="SGD eta_k = 2/(mu (k+2)), strongly convex, weighted average: 2 G^2/(mu (K+1))",
        expectation=True,
        step_rule=2 / (mu * (k + 2)),
    )
