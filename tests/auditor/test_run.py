"""The audited training loop (auditor/run.py): the audit never changes the model it audits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from approx_audit.auditor.measure import InvalidValueError
from approx_audit.auditor.run import Auditor
from approx_audit.auditor.workloads import Workload

from approx_audit.auditor.probes import PRESETS

# probes that run extra forward passes at x_{t+1} (batch and full data)
EXTRA_PASSES = ("loss,grad_norm,update_norm,local_smoothness@1,full_batch@1,sharpness@2,"
                "gradient_noise@1")


def _every_step(preset: str) -> str:
    """The preset's probes, each due at every step (a 5-step run exercises them all)."""
    return ",".join(spec.split("@")[0] + "@1" for spec in PRESETS[preset])


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _conv() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 5 * 5, 3))


def _dropout() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.3), nn.ReLU(), nn.Linear(8, 3))


def _both() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(8, 3))


def _data(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(32, *shape, generator=gen), torch.randint(0, 3, (32,), generator=gen)


def _train(build, shape, *, audit: str | None, use_workload: bool = False, steps: int = 5,
           adam: bool = False):
    """``steps`` SGD steps on fixed minibatches from seed 0; audited when ``audit`` is given."""
    torch.manual_seed(0)
    model = build()
    X, y = _data(shape)
    criterion = nn.CrossEntropyLoss()
    opt = (torch.optim.Adam(model.parameters(), lr=1e-2) if adam else
           torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4))
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


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("build", [_mlp, _dropout, _both], ids=["batchnorm", "dropout", "both"])
def test_every_preset_leaves_batchnorm_and_dropout_models_bit_identical(build, preset):
    """Every probe of every preset, due at every step, on BatchNorm and dropout models: the
    state_dict (running statistics and num_batches_tracked included) is bit-identical to the
    unaudited run's. With dropout this also needs the probes to leave torch's generator as
    training left it (common random numbers in a forked generator): otherwise training would
    draw other masks after the first probe and the weights would differ."""
    adam = preset == "full"                     # adam_sharpness needs Adam's state
    plain = _train(build, (6,), audit=None, adam=adam)
    audited = _train(build, (6,), audit=_every_step(preset), adam=adam)
    _assert_bit_identical(plain, audited)


def test_a_sum_reduced_loss_module_is_refused_with_the_fix():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(InvalidValueError, match="reduction='sum'.*batch size"):
        Auditor(model, opt, loss=nn.CrossEntropyLoss(reduction="sum"), probes="loss")
    with pytest.raises(InvalidValueError, match="reduction='none'"):
        Auditor(model, opt, loss=nn.CrossEntropyLoss(reduction="none"), probes="loss")


def test_a_sum_reduced_loss_with_its_batch_size_audits_the_sum_objective():
    """reduction='sum' with batch_size=B: the function trained is B × the batch mean, and f
    evaluates it at that scale on any number of rows (a full-data pass measures the same
    function as a minibatch)."""
    torch.manual_seed(0)
    model = _mlp()
    X, y = _data((6,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    aud = Auditor(model, opt, loss=nn.CrossEntropyLoss(reduction="sum"), data=(X, y),
                  probes="loss", batch_size=8)
    params = {k: v.detach() for k, v in model.named_parameters()}
    mean = nn.CrossEntropyLoss()
    with torch.no_grad():
        model.train()
        full = float(aud.f(params, X, y))
        half = float(aud.f(params, X[:8], y[:8]))
        assert full == pytest.approx(8 * float(mean(model(X), y)), rel=1e-6)
        assert half == pytest.approx(float(nn.CrossEntropyLoss(reduction="sum")(model(X[:8]),
                                                                                y[:8])), rel=1e-6)
    assert aud.records[0]["objective"]["reduction"] == "sum over a batch of 8"
    aud.close()


def test_a_workload_with_a_sum_reduced_criterion_is_refused():
    model = _mlp()
    X, y = _data((6,))
    w = Workload(name="bn", description="sum", model=model,
                 criterion=nn.CrossEntropyLoss(reduction="sum"), loss_name="ce", X=X, y=y)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(InvalidValueError, match="reduction='sum'"):
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
    """Auditor built after model.eval(), training in train mode: gradient_noise used to refuse
    the BatchNorm at its first due step, raising inside opt.step() and killing the user's
    training (issue 16). Now it measures the train-mode function (microbatch estimator), and a
    probe that does fail is recorded, warned about once, switched off, and training goes on."""
    from approx_audit.auditor import Auditor
    from approx_audit.auditor.probes import LossProbe

    class Fails(LossProbe):                 # a probe that breaks at its second run
        runs = 0

        def _measure(self, ctx):
            Fails.runs += 1
            if Fails.runs == 2:
                raise RuntimeError("simulated failure")
            return super()._measure(ctx)

    torch.manual_seed(0)
    X, y = torch.randn(128, 8), torch.randint(0, 3, (128,))
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.eval()
    probes = [*__import__("approx_audit.auditor.probes", fromlist=["x"]).make_probes(
        "gradient_noise@5"), Fails(every=1)]
    aud = Auditor(model, opt, loss=nn.functional.cross_entropy, data=(X, y), probes=probes)
    model.train()
    with pytest.warns(RuntimeWarning, match="'loss' failed at step 1 and is switched off"):
        for t in range(12):
            idx = torch.arange(16 * (t % 8), 16 * (t % 8) + 16)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            aud.observe(X[idx], y[idx], loss)
            opt.step()
    end = aud.close()
    steps = [r for r in aud.records if r["record"] == "step"]
    assert len(steps) == 12 and Fails.runs == 2            # not called after it failed
    assert "simulated failure" in steps[1]["notes"]["loss"]
    assert end["probe_errors"] == {"loss": "RuntimeError: simulated failure"}
    noise = [r["gradient_noise"] for r in steps if r.get("gradient_noise") is not None]
    assert len(noise) == 2 and all(v > 0 for v in noise)
    assert all(r["gradient_noise_microbatch"] == 2.0 for r in steps if "gradient_noise" in r)


def test_a_layer_with_its_own_random_numbers_switches_the_comparing_probes_off():
    """Randomness outside torch's generators cannot be fixed by common random numbers: the
    first step's repeatability check finds it, names why, and switches off the probes that
    compare evaluations (never a silently wrong number); the free probes and training go on."""
    import random

    class PyRandomNoise(nn.Module):
        def forward(self, x):
            return x * (1.0 + 0.1 * random.random())

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), PyRandomNoise(), nn.ReLU(), nn.Linear(8, 3))
    X, y = _data((6,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    aud = Auditor(model, opt, loss=nn.CrossEntropyLoss(), data=(X, y),
                  probes="loss,grad_norm,local_smoothness@1,sharpness@2")
    with pytest.warns(RuntimeWarning, match="outside torch's generators"):
        for t in range(3):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(X[:8]), y[:8])
            loss.backward()
            aud.observe(X[:8], y[:8], loss)
            opt.step()
    end = aud.close()
    assert set(end["probe_errors"]) == {"local_smoothness", "sharpness"}
    steps = [r for r in aud.records if r["record"] == "step"]
    assert all(r.get("local_smoothness") is None for r in steps)
    assert all(r["loss"] is not None for r in steps)


def test_hugging_face_style_dict_batches_through_the_standard_probes():
    """A model taking keyword inputs (input_ids, attention_mask) with dict batches: every
    standard probe runs (per-example gradients vmap over the dict's tensors)."""
    class Kw(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(13, 8)
            self.head = nn.Linear(8, 3)

        def forward(self, input_ids, attention_mask):
            h = self.emb(input_ids) * attention_mask.unsqueeze(-1)
            return self.head(h.sum(1) / attention_mask.sum(1, keepdim=True).clamp(min=1))

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = {"input_ids": torch.randint(0, 13, (64, 5), generator=g),
            "attention_mask": (torch.rand(64, 5, generator=g) > 0.3).float()}
    labels = torch.randint(0, 3, (64,), generator=g)
    model = Kw()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    aud = Auditor(model, opt, loss=nn.functional.cross_entropy, data=(data, labels),
                  probes="loss,grad_norm,local_smoothness@2,full_batch@2,gradient_noise@2,"
                         "sharpness@4")
    for t in range(4):
        idx = torch.arange(16 * t, 16 * t + 16)
        batch = {k: v[idx] for k, v in data.items()}
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(**batch), labels[idx])
        loss.backward()
        aud.observe(batch, labels[idx], loss)
        opt.step()
    end = aud.close()
    assert end["probe_errors"] == {}
    steps = [r for r in aud.records if r["record"] == "step"]
    assert steps[1]["gradient_noise_microbatch"] == 1.0 and steps[1]["gradient_noise"] > 0
    assert steps[3]["sharpness"] > 0 and steps[1]["full_loss"] > 0
