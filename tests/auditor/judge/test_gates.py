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
