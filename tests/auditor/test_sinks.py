"""auditor/sinks.py: TensorBoard event files read back, the progress bar, a missing extra."""

from __future__ import annotations

import dataclasses
import io
import math
import re
import sys

import pytest

from approx_audit.auditor import sinks as sinks_mod
from approx_audit.auditor.sinks import (MissingExtraError, ProgressSink, TensorBoardSink,
                                        scalars_of)
from approx_audit.bounds.errors import ApproxAuditError

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator)

SIZE = {"scalars": 0, "tensors": 0}     # keep every event


def _records(run: int = 0, steps: int = 3) -> list[dict]:
    """A small trace: start, init, steps (with bookkeeping, None, NaN), final, end."""
    recs = [{"run": run, "record": "start", "seed": run, "probes": [], "objective": {},
             "config": {"seeds": 2}},
            {"run": run, "record": "init", "k": 0, "full_loss": 4.0 + run, "dist_sq": 9.0}]
    for t in range(steps):
        recs.append({"run": run, "record": "step", "step": t, "k": t + 1, "lr": 0.1,
                     "batch_size": 8, "loss": 3.0 - t + run, "grad_norm": 1.0 / (t + 1),
                     "sharpness": None, "update_norm": math.nan, "time": 0.5,
                     "train_grad_evals": t + 1, "notes": {"x": 1}, "not_an_observable": 7.0})
    recs.append({"run": run, "record": "final", "k": steps, "full_loss": 1.0 + run})
    recs.append({"run": run, "record": "end", "status": "completed", "steps": steps})
    return recs


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(folder), size_guidance=SIZE)
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_only_finite_observables_and_lr_are_logged():
    rec = _records()[2]
    assert scalars_of(rec) == {"lr": 0.1, "loss": 3.0, "grad_norm": 1.0}
    assert scalars_of({"record": "step", "grad_clipped": True, "loss": 2}) == {"loss": 2.0}


VERDICTS = [
    {"id": "gd.smooth_convex.beck_2017", "verdict": "consistent", "reason": "ok",
     "series": {"k": [1, 2, 4], "observed": [3.0, 2.0, 1.0], "predicted": [5.0, 2.5, 1.25]}},
    {"id": "gd.smooth_convex.beck_2017.gap", "verdict": "violated", "reason": "a | b",
     "series": {"k": [1, 3], "observed": [2.0, None], "predicted": [1.0, math.inf]}},
    {"id": "sgd.none", "verdict": "not_applicable", "reason": "no", "series": None},
]


def test_tensorboard_event_files_hold_the_records_and_the_verdicts(tmp_path):
    sink = TensorBoardSink(tmp_path)
    for rec in _records(0) + _records(1):
        sink.write(rec)
    sink.verdicts(VERDICTS, step=3)
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run0", "run1", "verdicts"]
    for run in (0, 1):
        got = _scalars(tmp_path / f"run{run}")
        assert set(got) == {"audit/full_loss", "audit/dist_sq", "audit/lr", "audit/loss",
                            "audit/grad_norm"}
        # init at k = 0, final at k = K: steps and values are the records'
        assert got["audit/full_loss"] == [(0, 4.0 + run), (3, 1.0 + run)]
        assert got["audit/loss"] == [(1, 3.0 + run), (2, 2.0 + run), (3, 1.0 + run)]
        assert [s for s, _ in got["audit/grad_norm"]] == [1, 2, 3]
        assert got["audit/grad_norm"][1][1] == pytest.approx(0.5)
    v = _scalars(tmp_path / "verdicts")
    b = "audit/gd.smooth_convex.beck_2017"
    assert v[f"{b}/observed"] == [(1, 3.0), (2, 2.0), (4, 1.0)]
    assert v[f"{b}/predicted"] == [(1, 5.0), (2, 2.5), (4, 1.25)]
    assert v[f"{b}.gap/observed"] == [(1, 2.0)] and v[f"{b}.gap/predicted"] == [(1, 1.0)]
    assert not any("sgd.none" in t for t in v)
    layout = _layout(tmp_path / "verdicts")
    (cat,) = layout.category
    assert cat.title == "margin"
    charts = {c.title: list(c.multiline.tag) for c in cat.chart}
    assert set(charts) == {"gd.smooth_convex.beck_2017", "gd.smooth_convex.beck_2017.gap"}
    # the chart's tag patterns pick exactly this bound's two series (not the ".gap" bound's)
    patterns = charts["gd.smooth_convex.beck_2017"]
    assert sorted(t for t in v if any(re.search(p, t) for p in patterns)) == [
        f"{b}/observed", f"{b}/predicted"]


def _layout(folder):
    from tensorboard.plugins.custom_scalar import layout_pb2, metadata

    acc = EventAccumulator(str(folder), size_guidance=SIZE)
    acc.Reload()
    assert metadata.CONFIG_SUMMARY_TAG in acc.Tags()["tensors"]
    (event,) = acc.Tensors(metadata.CONFIG_SUMMARY_TAG)
    return layout_pb2.Layout.FromString(event.tensor_proto.string_val[0])


def test_tensorboard_without_run_folders_keeps_later_runs_apart(tmp_path):
    sink = TensorBoardSink(tmp_path, run_prefix=False)
    for rec in _records(0) + _records(1):
        sink.write(rec)
    sink.verdicts(VERDICTS[:1], step=3)
    sink.close()
    sink.close()                                    # idempotent
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]
    got = _scalars(tmp_path)
    assert got["audit/loss"] == [(1, 3.0), (2, 2.0), (3, 1.0)]
    assert got["audit/run1/loss"] == [(1, 4.0), (2, 3.0), (3, 2.0)]
    assert got["audit/gd.smooth_convex.beck_2017/predicted"][0] == (1, 5.0)


def test_tensorboard_writes_after_close_are_not_lost(tmp_path):
    """An Auditor per seed may close the sink between runs: later runs still arrive."""
    sink = TensorBoardSink(tmp_path)
    for rec in _records(0):
        sink.write(rec)
    sink.close()
    for rec in _records(1):
        sink.write(rec)
    sink.close()
    assert _scalars(tmp_path / "run1")["audit/loss"][0] == (1, 4.0)


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    """A clock that moves only when told (no wall-clock time in the test)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_bar_shows_steps_loss_and_eta():
    out, clock = FakeTTY(), Clock()
    bar = ProgressSink(10, stream=out, clock=clock)
    assert bar.enabled
    recs = _records(0, steps=3)
    bar.write(recs[0])
    bar.write(recs[1])
    for rec in recs[2:5]:
        clock.now += 2.0
        bar.write(rec)
    last = out.getvalue().split("\r")[-1]
    assert "3/10" in last and "loss 1" in last and "run 1/2" in last
    assert "ETA 00:14" in last             # 6 s for 3 steps, 7 to go
    assert "\n" not in out.getvalue()
    bar.write(recs[5])                      # final
    bar.write(recs[6])                      # end: the line is finished
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1
    bar.close()
    assert out.getvalue().count("\n") == 1


def test_progress_bar_redraws_at_most_every_interval():
    out, clock = FakeTTY(), Clock()
    bar = ProgressSink(10, stream=out, clock=clock, runs=1)
    recs = _records(0, steps=5)
    for rec in recs[:7]:                    # start, init, 5 steps at the same instant
        bar.write(rec)
    assert out.getvalue().count("\r") == 1 and "1/10" in out.getvalue()
    clock.now += 0.25
    bar.write({"run": 0, "record": "step", "step": 5, "k": 6, "loss": 0.5})
    assert out.getvalue().count("\r") == 2 and "6/10" in out.getvalue().split("\r")[-1]
    assert "run " not in out.getvalue()     # one run: no run counter
    bar.close()                             # interrupted (no end record): line finished
    assert out.getvalue().endswith("\n")


def test_progress_bar_is_off_on_a_non_tty_stream():
    out = io.StringIO()
    bar = ProgressSink(10, stream=out, clock=Clock())
    assert not bar.enabled
    for rec in _records():
        bar.write(rec)
    bar.close()
    assert out.getvalue() == ""
    forced = ProgressSink(10, stream=out, enabled=True, clock=Clock())
    for rec in _records():
        forced.write(rec)
    assert "3/10" in out.getvalue()


def test_a_missing_tensorboard_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(MissingExtraError) as info:
        TensorBoardSink(tmp_path)
    msg = str(info.value)
    assert isinstance(info.value, ApproxAuditError) and "\n" not in msg
    assert "tensorboard" in msg and "pip install 'approx-audit[tensorboard]'" in msg


def test_a_missing_wandb_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'approx-audit\[wandb\]'"):
        sinks_mod.WandbSink(project="x")


def test_wandb_offline_run(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    sink = sinks_mod.WandbSink(project="approx-audit-test")
    run = wandb.run
    for rec in _records():
        sink.write(rec)
    sink.verdicts(VERDICTS, step=3)
    assert run.summary["audit/gd.smooth_convex.beck_2017/verdict"] == "consistent"
    sink.close()
    assert wandb.run is None
    assert any(tmp_path.rglob("*.wandb"))


def _needs_the_sinks_field():
    from approx_audit.auditor.audit import AuditConfig

    if "sinks" not in {f.name for f in dataclasses.fields(AuditConfig)}:
        pytest.skip("AuditConfig has no sinks field yet")


def test_a_real_audit_through_the_tensorboard_sink(tmp_path):
    """run_audit on the quadratic for 20 steps: the event files hold the trace's numbers."""
    _needs_the_sinks_field()
    from approx_audit.auditor.audit import AuditConfig, run_audit
    from approx_audit.auditor.optimizers import parse_optimizer
    from approx_audit.auditor.trace import read_trace
    from approx_audit.auditor.workloads import get_workload

    w = get_workload("quadratic", seed=0)
    sink = TensorBoardSink(tmp_path / "tb")
    config = AuditConfig(workload=w, optimizer=parse_optimizer("sgd", lr=0.1), steps=20,
                         out=tmp_path / "audit", sinks=[sink])
    result = run_audit(config)
    sink.close()
    assert result.status == "completed"
    got = _scalars(tmp_path / "tb" / "run0")
    steps = [r for r in read_trace(tmp_path / "audit" / "trace.jsonl") if r["record"] == "step"]
    assert [s for s, _ in got["audit/loss"]] == [r["k"] for r in steps] == list(range(1, 21))
    assert [v for _, v in got["audit/loss"]] == pytest.approx([r["loss"] for r in steps],
                                                              rel=1e-6)
    assert got["audit/lr"][0] == (1, pytest.approx(0.1))
    with_series = [v for v in result.results["verdicts"] if v.get("series")]
    assert with_series
    tags = _scalars(tmp_path / "tb" / "verdicts")
    for v in with_series:
        assert [s for s, _ in tags[f"audit/{v['id']}/predicted"]] == [
            int(k) for k, p in zip(v["series"]["k"], v["series"]["predicted"])
            if p is not None and math.isfinite(p)]
    assert {c.title for c in _layout(tmp_path / "tb" / "verdicts").category[0].chart} == {
        v["id"] for v in with_series}


def _cli(*args):
    from click.testing import CliRunner

    from approx_audit.cli.main import cli
    return CliRunner().invoke(cli, ["run", *args])


def test_the_run_command_writes_event_files(tmp_path):
    _needs_the_sinks_field()
    tb = tmp_path / "tb"
    r = _cli("-w", "quadratic", "-O", "sgd", "--lr", "0.1", "--steps", "20", "--format", "none",
             "--out", str(tmp_path / "audit"), "--tensorboard", str(tb))
    assert r.exit_code == 0, r.output
    assert list((tb / "run0").glob("events.out.tfevents.*"))
    assert len(_scalars(tb / "run0")["audit/loss"]) == 20
    assert "\r" not in r.stderr                    # not a terminal: no progress bar
    assert list((tb / "verdicts").glob("events.out.tfevents.*"))


@pytest.mark.slow          # ≥ 10 s: make test-slow (CI runs it)
def test_compare_writes_event_files_per_optimizer(tmp_path):
    from click.testing import CliRunner

    from approx_audit.cli.main import cli

    tb = tmp_path / "tb"
    r = CliRunner().invoke(cli, ["compare", "-w", "quadratic", "-O", "sgd:lr=0.1",
                                 "-O", "sgd:lr=0.05", "--budget", "12", "--out",
                                 str(tmp_path / "cmp"), "--tensorboard", str(tb)])
    assert r.exit_code == 0, r.output
    folders = sorted(p.name for p in tb.iterdir())
    assert folders == sorted(p.name for p in (tmp_path / "cmp").glob("0*-*") if p.is_dir())
    for f in folders:
        assert len(_scalars(tb / f / "run0")["audit/loss"]) == 12


@pytest.mark.parametrize("option", [["--tensorboard", "TB"], ["--wandb-project", "p"]])
def test_the_sinks_are_refused_with_several_processes(tmp_path, option):
    option = [str(tmp_path / o) if o == "TB" else o for o in option]
    r = _cli("-w", "quadratic", "-O", "sgd", "--steps", "5", "--nproc", "2",
             "--out", str(tmp_path / "audit"), *option)
    assert r.exit_code == 2, r.output
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and option[0] in err[0]
    assert "--nproc 2" in err[0]
    assert not (tmp_path / "audit").exists() and not (tmp_path / "TB").exists()


def test_a_missing_package_on_the_command_line_is_exit_2(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    r = _cli("-w", "quadratic", "-O", "sgd", "--steps", "5", "--format", "none",
             "--out", str(tmp_path / "audit"), "--wandb-project", "p")
    assert r.exit_code == 2, r.output
    err = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert err == ["error: W&B logging needs the wandb package: pip install "
                   "'approx-audit[wandb]'"]


def test_stability_and_certify_drive_a_progress_bar():
    """The loops that write no trace (stability's pairs, certify's training) report their
    steps to the bar: each pair / training phase ends its line at its last step."""
    from approx_audit.auditor.certify import certify_test_set
    from approx_audit.auditor.optimizers import parse_optimizer
    from approx_audit.auditor.stability import stability_audit
    from approx_audit.auditor.workloads import get_workload

    w = get_workload("logistic")
    spec = parse_optimizer("sgd:lr=0.05")
    out, clock = FakeTTY(), Clock()
    stability_audit(w, spec, steps=6, batch_size=8, pairs=2,
                    progress=ProgressSink(6, stream=out, clock=clock, min_interval=0.0, runs=2))
    lines = out.getvalue().split("\n")
    assert out.getvalue().count("\n") == 2
    assert "run 1/2" in lines[0] and "6/6" in lines[0] and "run 2/2" in lines[1]
    out2 = FakeTTY()
    certify_test_set(get_workload("mlp-digits", width=4), spec, steps=5, batch_size=16,
                     progress=ProgressSink(5, stream=out2, clock=clock, min_interval=0.0))
    assert out2.getvalue().count("\n") == 1 and "5/5" in out2.getvalue() and "loss" in \
        out2.getvalue()


def test_check_drives_a_progress_bar_per_solved_program(monkeypatch):
    """approx-audit check's worst cases, one solved program at a time."""
    from approx_audit.bounds import catalogue
    from approx_audit.bounds.certify import check_bound
    from approx_audit.cli import options

    out = FakeTTY()
    monkeypatch.setattr(sinks_mod.sys, "stderr", out)
    seen = []
    progress = options.progress_callback(False)
    check_bound(catalogue.get("gd.smooth_convex.drori_teboulle_2014"), range(1, 4),
                progress=lambda d, t: (seen.append((d, t)), progress(d, t)))
    n = len(seen)                          # horizons 1..3 at each of the spec's points
    assert n % 3 == 0 and seen == [(i, n) for i in range(1, n + 1)]
    assert f"{n}/{n}" in out.getvalue() and out.getvalue().endswith("\n")
    assert options.progress_callback(True) is None
