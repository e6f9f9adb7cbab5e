"""Nesterov's accelerated gradient method (AGD / FISTA) with step ``1/L``.

PyTorch: ``torch.optim.SGD(lr=1/L, momentum=m, nesterov=True)`` on the full batch runs
Nesterov's method with a *constant* momentum ``m`` (in a shifted parametrization of the same
iterates). With ``m = (sqrt(L) - sqrt(mu))/(sqrt(L) + sqrt(mu))`` that is the strongly convex
scheme below. The convex scheme's momentum ``(t_k - 1)/t_{k+1}`` grows to 1 over the run, which
``torch.optim`` cannot express with a constant ``momentum``.
"""

from __future__ import annotations

import sympy as sp

from ..bound import Bound
from ..catalogue import register
from ..quantities import Quantity
from ..symbols import Delta, K, L, R, mu
from ._common import cite

BUBECK_2015 = dict(
    authors=("Sebastien Bubeck",),
    title="Convex Optimization: Algorithms and Complexity",
    year=2015,
    venue="Foundations and Trends in Machine Learning 8(3-4):231-357",
    url="https://arxiv.org/abs/1405.4980",
)


@register
def agd_smooth_convex_bubeck_2015() -> Bound:
    r"""Nesterov's accelerated gradient on an L-smooth convex function.

    .. math:: f(y_{K+1}) - f^\star \le \frac{2 L \|x_0 - x^\star\|^2}{(K + 1)^2}

    Scheme (Bubeck's ``beta`` is ``L``): ``lambda_0 = 0``,
    ``lambda_t = (1 + sqrt(1 + 4 lambda_{t-1}^2))/2``, ``gamma_t = (1 - lambda_t)/lambda_{t+1}``;
    ``y_{t+1} = x_t - grad f(x_t)/L``, ``x_{t+1} = (1 - gamma_t) y_{t+1} + gamma_t y_t``,
    ``x_1 = y_1``. The theorem bounds ``f(y_t)`` after ``t - 1`` gradient steps by
    ``2 L R^2 / t^2``; here ``K = t - 1`` counts the gradient evaluations. Not tight (OGM's exact
    worst case is about half).

    Bubeck (2015), Theorem 3.19 (p. 294).
    """
    return Bound(
        id="agd.smooth_convex.bubeck_2015",
        algorithm="agd",
        setting="smooth_convex",
        quantity=Quantity.LAST_ITERATE_GAP,
        rhs=2 * L * R**2 / (K + 1) ** 2,
        assumptions=("l_smooth", "convex", "minimizer_exists"),
        conditions_=(),
        citation=cite(BUBECK_2015, "Theorem 3.19 (p. 294)"),
        verified=("literature", "calibration", "pep"),
        verification_note="Theorem read in a text copy of the monograph; run on quadratics and "
                          "Huber functions in the tests.",
        summary="AGD, smooth convex: 2 L R^2/(K+1)^2 with step 1/L",
        step_rule=1 / L,
    )


@register
def agd_smooth_convex_beck_teboulle_2009() -> Bound:
    r"""FISTA (accelerated proximal gradient) with constant step ``1/L``.

    .. math:: F(x_K) - F^\star \le \frac{2 L \|x_0 - x^\star\|^2}{(K + 1)^2}

    Scheme: ``y_1 = x_0``, ``t_1 = 1``; ``x_k = prox(y_k - grad f(y_k)/L)``,
    ``t_{k+1} = (1 + sqrt(1 + 4 t_k^2))/2``, ``y_{k+1} = x_k + (t_k - 1)/t_{k+1} (x_k - x_{k-1})``.
    ``x_K`` uses ``K`` gradient steps. With no non-smooth part, the prox is the identity and this
    is Nesterov's method (same bound as ``agd.smooth_convex.bubeck_2015``). Not tight.

    Beck & Teboulle (2009), Theorem 4.4 (``alpha = 1`` for the constant step).
    """
    return Bound(
        id="agd.smooth_convex.beck_teboulle_2009",
        algorithm="agd",
        setting="smooth_convex",
        quantity=Quantity.LAST_ITERATE_GAP,
        rhs=2 * L * R**2 / (K + 1) ** 2,
        assumptions=("l_smooth", "convex", "minimizer_exists"),
        conditions_=(),
        citation=cite(
            dict(authors=("Amir Beck", "Marc Teboulle"),
                 title="A Fast Iterative Shrinkage-Thresholding Algorithm for Linear Inverse "
                       "Problems",
                 year=2009, venue="SIAM Journal on Imaging Sciences 2(1):183-202"),
            "Theorem 4.4"),
        verified=("literature", "calibration", "pep"),
        verification_note="Statement quoted verbatim in secondary notes; run in the tests.",
        summary="FISTA / AGD, smooth convex: 2 L R^2/(K+1)^2 with step 1/L",
        step_rule=1 / L,
    )


@register
def agd_smooth_strongly_convex_bubeck_2015() -> Bound:
    r"""Nesterov's accelerated gradient on an L-smooth mu-strongly convex function.

    .. math:: f(y_{K+1}) - f^\star \le \frac{\mu + L}{2} \|x_0 - x^\star\|^2 e^{-K \sqrt{\mu/L}}

    Scheme: ``y_{t+1} = x_t - grad f(x_t)/L``, ``x_{t+1} = (1 + q) y_{t+1} - q y_t`` with
    ``q = (sqrt(kappa) - 1)/(sqrt(kappa) + 1)``, ``kappa = L/mu``, ``x_1 = y_1``. The theorem
    bounds ``f(y_t)`` after ``t - 1`` gradient steps with ``exp(-(t - 1)/sqrt(kappa))``; here
    ``K = t - 1``. (The proof gives the slightly smaller ``(1 - 1/sqrt(kappa))^K``.)

    Bubeck (2015), Theorem 3.18 (p. 290).
    """
    return Bound(
        id="agd.smooth_strongly_convex.bubeck_2015",
        algorithm="agd",
        setting="smooth_strongly_convex",
        quantity=Quantity.LAST_ITERATE_GAP,
        rhs=(mu + L) / 2 * R**2 * sp.exp(-K * sp.sqrt(mu / L)),
        assumptions=("l_smooth", "strongly_convex", "minimizer_exists"),
        conditions_=(sp.Le(mu, L),),
        citation=cite(BUBECK_2015, "Theorem 3.18 (p. 290)"),
        verified=("literature", "calibration", "pep"),
        verification_note="Theorem read in a text copy of the monograph; run in the tests.",
        summary="AGD, smooth strongly convex: (mu+L)/2 R^2 exp(-K sqrt(mu/L))",
        step_rule=1 / L,
        order_hint=sp.exp(-K * sp.sqrt(mu / L)),
    )


@register
def agd_smooth_strongly_convex_daspremont_2021() -> Bound:
    r"""Nesterov's constant-momentum method on an L-smooth mu-strongly convex function.

    .. math:: f(x_K) - f^\star \le \Big(1 - \sqrt{\mu/L}\Big)^K
              \Big(f(x_0) - f^\star + \frac{\mu}{2}\|x_0 - x^\star\|^2\Big)

    Scheme: ``y_k = x_k + (sqrt(L) - sqrt(mu))/(sqrt(L) + sqrt(mu)) (x_k - x_{k-1})``,
    ``x_{k+1} = y_k - grad f(y_k)/L``, ``x_{-1} = x_0``; ``K`` gradient steps. This is
    ``torch.optim.SGD(lr=1/L, momentum=q, nesterov=True)`` on the full batch. Not tight.

    d'Aspremont, Scieur & Taylor (2021), Corollary 4.15.
    """
    return Bound(
        id="agd.smooth_strongly_convex.daspremont_2021",
        algorithm="agd",
        setting="smooth_strongly_convex",
        quantity=Quantity.LAST_ITERATE_GAP,
        rhs=(1 - sp.sqrt(mu / L)) ** K * (Delta + mu / 2 * R**2),
        assumptions=("l_smooth", "strongly_convex", "minimizer_exists", "lower_bounded"),
        conditions_=(sp.Le(mu, L),),
        citation=cite(
            dict(authors=("Alexandre d'Aspremont", "Damien Scieur", "Adrien Taylor"),
                 title="Acceleration Methods",
                 year=2021, venue="Foundations and Trends in Optimization 5(1-2):1-245",
                 url="https://arxiv.org/abs/2101.09545"),
            "Corollary 4.15"),
        verified=("literature", "calibration", "pep"),
        verification_note="Statement from PEPit's accelerated_gradient_strongly_convex example "
                          "(secondary), which cites Corollary 4.15; run in the tests.",
        summary="AGD constant momentum, smooth strongly convex: (1 - sqrt(mu/L))^K (Delta + mu R^2/2)",
        step_rule=1 / L,
        order_hint=(1 - sp.sqrt(mu / L)) ** K,
    )
