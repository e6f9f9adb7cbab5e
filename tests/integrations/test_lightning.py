"""AuditCallback (issue 20): a Lightning run audited from its hooks gives the verdicts and
per-step records the same run gives in a plain PyTorch loop, never changes the model, logs
``audit/*`` to the trainer's logger, and measures unscaled losses and gradients under mixed
precision."""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import warnings

import pytest
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
L = pytest.importorskip("lightning")

from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from approx_audit.auditor import Auditor  # noqa: E402
from approx_audit.auditor.run import AuditError  # noqa: E402
from approx_audit.integrations.lightning import AuditCallback  # noqa: E402

N, B, K, STEPS, LR = 480, 8, 2, 30, 0.05      # 60 micro-batches: 30 full windows, one epoch
# every probe kind within 30 steps (the standard preset's full-data ones start at step 50)
PROBES = ("loss,grad_norm,update_norm,distance_from_start,full_batch@10,pl_ratio@10,"
          "local_smoothness@5,gradient_noise@10,sharpness@15")
ASSUME = {"L": 10.0, "sigma": 1.0}              # so that bounds get a series and a margin


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One thread for every run of the module (the shared audited run included), so that
    runs compared bit for bit reduce in the same order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(N, 5, generator=g)
    y = X @ torch.randn(5, generator=g) + 0.1 * torch.randn(N, generator=g)
    return X, y


def _mse(out, y):
    return nn.functional.mse_loss(out.squeeze(-1), y)


def _net():
    return nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 1))


class Regression(L.LightningModule):
    """An MLP with BatchNorm; training_step logs (silenced in the probes) and keeps the losses
    it computes under autocast (training's calls, not the probes', which run outside it)."""

    def __init__(self):
        super().__init__()
        self.net = _net()
        self.autocast_losses: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = _mse(self.net(x), y)
        self.log("train_loss", loss)
        if torch.is_autocast_enabled(self.device.type):
            self.autocast_losses.append(float(loss.detach()))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=LR)


def _initial() -> dict:
    torch.manual_seed(0)
    return copy.deepcopy(Regression().state_dict())


def _trainer(callbacks=(), logger=False, **kw) -> L.Trainer:
    args = dict(accelerator="cpu", devices=1, max_steps=STEPS, accumulate_grad_batches=K,
                logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, callbacks=list(callbacks))
    return L.Trainer(**{**args, **kw})


def _fit(state, callbacks=(), logger=False, module=None, **kw):
    """(module, trainer) after fitting from ``state`` on the fixed, unshuffled batches."""
    X, y = _data()
    module = Regression() if module is None else module
    module.load_state_dict(state)
    torch.manual_seed(1)
    trainer = _trainer(callbacks, logger, **kw)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
        trainer.fit(module, DataLoader(TensorDataset(X, y), batch_size=B, shuffle=False))
    return module, trainer


@pytest.fixture(scope="module")
def audited(tmp_path_factory, _one_thread):
    """One audited Lightning run (CSVLogger), shared by the tests that inspect it."""
    tmp = tmp_path_factory.mktemp("lightning")
    state = _initial()
    X, y = _data()
    cb = AuditCallback(out=tmp / "audit", probes=PROBES, data=[X, y], seed=0, f_lower=0.0,
                       assume=ASSUME)
    logger = CSVLogger(tmp / "logs", name="run")
    module, trainer = _fit(state, [cb], logger)
    return {"state": state, "callback": cb, "module": module, "trainer": trainer,
            "logger": logger, "tmp": tmp}


def _plain_run(state, out):
    """The same run in a plain loop: the same init, optimizer, micro-batches (each loss / K
    backpropagated, as Lightning does), observe() with their concatenation and mean loss."""
    X, y = _data()
    net = _net()
    net.load_state_dict({k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    aud = Auditor(net, opt, loss=_mse, data=(X, y), probes=PROBES, out=out, seed=0,
                  f_lower=0.0)
    for t in range(STEPS):
        opt.zero_grad()
        losses = []
        for j in range(K * t, K * t + K):
            xb, yb = X[B * j:B * j + B], y[B * j:B * j + B]
            loss = _mse(net(xb), yb)
            (loss / K).backward()
            losses.append(float(loss.detach()))
        rows = slice(B * K * t, B * K * (t + 1))
        aud.observe(X[rows], y[rows], sum(losses) / K)
        opt.step()
    verdicts, _ = aud.finish(f_lower=0.0, assume=ASSUME)
    return aud, verdicts


def _steps(records):
    return [r for r in records if r["record"] == "step"]


def test_lightning_run_audits_like_the_same_plain_loop(audited, tmp_path):
    cb = audited["callback"]
    out = audited["tmp"] / "audit"
    for name in ("results.json", "report.html", "report.md", "trace.jsonl"):
        assert (out / name).exists(), name
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "completed" and res["config"]["api"]["unaudited_steps"] == 0
    assert not cb.auditor.probe_errors
    plain, plain_verdicts = _plain_run(audited["state"], tmp_path / "plain")
    assert cb.verdicts, "no bound matched: the comparison would be empty"
    assert [(v.bound.id, v.verdict.value) for v in cb.verdicts] == \
        [(v.bound.id, v.verdict.value) for v in plain_verdicts]
    ours, theirs = _steps(cb.records), _steps(plain.records)
    assert len(ours) == len(theirs) == STEPS
    for a, b in zip(ours, theirs):
        assert a["batch_size"] == b["batch_size"] == B * K
        for key in ("loss", "grad_norm", "update_norm", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-5), (a["step"], key)
    # every probe's value (full-data checkpoints, smoothness, noise, sharpness) agrees too
    kinds = ("init", "step", "final")
    ours = [r for r in cb.records if r["record"] in kinds]
    theirs = [r for r in plain.records if r["record"] in kinds]
    assert [r["record"] for r in ours] == [r["record"] for r in theirs]
    for a, b in zip(ours, theirs):
        numbers = {k: v for k, v in a.items() if isinstance(v, float) and k != "time"}
        assert numbers.keys() == {k for k, v in b.items() if isinstance(v, float)} - {"time"}
        assert numbers == pytest.approx({k: b[k] for k in numbers}, rel=1e-5), a.get("step")
    assert any("sharpness" in r for r in ours) and any("gradient_noise" in r for r in ours)


def test_the_callback_leaves_training_bit_identical(audited):
    """Weights and BatchNorm statistics (num_batches_tracked too) equal an unaudited run's, and
    so does what training_step logged (the probes' calls to it log nothing)."""
    module, trainer = _fit(audited["state"])
    plain, audited_state = module.state_dict(), audited["module"].state_dict()
    logged = audited["trainer"].callback_metrics
    assert logged.keys() == trainer.callback_metrics.keys() == {"train_loss"}
    assert torch.equal(logged["train_loss"], trainer.callback_metrics["train_loss"])
    assert plain.keys() == audited_state.keys()
    assert not torch.equal(plain["net.1.running_mean"], audited["state"]["net.1.running_mean"])
    for key, value in plain.items():
        assert torch.equal(value, audited_state[key]), key


def test_the_logger_receives_audit_metrics(audited):
    cb, logger = audited["callback"], audited["logger"]
    with open(os.path.join(logger.log_dir, "metrics.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    losses = {int(r["step"]): float(r["audit/loss"]) for r in rows if r.get("audit/loss")}
    recorded = {r["k"]: r["loss"] for r in _steps(cb.records)}
    assert sorted(losses) == sorted(recorded) == list(range(1, STEPS + 1))
    assert [losses[k] for k in sorted(losses)] == pytest.approx(
        [recorded[k] for k in sorted(recorded)], rel=1e-6)
    assert any(r.get("audit/full_loss") for r in rows if r["step"] == "0")
    margins = [c for c in rows[0] if c.startswith("audit/") and c.endswith("/margin")]
    with_series = [v for v in cb.verdicts if (v.series or {}).get("observed")]
    assert len(margins) == len(with_series) > 0


class _GradNorms(L.Callback):
    """The gradient norm Lightning's own hook sees before the step (after unscaling)."""

    def __init__(self):
        self.norms: list[tuple[float, bool]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        g = torch.cat([p.grad.reshape(-1).float() for p in pl_module.parameters()
                       if p.grad is not None])
        self.norms.append((float(g.norm()), bool(torch.isfinite(g).all())))


def _bf16_on_cpu() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.parametrize("precision, accelerator", [
    pytest.param("bf16-mixed", "cpu", marks=pytest.mark.skipif(
        not _bf16_on_cpu(), reason="bf16 autocast is not supported on this CPU build")),
    pytest.param("16-mixed", "gpu", marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason="16-mixed (a gradient scaler) needs CUDA")),
])
def test_mixed_precision_measures_unscaled_losses_and_gradients(tmp_path, precision,
                                                                 accelerator):
    X, y = _data()
    cb = AuditCallback(out=tmp_path, probes="standard", data=[X, y], f_lower=0.0)
    norms = _GradNorms()
    module, _ = _fit(_initial(), [cb, norms], precision=precision, accelerator=accelerator)
    steps = _steps(cb.records)
    finite = [n for n, ok in norms.norms if ok]         # a scaler skips non-finite steps
    assert len(steps) == len(finite) > 0 and not any(r.get("unaudited") for r in steps)
    assert [r["grad_norm"] for r in steps] == pytest.approx(finite, rel=1e-5)
    seen = module.autocast_losses                       # training's calls, K per window
    assert len(seen) == K * len(norms.norms)
    windows = [sum(seen[K * i:K * i + K]) / K for i, (_, ok) in enumerate(norms.norms) if ok]
    assert [r["loss"] for r in steps] == pytest.approx(windows, rel=1e-6)
    assert not cb.auditor.probe_errors
    assert any(math.isfinite(r.get("local_smoothness", math.nan)) for r in steps)
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "completed"


class _TwoOptimizers(L.LightningModule):
    """Manual optimization, two optimizers on two heads; each head's gradient is released
    after its step (the Auditor measures all trainable parameters, so a stale gradient of the
    other head would count in the audited step's gradient)."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.a, self.b = nn.Linear(5, 1), nn.Linear(5, 1)
        self.b_losses: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        for opt, head, target in zip(self.optimizers(), (self.a, self.b), (y, 2 * y)):
            loss = _mse(head(x), target)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if head is self.b:
                self.b_losses.append(float(loss.detach()))

    def configure_optimizers(self):
        return [torch.optim.SGD(self.a.parameters(), lr=LR),
                torch.optim.SGD(self.b.parameters(), lr=0.02)]


def _b_loss(module, batch):
    return _mse(module.b(batch[0]), 2 * batch[1])


def test_manual_optimization_audits_only_the_chosen_optimizer(tmp_path):
    X, y = _data()
    loader = DataLoader(TensorDataset(X, y), batch_size=B)
    cb = AuditCallback(out=None, probes="cheap", loss_fn=_b_loss, optimizer_index=1)
    module = _TwoOptimizers()
    _trainer([cb], accumulate_grad_batches=1, max_steps=2 * 6).fit(module, loader)
    steps = _steps(cb.records)
    assert len(steps) == 6 and {r["lr"] for r in steps} == {0.02}
    assert {r["batch_size"] for r in steps} == {B}          # the batch of that step alone
    assert [r["loss"] for r in steps] == pytest.approx(module.b_losses, rel=1e-6)
    with pytest.raises(AuditError, match="manual optimization give loss_fn"):
        _trainer([AuditCallback(out=None)], accumulate_grad_batches=1).fit(
            _TwoOptimizers(), loader)


class _Breaks(Regression):
    def training_step(self, batch, batch_idx):
        if self.global_step == 3:
            raise RuntimeError("user code broke")
        return super().training_step(batch, batch_idx)


def test_an_exception_in_training_finishes_the_audit_with_status_error(tmp_path):
    X, y = _data()
    cb = AuditCallback(out=tmp_path, probes="cheap", data=None)
    module = _Breaks()
    with pytest.raises(RuntimeError, match="user code broke"):
        _trainer([cb]).fit(module, DataLoader(TensorDataset(X, y), batch_size=B))
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["status"] == "error" and "user code broke" in res["message"]
    assert res["runs"][0]["steps"] == 3 and cb.results["status"] == "error"


def test_gradient_clipping_under_automatic_optimization_is_recorded(tmp_path):
    """Lightning clips inside the closure, after on_before_optimizer_step: the raw norm is
    taken there and the applied one after the closure, so clipped steps are flagged."""
    X, y = _data()
    cb = AuditCallback(out=tmp_path, probes="loss,grad_norm", data=None)
    _fit(_initial(), [cb], gradient_clip_val=1e-3)
    steps = [r for r in cb.auditor.records if r["record"] == "step"]
    assert len(steps) == STEPS and all(r["grad_clipped"] == 1.0 for r in steps)
    assert all(r["grad_norm"] == pytest.approx(1e-3, rel=1e-3) for r in steps)
    assert all(r["grad_norm_raw"] > 1e-3 for r in steps)
    assert cb.verdicts and all("clipping" in v.reason for v in cb.verdicts)


README_EXAMPLE = '''
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
import lightning as L
from approx_audit.integrations.lightning import AuditCallback

class Regression(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), nn.Tanh(),
                                 nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x).squeeze(-1), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)

g = torch.Generator().manual_seed(0)
X = torch.randn(480, 5, generator=g)
y = X @ torch.randn(5, generator=g) + 0.1 * torch.randn(480, generator=g)
train_set = TensorDataset(X, y)

audit = AuditCallback(out="audit", probes="standard", data=train_set, f_lower=0.0)
trainer = L.Trainer(max_steps=30, accumulate_grad_batches=2, callbacks=[audit],
                    logger=False, enable_checkpointing=False)
trainer.fit(Regression(), DataLoader(train_set, batch_size=8))
for v in audit.verdicts:
    print(v.bound.id, v.verdict.value)
'''


def test_the_readme_example_runs_verbatim(tmp_path, monkeypatch, capsys):
    """The README's section executes this text as it stands; the files land in ./audit."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(README_EXAMPLE, "README-lightning", "exec"), namespace)
    audit = namespace["audit"]
    assert audit.verdicts and (tmp_path / "audit" / "results.json").exists()
    assert (tmp_path / "audit" / "report.html").exists()
    printed = capsys.readouterr().out
    assert all(f"{v.bound.id} {v.verdict.value}" in printed for v in audit.verdicts)
