"""Polyak's heavy ball: ``x_{k+1} = x_k - alpha grad f(x_k) + beta (x_k - x_{k-1})``.

PyTorch: ``torch.optim.SGD(lr=alpha, momentum=beta, dampening=0, nesterov=False)`` on the full
batch produces exactly these iterates (its buffer ``v_k = beta v_{k-1} + g_k`` and
``x_{k+1} = x_k - lr v_k`` unroll to the same recursion).
"""

from __future__ import annotations

import sympy as sp

from ..bound import Bound
from ..catalogue import register
from ..quantities import Quantity
from ..symbols import L, beta, eta, mu
from ._common import cite


@register
def heavy_ball_quadratic_polyak_1964() -> Bound:
    r"""Heavy ball on a quadratic with Hessian eigenvalues in ``[mu, L]``: asymptotic rate.

    .. math:: \limsup_{k\to\infty} \|x_k - x^\star\|^{1/k} \le \sqrt{\beta}
        \quad\text{if}\quad (1 - \sqrt{\eta\mu})^2 \le \beta,\ (1 - \sqrt{\eta L})^2 \le \beta

    with step ``eta`` (``alpha`` in Polyak's notation). Derivation: on each eigen-direction
    ``lambda`` the iteration matrix is ``[[1 + beta - eta lambda, -beta], [1, 0]]`` with
    determinant ``beta``; its eigenvalues are complex (or a double root) exactly when
    ``(1 - sqrt(eta lambda))^2 <= beta <= (1 + sqrt(eta lambda))^2``, and then both have modulus
    ``sqrt(beta)``. The conditions at ``lambda = mu`` and ``lambda = L`` imply it for every
    eigenvalue in between (for ``beta < 1`` the upper inequality always holds), so the spectral
    radius is ``sqrt(beta)``. Polyak's tuning ``eta = 4/(sqrt(L) + sqrt(mu))^2``,
    ``beta = ((sqrt(L) - sqrt(mu))/(sqrt(L) + sqrt(mu)))^2`` meets both with equality and gives
    ``(sqrt(kappa) - 1)/(sqrt(kappa) + 1)``.

    Only asymptotic: at a double root the iterates decay like ``k sqrt(beta)^k``, so no bound
    ``C sqrt(beta)^k`` with a constant independent of ``k`` holds. Only on quadratics: Lessard,
    Recht & Packard (2016) give a smooth strongly convex function on which the tuned method
    cycles. Tight (the spectral radius is attained).

    Polyak (1964), heavy-ball method on quadratics; the spectral-radius statement is derived
    here and checked numerically against eigenvalues in the tests.
    """
    return Bound(
        id="heavy_ball.quadratic.polyak_1964",
        algorithm="heavy_ball",
        setting="quadratic",
        quantity=Quantity.ASYMPTOTIC_RATE,
        rhs=sp.sqrt(beta),
        assumptions=("quadratic",),
        conditions_=(sp.Le((1 - sp.sqrt(eta * mu)) ** 2, beta),
                     sp.Le((1 - sp.sqrt(eta * L)) ** 2, beta),
                     sp.Le(mu, L)),
        citation=cite(
            dict(authors=("Boris T. Polyak",),
                 title="Some methods of speeding up the convergence of iteration methods",
                 year=1964,
                 venue="USSR Computational Mathematics and Mathematical Physics 4(5):1-17"),
            "Section 3 (heavy-ball method on quadratics); spectral radius derived in the docstring"),
        verified=("derivation", "calibration"),
        verification_note="Theorem number not confirmed; the encoded statement is derived and "
                          "checked against eigenvalues of the iteration matrix in the tests.",
        summary="Heavy ball on quadratics: rate sqrt(beta) when (1-sqrt(eta mu))^2, (1-sqrt(eta L))^2 <= beta",
        tight=True,
        monotone_in_K="constant",
        step_rule=eta,
    )
