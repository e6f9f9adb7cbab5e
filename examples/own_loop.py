"""Auditing your own training loop: the examples' BatchNorm CNN trained by plain SGD with a
cosine schedule to 0 and gradient clipping, audited with the default probes.

Run it from the repository root::

    python -m examples.own_loop            # writes audit-own-loop/trace.jsonl, prints verdicts

The loop is an ordinary PyTorch loop; the audit adds three lines: build the ``Auditor`` on the
model and optimizer, call ``auditor.observe(xb, yb, loss)`` after ``loss.backward()`` and
*before* clipping (so the raw gradient norm is recorded next to the clipped one), and
``auditor.close()`` at the end. The probes measure the training objective as trained (train
mode, the batch's own BatchNorm statistics) and never change the model: its ``state_dict``
after an audited run is bit-identical to an unaudited one.
"""

from __future__ import annotations

import torch
from torch import nn

from approx_audit.auditor import Auditor

from . import cnn


def main(steps: int = 300, batch_size: int = 64, max_norm: float = 0.25,
         out: str | None = "audit-own-loop", seed: int = 0):
    """Train and audit; returns (auditor, verdicts)."""
    torch.manual_seed(seed)
    X, y = cnn.data()
    model = cnn.model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=0.0)
    criterion = nn.CrossEntropyLoss()
    auditor = Auditor(model, opt, loss=criterion, data=(X, y), probes="standard", out=out,
                      scheduler=sched, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(X), (batch_size,), generator=gen)
        xb, yb = X[idx], y[idx]
        opt.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        if not auditor.observe(xb, yb, loss):       # before clipping: records the raw norm
            break
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        opt.step()
        sched.step()
    auditor.close()
    # the loss is a cross-entropy, so it is non-negative: f_lower = 0
    return auditor, auditor.verdicts(f_lower=0.0)


if __name__ == "__main__":
    _, verdicts = main()
    for v in verdicts:
        print(f"{v.bound.id}: {v.verdict} — {v.reason}")
        for c in v.caveats:
            print(f"    · {c}")
