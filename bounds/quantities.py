"""What a bound bounds: a small set of quantities the auditor can measure."""

from __future__ import annotations

from enum import Enum


class Quantity(str, Enum):
    """The left-hand side of a bound. Values are stable ids used in JSON and on the CLI."""

    LAST_ITERATE_GAP = "last_iterate_gap"
    AVERAGED_ITERATE_GAP = "averaged_iterate_gap"
    MIN_GRAD_NORM_SQ = "min_grad_norm_sq"
    AVG_GRAD_NORM_SQ = "avg_grad_norm_sq"
    RANDOM_ITERATE_GRAD_NORM_SQ = "random_iterate_grad_norm_sq"
    LAST_ITERATE_DIST_SQ = "last_iterate_dist_sq"
    ASYMPTOTIC_RATE = "asymptotic_rate"
    UNIFORM_STABILITY = "uniform_stability"
    PARAMETER_DIVERGENCE = "parameter_divergence"
    CONSENSUS_DISTANCE = "consensus_distance"

    @property
    def latex(self) -> str:
        return _LATEX[self]

    @property
    def description(self) -> str:
        return _DESCRIPTION[self]


_LATEX = {
    Quantity.LAST_ITERATE_GAP: r"f(x_K) - f^\star",
    Quantity.AVERAGED_ITERATE_GAP: r"f(\bar x_K) - f^\star",
    Quantity.MIN_GRAD_NORM_SQ: r"\min_{0 \le k < K} \|\nabla f(x_k)\|^2",
    Quantity.AVG_GRAD_NORM_SQ: r"\frac{1}{K}\sum_{k=0}^{K-1} \|\nabla f(x_k)\|^2",
    Quantity.RANDOM_ITERATE_GRAD_NORM_SQ: r"\|\nabla f(x_\tau)\|^2",
    Quantity.LAST_ITERATE_DIST_SQ: r"\|x_K - x^\star\|^2",
    Quantity.ASYMPTOTIC_RATE: r"\limsup_{k\to\infty} \|x_k - x^\star\|^{1/k}",
    Quantity.UNIFORM_STABILITY: r"\epsilon_{\mathrm{stab}}",
    Quantity.PARAMETER_DIVERGENCE: r"\|x_K - x^{\prime}_K\|",
    Quantity.CONSENSUS_DISTANCE: r"\sqrt{\tfrac1N \sum_{i=1}^N \|x_{i,K} - \bar x_K\|^2}",
}

_DESCRIPTION = {
    Quantity.LAST_ITERATE_GAP: "suboptimality of the last iterate, f(x_K) - f*",
    Quantity.AVERAGED_ITERATE_GAP: "suboptimality of an average of the iterates",
    Quantity.MIN_GRAD_NORM_SQ: "smallest squared gradient norm over x_0..x_{K-1}",
    Quantity.AVG_GRAD_NORM_SQ: "average squared gradient norm over x_0..x_{K-1}",
    Quantity.RANDOM_ITERATE_GRAD_NORM_SQ:
        "squared gradient norm at an iterate drawn at random (the theorem's output rule); "
        "in expectation it is a weighted average over the iterates",
    Quantity.LAST_ITERATE_DIST_SQ: "squared distance of the last iterate to the minimizer",
    Quantity.ASYMPTOTIC_RATE: "asymptotic linear rate limsup ||x_k - x*||^(1/k)",
    Quantity.UNIFORM_STABILITY:
        "uniform stability: sup over z of E[f(A(S); z) - f(A(S'); z)] for neighbouring S, S'",
    Quantity.PARAMETER_DIVERGENCE:
        "distance between the iterates of two runs on datasets S, S' that differ in one "
        "example, with the same initial point and the same sample order",
    Quantity.CONSENSUS_DISTANCE:
        "consensus distance of N ranks after K steps: the root-mean-square distance of the "
        "ranks' parameters x_i,K to their mean",
}
