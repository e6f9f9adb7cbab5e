"""Consensus of decentralized and local methods: how far apart the ranks' parameters can drift.

N ranks hold parameters x_{i,t}; x̄_t is their mean and the consensus distance is

    c_t = sqrt((1/N) Σ_i ‖x_{i,t} − x̄_t‖²)   (= ‖Ξ_t‖_F / √N, Ξ_t the N×d matrix of x_{i,t} − x̄_t).

Each step every rank takes its local optimizer step u_{i,t} (−η g_i for SGD; any optimizer's
step), and the ranks communicate. With ū_t the mean step and s_t = sqrt((1/N) Σ_i ‖u_{i,t} −
ū_t‖²) the spread of the steps, the three methods of ``approx-audit run --method`` satisfy one
recursion c_{t+1} ≤ ρ c_t + s_t, with a method's own ρ, derived here:

D-PSGD (Lian et al. 2017): X_{t+1} = W X_t + U_t with W doubly stochastic. Write J = 11ᵀ/N.
    Since W J = J W = J (rows and columns of W sum to 1), (I − J) W X = (W − J)(I − J) X, so
    Ξ_{t+1} = (W − J) Ξ_t + (I − J) U_t and ‖Ξ_{t+1}‖_F ≤ ‖W − J‖₂ ‖Ξ_t‖_F + ‖(I − J) U_t‖_F,
    i.e. ρ = ρ_W = ‖W − J‖₂ (spectral norm; = max(|λ₂|, |λ_N|) for a symmetric W, and ≥ |λ₂|
    for any W). Equality holds when Ξ_t lies along the top singular vector of W − J and U_t = 0:
    the constant cannot be smaller. |λ₂| alone is only the asymptotic rate; for a non-normal W it
    is not a per-step bound. Lian et al.'s ρ = max(|λ₂|, |λ_N|)² is the factor of the squared
    distance; using it for c_t itself would be wrong.
EASGD (Zhang, Choromanska & LeCun 2015, synchronous): x_{i,t+1} = x_{i,t} + u_{i,t} − a (x_{i,t}
    − x̃_t), the center x̃_t shared by every rank. The center term is the same for every rank,
    so it cancels in x_i − x̄: Ξ_{t+1} = (1 − a) Ξ_t + (I − J) U_t, ρ = 1 − a for 0 < a < 1,
    with equality for U_t = 0 (every Ξ_t).
local SGD (parameters averaged after every step t with (t + 1) mod H = 0): between averagings
    Ξ_{t+1} = Ξ_t + (I − J) U_t (ρ = 1); an averaging makes every x_i equal, c = 0. Hence
    c_K ≤ C_0 + K S_u for K < H, and c_K ≤ (K mod H) S_u afterwards.

Unrolled with s_t ≤ S_u (the largest spread along the run) and c_0 = C_0:

    c_K ≤ ρ^K C_0 + S_u Σ_{j<K} ρ^j = ρ^K C_0 + S_u (1 − ρ^K) / (1 − ρ).

These are deterministic, pathwise statements: they hold along every realized trajectory, with
S_u measured on it (``approx-audit run --nproc N --method …`` measures s_t at every step, so
S_u is exact, and c_t itself). They are what the auditor checks for the decentralized methods.

Verification: derived here (three lines of linear algebra above) and machine-checked in
``tests/bounds/test_decentralized_bounds.py`` on random doubly-stochastic matrices (symmetric and
not), random disagreements and random steps: the recursion holds to rounding, and it is attained
(the constants are the smallest possible). The multi-process runs in
``tests/auditor/test_decentralized.py`` check them against the real algorithms on gloo.

Left out, and why: the convergence rates of these methods (Lian et al. 2017, Theorem 1 and its
corollary for D-PSGD; Stich 2019 and Woodworth et al. 2020 for local SGD; Lian et al. 2015 for
asynchronous SGD with bounded staleness; EASGD's analysis) — their constants could not be read
in the primary texts available to this project, and a wrong constant is worse than a missing
bound.
"""

from __future__ import annotations

import sympy as sp

from ..bound import Bound
from ..catalogue import register
from ..quantities import Quantity
from ..symbols import C0, H, K, Su, alpha_ea, rho_W
from ._common import cite

LIAN_2017 = dict(
    authors=("Xiangru Lian", "Ce Zhang", "Huan Zhang", "Cho-Jui Hsieh", "Wei Zhang", "Ji Liu"),
    title="Can Decentralized Algorithms Outperform Centralized Algorithms? A Case Study for "
          "Decentralized Parallel Stochastic Gradient Descent",
    year=2017,
    venue="NeurIPS 2017",
    url="https://arxiv.org/abs/1705.09056",
)

ZHANG_2015 = dict(
    authors=("Sixin Zhang", "Anna Choromanska", "Yann LeCun"),
    title="Deep learning with Elastic Averaging SGD",
    year=2015,
    venue="NeurIPS 2015",
    url="https://arxiv.org/abs/1412.6651",
)

_NOTE = ("Derived in bounds/families/decentralized.py (the consensus recursion c_{t+1} <= rho "
         "c_t + s_t, unrolled) and machine-checked on random instances, where it is attained; "
         "the cited work defines the algorithm, not this bound.")
_ASSUME = ("initial_consensus", "bounded_update_spread")
# Only the algorithm comes from the paper; its section was not read in a primary text here.
_LOCATOR = ("{what} (the paper); the bound is derived in approx-audit, not stated in the paper "
            "(module bounds/families/decentralized.py)")

STICH_2019 = dict(
    authors=("Sebastian U. Stich",),
    title="Local SGD Converges Fast and Communicates Little",
    year=2019,
    venue="ICLR 2019",
    url="https://arxiv.org/abs/1805.09767",
)


@register
def dpsgd_consensus_lian_2017() -> Bound:
    r"""Consensus distance of D-PSGD with a doubly-stochastic mixing matrix W.

    .. math:: c_K \le \rho_W^K C_0 + S_u \frac{1 - \rho_W^K}{1 - \rho_W},
              \qquad \rho_W = \|W - \tfrac1N \mathbf{1}\mathbf{1}^\top\|_2 < 1

    The algorithm is Lian et al. (2017)'s D-PSGD (gossip of the pre-step parameters, the
    local step from the pre-gossip point); the bound is the consensus recursion derived in this
    module's docstring (any local optimizer: S_u is the spread of its steps).
    """
    return Bound(
        id="dpsgd.consensus.lian_2017",
        algorithm="dpsgd",
        setting="consensus",
        quantity=Quantity.CONSENSUS_DISTANCE,
        rhs=rho_W**K * C0 + Su * (1 - rho_W**K) / (1 - rho_W),
        assumptions=("doubly_stochastic_mixing",) + _ASSUME,
        conditions_=(sp.Lt(rho_W, 1),),
        citation=cite(LIAN_2017, _LOCATOR.format(what="the D-PSGD algorithm")),
        verified=("derivation",),
        verification_note=_NOTE,
        summary="D-PSGD: consensus distance c_K <= rho_W^K C0 + Su (1 - rho_W^K)/(1 - rho_W), "
                "rho_W = ||W - 11^T/N||_2",
        expectation=False,
        monotone_in_K=None,
        order_hint=sp.Integer(1),
    )


@register
def easgd_consensus_zhang_2015() -> Bound:
    r"""Consensus distance of the workers of synchronous EASGD with moving rate a.

    .. math:: c_K \le (1 - a)^K C_0 + S_u \frac{1 - (1 - a)^K}{a}, \qquad 0 < a < 1

    The algorithm is Zhang, Choromanska & LeCun (2015)'s synchronous EASGD (elastic pull
    a (x_i − x̃) towards a shared center x̃); the bound is the consensus recursion derived in
    this module's docstring.
    """
    return Bound(
        id="easgd.consensus.zhang_2015",
        algorithm="easgd",
        setting="consensus",
        quantity=Quantity.CONSENSUS_DISTANCE,
        rhs=(1 - alpha_ea)**K * C0 + Su * (1 - (1 - alpha_ea)**K) / alpha_ea,
        assumptions=_ASSUME,
        conditions_=(sp.Lt(alpha_ea, 1),),
        citation=cite(ZHANG_2015, _LOCATOR.format(what="the synchronous EASGD update")),
        verified=("derivation",),
        verification_note=_NOTE,
        summary="synchronous EASGD: consensus distance of the workers c_K <= (1 - a)^K C0 + "
                "Su (1 - (1 - a)^K)/a",
        expectation=False,
        monotone_in_K=None,
        order_hint=sp.Integer(1),
    )


@register
def local_sgd_consensus_stich_2019() -> Bound:
    r"""Consensus distance of local SGD that averages the parameters every H steps.

    .. math:: c_K \le \begin{cases} C_0 + K S_u & K < H \\ (K \bmod H)\, S_u & K \ge H
              \end{cases}

    The algorithm is local SGD as analysed by Stich (2019) (H local steps, then an exact
    average); the bound is the drift between averagings derived in this module's docstring.
    An averaging step leaves every rank with the same parameters: the bound is 0 there.
    """
    return Bound(
        id="local_sgd.consensus.stich_2019",
        algorithm="local_sgd",
        setting="consensus",
        quantity=Quantity.CONSENSUS_DISTANCE,
        rhs=sp.Piecewise((C0 + K * Su, K < H), (Su * sp.Mod(K, H), True)),
        assumptions=_ASSUME,
        conditions_=(),
        citation=cite(STICH_2019, _LOCATOR.format(what="local SGD with H local steps")),
        verified=("derivation",),
        verification_note=_NOTE,
        summary="local SGD (average every H steps): consensus distance c_K <= C0 + K Su for "
                "K < H, (K mod H) Su after the first averaging",
        expectation=False,
        monotone_in_K=None,
        order_hint=sp.Integer(1),          # bounded by C0 + (H - 1) Su, periodic in K
    )
