"""Citations shared by several family modules, and small helpers."""

from __future__ import annotations

from ..citation import Citation

BECK_2017 = dict(
    authors=("Amir Beck",),
    title="First-Order Methods in Optimization",
    year=2017,
    venue="SIAM, MOS-SIAM Series on Optimization 25",
)

NESTEROV_2018 = dict(
    authors=("Yurii Nesterov",),
    title="Lectures on Convex Optimization (2nd ed. of Introductory Lectures on Convex "
          "Optimization, 2004)",
    year=2018,
    venue="Springer Optimization and Its Applications 137",
)

BOTTOU_2018 = dict(
    authors=("Leon Bottou", "Frank E. Curtis", "Jorge Nocedal"),
    title="Optimization Methods for Large-Scale Machine Learning",
    year=2018,
    venue="SIAM Review 60(2):223-311",
    url="https://arxiv.org/abs/1606.04838",
)

KARIMI_2016 = dict(
    authors=("Hamed Karimi", "Julie Nutini", "Mark Schmidt"),
    title="Linear Convergence of Gradient and Proximal-Gradient Methods under the "
          "Polyak-Lojasiewicz Condition",
    year=2016,
    venue="ECML-PKDD 2016, LNCS 9851:795-811",
    url="https://arxiv.org/abs/1608.04636",
)


def cite(base: dict, locator: str, **extra: str) -> Citation:
    return Citation(**{**base, **extra}, locator=locator)
