"""Approximate training: SGD and Adam on a sigmoid relaxation of the 3-node network (torch).

The model is the library's :class:`~approx_audit.auditor.workloads.ThreeNodeNet` (temperature
1): the hard unit ``1[w·x + b > 0]`` is relaxed to ``σ(w·x + b)``; the output is
``p = σ(z_1)·σ(z_2)`` for AND (``output="and"``), or ``σ(v_1 σ(z_1) + v_2 σ(z_2) + c)`` for a
threshold output, and the loss is the mean binary cross-entropy against ``(y + 1)/2``.
Several restarts run side by side: :func:`restarts_model` stacks the parameters of ``R``
networks along a leading dimension of ThreeNodeNet's two layers (independent parameters,
independent element-wise optimizer state), so its own ``forward`` evaluates all of them with
the same minibatch indices at a step. What is scored is the *hard* network obtained by
replacing each sigmoid by its threshold (and, for the threshold output, the table
``t_ab = 1[v_1 a + v_2 b + c > 0]``), re-evaluated in numpy by :class:`.network.Network`.

The study's loop is its own (one minibatch for all restarts, hard scoring at checkpoints), and
the library's :class:`~approx_audit.auditor.run.Auditor` is attached to it as a user would
attach it: every step is observed and recorded (the free probes ``loss``, ``grad_norm``,
``update_norm``; the relaxed full-data loss at x_0 and x_K), and the step and example counts
come from the auditor's :class:`~approx_audit.auditor.run.RunCosts`. With ``trace=`` the
records go to ``trace.jsonl`` in that folder; the study itself keeps them in memory only.

Compute is counted in **per-example gradient evaluations**: a step on a minibatch of B points
costs B per restart (``R ×`` the auditor's ``train_examples``). Scoring the hard network at
checkpoints costs forward passes only; they are counted separately (``eval_passes``) and not
included in ``grad_evals``; neither is the auditor's own overhead (``audit["costs"]``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

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
    * ``grad_evals`` — total per-example gradient evaluations (restarts × steps × batch);
    * ``audit`` — the :class:`~approx_audit.auditor.run.Auditor`'s ``end`` record for the run
      (status, steps, costs); not part of :meth:`to_dict`.
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
    audit: dict = field(default_factory=dict, repr=False, compare=False)

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
                  seed: int = 0, checkpoints: list[int] | None = None,
                  trace: str | Path | None = None) -> RelaxedResult:
    """Train the sigmoid relaxation with SGD or Adam from ``restarts`` random starts.

    Deterministic in ``seed`` (a private ``torch.Generator``; no global seeding; torch runs
    single-threaded for the call and the previous thread count is restored). ``batch_size``
    ``None`` means full batch. Guarantee: ``result.network.errors(X, y) == result.errors`` and
    ``result.errors ≥ OPT`` (it is a real hard network); nothing is guaranteed about how close
    it is to OPT — that is what the case study measures. ``trace``: a folder for the
    auditor's ``trace.jsonl`` (``None``: records in memory only, in ``result.audit``'s run).
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
                      cps, trace)
    finally:
        torch.set_num_threads(threads)


def restarts_model(torch, output: str, init: dict):
    """The library's ``ThreeNodeNet`` with ``R`` restarts stacked in its layers.

    ``init`` maps ThreeNodeNet's parameter names to tensors with a leading restart dimension
    (``hidden.weight``: R×2×d, …). Its two ``nn.Linear`` layers are swapped for batched ones
    holding those tensors, so :meth:`ThreeNodeNet.forward` itself gives ``(R, n)`` logits
    (and ``hard_forward`` ``(R, n)`` labels): one einsum per layer, no per-restart loop.
    """
    from ...auditor.workloads import ThreeNodeNet

    d = init["hidden.weight"].shape[-1]
    with torch.device("meta"):           # the layout only: no RNG drawn, no memory
        net = ThreeNodeNet(d, output=output)
    names = sorted(n for n, _ in net.named_parameters())
    if names != sorted(init):
        raise StudyInputError(f"restart parameters {sorted(init)} do not match "
                              f"ThreeNodeNet's {names}")
    net.hidden = _BatchedLinear(torch, init["hidden.weight"], init["hidden.bias"])
    if output == "threshold":
        net.output = _BatchedLinear(torch, init["output.weight"], init["output.bias"])
    return net


def _BatchedLinear(torch, weight, bias):
    """``R`` independent ``nn.Linear`` layers: weight R×out×in, bias R×out; ``(n, in)`` or
    ``(R, n, in)`` in, ``(R, n, out)`` out."""

    class BatchedLinear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(weight.detach().clone())
            self.bias = torch.nn.Parameter(bias.detach().clone())

        def forward(self, x):
            spec = "roi,ni->rno" if x.dim() == 2 else "roi,rni->rno"
            return torch.einsum(spec, self.weight, x) + self.bias[:, None, :]

    return BatchedLinear()


def _initial(torch, output, R, d, gen, dt) -> dict:
    """Random starts, drawn in a fixed order from ``gen``: W, b, then v, c (threshold)."""
    init = {"hidden.weight": torch.randn(R, 2, d, generator=gen, dtype=dt) / np.sqrt(d),
            "hidden.bias": 0.5 * torch.randn(R, 2, generator=gen, dtype=dt)}
    if output == "threshold":
        init["output.weight"] = torch.randn(R, 2, generator=gen, dtype=dt)[:, None, :]
        init["output.bias"] = torch.zeros(R, 1, dtype=dt)
    return init


def _restart_loss(torch):
    def loss(logits, target):
        """Per restart the mean BCE over the batch, summed: independent gradients."""
        per = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target.expand_as(logits), reduction="none")
        return per.mean(dim=1).sum()
    return loss


def _hard_networks(model, output) -> list[Network]:
    """Each restart's hardened network (thresholds for sigmoids), as a numpy :class:`Network`."""
    W, b = model.hidden.weight.detach().numpy(), model.hidden.bias.detach().numpy()
    nets = []
    for r in range(W.shape[0]):
        if output == "and":
            table = AND
        else:
            vv = model.output.weight.detach().numpy()[r, 0]
            cc = float(model.output.bias.detach()[r, 0])
            table = tuple(int(vv[0] * a + vv[1] * bb + cc > 0) for a in (0, 1) for bb in (0, 1))
        nets.append(Network(W[r].copy(), b[r].copy(), table))
    return nets


def _train(torch, X, y, output, optimizer, R, steps, lr, B, seed, cps, trace) -> RelaxedResult:
    from ...auditor import Auditor

    n, d = X.shape
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    dt = torch.float64
    Xt = torch.as_tensor(X, dtype=dt)
    target = torch.as_tensor((y + 1) / 2, dtype=dt)
    model = restarts_model(torch, output, _initial(torch, output, R, d, gen, dt))
    params = list(model.parameters())
    opt = (torch.optim.SGD(params, lr=lr) if optimizer == "sgd"
           else torch.optim.Adam(params, lr=lr))
    loss_fn = _restart_loss(torch)
    auditor = Auditor(model, opt, loss=loss_fn, data=(Xt, target),
                      probes="loss,grad_norm,update_norm", out=trace, seed=seed,
                      full_batch=B == n, start_info={"study": "two-layer-hardness",
                                                     "optimizer_name": optimizer,
                                                     "output": output, "restarts": R})
    cp_errors = np.zeros((R, len(cps)), dtype=int)
    cp_examples = []
    best_err, best_net = None, None
    try:
        for step in range(1, steps + 1):
            idx = (torch.arange(n) if B == n
                   else torch.randperm(n, generator=gen)[:B])
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt[idx]), target[idx])
            loss.backward()
            if not auditor.observe(Xt[idx], target[idx], loss):
                break                     # recorded as diverged; later checkpoints score x_t
            opt.step()
            if auditor.diverged:
                break
            while len(cp_examples) < len(cps) and step == cps[len(cp_examples)]:
                best_err, best_net = _score(model, output, X, y, cp_errors, len(cp_examples),
                                            best_err, best_net)
                cp_examples.append(auditor.costs.train_examples)
    finally:
        end = auditor.close()
    while len(cp_examples) < len(cps):   # only after a divergence: the last iterate
        best_err, best_net = _score(model, output, X, y, cp_errors, len(cp_examples),
                                    best_err, best_net)
        cp_examples.append(auditor.costs.train_examples)
    return RelaxedResult(
        errors=int(best_err), network=best_net,
        final_errors=tuple(int(e) for e in cp_errors[:, -1]),
        checkpoint_steps=tuple(cps), checkpoint_grad_evals=tuple(R * e for e in cp_examples),
        checkpoint_errors=tuple(tuple(int(e) for e in row) for row in cp_errors),
        grad_evals=R * auditor.costs.train_examples, eval_passes=R * len(cps) * n,
        optimizer=optimizer, output=output, restarts=R, steps=steps, batch_size=B, lr=lr,
        seed=seed, time=time.perf_counter() - t0, audit=end)


def _score(model, output, X, y, cp_errors, ci, best_err, best_net):
    """Hard errors of every restart into column ``ci``; the best network seen so far."""
    for r, net in enumerate(_hard_networks(model, output)):
        e = net.errors(X, y)
        cp_errors[r, ci] = e
        if best_err is None or e < best_err:
            best_err, best_net = e, net
    return best_err, best_net
