"""The audited training loop (auditor/run.py): the audit never changes the model it audits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from approx_audit.auditor.measure import InvalidValueError
from approx_audit.auditor.run import Auditor
from approx_audit.auditor.workloads import Workload

# probes that run extra forward passes at x_{t+1} (batch and full data); gradient_noise refuses
# BatchNorm in train mode, so it is not here
EXTRA_PASSES = "loss,grad_norm,update_norm,local_smoothness@1,full_batch@1,sharpness@2"


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _conv() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 5 * 5, 3))


def _data(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(32, *shape, generator=gen), torch.randint(0, 3, (32,), generator=gen)


def _train(build, shape, *, audit: str | None, use_workload: bool = False, steps: int = 5):
    """``steps`` SGD steps on fixed minibatches from seed 0; audited when ``audit`` is given."""
    torch.manual_seed(0)
    model = build()
    X, y = _data(shape)
    criterion = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    auditor = None
    if audit is not None:
        if use_workload:
            w = Workload(name="bn", description="BatchNorm", model=model, criterion=criterion,
                         loss_name="cross-entropy", X=X, y=y, lam=0.01)
            auditor = Auditor(model, opt, workload=w, probes=audit)
        else:
            auditor = Auditor(model, opt, loss=criterion, data=(X, y), probes=audit)
    for t in range(steps):
        xb, yb = X[4 * t:4 * t + 8], y[4 * t:4 * t + 8]
        opt.zero_grad()
        loss = criterion(model(xb), yb)
        if use_workload:
            loss = loss + 0.005 * sum(p.pow(2).sum() for p in model.parameters())
        loss.backward()
        if auditor is not None:
            assert auditor.observe(xb, yb, loss)
        opt.step()
    if auditor is not None:
        end = auditor.close()
        assert end["probe_errors"] == {}
    return model.state_dict()


def _assert_bit_identical(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} changed by the audit"


@pytest.mark.parametrize("build,shape", [(_mlp, (6,)), (_conv, (2, 5, 5))],
                         ids=["batchnorm1d", "batchnorm2d"])
@pytest.mark.parametrize("use_workload", [False, True], ids=["loss", "workload"])
def test_an_audit_leaves_the_models_state_bit_identical(build, shape, use_workload):
    plain = _train(build, shape, audit=None, use_workload=use_workload)
    audited = _train(build, shape, audit=EXTRA_PASSES, use_workload=use_workload)
    assert int(plain[next(k for k in plain if k.endswith("num_batches_tracked"))]) == 5
    _assert_bit_identical(plain, audited)


def test_a_sum_reduced_loss_module_is_refused_with_the_fix():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(InvalidValueError, match="reduction='mean'"):
        Auditor(model, opt, loss=nn.CrossEntropyLoss(reduction="sum"), probes="loss")


def test_a_workload_with_a_sum_reduced_criterion_is_refused():
    model = _mlp()
    X, y = _data((6,))
    w = Workload(name="bn", description="sum", model=model,
                 criterion=nn.CrossEntropyLoss(reduction="sum"), loss_name="ce", X=X, y=y)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(InvalidValueError, match="'sum'"):
        Auditor(model, opt, workload=w, probes="loss")


@pytest.mark.parametrize("eta_min", [0.0, 1e-3])
def test_verdicts_under_a_cosine_schedule_read_the_runs_step_sizes(eta_min):
    """CosineAnnealingLR to eta_min = 0 crashed verdicts() (the spec was rebuilt from the
    optimizer's lr NOW, 0); with eta_min = 1e-3 every reason said the theorem prescribed
    0.001, the final lr (issue 16). The base step size is the run's first one."""
    import torch

    from approx_audit.auditor import Auditor
    from approx_audit.auditor.workloads import get_workload

    w = get_workload("logistic")
    model = w.fresh_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=eta_min)
    aud = Auditor(model, opt, workload=w, probes="loss,grad_norm")
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        idx = torch.randint(0, w.n, (32,), generator=g)
        opt.zero_grad()
        loss = w.objective(model, w.X[idx], w.y[idx])
        loss.backward()
        aud.observe(w.X[idx], w.y[idx], loss)
        opt.step()
        sched.step()
    aud.close()
    verdicts = aud.verdicts(f_lower=0.0)
    assert verdicts
    for v in verdicts:
        assert f"= {eta_min:g} at step" not in v.reason and "lr=0" not in v.reason, v.reason
    constant = [v for v in verdicts if "η_k = eta = 0.1" in v.reason]
    assert constant and all(v.verdict == "not_applicable" for v in constant)


def test_a_probe_that_cannot_run_mid_training_is_switched_off_not_raised():
    """Auditor built after model.eval(), training in train mode: gradient_noise refuses the
    BatchNorm at its first due step; that used to raise inside opt.step() and kill the user's
    training (issue 16). Now the probe is switched off with its reason and training goes on."""
    import torch
    from torch import nn

    from approx_audit.auditor import Auditor

    torch.manual_seed(0)
    X, y = torch.randn(128, 8), torch.randint(0, 3, (128,))
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.eval()
    aud = Auditor(model, opt, loss=nn.functional.cross_entropy, data=(X, y),
                  probes="loss,gradient_noise@5")
    model.train()
    for t in range(12):
        idx = torch.arange(16 * (t % 8), 16 * (t % 8) + 16)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
        loss.backward()
        aud.observe(X[idx], y[idx], loss)
        opt.step()
    aud.close()
    steps = [r for r in aud.records if r["record"] == "step"]
    assert len(steps) == 12
    noted = [r["notes"]["gradient_noise"] for r in steps if "gradient_noise" in r.get("notes", {})]
    assert noted and "switched off" in noted[0] and "BatchNorm" in noted[0]
