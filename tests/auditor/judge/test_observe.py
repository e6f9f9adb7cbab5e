"""Observed left-hand sides: exact, over-estimated or estimated, or why not measurable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # the synthetic records beside this file
import judge_evidence as E  # noqa: E402

import numpy as np

from approx_audit.auditor.judge import observe, runs_from_records
from approx_audit.bounds import catalogue


def test_last_iterate_gap_is_exact_with_f_star_and_an_over_estimate_with_f_lower():
    [r] = runs_from_records(E.gd_run(lambda k: 1.0 / max(k, 1), steps=4))
    b = catalogue.get(E.BECK)
    o = observe(b, r, E.facts(), {"eta": 0.5})
    assert o.kind == "exact" and o.k.tolist() == [1, 2, 3, 4] and o.values[1] == 0.5
    o = observe(b, r, E.facts(f_star=None, f_lower=-1.0), {})
    assert o.kind == "upper" and o.values[0] == 2.0 and "over-estimates" in o.note
    assert "needs f*" in observe(b, r, E.facts(f_star=None), {})


def test_averaged_gradient_norms():
    [r] = runs_from_records(E.sgd_run(lambda k: float(k), steps=4))
    o = observe(catalogue.get(E.BOTTOU), r, E.facts(), {"eta": 0.1})
    assert o.kind == "exact" and np.allclose(o.values, [0.0, 0.5, 1.0, 1.5])


def test_stability_bounds_are_not_measured_by_a_training_run():
    [r] = runs_from_records(E.sgd_run(lambda k: 1.0))
    got = observe(catalogue.get("sgd.stability_convex.hardt_2016"), r, E.facts(), {})
    assert isinstance(got, str) and "approx-audit stability" in got
