"""A run's steps must be 0..n−1 in order, each once (issue 21): a hand-edited or concatenated
trace is named and every verdict on it is an ``error``, never consistent or violated."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # the synthetic records beside this file
import judge_evidence as E  # noqa: E402

from approx_audit.auditor.judge import Ruling, judge, runs_from_records
from approx_audit.auditor.judge.gates import GATES, non_contiguous

ok_gap = lambda k: 0.5 / max(k, 1)      # consistent with Beck's bound on a complete run


def steps_of(recs):
    return [i for i, r in enumerate(recs) if r["record"] == "step"]


def without(recs, *steps):
    return [r for r in recs if not (r["record"] == "step" and r["step"] in steps)]


def duplicated(recs, step):
    i = next(i for i in steps_of(recs) if recs[i]["step"] == step)
    return recs[:i] + [dict(recs[i])] + recs[i:]


def swapped(recs, a, b):
    out = list(recs)
    i, j = (next(i for i in steps_of(out) if out[i]["step"] == s) for s in (a, b))
    out[i], out[j] = out[j], out[i]
    return out


def problem(recs, run=0):
    return next(r for r in runs_from_records(recs) if r.run == run).contiguity


def test_a_complete_run_is_contiguous_and_unaudited_steps_count():
    recs = E.gd_run(ok_gap, steps=50)
    assert problem(recs) is None
    recs[steps_of(recs)[7]] = {"record": "step", "run": 0, "step": 7, "k": 8, "unaudited": True,
                               "lr": 0.5}
    assert problem(recs) is None


@pytest.mark.parametrize("edit, expected", [
    (lambda r: without(r, 17), "17 missing"),
    (lambda r: duplicated(r, 23), "23 duplicated"),
    (lambda r: swapped(r, 39, 40), "40 before 39"),
    (lambda r: swapped(duplicated(without(r, 17), 23), 39, 40),
     "17 missing, 23 duplicated, 40 before 39"),
    (lambda r: without(r, 3, 4, 5, 6, 9), "3, 4, 5, … missing (5 in all)"),
    (lambda r: without(r, 0), "0 missing"),
    (lambda r: without(r, 49), "the final record is at k = 50, after 49 steps"),
    (lambda r: [dict(x, k=1) if x["record"] == "init" else x for x in r],
     "the init record is at k = 1, not 0"),
    (lambda r: r + r, "0, 1, 2, … duplicated (50 in all), 49 before 0, 2 start records, "
                      "2 init records, 2 final records, 2 end records"),
])
def test_removed_duplicated_reversed_and_concatenated_steps_are_named(edit, expected):
    assert problem(edit(E.gd_run(ok_gap, steps=50))) == expected


def test_a_hostile_step_index_is_named_and_costs_nothing():
    recs = E.gd_run(ok_gap, steps=3)
    recs[steps_of(recs)[-1]]["step"] = 10**12
    assert problem(recs) == "2, 3, 4, … missing (999999999998 in all)"
    for bad in ("two", None, True, -1, 2.0):
        recs = E.gd_run(ok_gap, steps=3)
        recs[steps_of(recs)[1]]["step"] = bad
        assert problem(recs) == f"a step record has step index {bad!r}, not an integer ≥ 0"


def test_the_gate_comes_first_and_every_verdict_is_an_error():
    assert GATES[0] is non_contiguous
    recs = swapped(duplicated(without(E.gd_run(ok_gap, steps=50), 17), 23), 39, 40)
    verdicts, _ = judge(recs, E.facts(), E.GD)
    assert verdicts and {v.verdict for v in verdicts} == {Ruling.ERROR}
    for v in verdicts:
        assert v.reason == "run 0: steps not contiguous: 17 missing, 23 duplicated, 40 before 39"
    # the complete run is ruled on as before
    verdicts, _ = judge(E.gd_run(ok_gap, steps=50), E.facts(), E.GD)
    assert Ruling.ERROR not in {v.verdict for v in verdicts}


def test_the_first_broken_run_is_named_even_beside_a_diverged_one():
    recs = (E.gd_run(ok_gap, run=0, steps=20) + without(E.gd_run(ok_gap, run=1, steps=20), 5)
            + E.gd_run(ok_gap, run=2, steps=20, diverged="nan"))
    verdicts, _ = judge(recs, E.facts(), E.GD)
    assert {v.reason for v in verdicts} == {"run 1: steps not contiguous: 5 missing"}
