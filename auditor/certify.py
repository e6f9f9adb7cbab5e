"""Generalization certificates for one trained network: the test-set bound (issue 19).

The workload's data are split by a recorded seed into a training part and a held-out part of
m examples; the model is trained on the training part only, with the library's optimizer
spec, then its 0-1 errors k on the held-out part give Langford's (JMLR 2005) Thm 3.3
certificate c_D ≤ Bin̄(m, k, δ), valid with probability ≥ 1 − δ over the draw of the held-out
part because the classifier is fixed before it is looked at. Everything needed to recompute
the figure is recorded: the seed, a sha256 of the index permutation and of the data, m, k, δ,
the optimizer and the minibatch seed. Hyper-parameters chosen by looking at this held-out
part (e.g. by rerunning ``certify`` with other settings and keeping the best) void the
guarantee unless δ is split over the settings tried; the certificate says so.

Stability bounds (Hardt et al., ``approx-audit stability``) bound the *expected*
generalization gap of an algorithm; this is a statement about the one network trained here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..bounds import risk
from ..bounds.errors import InvalidValueError
from .results import write_json_atomic
from .sinks import tick

METHODS = ("test-set",)
CERTIFICATE_FILE = "certificate.json"
THEOREMS = {
    "risk_bound": "Langford (JMLR 6, 2005), Def. 3.2 and Thm 3.3: Pr(c_D ≤ Bin̄(m, k, δ)) ≥ 1 − δ,"
                  " Bin̄(m, k, δ) = max{p : P[Binomial(m, p) ≤ k] ≥ δ}",
    "kl": "Langford (2005), Cor. 3.7: kl(k/m ‖ c_D) ≤ ln(1/δ)/m",
    "hoeffding": "Langford (2005), Cor. 3.8: c_D ≤ k/m + √(ln(1/δ)/(2m))",
}
ASSUMPTION = ("the held-out examples are i.i.d. draws from the data distribution and nothing "
              "about the classifier (architecture, optimizer, steps, seed) was chosen by "
              "looking at them; k settings compared on the same split need δ/k each")
ZERO_ONE = {
    "cross-entropy": "argmax of the logits ≠ class index",
    "logistic": "sign of the logit (≤ 0 counts as −1) ≠ label ±1",
    "bce-logits": "logit > 0 ≠ (target > 1/2)",
}


class TrainingDiverged(RuntimeError):
    """The training loss became non-finite: no classifier to certify."""


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """(permutation, train indices, held-out indices): ``numpy.random.default_rng(seed)
    .permutation(n)``, the first round(test_fraction·n) entries held out."""
    if not 0.0 < test_fraction < 1.0:
        raise InvalidValueError(f"--test-fraction {test_fraction:g} must be in (0, 1), e.g. 0.2")
    m = int(round(test_fraction * n))
    if m < 1 or n - m < 1:
        raise InvalidValueError(f"--test-fraction {test_fraction:g} of {n} examples leaves "
                                f"{m} held out and {n - m} to train on; both need at least 1")
    perm = np.random.default_rng(seed).permutation(n)
    return perm, perm[m:], perm[:m]


def permutation_sha256(perm: np.ndarray) -> str:
    """sha256 of the permutation as little-endian int64 (what a recheck compares)."""
    return hashlib.sha256(np.asarray(perm, dtype="<i8").tobytes()).hexdigest()


def data_sha256(X: torch.Tensor, y: torch.Tensor) -> str:
    """sha256 of the inputs and targets as stored (dtype, shape and bytes, on the CPU)."""
    h = hashlib.sha256()
    for t in (X, y):
        a = t.detach().cpu().contiguous().numpy()
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def require_classifier(workload) -> str:
    """The workload's loss name when it has a 0-1 loss (a classifier), else a one-line error."""
    rule = workload.loss_name
    if rule not in ZERO_ONE:
        raise InvalidValueError(f"certify needs a classifier: loss {rule!r} has no 0-1 loss; "
                                f"use {', '.join(ZERO_ONE)} (e.g. -w mlp-digits or --loss "
                                "cross-entropy)")
    return rule


def zero_one_errors(workload, model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> int:
    """How many of (X, y) the model misclassifies, by the rule of the workload's loss."""
    rule = require_classifier(workload)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(X)
    finally:
        model.train(was_training)
    if rule == "cross-entropy":
        wrong = out.argmax(dim=1) != y
    else:
        z = out.reshape(y.shape) if out.numel() == y.numel() else out
        if z.shape != y.shape:
            raise InvalidValueError(f"a binary classifier needs one logit per example; got "
                                    f"outputs {tuple(out.shape)} for targets {tuple(y.shape)}")
        if rule == "logistic":
            wrong = torch.where(z > 0, 1.0, -1.0).to(y.dtype) != y
        else:
            wrong = (z > 0) != (y > 0.5)
    return int(wrong.sum())


def train_on(workload, spec, X: torch.Tensor, y: torch.Tensor, *, steps: int,
             batch_size: int | None, sampling_seed: int, progress: Any = None,
             run: int = 0) -> torch.nn.Module:
    """A fresh copy of the workload's model trained on (X, y) for ``steps`` steps of ``spec``:
    minibatches i.i.d. with replacement from ``sampling_seed`` (CPU generator), full batch
    when ``batch_size`` is None or ≥ len(X)."""
    model = workload.fresh_model()
    model.train()
    opt = spec.build(model.parameters())
    n = int(X.shape[0])
    full = batch_size is None or batch_size >= n
    gen = torch.Generator(device="cpu").manual_seed(int(sampling_seed))
    tick(progress, "start", run)
    for t in range(steps):
        spec.set_lr(opt, t)
        if full:
            Xb, yb = X, y
        else:
            idx = torch.randint(0, n, (int(batch_size),), generator=gen).to(X.device)
            Xb, yb = X[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = workload.objective(model, Xb, yb)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"the training loss is {float(loss)!r} at step {t}; "
                                   "lower --lr or use fewer --steps")
        loss.backward()
        opt.step()
        if progress is not None:
            tick(progress, "step", run, t + 1, float(loss.detach()))
    tick(progress, "end", run)
    return model


def _validate(method: str, delta: float, steps: int) -> None:
    if method not in METHODS:
        raise InvalidValueError(f"--method {method!r}: choose {', '.join(METHODS)}")
    if not (isinstance(delta, (int, float)) and 0.0 < float(delta) < 1.0):
        raise InvalidValueError(f"--delta {delta!r} must be in (0, 1), e.g. 0.025")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidValueError(f"--steps {steps!r} must be an integer >= 1")


def certify_test_set(workload, spec, *, steps: int, batch_size: int | None = None,
                     delta: float = 0.025, test_fraction: float = 0.2, seed: int = 0,
                     request: Mapping[str, Any] | None = None,
                     command: str | None = None, progress: Any = None) -> dict[str, Any]:
    """Train on the training part, count held-out 0-1 errors, and return the certificate
    (the object written to certificate.json and printed by ``--format json``)."""
    _validate("test-set", delta, steps)
    require_classifier(workload)
    perm, train_idx, test_idx = split_indices(workload.n, test_fraction, seed)
    ti, hi = (torch.as_tensor(i, device=workload.X.device) for i in (train_idx, test_idx))
    X_tr, y_tr, X_te, y_te = workload.X[ti], workload.y[ti], workload.X[hi], workload.y[hi]
    model = train_on(workload, spec, X_tr, y_tr, steps=steps, batch_size=batch_size,
                     sampling_seed=seed + 1, progress=progress)
    k = zero_one_errors(workload, model, X_te, y_te)
    k_train = zero_one_errors(workload, model, X_tr, y_tr)
    m, n_train = len(test_idx), len(train_idx)
    b = risk.test_set_bounds(m, k, float(delta))
    return {
        "method": "test-set", "delta": float(delta), "confidence": 1.0 - float(delta),
        "risk_bound": b.exact, "relaxations": {"kl": b.kl, "hoeffding": b.hoeffding},
        "test_error": k / m, "test_errors": k, "n_bound": m,
        "train_error": k_train / n_train, "train_errors": k_train, "n_train": n_train,
        "seed": seed, "sampling_seed": seed + 1, "permutation_sha256": permutation_sha256(perm),
        "split": {"n": workload.n, "test_fraction": float(test_fraction), "n_test": m,
                  "n_train": n_train, "rule": "numpy.random.default_rng(seed).permutation(n); "
                                              "the first n_test indices are held out"},
        "data_sha256": data_sha256(workload.X, workload.y),
        "workload": {"name": workload.name, "request": dict(request) if request else None},
        "optimizer": spec.to_dict(), "steps": steps,
        "batch_size": None if batch_size is None or batch_size >= n_train else int(batch_size),
        "zero_one_loss": ZERO_ONE[workload.loss_name], "theorems": dict(THEOREMS),
        "assumption": ASSUMPTION, "command": command,
    }


def write_certificate(certificate: Mapping[str, Any], out: Path) -> Path:
    """Write ``out/certificate.json`` atomically; return its path."""
    path = Path(out) / CERTIFICATE_FILE
    write_json_atomic(path, dict(certificate))
    return path


# -- PAC-Bayes (Pérez-Ortiz, Rivasplata, Shawe-Taylor & Szepesvári, JMLR 2021) ---------------

PAC_BAYES_THEOREMS = {
    "risk_bound": "Pérez-Ortiz et al. (JMLR 22, 2021), Thm 1 (Maurer's form) with the §6.2 "
                  "Monte-Carlo step: L(Q) ≤ f*(f*(L̂_S(Q̂_m), ln(2/δ′)/m), [KL(Q‖Q0) + "
                  "ln(2√n/δ)]/n) with probability ≥ 1 − δ − δ′",
    "classic": "Pérez-Ortiz et al. (2021): L(Q) ≤ L̂ + √((KL + ln(2√n/δ))/(2n)), L̂ the "
               "Monte-Carlo upper estimate",
}
PAC_BAYES_ASSUMPTION = ("the prior is trained on the prior part only, which is disjoint from "
                        "the n bound examples; σ0, the fractions and the optimizer were fixed "
                        "before the run (one setting tried: no union-bound charge)")
P_MIN = 1e-4    # the bounded cross-entropy of the objective: −ln max(p, p_min)/ln(1/p_min)


def require_cross_entropy(workload) -> None:
    """PAC-Bayes trains on a bounded cross-entropy: a softmax classifier only (one line)."""
    if workload.loss_name != "cross-entropy":
        raise InvalidValueError(f"--method pac-bayes needs a cross-entropy classifier; loss "
                                f"{workload.loss_name!r} (use -w mlp-digits or cnn-digits)")


def three_way_split(n: int, test_fraction: float, prior_fraction: float, seed: int):
    """(permutation, prior, bound, held-out indices): the held-out part as in
    :func:`split_indices`, then the first round(prior_fraction·rest) of the rest for the
    prior and the remaining n_bound for the bound."""
    perm, rest, test = split_indices(n, test_fraction, seed)
    if not 0.0 < prior_fraction < 1.0:
        raise InvalidValueError(f"--prior-fraction {prior_fraction:g} must be in (0, 1), "
                                "e.g. 0.5")
    k = int(round(prior_fraction * len(rest)))
    if k < 1 or len(rest) - k < 1:
        raise InvalidValueError(f"--prior-fraction {prior_fraction:g} of {len(rest)} "
                                "examples leaves an empty prior or bound part")
    return perm, rest[:k], rest[k:], test


class _Gaussian:
    """A diagonal Gaussian over the model's parameters: means μ and σ = softplus(ρ)."""

    def __init__(self, model: torch.nn.Module, sigma0: float, trainable: bool):
        self.names = [k for k, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        rho0 = float(np.log(np.expm1(sigma0)))
        self.mu = {k: params[k].detach().clone().requires_grad_(trainable) for k in self.names}
        self.rho = {k: torch.full_like(self.mu[k], rho0).requires_grad_(trainable)
                    for k in self.names}

    def sigma(self, k: str) -> torch.Tensor:
        return torch.nn.functional.softplus(self.rho[k])

    def sample(self, gen: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return {k: self.mu[k] + self.sigma(k) * torch.randn(
            self.mu[k].shape, generator=gen, dtype=self.mu[k].dtype).to(self.mu[k].device)
            for k in self.names}

    def kl_to(self, prior: "_Gaussian") -> torch.Tensor:
        """KL(self ‖ prior) in closed form (the objective's, differentiable)."""
        total = 0.0
        for k in self.names:
            r = (self.sigma(k) / prior.sigma(k).detach()) ** 2
            d = (self.mu[k] - prior.mu[k].detach()) / prior.sigma(k).detach()
            total = total + 0.5 * (r - 1 - torch.log(r) + d * d).sum()
        return total

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        def cat(ts):
            return torch.cat([t.detach().reshape(-1) for t in ts]).cpu().double().numpy()
        return cat(self.mu.values()), cat(self.sigma(k) for k in self.names)


def _bounded_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
    return (-logp.clamp(min=float(np.log(P_MIN)))).mean() / float(np.log(1 / P_MIN))


def train_posterior(workload, spec, prior_model, X, y, *, sigma0: float, steps: int,
                    batch_size: int | None, delta: float, sampling_seed: int,
                    progress: Any = None) -> tuple:
    """(prior, posterior): Q0 = N(prior weights, σ0²I); Q starts at Q0 and minimises the
    classic objective L̂_bce(Q) + √((KL(Q‖Q0) + ln(2√n/δ))/(2n)) on (X, y) by the
    reparameterisation trick (one weight sample per step), with ``spec``'s optimizer."""
    from torch.func import functional_call

    prior = _Gaussian(prior_model, sigma0, trainable=False)
    post = _Gaussian(prior_model, sigma0, trainable=True)
    opt = spec.build([*post.mu.values(), *post.rho.values()])
    n = int(X.shape[0])
    log_term = float(np.log(2 * np.sqrt(n) / delta))
    full = batch_size is None or batch_size >= n
    gen = torch.Generator(device="cpu").manual_seed(int(sampling_seed))
    prior_model.train()
    tick(progress, "start", 1)
    for t in range(steps):
        spec.set_lr(opt, t)
        idx = (torch.arange(n) if full else torch.randint(0, n, (int(batch_size),),
                                                          generator=gen)).to(X.device)
        out = functional_call(prior_model, post.sample(gen), (X[idx],))
        loss = _bounded_ce(out, y[idx]) + torch.sqrt((post.kl_to(prior) + log_term) / (2 * n))
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"the PAC-Bayes objective is {float(loss)!r} at step {t}; "
                                   "lower --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            tick(progress, "step", 1, t + 1, float(loss.detach()))
    tick(progress, "end", 1)
    return prior, post


def mc_error(model, post: _Gaussian, X, y, *, samples: int, seed: int) -> float:
    """Mean 0-1 error over ``samples`` weight draws from Q, each on all of (X, y)."""
    from torch.func import functional_call

    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    wrong = 0
    model.eval()
    with torch.no_grad():
        for _ in range(samples):
            out = functional_call(model, post.sample(gen), (X,))
            wrong += int((out.argmax(dim=1) != y).sum())
    return wrong / (samples * int(X.shape[0]))


def certify_pac_bayes(workload, spec, *, steps: int, batch_size: int | None = None,
                      delta: float = 0.025, test_fraction: float = 0.2,
                      prior_fraction: float = 0.5, prior_sigma: float = 0.03,
                      mc_samples: int = 1000, delta_prime: float = 0.01, seed: int = 0,
                      request: Mapping[str, Any] | None = None,
                      command: str | None = None, progress: Any = None) -> dict[str, Any]:
    """A data-dependent prior trained on the prior part, a Gaussian posterior trained on
    the bound part, and the §6.2 Monte-Carlo certificate of the stochastic network."""
    _validate("test-set", delta, steps)
    require_cross_entropy(workload)
    if not (0.0 < prior_sigma and np.isfinite(prior_sigma)):
        raise InvalidValueError(f"--prior-sigma {prior_sigma!r} must be > 0, e.g. 0.03")
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, int) or mc_samples < 1:
        raise InvalidValueError(f"--mc-samples {mc_samples!r} must be an integer >= 1")
    perm, pri, bnd, tst = three_way_split(workload.n, test_fraction, prior_fraction, seed)
    dev = workload.X.device
    parts = [(workload.X[torch.as_tensor(i, device=dev)], workload.y[torch.as_tensor(
        i, device=dev)]) for i in (pri, bnd, tst)]
    (Xp, yp), (Xb, yb), (Xt, yt) = parts
    model = train_on(workload, spec, Xp, yp, steps=steps, batch_size=batch_size,
                     sampling_seed=seed + 1, progress=progress)
    prior, post = train_posterior(workload, spec, model, Xb, yb, sigma0=prior_sigma,
                                  steps=steps, batch_size=batch_size, delta=delta,
                                  sampling_seed=seed + 2, progress=progress)
    kl = risk.kl_diag_gaussians(*post.flat(), *prior.flat())
    n = len(bnd)
    mc = risk.pac_bayes_monte_carlo(mc_error(model, post, Xb, yb, samples=mc_samples,
                                             seed=seed + 3), mc_samples, kl, n, delta,
                                    delta_prime)
    return {
        "method": "pac-bayes", "delta": float(delta), "delta_prime": float(delta_prime),
        "confidence": mc["confidence"], "risk_bound": mc["risk_bound"],
        "relaxations": {"classic": risk.pac_bayes_classic(mc["emp_risk_upper"], kl, n, delta)},
        "kl": kl, "n_bound": n, "mc_samples": mc_samples, "mc_error": mc["mc_risk"],
        "emp_risk_upper": mc["emp_risk_upper"],
        "test_error": mc_error(model, post, Xt, yt, samples=100, seed=seed + 4),
        "train_error": mc["mc_risk"], "prior_test_error": zero_one_errors(
            workload, model, Xt, yt) / len(tst),
        "prior": {"kind": "N(w0, σ0² I), w0 trained on the prior part", "sigma": prior_sigma,
                  "n_prior": len(pri), "steps": steps},
        "hyperparameters_tried": 1, "union_bound_bits": 0.0,
        "seed": seed, "sampling_seeds": [seed + 1, seed + 2, seed + 3, seed + 4],
        "permutation_sha256": permutation_sha256(perm),
        "split": {"n": workload.n, "test_fraction": float(test_fraction),
                  "prior_fraction": float(prior_fraction), "n_test": len(tst),
                  "n_prior": len(pri), "n_bound": n,
                  "rule": "numpy.random.default_rng(seed).permutation(n): held out first, "
                          "then the prior part, then the bound part"},
        "data_sha256": data_sha256(workload.X, workload.y),
        "workload": {"name": workload.name, "request": dict(request) if request else None},
        "optimizer": spec.to_dict(), "steps": steps,
        "batch_size": None if batch_size is None else int(batch_size),
        "zero_one_loss": ZERO_ONE["cross-entropy"], "theorems": dict(PAC_BAYES_THEOREMS),
        "assumption": PAC_BAYES_ASSUMPTION, "command": command,
    }
