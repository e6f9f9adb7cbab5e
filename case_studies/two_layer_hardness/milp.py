"""Exact 0/1-loss training of the 3-node network as a MILP (cvxpy + HiGHS).

Formulation (``shared/research/hardness.md`` §2.2). For the AND output, with P / N the
positive / negative points, ``M_i = ‖x_i‖_1 + B`` and ``B = max_i ‖x_i‖_1 + ε``:

    minimise Σ_i e_i      over  w_k ∈ [−1, 1]^d,  b_k ∈ [−B, B],  e ∈ {0,1}^n,  s ∈ {0,1}^N
      i ∈ P, k = 1, 2:  w_k·x_i + b_k ≥ ε − (M_i + ε) e_i      (both units on unless e_i = 1)
      i ∈ N:            w_1·x_i + b_1 ≤ M_i (1 − s_i + e_i)    (unit 1 off when s_i = 1)
                        w_2·x_i + b_2 ≤ M_i (s_i + e_i)        (unit 2 off when s_i = 0)
      s_{i0} = 1 for the first negative point i0               (unit-swap symmetry broken)

Why it is exact. Each unit is positively homogeneous, so ``‖w_k‖_∞ ≤ 1`` loses nothing; a bias
outside ``[−B, B]`` makes the unit constant on the data, which a bias inside the box also
does; ``|w_k·x_i + b_k| ≤ M_i`` inside the box, so the big-M rows are vacuous when ``e_i = 1``.
The strict inequality ``w·x + b > 0`` is replaced by a margin ``ε``; this can only *raise*
the optimum, and leaves it unchanged once ``ε`` is below the normalised margin some optimal
network has (for finite data such a margin exists; the Blum–Rivest certificate has margin
``1/(2k)`` after normalisation, so ``ε = 1e-3`` is exact for the OPT = 0 question up to
k = 500 elements). On real-valued data this is checked, not assumed: the d = 2 exhaustive
search (:mod:`.exhaustive`) needs no ε.

Any threshold output (Blum & Rivest's theorem): up to negating hidden units, a threshold
function of (h1, h2) puts all + points in one quadrant (AND type, incl. constants and
literals) or all − points in one quadrant (OR type, = NAND-type on −y). Hence
``OPT_threshold(y) = min(OPT_AND(y), OPT_AND(−y))``, and the network found for −y is used with
output NAND.

Every answer is re-verified: both biases are shifted by −ε/2 (which makes "on" and "off" both
strict, with room for HiGHS's 1e-6 tolerances) and the hard network is evaluated in numpy
(:class:`.network.Network`). The ``errors`` reported are those of that re-evaluation; they
equal the objective at a proven optimum and may be lower for a time-limited incumbent (whose
error flags need not be tight).
"""

from __future__ import annotations

import math
import numbers
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .errors import StudyInputError
from .network import AND, LTF_TABLES, NAND, XNOR, XOR, Network, check_data

DEFAULT_EPS = 1e-3


@dataclass(frozen=True)
class ExactResult:
    """Outcome of :func:`exact_train`.

    * ``errors`` — misclassified points of ``network``, counted in numpy (never the solver's word);
    * ``bound`` — a proven lower bound on the optimum of the ε-margin problem (the solver's
      dual bound, rounded up: the objective is an integer);
    * ``status`` — ``"optimal"`` when ``errors == bound`` (the optimum is proven),
      ``"time_limit"`` when a solve stopped at the limit (``errors`` is the incumbent,
      ``bound ≤ OPT ≤ errors``), ``"mismatch"`` when the solver claimed optimality but the numpy
      re-evaluation found more errors (a numerical failure, reported rather than hidden);
    * ``objective`` — the MILP objective of the incumbent (``None`` when the solver had none and
      the best constant network was used);
    * ``time`` — wall seconds including cvxpy compilation; ``solver_time`` — HiGHS's own clock;
    * ``subsolves`` — one record per AND solve (``labels``: ``"y"`` or ``"-y"``).
    """

    errors: int
    bound: int
    status: str
    network: Network
    objective: float | None
    time: float
    solver_time: float
    output: str
    eps: float
    time_limit: float | None
    subsolves: tuple = field(default_factory=tuple)

    @property
    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W, b)`` of the returned hard network (biases already shifted by −ε/2)."""
        return self.network.W, self.network.b

    @property
    def verified(self) -> bool:
        """True when, for every sub-solve, the numpy error count equals the solver's objective
        (proven optimum) or does not exceed it (time-limited incumbent); False when a solve
        stopped before HiGHS had any incumbent (the best constant network is returned)."""
        return all(s["verified"] for s in self.subsolves)

    def to_dict(self) -> dict:
        return {"errors": self.errors, "bound": self.bound, "status": self.status,
                "objective": self.objective, "time_s": self.time,
                "solver_time_s": self.solver_time, "output": self.output, "eps": self.eps,
                "time_limit_s": self.time_limit, "verified": self.verified,
                "network": self.network.to_dict(),
                "subsolves": [{k: v for k, v in s.items() if k != "network"}
                              for s in self.subsolves]}


def _check_options(time_limit, eps) -> None:
    if time_limit is not None and (isinstance(time_limit, bool)
                                   or not isinstance(time_limit, numbers.Real)
                                   or not (time_limit > 0 and math.isfinite(time_limit))):
        raise StudyInputError(f"time_limit must be a positive number of seconds or None, "
                              f"got {time_limit!r}")
    if isinstance(eps, bool) or not (isinstance(eps, numbers.Real) and 0 < eps < 1):
        raise StudyInputError(f"eps (the margin) must lie in (0, 1), got {eps!r}")


def _highs_options(time_limit) -> dict:
    # The objective is a sum of binaries (an integer), so a gap below 1 proves optimality.
    opts = {"mip_rel_gap": 0.0, "mip_abs_gap": 0.99, "random_seed": 0}
    if time_limit is not None:
        opts["time_limit"] = float(time_limit)
    return opts


def _best_constant_and(y: np.ndarray, d: int) -> Network:
    """The better of 'always +' and 'always −' as an AND network (a fallback incumbent)."""
    on = np.sum(y == -1) <= np.sum(y == 1)
    return Network(np.zeros((2, d)), np.array([1.0, 1.0]) if on else np.array([-1.0, -1.0]), AND)


def _solve(problem, time_limit):
    import cvxpy as cp

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cvxpy warns on user_limit; the status says it
        problem.solve(solver=cp.HIGHS, **_highs_options(time_limit))
    wall = time.perf_counter() - t0
    stats = problem.solver_stats
    info = stats.extra_stats
    dual = float(getattr(info, "mip_dual_bound", float("nan")))
    nodes = int(getattr(info, "mip_node_count", -1))
    value = problem.value
    # HiGHS reports primal_solution_status 2 (kSolutionStatusFeasible) only when it holds an
    # incumbent; at a very short time limit cvxpy still hands back a value (0) and zeros.
    if getattr(info, "primal_solution_status", 2) != 2:
        value = None
    return problem.status, value, dual, nodes, wall, float(stats.solve_time or 0.0)


def _finish(status, value, dual, objective_ok, net_or_none, fallback, X, y, eps, wall,
            solver_time, nodes, labels) -> dict:
    """Common bookkeeping: verified error count, integer bound, status, as a sub-solve record."""
    import cvxpy as cp

    if status not in (cp.OPTIMAL, cp.USER_LIMIT, cp.OPTIMAL_INACCURATE):
        raise RuntimeError(f"HiGHS returned status {status!r} on a problem that is always "
                           "feasible; this is a bug or a solver failure")
    have = objective_ok and value is not None and math.isfinite(value) and net_or_none is not None
    if have:
        net = Network(net_or_none.W, net_or_none.b - eps / 2, net_or_none.table)
        objective = float(value)
    else:
        net, objective = fallback, None
    errors = net.errors(X, y)
    solver_status = "optimal" if status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) else "time_limit"
    # A proven optimum must match exactly; a time-limited incumbent may flag points as errors
    # that its weights in fact classify correctly, so there the count may only be lower.
    verified = objective is not None and (
        errors == int(round(objective)) if solver_status == "optimal"
        else errors <= int(round(objective)))
    bound = int(math.ceil(dual - 1e-6)) if math.isfinite(dual) else 0
    if solver_status == "optimal" and not math.isfinite(dual) and objective is not None:
        bound = int(round(objective))
    bound = max(0, bound)  # never clamped from above: a bound above `errors` must stay visible
    return {"labels": labels, "solver_status": solver_status, "objective": objective,
            "errors": errors, "bound": bound, "verified": verified, "time_s": wall,
            "solver_time_s": solver_time, "nodes": nodes, "network": net}


def _solve_and(X: np.ndarray, y: np.ndarray, time_limit, eps: float, labels: str) -> dict:
    """One AND-output MILP (module docstring); returns a sub-solve record with its network."""
    import cvxpy as cp

    n, d = X.shape
    norms = np.abs(X).sum(axis=1)
    B = float(norms.max()) + eps
    M = norms + B
    P, N = np.flatnonzero(y == 1), np.flatnonzero(y == -1)
    W = cp.Variable((2, d), bounds=[-1.0, 1.0], name="W")
    b = cp.Variable(2, bounds=[-B, B], name="b")
    e = cp.Variable(n, boolean=True, name="e")
    cons = []
    if P.size:
        for k in range(2):
            cons.append(X[P] @ W[k] + b[k] >= eps - cp.multiply(M[P] + eps, e[P]))
    if N.size:
        s = cp.Variable(N.size, boolean=True, name="s")
        cons += [X[N] @ W[0] + b[0] <= cp.multiply(M[N], 1 - s + e[N]),
                 X[N] @ W[1] + b[1] <= cp.multiply(M[N], s + e[N]),
                 s[0] == 1]
    problem = cp.Problem(cp.Minimize(cp.sum(e)), cons)
    t0 = time.perf_counter()
    status, value, dual, nodes, _, solver_time = _solve(problem, time_limit)
    wall = time.perf_counter() - t0
    ok = W.value is not None and b.value is not None
    net = (Network(np.array(W.value, dtype=float), np.array(b.value, dtype=float), AND)
           if ok else None)
    return _finish(status, value, dual, ok, net, _best_constant_and(y, d), X, y, eps, wall,
                   solver_time, nodes, labels)


def _combine(records: list[dict], output: str, eps: float, time_limit, wall: float) -> ExactResult:
    best = min(records, key=lambda r: r["errors"])
    errors = best["errors"]
    bound = min(r["bound"] for r in records)
    if errors == bound:
        status = "optimal"
    elif any(r["solver_status"] == "time_limit" for r in records):
        status = "time_limit"
    else:
        status = "mismatch"
    return ExactResult(errors=errors, bound=bound, status=status, network=best["network"],
                       objective=best["objective"], time=wall,
                       solver_time=sum(r["solver_time_s"] for r in records), output=output,
                       eps=eps, time_limit=time_limit, subsolves=tuple(records))


def exact_train(X, y, output: str = "and", time_limit: float | None = 60.0,
                eps: float = DEFAULT_EPS) -> ExactResult:
    """Minimum number of misclassified points of the 3-node network, by MILP (cvxpy + HiGHS).

    ``output="and"``: AND output unit. ``output="threshold"``: any linear threshold output
    (Blum & Rivest's network), solved as ``min(OPT_AND(y), OPT_AND(−y))`` — two MILPs, each
    under ``time_limit`` seconds (``None``: no limit). Guarantees: ``result.network`` misclassifies
    exactly ``result.errors`` points (numpy re-evaluation), so ``OPT ≤ result.errors``; and
    ``result.bound ≤ OPT_ε``, the optimum with margin ``eps``. ``OPT ≤ OPT_ε``, with equality
    when some optimal network has normalised margin ≥ eps (see the module docstring); under
    that condition ``status == "optimal"`` means ``errors == bound == OPT``. A bound above
    ``errors`` would expose a too-large ε; it is reported, not clipped.
    """
    X, y = check_data(X, y)
    _check_options(time_limit, eps)
    t0 = time.perf_counter()
    if output == "and":
        records = [_solve_and(X, y, time_limit, eps, "y")]
    elif output == "threshold":
        pos = _solve_and(X, y, time_limit, eps, "y")
        neg = _solve_and(X, -y, time_limit, eps, "-y")
        neg["network"] = Network(neg["network"].W, neg["network"].b, NAND)  # AND on −y = NAND on y
        records = [pos, neg]
    else:
        raise StudyInputError(f"output must be 'and' or 'threshold', got {output!r}")
    return _combine(records, output, eps, time_limit, time.perf_counter() - t0)


def exact_train_generic(X, y, *, allow_xor: bool = False, time_limit: float | None = 60.0,
                        eps: float = DEFAULT_EPS) -> ExactResult:
    """The generic formulation (hardness.md §2.4): one MILP over weights *and* output table.

    Activation binaries ``z_ik``, their product ``u_i``, a 4-bit output table ``t`` and
    per-point errors. With ``allow_xor=False`` XOR and XNOR are cut off, so this solves the same
    problem as ``exact_train(..., output="threshold")`` by a different route (no AND
    decomposition, no symmetry breaking): an independent cross-check, slower (2n + 4 binaries).
    """
    import cvxpy as cp

    X, y = check_data(X, y)
    _check_options(time_limit, eps)
    t0 = time.perf_counter()
    n, d = X.shape
    norms = np.abs(X).sum(axis=1)
    B = float(norms.max()) + eps
    M = norms + B
    W = cp.Variable((2, d), bounds=[-1.0, 1.0])
    b = cp.Variable(2, bounds=[-B, B])
    z = cp.Variable((n, 2), boolean=True)
    u = cp.Variable(n, bounds=[0.0, 1.0])
    t = cp.Variable(4, boolean=True)  # index 2*h1 + h2
    e = cp.Variable(n, bounds=[0.0, 1.0])
    cons = []
    for k in range(2):
        pre = X @ W[k] + b[k]
        cons += [pre >= eps - cp.multiply(M + eps, 1 - z[:, k]), pre <= cp.multiply(M, z[:, k])]
    cons += [u <= z[:, 0], u <= z[:, 1], u >= z[:, 0] + z[:, 1] - 1]
    pattern = {0: 1 - z[:, 0] - z[:, 1] + u, 1: z[:, 1] - u, 2: z[:, 0] - u, 3: u}
    pos, neg = (y == 1).astype(float), (y == -1).astype(float)
    for ab, p in pattern.items():
        # for i in P: e_i ≥ p_i − t_ab; for i in N: e_i ≥ p_i + t_ab − 1 (rows vacuous elsewhere)
        cons.append(e >= cp.multiply(pos, p - t[ab]) + cp.multiply(neg, p + t[ab] - 1))
    if not allow_xor:
        cons += [t[1] + t[2] - t[0] - t[3] <= 1, t[0] + t[3] - t[1] - t[2] <= 1]
    problem = cp.Problem(cp.Minimize(cp.sum(e)), cons)
    status, value, dual, nodes, _, solver_time = _solve(problem, time_limit)
    wall = time.perf_counter() - t0
    ok = W.value is not None and t.value is not None
    net = None
    if ok:
        table = tuple(int(round(v)) for v in np.asarray(t.value).ravel())
        net = Network(np.array(W.value, dtype=float), np.array(b.value, dtype=float), table)
        if not allow_xor and table not in LTF_TABLES:
            raise RuntimeError(f"generic MILP returned a non-threshold table {table}")
    fallback = _best_constant_and(y, d)
    rec = _finish(status, value, dual, ok, net, fallback, X, y, eps, wall, solver_time, nodes,
                  "generic")
    output = "any_boolean" if allow_xor else "threshold"
    return _combine([rec], output, eps, time_limit, time.perf_counter() - t0)


__all__ = ["ExactResult", "exact_train", "exact_train_generic", "DEFAULT_EPS", "XOR", "XNOR"]
