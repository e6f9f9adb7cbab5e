"""Where each constant's estimates come from, with the direction each can be wrong in."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # the synthetic records beside this file
import judge_evidence as E  # noqa: E402


from approx_audit.auditor.judge import collect_constants, runs_from_records
from approx_audit.auditor.judge.estimates import PATH_MAXIMA


def kinds(consts, name):
    return [(e.value, e.kind) for e in consts[name].estimates]


def test_facts_sizes_and_assertions():
    C = collect_constants(runs_from_records(E.gd_run(lambda k: 1.0)), E.facts(), {"G": 2.0})
    assert kinds(C, "L") == [(1.0, "exact")] and C["L"].estimates[0].source.startswith("workload")
    assert kinds(C, "d") == [(2.0, "exact")] and kinds(C, "n") == [(100.0, "exact")]
    assert (2.0, "asserted") in kinds(C, "G")
    assert kinds(C, "R") == [(1.0, "exact")] and kinds(C, "Delta") == [(1.0, "exact")]
    assert kinds(C, "sigma") == [(1e-300, "exact")]          # full batch: no noise


def test_smoothness_is_a_lower_estimate_only_from_full_batch_single_process_runs():
    fb = E.gd_run(lambda k: 1.0, step_extra={"local_smoothness": 2.0, "sharpness": 2.5})
    C = collect_constants(runs_from_records(fb), E.facts(constants={}))
    assert kinds(C, "L") == [(2.0, "lower"), (2.5, "lower")]
    fb[0]["distributed"] = {"rank_mean_keys": ["local_smoothness"]}
    C = collect_constants(runs_from_records(fb), E.facts(constants={}))
    assert kinds(C, "L") == [(2.5, "lower")]                   # a mean over ranks is no bound
    mb = E.sgd_run(lambda k: 1.0)
    mb = [r | {"local_smoothness": 2.0} if r["record"] == "step" else r for r in mb]
    assert "L" not in collect_constants(runs_from_records(mb), E.facts(constants={}))


def test_minibatch_gradients_are_estimates():
    mb = [r | {"gradient_noise_batch": 4.0} if r["record"] == "step" else r
          for r in E.sgd_run(lambda k: 1.0)]
    C = collect_constants(runs_from_records(mb), E.facts())
    assert kinds(C, "sigma") == [(2.0, "estimate")] and kinds(C, "G") == [(1.0, "estimate")]


def test_a_contradicted_fact_is_a_conflict():
    fb = E.gd_run(lambda k: 1.0, step_extra={"local_smoothness": 3.0})
    C = collect_constants(runs_from_records(fb), E.facts())
    assert "contradicts" in C["L"].conflict


def test_the_table_names_each_key_once_with_a_known_kind():
    assert all(kind in ("lower", "upper", "exact", "estimate")
               for _, kind, _, _ in PATH_MAXIMA.values())
