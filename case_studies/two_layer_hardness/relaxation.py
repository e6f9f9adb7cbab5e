"""Approximate training: SGD and Adam on a sigmoid relaxation of the 3-node network (torch).

The hard unit ``1[w·x + b > 0]`` is relaxed to ``σ(w·x + b)``; the output is
``p = σ(z_1)·σ(z_2)`` for AND, or ``σ(v_1 σ(z_1) + v_2 σ(z_2) + c)`` for a threshold output,
and the loss is the mean binary cross-entropy against ``(y + 1)/2``. Several restarts run
side by side as a batch dimension (independent parameters, independent optimizer state; the
same minibatch indices at a step). What is scored is the *hard* network obtained by replacing
each sigmoid by its threshold (and, for the threshold output, the table
``t_ab = 1[v_1 a + v_2 b + c > 0]``), re-evaluated in numpy by :class:`.network.Network`.

Compute is counted in **per-example gradient evaluations**: a step on a minibatch of B points
costs B per restart. Scoring the hard network at checkpoints costs forward passes only;
they are counted separately (``eval_passes``) and not included in ``grad_evals``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .errors import StudyInputError
from .network import AND, Network, check_data

DEFAULT_LR = {"sgd": 0.5, "adam": 0.05}


@dataclass(frozen=True)
class RelaxedResult:
    """Outcome of :func:`relaxed_train`.

    * ``errors`` — the fewest misclassified points of any hardened network seen (any restart,
      any checkpoint); ``network`` attains it (numpy re-evaluation);
    * ``final_errors`` — per restart, the hard error of the last iterate;
    * ``checkpoint_steps`` / ``checkpoint_grad_evals`` — the step counts at which every restart
      was scored, and the gradient evaluations spent by then over *all* restarts;
    * ``checkpoint_errors`` — restarts × checkpoints matrix of hard error counts;
    * ``grad_evals`` — total per-example gradient evaluations (restarts × steps × batch).
    """

    errors: int
    network: Network
    final_errors: tuple[int, ...]
    checkpoint_steps: tuple[int, ...]
    checkpoint_grad_evals: tuple[int, ...]
    checkpoint_errors: tuple[tuple[int, ...], ...]
    grad_evals: int
    eval_passes: int
    optimizer: str
    output: str
    restarts: int
    steps: int
    batch_size: int
    lr: float
    seed: int
    time: float

    def to_dict(self) -> dict:
        return {"errors": self.errors, "final_errors": list(self.final_errors),
                "checkpoint_steps": list(self.checkpoint_steps),
                "checkpoint_grad_evals": list(self.checkpoint_grad_evals),
                "checkpoint_errors": [list(r) for r in self.checkpoint_errors],
                "grad_evals": self.grad_evals, "eval_passes": self.eval_passes,
                "optimizer": self.optimizer, "output": self.output, "restarts": self.restarts,
                "steps": self.steps, "batch_size": self.batch_size, "lr": self.lr,
                "seed": self.seed, "time_s": self.time, "network": self.network.to_dict()}


def geometric_checkpoints(steps: int, per_octave: int = 2) -> list[int]:
    """Distinct step counts 1 … ``steps``, roughly geometric (``per_octave`` per doubling)."""
    pts = {steps}
    k = 0
    while True:
        s = int(round(2 ** (k / per_octave)))
        if s >= steps:
            break
        pts.add(s)
        k += 1
    return sorted(pts)


def relaxed_train(X, y, *, output: str = "and", optimizer: str = "adam", restarts: int = 8,
                  steps: int = 400, lr: float | None = None, batch_size: int | None = None,
                  seed: int = 0, checkpoints: list[int] | None = None) -> RelaxedResult:
    """Train the sigmoid relaxation with SGD or Adam from ``restarts`` random starts.

    Deterministic in ``seed`` (a private ``torch.Generator``; no global seeding; torch runs
    single-threaded for the call and the previous thread count is restored). ``batch_size``
    ``None`` means full batch. Guarantee: ``result.network.errors(X, y) == result.errors`` and
    ``result.errors ≥ OPT`` (it is a real hard network); nothing is guaranteed about how close
    it is to OPT — that is what the case study measures.
    """
    import torch

    X, y = check_data(X, y)
    if output not in ("and", "threshold"):
        raise StudyInputError(f"output must be 'and' or 'threshold', got {output!r}")
    if optimizer not in DEFAULT_LR:
        raise StudyInputError(f"optimizer must be one of {sorted(DEFAULT_LR)}, got {optimizer!r}")
    if restarts < 1 or steps < 1:
        raise StudyInputError(f"restarts and steps must be >= 1, got {restarts}, {steps}")
    n, d = X.shape
    B = n if batch_size is None else min(int(batch_size), n)
    if B < 1:
        raise StudyInputError(f"batch_size must be >= 1, got {batch_size}")
    lr = DEFAULT_LR[optimizer] if lr is None else float(lr)
    if not lr > 0:
        raise StudyInputError(f"lr must be positive, got {lr}")
    cps = sorted(set(checkpoints or geometric_checkpoints(steps)))
    if cps[0] < 1 or cps[-1] > steps:
        raise StudyInputError(f"checkpoints must lie in 1..steps={steps}")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra threads only spin on a shared machine
    try:
        return _train(torch, X, y, output, optimizer, int(restarts), int(steps), lr, B, int(seed),
                      cps)
    finally:
        torch.set_num_threads(threads)


def _train(torch, X, y, output, optimizer, R, steps, lr, B, seed, cps) -> RelaxedResult:
    n, d = X.shape
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    dt = torch.float64
    Xt = torch.as_tensor(X, dtype=dt)
    target = torch.as_tensor((y + 1) / 2, dtype=dt)
    W = (torch.randn(R, 2, d, generator=gen, dtype=dt) / np.sqrt(d)).requires_grad_()
    b = (0.5 * torch.randn(R, 2, generator=gen, dtype=dt)).requires_grad_()
    params = [W, b]
    if output == "threshold":
        v = torch.randn(R, 2, generator=gen, dtype=dt).requires_grad_()
        c = torch.zeros(R, dtype=dt).requires_grad_()
        params += [v, c]
    opt = (torch.optim.SGD(params, lr=lr) if optimizer == "sgd"
           else torch.optim.Adam(params, lr=lr))

    def loss_on(idx):
        z = torch.einsum("rkd,nd->rnk", W, Xt[idx]) + b[:, None, :]
        t = target[idx]
        if output == "and":
            logp = torch.nn.functional.logsigmoid(z).sum(-1)          # log σ(z1)σ(z2)
            log1mp = torch.log1p(-torch.exp(logp).clamp(max=1 - 1e-12))
            per = -(t * logp + (1 - t) * log1mp)
        else:
            h = torch.sigmoid(z)
            logit = (h * v[:, None, :]).sum(-1) + c[:, None]
            per = torch.nn.functional.binary_cross_entropy_with_logits(
                logit, t.expand_as(logit), reduction="none")
        return per.mean(dim=1).sum()  # sum over restarts: independent gradients

    def hard_networks() -> list[Network]:
        Wn, bn = W.detach().numpy(), b.detach().numpy()
        nets = []
        for r in range(R):
            if output == "and":
                table = AND
            else:
                vv, cc = v.detach().numpy()[r], float(c.detach()[r])
                table = tuple(int(vv[0] * a + vv[1] * bb + cc > 0) for a in (0, 1) for bb in (0, 1))
            nets.append(Network(Wn[r].copy(), bn[r].copy(), table))
        return nets

    cp_errors = np.zeros((R, len(cps)), dtype=int)
    best_err, best_net = None, None
    ci = 0
    for step in range(1, steps + 1):
        idx = (torch.arange(n) if B == n
               else torch.randperm(n, generator=gen)[:B])
        opt.zero_grad(set_to_none=True)
        loss_on(idx).backward()
        opt.step()
        if step == cps[ci]:
            for r, net in enumerate(hard_networks()):
                e = net.errors(X, y)
                cp_errors[r, ci] = e
                if best_err is None or e < best_err:
                    best_err, best_net = e, net
            ci += 1
    return RelaxedResult(
        errors=int(best_err), network=best_net,
        final_errors=tuple(int(e) for e in cp_errors[:, -1]),
        checkpoint_steps=tuple(cps), checkpoint_grad_evals=tuple(R * s * B for s in cps),
        checkpoint_errors=tuple(tuple(int(e) for e in row) for row in cp_errors),
        grad_evals=R * steps * B, eval_passes=R * len(cps) * n, optimizer=optimizer,
        output=output, restarts=R, steps=steps, batch_size=B, lr=lr, seed=seed,
        time=time.perf_counter() - t0)
