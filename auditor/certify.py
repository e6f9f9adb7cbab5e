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
             batch_size: int | None, sampling_seed: int) -> torch.nn.Module:
    """A fresh copy of the workload's model trained on (X, y) for ``steps`` steps of ``spec``:
    minibatches i.i.d. with replacement from ``sampling_seed`` (CPU generator), full batch
    when ``batch_size`` is None or ≥ len(X)."""
    model = workload.fresh_model()
    model.train()
    opt = spec.build(model.parameters())
    n = int(X.shape[0])
    full = batch_size is None or batch_size >= n
    gen = torch.Generator(device="cpu").manual_seed(int(sampling_seed))
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
                     command: str | None = None) -> dict[str, Any]:
    """Train on the training part, count held-out 0-1 errors, and return the certificate
    (the object written to certificate.json and printed by ``--format json``)."""
    _validate("test-set", delta, steps)
    require_classifier(workload)
    perm, train_idx, test_idx = split_indices(workload.n, test_fraction, seed)
    ti, hi = (torch.as_tensor(i, device=workload.X.device) for i in (train_idx, test_idx))
    X_tr, y_tr, X_te, y_te = workload.X[ti], workload.y[ti], workload.X[hi], workload.y[hi]
    model = train_on(workload, spec, X_tr, y_tr, steps=steps, batch_size=batch_size,
                     sampling_seed=seed + 1)
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
