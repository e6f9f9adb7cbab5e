"""Adaptive methods in the form analysed by Défossez, Bottou, Bach & Usunier (2022).

Their algorithm, coordinate-wise with ``m_0 = v_0 = 0``:
``m_n = beta1 m_{n-1} + g_n``, ``v_n = beta2 v_{n-1} + g_n^2``,
``x_n = x_{n-1} - alpha_n m_n / sqrt(eps + v_n)``; Adagrad is ``beta2 = 1``,
``alpha_n = alpha``; Adam is ``0 < beta2 < 1`` with
``alpha_n = alpha (1 - beta1) sqrt((1 - beta2^n)/(1 - beta2))``.

Differences from PyTorch, with ``lr = alpha``:

* ``torch.optim.Adam`` also divides the first moment by ``1 - beta1^n`` (bias correction of
  ``m``), which the paper drops (it acts like a warm-up); with ``beta1 = 0`` the two coincide
  except for ``eps``.
* PyTorch adds ``eps`` outside the square root of the *normalised* second moment,
  ``sqrt(v_hat) + eps``; the paper adds it inside, ``sqrt(eps + v)``, with an unnormalised ``v``.
  Map one onto the other before instantiating ``eps``.
* ``torch.optim.Adagrad`` (``initial_accumulator_value=0``, ``lr_decay=0``) is the paper's
  Adagrad up to the same ``eps`` placement. ``torch.optim.RMSprop`` has no bias correction of
  ``v``, so it matches the paper's Adam with ``beta1 = 0`` only asymptotically.

Notation: the paper's ``R`` (``||grad f||_inf <= R - sqrt(eps)`` almost surely, ``R >= sqrt(eps)``)
is ``G_inf + sqrt(eps)`` here, where ``G_inf`` bounds the stochastic gradients in l_inf norm.
Each bound grows with ``R``, so this choice is valid whichever way the paper's display reads
(``<= R - sqrt(eps)`` or ``<= R``). ``alpha`` is ``eta``, ``N`` is ``K``, ``F(x_0) - F_*`` is
``Delta``. The output ``x_tau`` has ``P(tau = j) ∝ 1 - beta1^(N - j)`` over ``j = 0..N-1``
(uniform when ``beta1 = 0``), so the left side is a weighted average over the iterates.
"""

from __future__ import annotations

import sympy as sp

from ..bound import Bound
from ..catalogue import register
from ..quantities import Quantity
from ..symbols import Delta, G_inf, K, L, beta1, beta2, d, eps, eta, k
from ._common import cite

DEFOSSEZ_2022 = dict(
    authors=("Alexandre Défossez", "Léon Bottou", "Francis Bach", "Nicolas Usunier"),
    title="A Simple Convergence Proof of Adam and Adagrad",
    year=2022,
    venue="Transactions on Machine Learning Research",
    url="https://arxiv.org/abs/2003.02395",
)

_R = G_inf + sp.sqrt(eps)
_ASSUMPTIONS = ("l_smooth", "lower_bounded", "unbiased_gradients", "bounded_gradient_inf")
_NOTE = ("Theorem numbers and hypotheses read in the paper's own text (prose copy whose displays "
         "were stripped); the displayed formula from course notes adapted from the paper "
         "(secondary), identical to an independent recollection; checked on a deterministic "
         "problem in the tests.")


@register
def adagrad_nonconvex_defossez_2022() -> Bound:
    r"""Adagrad (no momentum) on a smooth non-convex function with bounded gradients.

    .. math:: \mathbb{E}\|\nabla F(x_\tau)\|^2 \le \frac{2 R \Delta}{\alpha\sqrt{N}}
              + \frac{4 d R^2 + \alpha d R L}{\sqrt{N}} \ln\Big(1 + \frac{N R^2}{\epsilon}\Big),
              \qquad R = G_\infty + \sqrt{\epsilon}

    ``tau`` uniform over ``0..N-1``. Any ``alpha > 0``: no step condition. Not tight.

    Défossez, Bottou, Bach & Usunier (2022), Theorem 1.
    """
    return Bound(
        id="adagrad.nonconvex.defossez_2022",
        algorithm="adagrad",
        setting="nonconvex",
        quantity=Quantity.RANDOM_ITERATE_GRAD_NORM_SQ,
        rhs=2 * _R * Delta / (eta * sp.sqrt(K))
        + (4 * d * _R**2 + eta * d * _R * L) / sp.sqrt(K) * sp.log(1 + K * _R**2 / eps),
        assumptions=_ASSUMPTIONS,
        conditions_=(),
        citation=cite(DEFOSSEZ_2022, "Theorem 1"),
        verified=("literature", "calibration"),
        verification_note=_NOTE,
        summary="Adagrad, non-convex: O(d ln(N)/sqrt(N)) for any step",
        expectation=True,
        # ln(1 + N R^2/eps)/sqrt(N) first grows with N, then decays
        monotone_in_K=None,
        step_rule=eta,
        order_hint=sp.log(K) / sp.sqrt(K),
    )


@register
def rmsprop_nonconvex_defossez_2022() -> Bound:
    r"""Adam without momentum (``beta1 = 0``, RMSProp with bias-corrected step): no convergence.

    .. math:: \mathbb{E}\|\nabla F(x_\tau)\|^2 \le \frac{2 R \Delta}{\alpha N}
              + E\Big(\frac1N \ln\Big(1 + \frac{R^2}{(1-\beta_2)\epsilon}\Big) - \ln\beta_2\Big),
              \quad E = \frac{4 d R^2}{\sqrt{1-\beta_2}} + \frac{\alpha d R L}{1 - \beta_2}

    with ``alpha_n = alpha sqrt((1 - beta2^n)/(1 - beta2))`` and ``tau`` uniform. The
    ``-E ln(beta2)`` term does not vanish: with fixed ``beta2`` the bound has a floor (the
    paper's point that default Adam does not converge); ``beta2 = 1 - 1/N`` and
    ``alpha ∝ 1/sqrt(N)`` give ``O(d ln(N)/sqrt(N))``. Not tight.

    Défossez, Bottou, Bach & Usunier (2022), Theorem 2.
    """
    E = 4 * d * _R**2 / sp.sqrt(1 - beta2) + eta * d * _R * L / (1 - beta2)
    return Bound(
        id="rmsprop.nonconvex.defossez_2022",
        algorithm="rmsprop",
        setting="nonconvex",
        quantity=Quantity.RANDOM_ITERATE_GRAD_NORM_SQ,
        rhs=2 * _R * Delta / (eta * K)
        + E * (sp.log(1 + _R**2 / ((1 - beta2) * eps)) / K - sp.log(beta2)),
        assumptions=_ASSUMPTIONS,
        conditions_=(),
        citation=cite(DEFOSSEZ_2022, "Theorem 2"),
        verified=("literature", "calibration"),
        verification_note=_NOTE,
        summary="Adam with beta1 = 0 (RMSProp), non-convex: 1/N terms plus a -E ln(beta2) floor",
        expectation=True,
        step_rule=eta * sp.sqrt((1 - beta2 ** (k + 1))
                                / (1 - beta2)),
        order_hint=sp.Integer(1),
    )


@register
def adam_nonconvex_defossez_2022() -> Bound:
    r"""Adam with momentum ``0 <= beta1 < beta2 < 1`` on a smooth non-convex function.

    .. math:: \mathbb{E}\|\nabla F(x_\tau)\|^2 \le \frac{2 R \Delta}{\alpha \tilde N}
              + \frac{E}{\tilde N}\Big(\ln\Big(1 + \frac{R^2}{(1-\beta_2)\epsilon}\Big)
              - N \ln\beta_2\Big), \qquad \tilde N = N - \frac{\beta_1}{1 - \beta_1},

    .. math:: E = \frac{\alpha d R L (1-\beta_1)}{(1 - \beta_1/\beta_2)(1-\beta_2)}
              + \frac{12 d R^2 \sqrt{1-\beta_1}}{(1 - \beta_1/\beta_2)^{3/2}\sqrt{1-\beta_2}}
              + \frac{2 \alpha^2 d L^2 \beta_1}{(1 - \beta_1/\beta_2)(1-\beta_2)^{3/2}}

    with ``alpha_n = alpha (1 - beta1) sqrt((1 - beta2^n)/(1 - beta2))``, ``N > beta1/(1-beta1)``
    and ``P(tau = j) ∝ 1 - beta1^(N - j)``. Setting ``beta1 = 0`` recovers Theorem 2 up to a
    factor 3 in the ``d R^2`` term, as the paper says. Not tight.

    Défossez, Bottou, Bach & Usunier (2022), Theorem 4.
    """
    Nt = K - beta1 / (1 - beta1)
    r = 1 - beta1 / beta2
    E = (eta * d * _R * L * (1 - beta1) / (r * (1 - beta2))
         + 12 * d * _R**2 * sp.sqrt(1 - beta1) / (r ** sp.Rational(3, 2) * sp.sqrt(1 - beta2))
         + 2 * eta**2 * d * L**2 * beta1 / (r * (1 - beta2) ** sp.Rational(3, 2)))
    return Bound(
        id="adam.nonconvex.defossez_2022",
        algorithm="adam",
        setting="nonconvex",
        quantity=Quantity.RANDOM_ITERATE_GRAD_NORM_SQ,
        rhs=2 * _R * Delta / (eta * Nt)
        + E / Nt * (sp.log(1 + _R**2 / ((1 - beta2) * eps)) - K * sp.log(beta2)),
        assumptions=_ASSUMPTIONS,
        conditions_=(sp.Lt(beta1, beta2), sp.Gt(K, beta1 / (1 - beta1))),
        citation=cite(DEFOSSEZ_2022, "Theorem 4"),
        verified=("literature", "calibration"),
        verification_note=_NOTE,
        summary="Adam with momentum, non-convex: 1/N~ terms plus a -E ln(beta2) floor",
        expectation=True,
        step_rule=eta * (1 - beta1) * sp.sqrt(
            (1 - beta2 ** (k + 1)) / (1 - beta2)),
        order_hint=sp.Integer(1),
    )
