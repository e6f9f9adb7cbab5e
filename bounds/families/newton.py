"""Newton's method: ``x_{k+1} = x_k - [hess f(x_k)]^{-1} grad f(x_k)`` (no damping).

PyTorch: ``torch.optim.LBFGS`` is a quasi-Newton method and does not satisfy this bound; Newton
steps need the Hessian (``torch.func.hessian``) or Hessian-vector products with a linear solver.
"""

from __future__ import annotations

import sympy as sp

from ..bound import Bound
from ..catalogue import register
from ..quantities import Quantity
from ..symbols import K, M, R, mu
from ._common import cite


@register
def newton_local_nesterov_2004() -> Bound:
    r"""Local quadratic convergence of Newton's method, unrolled over K steps.

    .. math:: \|x_K - x^\star\|^2 \le \Big(\frac{2\mu}{3M}\Big)^2
              \Big(\frac{3 M \|x_0 - x^\star\|}{2\mu}\Big)^{2^{K+1}}
              \quad\text{if}\quad \|x_0 - x^\star\| < \frac{2\mu}{3M}

    Nesterov's Theorem 1.2.5: if the Hessian is M-Lipschitz, ``hess f(x*) >= l I`` (``l`` is
    ``mu`` here) and ``||x_0 - x*|| < 2l/(3M)``, the iterates stay in that ball and
    ``r_{k+1} <= M r_k^2 / (2 (l - M r_k))``. In the ball ``l - M r_k > l/3``, so
    ``s_{k+1} <= s_k^2`` for ``s_k = 3 M r_k/(2 l)``, hence ``r_K <= (2l/(3M)) s_0^(2^K)``,
    squared above. Only local; not tight.

    Nesterov (2004), Introductory Lectures on Convex Optimization, Theorem 1.2.5.
    """
    s0 = 3 * M * R / (2 * mu)
    return Bound(
        id="newton.local.nesterov_2004",
        algorithm="newton",
        setting="local",
        quantity=Quantity.LAST_ITERATE_DIST_SQ,
        rhs=(2 * mu / (3 * M)) ** 2 * s0 ** (2 ** (K + 1)),
        assumptions=("lipschitz_hessian", "hessian_lower_bound_at_optimum", "minimizer_exists"),
        conditions_=(sp.Lt(R, 2 * mu / (3 * M)),),
        citation=cite(
            dict(authors=("Yurii Nesterov",),
                 title="Introductory Lectures on Convex Optimization: A Basic Course",
                 year=2004, venue="Kluwer Academic Publishers"),
            "Theorem 1.2.5"),
        verified=("literature", "derivation", "calibration"),
        verification_note="Theorem 1.2.5 from secondary notes; the unrolled form is derived in "
                          "the docstring and checked on a cubic-regularized quadratic in the tests.",
        summary="Newton, local: (2mu/(3M))^2 (3 M R/(2 mu))^(2^(K+1)) when R < 2 mu/(3M)",
        order_hint=s0 ** (2 ** (K + 1)),
    )
