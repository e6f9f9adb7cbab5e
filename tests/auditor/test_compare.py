"""``approx-audit compare``: the Pareto frontier, the quality curves read from the traces, the CLI."""

from __future__ import annotations

import json
import math
import random

import pytest
from click.testing import CliRunner

from approx_audit.auditor.compare import compare, distinct_specs, pareto_front, quality_kind
from approx_audit.auditor.trace import read_trace
from approx_audit.auditor.workloads import get_workload
from approx_audit.bounds.errors import ApproxAuditError
from approx_audit.cli.main import cli


# ------------------------------------------------------------------ pareto_front

def _brute_front(points):
    def dominated(p):
        return any(q[0] <= p[0] and q[1] <= p[1] and (q[0], q[1]) != (p[0], p[1])
                   for q in points)
    return sorted((p for p in points if not dominated(p)), key=lambda p: (p[0], p[1]))


def test_pareto_front_removes_dominated():
    pts = [(1, 5.0, "a"), (2, 3.0, "b"), (3, 4.0, "c"), (4, 1.0, "d"), (5, 1.0, "e"),
           (2, 6.0, "f")]
    assert [p[2] for p in pareto_front(pts)] == ["a", "b", "d"]


def test_pareto_front_ties():
    # same x: only the lowest y; same y at a larger x: dominated; identical points: all kept
    pts = [(3, 2.0, "x3"), (1, 4.0, "a"), (1, 2.0, "b"), (2, 2.0, "c"), (1, 2.0, "b2")]
    assert [p[2] for p in pareto_front(pts)] == ["b", "b2"]


def test_pareto_front_single_empty_and_non_finite():
    assert pareto_front([]) == []
    assert pareto_front([(7, 0.5)]) == [(7, 0.5)]
    assert pareto_front([(1, math.nan), (2, math.inf), (3, None), (4, 1.0)]) == [(4, 1.0)]


def test_pareto_front_key_and_random_against_brute_force():
    rng = random.Random(0)
    for _ in range(200):
        pts = [(rng.randint(0, 6), float(rng.randint(0, 6)), i) for i in range(rng.randint(0, 12))]
        got = pareto_front(pts)
        assert sorted(got, key=lambda p: (p[0], p[1], p[2])) == sorted(
            _brute_front(pts), key=lambda p: (p[0], p[1], p[2]))
        ys = [p[1] for p in got]
        assert all(a >= b for a, b in zip(ys, ys[1:]))
    dicts = [{"x": 2, "y": 1.0}, {"x": 1, "y": 3.0}, {"x": 3, "y": 2.0}]
    assert pareto_front(dicts, key=lambda d: (d["x"], d["y"])) == [dicts[1], dicts[0]]


def test_quality_kind():
    assert quality_kind(0.5, 0.5)["kind"] == "suboptimality" and quality_kind(0.5, 0.5)["ratio"]
    assert not quality_kind(0.0, 0.0)["ratio"]
    assert quality_kind(None, 0.0)["kind"] == "gap_to_lower_bound"
    assert quality_kind(None, None)["kind"] == "objective"


# ------------------------------------------------------------------ compare on the quadratic

@pytest.fixture(scope="module")
def quadratic_compare(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    w = get_workload("quadratic", seed=0)
    res = compare(w, ["sgd:lr=1.0", "sgd:lr=0.1"], 50, out=out)
    return w, res, out


def test_compare_quadratic_larger_step_wins(quadratic_compare):
    w, res, out = quadratic_compare
    assert w.constants["L"].value == pytest.approx(1.0)   # lr=1.0 is 1/L
    assert res.status == "completed" and res.quality["kind"] == "suboptimality"
    fast, slow = res.curves
    assert fast.status == slow.status == "completed"
    assert fast.final["k"] == slow.final["k"] == 50
    assert fast.final["quality"] < slow.final["quality"]
    assert fast.best["quality"] < slow.best["quality"]
    # the frontier holds the fast run's final point, and nothing of the dominated slow run
    assert {"k": 50, "optimizer": 1} in [{"k": p["k"], "optimizer": p["optimizer"]}
                                         for p in res.frontier]
    assert fast.frontier_points > 0 and slow.frontier_points == 0
    # budget 50 with 50 checkpoints: one every step; x = training gradient evaluations = k
    assert res.checkpoint_every == 1
    assert [p["k"] for p in fast.points] == list(range(51))
    assert all(p["grad_evals"] == p["k"] and p["examples"] == p["k"] * w.n for p in fast.points)
    # targets: the fast run reaches 10% of the initial quality first
    t_fast, t_slow = fast.reached()[0], slow.reached()[0]
    assert t_fast["grad_evals"] is not None
    assert t_slow["grad_evals"] is None or t_fast["grad_evals"] < t_slow["grad_evals"]


def test_compare_quality_recomputed_from_trace(quadratic_compare):
    w, res, out = quadratic_compare
    for c in res.curves:
        recs = read_trace(c.out / "trace.jsonl")
        F = {r["k"]: r["full_loss"] for r in recs
             if r["record"] in ("init", "step", "final") and "full_loss" in r}
        assert sorted(F) == [p["k"] for p in c.points]
        for p in c.points:
            assert p["quality"] == pytest.approx(F[p["k"]] - w.f_star, rel=1e-12, abs=1e-15)
            assert p["ratio"] == pytest.approx(F[p["k"]] / w.f_star, rel=1e-12)
        assert (c.out / "results.json").exists()


def test_compare_json_written(quadratic_compare):
    w, res, out = quadratic_compare
    d = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert d == json.loads(json.dumps(res.to_dict(), default=str))
    assert [o["label"] for o in d["optimizers"]] == ["sgd(lr=1)", "sgd(lr=0.1)"]
    assert d["budget"]["grad_evals"] == 50 and d["workload"]["f_star"] == pytest.approx(w.f_star)
    assert d["optimizers"][0]["on_frontier"] and not d["optimizers"][1]["on_frontier"]
    xs = [p["grad_evals"] for p in d["frontier"]]
    qs = [p["quality"] for p in d["frontier"]]
    assert xs == sorted(xs) and all(a > b for a, b in zip(qs, qs[1:]))


def test_compare_input_errors(tmp_path):
    w = get_workload("quadratic", seed=0)
    for kwargs in ({"budget": 0}, {"budget": 5, "checkpoints": 0}, {"budget": 5, "seeds": 0}):
        with pytest.raises(ApproxAuditError):
            compare(w, ["sgd:lr=0.1"], out=tmp_path, **kwargs)
    with pytest.raises(ApproxAuditError, match="same as optimizer 1"):
        distinct_specs(["sgd:lr=0.1", "sgd:lr=0.10"])
    with pytest.raises(ApproxAuditError, match="unknown optimizer"):
        compare(w, ["sgd:lr=0.1", "sgdd:lr=0.1"], 5, out=tmp_path)
    with pytest.raises(ApproxAuditError):
        compare(w, [], 5, out=tmp_path)
    assert not list(tmp_path.iterdir())          # nothing ran


def test_compare_diverged_minibatch_seeds(tmp_path):
    w = get_workload("quadratic", seed=0)
    res = compare(w, ["sgd:lr=1.0", "sgd:lr=1e20"], 20, batch_size=20, seeds=2, out=tmp_path)
    ok, bad = res.curves
    assert ok.status == "completed" and bad.status == "diverged"
    assert res.status == "partial" and not res.all_failed
    assert bad.points and bad.points[-1]["k"] < 20        # its points up to the divergence
    assert all(math.isfinite(p["quality"]) for p in bad.points)
    assert all(p["examples"] == 20 * p["grad_evals"] for p in ok.points)
    assert "quality_min" in ok.points[-1]                  # the mean over two seeds


# ------------------------------------------------------------------ the CLI

def _cli(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.slow          # ≥ 10 s: make test-slow (CI runs it)
def test_cli_text_and_json(tmp_path):
    res = _cli("compare", "-w", "quadratic", "-O", "sgd:lr=1.0", "-O", "sgd:lr=0.1",
               "--budget", "30", "--out", str(tmp_path / "c"))
    assert res.exit_code == 0, res.output
    assert "sgd(lr=1)" in res.stdout and "sgd(lr=0.1)" in res.stdout
    assert "Pareto frontier" in res.stdout and "suboptimality" in res.stdout
    # every optimizer's report shows the comparison; the top-level one is the best optimizer's
    for folder in (tmp_path / "c").glob("0*"):
        html = (folder / "report.html").read_text()
        assert 'id="comparison"' in html and 'id="frontier"' in html
    top = (tmp_path / "c" / "report.html").read_text()
    assert "with sgd(lr=1)" in top and "### Comparison" in (tmp_path / "c" / "report.md").read_text()
    res = _cli("compare", "-w", "quadratic", "-O", "sgd:lr=1.0", "-O", "adam:lr=0.01",
               "--budget", "20", "--checkpoints", "5", "--format", "json",
               "--out", str(tmp_path / "j"))
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["checkpoint_every"] == 4 and len(d["optimizers"]) == 2
    assert d == json.loads((tmp_path / "j" / "compare.json").read_text(encoding="utf-8"))


def test_cli_errors_one_line(tmp_path):
    for args, word in ((["-O", "sgd:lr=0.1", "-O", "sgdd:lr=0.1", "--budget", "10"],
                        "unknown optimizer"),
                       (["-O", "sgd:lr=0.1", "-O", "sgd:lr=0.1", "--budget", "10"], "same as"),
                       (["-O", "sgd:lr=0.1", "--budget", "0"], "--budget")):
        res = _cli("compare", "-w", "quadratic", *args, "--out", str(tmp_path / "e"))
        assert res.exit_code == 2, res.output
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and word in errors[0]
        assert res.stdout == ""
    assert not (tmp_path / "e").exists()
