"""Algorithmic stability of SGD (Hardt, Recht & Singer 2016), convex case.

Setting: a training set S of n examples; S' differs from S in one example; SGD runs on both
from the same x_0 with the same sequence of sampled indices (uniform, with replacement). Each
per-example loss f(·; z) is convex, L-smooth (our ``L``; Hardt et al. write beta) and
G-Lipschitz in the parameters (our ``G``; they write L). With steps eta_t <= 2/L the update on
a shared example is 1-expansive (a gradient step on a convex L-smooth function with step at
most 2/L is non-expansive), and on the differing example it adds at most 2 eta_t G; that
example is drawn with probability 1/n per draw. Hence, for the divergence
delta_t = ||x_t - x'_t||,

    E delta_K <= (2 G / n) sum_{t<K} eta_t,

and, the loss being G-Lipschitz, uniform stability eps_stab <= G E delta_K
= (2 G^2 / n) sum_t eta_t. With a minibatch of size B drawn with replacement the same bound
holds: the differing example is drawn B/n times per step in expectation, each draw weighted
1/B (derived here; the paper states single-example SGM).

Verification: the formula of the stability bound (constant 2, sum over the T steps, condition
alpha_t <= 2/beta, sampling with replacement) was confirmed in two independent secondary
sources that restate the theorem, and then in the primary ICML 2016 text (PMLR 48), where the
convex theorem is **Theorem 3.7** ("beta-smooth, convex and L-Lipschitz ... alpha_t <= 2/beta
... eps_stab <= (2L^2/n) sum_t alpha_t"; the verification round of 2026-12-03 in
shared/research/theorems.md); Theorem 3.8 of that text is the non-convex one. The recursion
was derived here from the two properties above and is checked on logistic regression in
``tests/auditor/test_stability.py``. The strongly convex results are in the arXiv full version
only (not read: left out); the non-convex theorem is not encoded yet.
"""

from __future__ import annotations

import sympy as sp

from ..bound import Bound
from ..catalogue import register
from ..quantities import Quantity
from ..symbols import G, K, L, eta, n
from ._common import cite

HARDT_2016 = dict(
    authors=("Moritz Hardt", "Benjamin Recht", "Yoram Singer"),
    title="Train faster, generalize better: Stability of stochastic gradient descent",
    year=2016,
    venue="ICML 2016, PMLR 48:1225-1234",
    url="https://arxiv.org/abs/1509.01240",
)

_ASSUMPTIONS = ("convex", "l_smooth", "lipschitz_loss", "unbiased_gradients")
_NOTE = ("Formula confirmed in two secondary restatements and in the primary ICML 2016 text "
         "(Theorem 3.7 there); the divergence recursion derived (module docstring) and checked "
         "empirically.")


@register
def sgd_stability_convex_hardt_2016() -> Bound:
    r"""Uniform stability of SGD on convex, smooth, Lipschitz losses with a constant step.

    .. math:: \epsilon_{\mathrm{stab}} \le \frac{2 G^2}{n} \sum_{t=0}^{K-1} \eta
              = \frac{2 G^2 K \eta}{n}, \qquad \eta \le 2/L

    Hardt, Recht & Singer (2016), Theorem 3.7 (their L is our G, their beta our L, their T
    our K, alpha_t our eta).
    """
    return Bound(
        id="sgd.stability_convex.hardt_2016",
        algorithm="sgd",
        setting="stability_convex",
        quantity=Quantity.UNIFORM_STABILITY,
        rhs=2 * G**2 * K * eta / n,
        assumptions=_ASSUMPTIONS,
        conditions_=(sp.Le(eta, 2 / L),),
        citation=cite(HARDT_2016, "Theorem 3.7"),
        verified=("literature", "derivation"),
        verification_note=_NOTE,
        summary="SGD, convex smooth G-Lipschitz losses, eta <= 2/L: eps_stab <= 2 G^2 K eta / n",
        expectation=True,
        monotone_in_K="increasing",
        step_rule=eta,
        order_hint=K,
    )


@register
def sgd_stability_convex_hardt_2016_divergence() -> Bound:
    r"""The parameter divergence behind the stability bound.

    .. math:: \mathbb{E}\|x_K - x'_K\| \le \frac{2 G}{n} \sum_{t=0}^{K-1} \eta
              = \frac{2 G K \eta}{n}, \qquad \eta \le 2/L

    Hardt, Recht & Singer (2016), proof of Theorem 3.7 (growth recursion with a 1-expansive
    update on shared examples and a 2 eta G-bounded one on the differing example).
    """
    return Bound(
        id="sgd.stability_convex.hardt_2016.divergence",
        algorithm="sgd",
        setting="stability_convex",
        quantity=Quantity.PARAMETER_DIVERGENCE,
        rhs=2 * G * K * eta / n,
        assumptions=_ASSUMPTIONS,
        conditions_=(sp.Le(eta, 2 / L),),
        citation=cite(HARDT_2016, "Theorem 3.7 (its proof: the growth recursion)"),
        verified=("derivation",),
        verification_note=_NOTE,
        summary="SGD, convex smooth G-Lipschitz losses, eta <= 2/L: E||x_K - x'_K|| <= 2 G K eta / n",
        expectation=True,
        monotone_in_K="increasing",
        step_rule=eta,
        order_hint=K,
    )
