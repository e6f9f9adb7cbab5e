"""The Auditor in loops torch's step hooks alone do not fit (issue 20): closures (LBFGS,
SAM-style double steps, Lightning's automatic optimization), steps nobody reported, and
results.json / reports written from the API exactly as ``approx-audit run`` writes them."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from approx_audit.auditor import Auditor
from approx_audit.auditor.results import results_from_trace, validate_results
from approx_audit.cli.main import cli


def _data(n: int = 96):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 5, generator=g)
    return X, (X @ torch.randn(5, 1, generator=g)).squeeze(1) + 0.1 * torch.randn(n, generator=g)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))


def _mse(out, y):
    return nn.functional.mse_loss(out.squeeze(-1), y)


def test_lbfgs_with_a_closure_completes_and_writes_a_report(tmp_path):
    """The closure runs the forward and backward inside step(): the first observe() in it is
    the evaluation at x_t; LBFGS's further evaluations are not the step's."""
    X, y = _data()
    model = _model()
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4)
    aud = Auditor(model, opt, loss=_mse, data=(X, y), probes="standard", out=tmp_path)
    calls = []

    def closure():
        opt.zero_grad()
        loss = _mse(model(X), y)
        loss.backward()
        calls.append(float(loss.detach()))
        aud.observe(X, y, loss)
        return loss

    for _ in range(6):
        opt.step(closure)
    verdicts, results = aud.finish(f_lower=0.0)
    assert len(calls) > 6                          # LBFGS evaluated more than once per step
    steps = [r for r in aud.records if r["record"] == "step"]
    assert len(steps) == 6 and not any(r.get("unaudited") for r in steps)
    assert [r["loss"] for r in steps][0] == pytest.approx(calls[0])
    assert steps[-1]["grad_norm"] > 0 and steps[-1]["update_norm"] > 0
    validate_results(results)
    assert results["config"]["api"]["optimizer"] == "LBFGS" and verdicts == []
    for name in ("results.json", "report.html", "report.md", "trace.jsonl"):
        assert (tmp_path / name).exists(), name


def test_sam_style_double_step_measures_x_t():
    """SAM: a first closure at x_t, a second at the perturbed point, then the step; the
    recorded loss is the first evaluation's and the snapshot is x_t, not the perturbed point."""
    X, y = _data()
    model = _model()
    base = torch.optim.SGD(model.parameters(), lr=0.05)
    aud = Auditor(model, base, loss=_mse, data=(X, y), probes="loss,grad_norm,update_norm")
    x_t, first = [], []

    def closure():
        base.zero_grad()
        loss = _mse(model(X), y)
        loss.backward()
        aud.observe(X, y, loss)
        return loss

    for _ in range(3):
        x_t.append(torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()]))

        def sam_closure():
            loss = closure()                          # at x_t
            first.append(float(loss))
            with torch.no_grad():                     # ascend to the sharp point, re-evaluate
                eps = [0.05 * p.grad / (p.grad.norm() + 1e-12) for p in model.parameters()]
                for p, e in zip(model.parameters(), eps):
                    p.add_(e)
            closure()
            with torch.no_grad():
                for p, e in zip(model.parameters(), eps):
                    p.sub_(e)
            return loss
        base.step(sam_closure)
    aud.close()
    steps = [r for r in aud.records if r["record"] == "step"]
    assert [r["loss"] for r in steps] == pytest.approx(first)
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert steps[-1]["update_norm"] == pytest.approx(float((after - x_t[-1]).norm()), rel=1e-5)


def test_a_step_nobody_reported_is_recorded_as_unaudited_and_training_goes_on():
    X, y = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    aud = Auditor(model, opt, loss=_mse, data=(X, y), probes="loss,local_smoothness@1")
    with pytest.warns(RuntimeWarning, match="recorded as unaudited"):
        for t in range(4):
            opt.zero_grad()
            loss = _mse(model(X[:32]), y[:32])
            loss.backward()
            if t != 1:
                aud.observe(X[:32], y[:32], loss)
            opt.step()
    aud.close()
    steps = [r for r in aud.records if r["record"] == "step"]
    assert [r["step"] for r in steps] == [0, 1, 2, 3]
    assert steps[1].get("unaudited") is True and "loss" not in steps[1]
    assert steps[2]["local_smoothness"] > 0 and steps[1]["lr"] == 0.05


def test_finish_writes_run_s_schema_and_report_rerenders_from_the_trace(tmp_path):
    """Auditor.finish(): results.json (validated against the schema), report.html,
    report.md; the API run's configuration names the model, optimizer, scheduler and clipping;
    `approx-audit report` on the trace rebuilds the same verdicts."""
    X, y = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    with Auditor(model, opt, loss=_mse, data=(X, y), probes="standard", out=tmp_path,
                 scheduler=sched) as aud:
        g = torch.Generator().manual_seed(1)
        for _ in range(30):
            idx = torch.randint(0, len(X), (16,), generator=g)
            opt.zero_grad()
            loss = _mse(model(X[idx]), y[idx])
            loss.backward()
            aud.observe(X[idx], y[idx], loss)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            sched.step()
    res = json.loads((tmp_path / "results.json").read_text())
    validate_results(res)
    api = res["config"]["api"]
    assert api == {**api, "model": "Sequential", "optimizer": "SGD", "scheduler": "StepLR"}
    assert api["clipping"]["steps_with_norms"] == 30
    assert res["optimizer"]["lr"] == 0.05 and "StepLR" in res["optimizer"]["schedule"]
    assert (tmp_path / "report.html").exists() and (tmp_path / "report.md").exists()
    rebuilt = results_from_trace(tmp_path / "trace.jsonl")
    assert [(v["id"], v["verdict"]) for v in rebuilt["verdicts"]] == \
        [(v["id"], v["verdict"]) for v in res["verdicts"]]
    r = CliRunner().invoke(cli, ["report", str(tmp_path / "trace.jsonl"), "--format", "md",
                                 "--out", str(tmp_path / "again.md")])
    assert r.exit_code == 0, r.output
    assert "Sequential in the user's own loop" in (tmp_path / "again.md").read_text()


def test_the_context_manager_writes_results_after_an_exception(tmp_path):
    X, y = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with pytest.raises(RuntimeError, match="user code broke"):
        with Auditor(model, opt, loss=_mse, data=(X, y), probes="cheap", out=tmp_path) as aud:
            for t in range(3):
                opt.zero_grad()
                loss = _mse(model(X), y)
                loss.backward()
                aud.observe(X, y, loss)
                opt.step()
            raise RuntimeError("user code broke")
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["status"] == "error" and "user code broke" in res["message"]
    assert res["runs"][0]["steps"] == 3


def test_api_verdicts_speak_of_keywords_not_cli_options():
    """The judge's reasons name --assume; from the API they name assume={...}."""
    X, y = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    aud = Auditor(model, opt, loss=_mse, data=(X, y), probes="standard")
    g = torch.Generator().manual_seed(2)
    for _ in range(20):
        idx = torch.randint(0, len(X), (16,), generator=g)
        opt.zero_grad()
        loss = _mse(model(X[idx]), y[idx])
        loss.backward()
        aud.observe(X[idx], y[idx], loss)
        opt.step()
    verdicts, results = aud.finish(f_lower=0.0)
    texts = [v.reason for v in verdicts] + [c for v in verdicts for c in v.caveats] + [
        a.get("reason", "") for v in verdicts for a in v.assumptions]
    assert any("assume={'" in t for t in texts), texts
    assert not any("--assume" in t or "--optimizer" in t for t in texts)
    assert "--assume" not in json.dumps(results)


def test_clipping_inside_a_closure_is_seen():
    """Lightning clips inside the closure, after the callback's observe(): with one evaluation
    per step the applied gradient is read after the closure, so the step is a clipped one."""
    X, y = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    aud = Auditor(model, opt, loss=_mse, data=(X, y), probes="loss,grad_norm,update_norm")

    def closure():
        opt.zero_grad()
        loss = _mse(model(X), y)
        loss.backward()
        aud.observe(X, y, loss)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)
        return loss

    for _ in range(3):
        opt.step(closure)
    aud.close()
    steps = [r for r in aud.records if r["record"] == "step"]
    assert all(r["grad_clipped"] == 1.0 for r in steps)
    assert all(r["grad_norm"] == pytest.approx(0.01, rel=1e-4) for r in steps)
    assert all(r["grad_norm_raw"] > 0.01 for r in steps)
    assert steps[-1]["update_norm"] == pytest.approx(0.05 * 0.01, rel=1e-4)


@pytest.mark.parametrize("clip", [None, 0.01])
def test_local_smoothness_reuses_training_s_gradient_once_verified(clip):
    """In a user's loop the first secant recomputes f's gradient at x_t and compares it with
    training's; when they agree, unclipped steps reuse training's (one gradient per step
    instead of two), and a clipped step never does. The secants are the same either way."""
    X, y = _data()
    records = {}
    for reuse in (True, False):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        aud = Auditor(model, opt, loss=_mse, data=None,
                      probes="loss,grad_norm,local_smoothness@1" if reuse else
                      "loss,local_smoothness@1")          # no grad_norm: nothing to compare
        for t in range(5):
            opt.zero_grad()
            loss = _mse(model(X[:32]), y[:32])
            loss.backward()
            aud.observe(X[:32], y[:32], loss)
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
        aud.close()
        records[reuse] = [r["local_smoothness"] for r in aud.records if r["record"] == "step"]
        backward = aud.costs.by_probe["local_smoothness"].backward
        if reuse and clip is None:
            assert backward == 2 + 4            # verified at the first step, reused after
        else:
            assert backward == 2 * 5
    assert records[True] == pytest.approx(records[False], rel=1e-6)
