"""Assumptions a bound may rest on: statement, constants, and which trace key measures it."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from .errors import ApproxAuditError


@dataclass(frozen=True)
class Assumption:
    """One hypothesis of a theorem.

    ``constants`` are table names the assumption introduces (``("L",)`` for smoothness).
    ``observable`` is the trace key (auditor/observables.py; bounds/ never imports the
    auditor, so it is spelled here and a test checks it is a declared key) whose values along
    a trajectory bear on it, or ``None`` when no run measures it (e.g. unbiased gradients,
    the mixing matrix, which the run records rather than measures).
    """

    id: str
    statement: str  # LaTeX
    constants: tuple[str, ...]
    observable: str | None
    description: str

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "statement": self.statement,
            "constants": list(self.constants),
            "observable": self.observable,
            "description": self.description,
        }


def _table() -> list[Assumption]:
    return [
        Assumption("l_smooth", r"\|\nabla f(x) - \nabla f(y)\| \le L \|x - y\|", ("L",),
                   "local_smoothness", "the gradient is L-Lipschitz"),
        Assumption("convex", r"f(y) \ge f(x) + \langle \nabla f(x), y - x \rangle", (),
                   "convexity_gap", "f is convex"),
        Assumption("strongly_convex",
                   r"f(y) \ge f(x) + \langle \nabla f(x), y - x \rangle + \tfrac{\mu}{2}\|y - x\|^2",
                   ("mu",), "convexity_gap", "f is mu-strongly convex"),
        Assumption("pl", r"\tfrac12 \|\nabla f(x)\|^2 \ge \mu (f(x) - f^\star)", ("mu",),
                   "pl_ratio", "Polyak-Lojasiewicz inequality with constant mu"),
        Assumption("minimizer_exists", r"x^\star \in \arg\min f,\ \|x_0 - x^\star\| = R", ("R",),
                   None, "a minimizer exists; R is the initial distance to it"),
        Assumption("lower_bounded", r"f(x) \ge f_{\inf} > -\infty,\ f(x_0) - f_{\inf} = \Delta",
                   ("Delta",), "loss", "f is bounded below; Delta is the initial gap"),
        Assumption("unbiased_gradients", r"\mathbb{E}[g(x)] = \nabla f(x)", (), None,
                   "stochastic gradients are unbiased"),
        Assumption("bounded_variance", r"\mathbb{E}\|g(x) - \nabla f(x)\|^2 \le \sigma^2",
                   ("sigma",), "gradient_noise", "gradient noise has variance at most sigma^2"),
        Assumption("bounded_second_moment", r"\mathbb{E}\|g(x)\|^2 \le G^2", ("G",),
                   "grad_norm",
                   "stochastic gradients have second moment at most G^2 along the iterates"),
        Assumption("bounded_gradient_inf", r"\|g(x)\|_\infty \le G_\infty \text{ a.s.}",
                   ("G_inf",), "grad_inf_norm",
                   "stochastic gradients are bounded in l_inf norm almost surely"),
        Assumption("lipschitz_loss", r"|f(w; z) - f(w'; z)| \le G \|w - w'\| \ \forall z", ("G",),
                   "grad_norm", "every per-example loss is G-Lipschitz in the parameters"),
        Assumption("bounded_domain", r"\|x - x_0\| \le D \ \forall x \in X", ("D",), None,
                   "iterates are projected onto a convex set of radius D around x_0"),
        Assumption("bounded_loss", r"f(w; z) \in [0, 1]", (), "loss",
                   "every per-example loss lies in [0, 1]"),
        Assumption("lipschitz_hessian", r"\|\nabla^2 f(x) - \nabla^2 f(y)\| \le M \|x - y\|",
                   ("M",), None, "the Hessian is M-Lipschitz"),
        Assumption("hessian_lower_bound_at_optimum", r"\nabla^2 f(x^\star) \succeq \mu I", ("mu",),
                   "sharpness", "the Hessian at the minimizer is at least mu times the identity"),
        Assumption("quadratic",
                   r"f(x) = \tfrac12 x^\top A x - b^\top x,\ \mu I \preceq A \preceq L I",
                   ("mu", "L"), "sharpness", "f is a quadratic with Hessian eigenvalues in [mu, L]"),
        Assumption("doubly_stochastic_mixing",
                   r"W \ge 0,\ W\mathbf{1} = \mathbf{1},\ \mathbf{1}^\top W = \mathbf{1}^\top,\ "
                   r"\|W - \tfrac1N \mathbf{1}\mathbf{1}^\top\|_2 = \rho_W", (), None,
                   "the ranks mix their parameters with a doubly-stochastic matrix W, exchanged "
                   "exactly (no loss, no staleness)"),
        Assumption("initial_consensus",
                   r"\sqrt{\tfrac1N \sum_i \|x_{i,0} - \bar x_0\|^2} = C_0", ("C0",),
                   "consensus_distance", "the ranks start at consensus distance C_0 (0: one shared x_0)"),
        Assumption("bounded_update_spread",
                   r"\sqrt{\tfrac1N \sum_i \|u_{i,t} - \bar u_t\|^2} \le S_u \ \forall t",
                   ("Su",), "update_spread",
                   "the ranks' local optimizer steps u_i,t differ from their mean by at most S_u "
                   "in root-mean-square at every step"),
    ]


ASSUMPTIONS: dict[str, Assumption] = {a.id: a for a in _table()}


def get_assumption(assumption_id: str) -> Assumption:
    """The assumption with this id; unknown ids raise an error listing close matches."""
    try:
        return ASSUMPTIONS[assumption_id]
    except KeyError:
        close = difflib.get_close_matches(assumption_id, list(ASSUMPTIONS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ApproxAuditError(f"unknown assumption {assumption_id!r}{hint}") from None
