"""The examples audited as a user would: ``approx-audit run --model examples.X:model`` with the
default probes, and the own-loop example (cosine schedule to 0, gradient clipping)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from approx_audit.auditor.trace import read_trace
from approx_audit.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]

# (module, loss, optimizer options): the commands of the README's "Auditing your own models"
CASES = {
    "cnn": ("cross-entropy", ["-O", "sgd:lr=0.05,momentum=0.9", "--weight-decay", "5e-4"]),
    "transformer": ("cross-entropy", ["-O", "adamw:lr=1e-3"]),
    "regression": ("mse", ["-O", "sgd:lr=0.01"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_examples_complete_with_the_default_probes(name, tmp_path, monkeypatch):
    """Every default probe runs on BatchNorm, dropout/attention and MSE models (200 steps: the
    standard preset's sharpness@200 is due once), nothing switched off, reports written."""
    monkeypatch.chdir(ROOT)
    loss, opt = CASES[name]
    out = tmp_path / name
    r = CliRunner().invoke(cli, ["run", "--model", f"examples.{name}:model", "--data",
                                 f"examples.{name}:data", "--loss", loss, *opt, "-B", "64",
                                 "--steps", "200", "--out", str(out)])
    assert r.exit_code in (0, 1), r.output
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "completed" and res["runs"][0]["probe_errors"] == {}
    assert (out / "report.html").exists() and (out / "report.md").exists()
    md = (out / "report.md").read_text()
    assert "Audited function: the training objective as trained (train mode)" in md
    steps = [x for x in read_trace(out / "trace.jsonl") if x["record"] == "step"]
    due = {k for s in steps for k, v in s.items() if v is not None}
    assert {"gradient_noise", "local_smoothness", "sharpness", "full_loss", "pl_ratio",
            "grad_norm_raw"} <= due
    noise = [s["gradient_noise_microbatch"] for s in steps if "gradient_noise" in s]
    obj = res["objective"]
    if name == "cnn":
        assert obj["coupling_layers"] and not obj["stochastic_layers"]
        assert set(noise) == {8.0}                  # 8 microbatches of 8: BatchNorm couples
    elif name == "transformer":
        assert obj["stochastic_layers"] and not obj["coupling_layers"]
        assert set(noise) == {8.0}                  # independent dropout draws per microbatch
        assert res["full_batch"] is False
    else:
        assert not obj["coupling_layers"] and not obj["stochastic_layers"]
        assert set(noise) == {1.0}                  # exact per-example gradients


@pytest.mark.parametrize("name", list(CASES))
def test_examples_complete_with_the_full_preset(name, tmp_path, monkeypatch):
    """The full preset (every probe, sharpness and adam_sharpness@50) on the three models."""
    monkeypatch.chdir(ROOT)
    loss, opt = CASES[name]
    out = tmp_path / name
    r = CliRunner().invoke(cli, ["run", "--model", f"examples.{name}:model", "--data",
                                 f"examples.{name}:data", "--loss", loss, *opt, "-B", "64",
                                 "--steps", "50", "--probes", "full", "--out", str(out)])
    assert r.exit_code in (0, 1), r.output
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "completed" and res["runs"][0]["probe_errors"] == {}
    last = [x for x in read_trace(out / "trace.jsonl") if x["record"] == "step"][-1]
    assert last["sharpness"] > 0 and last["local_smoothness"] > 0
    if name == "transformer":                       # AdamW: Adam's preconditioned sharpness
        assert last["adam_sharpness"] > 0


def test_the_readme_shows_each_example_command():
    readme = (ROOT / "README.md").read_text()
    for name, (loss, opt) in CASES.items():
        pattern = (rf"approx-audit run --model examples\.{name}:model --data "
                   rf"examples\.{name}:data --loss {loss} {re.escape(' '.join(opt))}")
        assert re.search(pattern, readme), name


def test_own_loop_with_cosine_to_zero_and_clipping(tmp_path, monkeypatch):
    """Issue 16: CosineAnnealingLR(eta_min=0) crashed verdicts(); clipping was invisible. The
    loop completes, records the raw and the applied gradient norm at every step, and every
    verdict names the schedule and the clipping."""
    monkeypatch.chdir(ROOT)
    from examples import own_loop

    auditor, verdicts = own_loop.main(steps=60, out=str(tmp_path / "loop"))
    steps = [r for r in auditor.records if r["record"] == "step"]
    assert len(steps) == 60 and auditor.records[-1]["probe_errors"] == {}
    assert steps[0]["lr"] == pytest.approx(0.1) and steps[-1]["lr"] < 1e-3
    for s in steps:
        assert s["grad_norm"] <= s["grad_norm_raw"] * (1 + 1e-6)
        assert s["grad_clipped"] == float(s["grad_norm_raw"] > 0.25 * (1 + 1e-6))
    clipped = [s for s in steps if s["grad_clipped"]]
    assert clipped and all(s["grad_norm"] == pytest.approx(0.25, rel=1e-5) for s in clipped)
    assert verdicts
    for v in verdicts:
        text = " ".join([v.reason, *v.caveats])
        assert "CosineAnnealingLR" in text and "clipping" in text and "clipped" in v.reason
        assert v.verdict == "not_applicable"
