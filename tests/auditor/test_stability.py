"""Stability audits: neighbouring datasets, parameter divergence, the convex stability bound."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from approx_audit.auditor.optimizers import parse_optimizer
from approx_audit.auditor.report import plots, render_html
from approx_audit.auditor.results import validate_results
from approx_audit.auditor.stability import (check_identical, run_pairs, stability_audit,
                                            stability_constants)
from approx_audit.auditor.workloads import get_workload
from approx_audit.bounds import catalogue
from approx_audit.cli.main import cli

DIV = "sgd.stability_convex.hardt_2016.divergence"
STAB = "sgd.stability_convex.hardt_2016"


@pytest.fixture(scope="module")
def logistic():
    return get_workload("logistic")


@pytest.fixture(scope="module")
def convex_audit(logistic):
    # per-example L = max‖x̃_i‖²/4 + λ ≈ 106 here, so η = 0.015 < 2/L
    return stability_audit(logistic, parse_optimizer("sgd", lr=0.015), steps=200, batch_size=8,
                           pairs=6, mode="adversarial")


def by_id(result, bound_id):
    return next(v for v in result.verdicts if v.bound.id == bound_id)


def test_convex_divergence_respects_the_recursion(convex_audit, logistic):
    v = by_id(convex_audit, DIV)
    assert v.verdict == "consistent", v.reason
    assert v.constants["G"]["kind"] == "upper" and v.constants["G"]["conservative"]
    cond = v.conditions[0]
    assert cond.condition == "eta <= 2/L" and cond.status == "holds"
    # the recursion itself, per step: mean over pairs of δ_t ≤ (2G/n) Σ_{s<t} η
    G, n, eta = v.constants["G"]["value"], convex_audit.results["stability"]["info"]["n"], 0.015
    delta = np.array([p.delta for p in convex_audit.pairs])
    t = np.arange(1, delta.shape[1] + 1)
    assert np.all(delta.mean(0) <= 2 * G * eta * t / n)
    assert delta.mean(0)[-1] > 0          # the runs did separate: the check is not vacuous
    # and the bound is not loose by an arbitrary factor: adversarial replacement comes within
    # 2.3x of it here, so a constant inflated by 5x would fail this
    assert v.looseness["min"] < 5


def test_identical_datasets_give_zero_divergence(logistic):
    traces, _ = run_pairs(logistic, parse_optimizer("sgd", lr=0.015), steps=60, batch_size=8,
                          pairs=2, identical=True)
    assert check_identical(traces) == 0.0
    assert all(e == 0.0 for p in traces for e in p.eps_hat)


def test_a_too_small_stability_bound_is_violated(logistic):
    good = catalogue.get(DIV)
    bad = dataclasses.replace(good, id="sgd.stability_convex.test_too_small", rhs=good.rhs / 50)
    catalogue.add(bad)
    try:
        res = stability_audit(logistic, parse_optimizer("sgd", lr=0.015), steps=200,
                              batch_size=8, pairs=6, mode="adversarial", bounds=[bad.id, DIV])
    finally:
        catalogue.remove(bad.id)
    assert by_id(res, bad.id).verdict == "violated", by_id(res, bad.id).reason
    assert by_id(res, DIV).verdict == "consistent"


def test_conditions_that_fail_still_show_the_curve(logistic):
    res = stability_audit(logistic, parse_optimizer("sgd", lr=0.5), steps=30, batch_size=8,
                          pairs=2)
    v = by_id(res, DIV)
    assert v.verdict == "not_applicable" and "eta <= 2/L" in v.reason and "×" in v.reason
    assert v.series and len(v.series["observed"]) == 30      # measured curve against the shape


def test_non_convex_workload_is_not_applicable_but_measured():
    w = get_workload("mlp-digits")
    res = stability_audit(w, parse_optimizer("sgd", lr=0.1), steps=20, batch_size=16, pairs=2)
    v = by_id(res, DIV)
    assert v.verdict == "not_applicable" and "convex" in v.reason
    st = res.results["stability"]
    assert len(st["checkpoints"]["k"]) >= 2 and st["early_stopping"]["k"] in st["checkpoints"]["k"]


def test_results_follow_the_schema_and_render(convex_audit):
    data = json.loads(json.dumps(convex_audit.results))
    validate_results(data)
    html = render_html(data)
    assert 'id="stability"' in html and "early-stopping" in html.lower()
    svg = plots.stability_plot(data)
    assert svg and "series-gap" in svg and "series-eps-bound" in svg


def test_the_gradient_bound_is_above_every_measured_gradient(logistic):
    traces, info = run_pairs(logistic, parse_optimizer("sgd", lr=0.015), steps=50,
                             batch_size=8, pairs=2, mode="adversarial")
    C = stability_constants(traces, info, logistic)
    assert C["L"].exact and C["G"].hi is not None and C["G"].lo is not None
    assert C["G"].lo <= C["G"].hi            # measured per-example norms never exceed the bound
    assert C["G"].conflict is None


def test_stability_cli(tmp_path):
    args = ["stability", "-w", "logistic", "-O", "sgd", "--lr", "0.015", "-B", "8", "-K", "40",
            "--pairs", "2", "--out", str(tmp_path / "s")]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert DIV in r.stdout and "early-stopping" in r.stdout
    assert (tmp_path / "s" / "report.html").exists()
    r = CliRunner().invoke(cli, args[:-1] + [str(tmp_path / "t"), "--holdout", "1.5"])
    assert r.exit_code == 2 and "holdout" in r.stderr
    r = CliRunner().invoke(cli, args + ["--pairs", "0"])
    assert r.exit_code == 2


def test_run_with_a_stability_option(tmp_path):
    r = CliRunner().invoke(cli, ["run", "-w", "logistic", "-O", "sgd", "--lr", "0.015", "-B", "8",
                                 "-K", "30", "--probes", "cheap", "--stability", "2",
                                 "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    data = json.loads((tmp_path / "results.json").read_text())
    ids = [v["id"] for v in data["verdicts"]]
    assert DIV in ids and STAB in ids and "sgd.nonconvex.bottou_2018" in ids
    assert data["stability"]["info"]["pairs"] == 2 and data["config"]["stability_pairs"] == 2
    assert sum(data["counts"].values()) == len(ids)
    validate_results(data)
