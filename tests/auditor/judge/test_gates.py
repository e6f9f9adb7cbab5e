"""The gates before a comparison, each alone: it accepts (None) or stops with a ruling."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # the synthetic records beside this file
import judge_evidence as E  # noqa: E402

from approx_audit.auditor.judge import Ruling, collect_constants, runs_from_records
from approx_audit.auditor.judge.gates import GATES, check_step_rule, first_stop
from approx_audit.auditor.judge.ruling import open_case
from approx_audit.bounds import catalogue


def case(records, facts=None, spec=E.GD, assume=None, bound=E.BECK):
    facts = facts or E.facts()
    runs = runs_from_records(records)
    consts = collect_constants(runs, facts, assume)
    hyper = spec["symbol_values"]
    return open_case(catalogue.get(bound), runs, facts, spec, hyper, consts,
                     runs[0].lrs() if runs else [], "constant")


def test_a_good_case_passes_every_gate():
    c = case(E.gd_run(lambda k: 1.0))
    assert [g(c) for g in GATES] == [None] * len(GATES) and first_stop(c) is None


def test_the_first_stop_wins_in_designs_order():
    # diverged and for another algorithm: the error comes first
    c = case(E.gd_run(lambda k: 1.0, diverged="nan"), spec=E.GD | {"name": "adam"})
    assert first_stop(c).ruling is Ruling.ERROR


def test_step_rule():
    b = catalogue.get("sgd.pl.karimi_2016")         # η_k = (2k + 1)/(2μ(k + 1)²)
    msg = check_step_rule(b, {}, {}, [0.1] * 5, "constant")
    assert "varying with k" in msg
    beck = catalogue.get(E.BECK)                     # η_k = eta
    assert check_step_rule(beck, {"eta": 0.5}, {}, [0.5] * 5, "constant") is None
    assert "this run used 0.4" in check_step_rule(beck, {"eta": 0.5}, {}, [0.4] * 5, "constant")
    assert check_step_rule(beck, {"eta": 0.5}, {}, [], "constant") is None


# --------------------------------------------------------------------------- issue 16

def test_clipped_steps_make_every_unclipped_bound_not_applicable_with_the_numbers():
    recs = E.gd_run(lambda k: 1.0 / (k + 1))
    steps = [r for r in recs if r["record"] == "step"]
    for i, r in enumerate(steps):
        r.update(grad_norm_raw=2.0 + i, grad_clipped=float(i % 4 == 0), grad_norm=1.0)
    stop = first_stop(case(recs))
    assert stop.ruling is Ruling.NOT_APPLICABLE
    assert "gradient clipping: 5 of 20 steps of run 0 were clipped" in stop.reason
    assert "up to 18 applied as 1" in stop.reason          # the largest clipped raw norm
    for r in steps:
        r["grad_clipped"] = 0.0
    assert first_stop(case(recs)) is None                  # unclipped: accepted again


def test_dropout_makes_a_full_batch_run_stochastic():
    """Full-batch SGD on a model with dropout is not gradient descent: the mask is random at
    every step. The GD bound is for another algorithm, and path maxima of L from one draw are
    estimates, not certain lower bounds."""
    recs = E.gd_run(lambda k: 1.0 / (k + 1), step_extra={"full_smoothness": 0.7})
    recs[0]["objective"] = {"mode": "train", "stochastic_layers": ["model.2 (Dropout, p=0.1)"]}
    c = case(recs, facts=E.facts(constants={}))
    assert not c.full_batch
    stop = first_stop(c)
    assert stop.ruling is Ruling.NOT_APPLICABLE and "random through model.2" in stop.reason
    runs = runs_from_records(recs)
    L = collect_constants(runs, E.facts(constants={}))["L"]
    assert L.lo is None and all(e.kind == "estimate" for e in L.estimates)
    recs[0]["objective"]["stochastic_layers"] = []
    assert case(recs, facts=E.facts(constants={})).full_batch
    L = collect_constants(runs_from_records(recs), E.facts(constants={}))["L"]
    assert L.lo == pytest.approx(0.7)
