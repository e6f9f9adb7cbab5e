"""One tolerance and one statistic for every audit; the decision and its reasons."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # the synthetic records beside this file
import judge_evidence as E  # noqa: E402

import numpy as np

from approx_audit.auditor.judge import Ruling, Samples, compare, decide, t_quantile, tolerance
from approx_audit.auditor.judge.comparison import REL_TOL
from approx_audit.bounds import catalogue

K = np.array([1.0, 2.0, 3.0])


def test_tolerance_is_relative_plus_ulps_of_the_scale():
    pred = np.array([1.0, 2.0, 3.0])
    obs = np.array([[10.0, 0, 0]])
    tol = tolerance(pred, obs, "float64")
    assert np.allclose(tol, REL_TOL * pred + 64 * 2.2e-16 * 10.0)
    assert np.allclose(tolerance(pred, obs, "float64", np.ones(3)), tol + 1)


def test_student_t_margin():
    assert t_quantile(3) == pytest.approx(2.919986, rel=1e-5)
    s = Samples(K, np.array([[1.0, 1, 1], [3.0, 3, 3]]), "exact", stochastic=True)
    c = compare(s, np.array([1.5, 1.5, 1.5]), "float64")
    margin = t_quantile(2) * np.sqrt(2.0) / np.sqrt(2)
    assert np.allclose(c.excess, 2.0 - margin - 1.5 - tolerance(np.full(3, 1.5), s.values,
                                                                "float64"))
    assert c.series["over"] == "seeds" and c.worst["observed"] == 2.0


def test_deterministic_bounds_compare_every_run():
    s = Samples(K, np.array([[1.0, 1, 1], [3.0, 3, 3]]), "exact", stochastic=False)
    c = compare(s, np.full(3, 2.0), "float64")
    assert (c.point_excess > 0).all()                # the worse run exceeds, not the mean
    ruling, reason = decide(catalogue.get(E.BECK), s, c, [])
    assert ruling is Ruling.VIOLATED and "every condition holds" in reason


DECISIONS = [
    # (observation kind, doubts, ruling, words)
    ("exact", [], Ruling.VIOLATED, "beyond the confidence margin"),
    ("upper", [], Ruling.INCONCLUSIVE, "an over-estimate"),
    ("estimate", [], Ruling.INCONCLUSIVE, "an estimate"),
    ("exact", ["L = 2 is lower and the bound is increasing in it"], Ruling.INCONCLUSIVE,
     "L = 2 is lower"),
]


@pytest.mark.parametrize("kind,doubts,ruling,words", DECISIONS)
def test_decide(kind, doubts, ruling, words):
    s = Samples(K, np.full((3, 3), 5.0), kind, stochastic=True)
    c = compare(s, np.ones(3), "float64")
    got, reason = decide(catalogue.get(E.BOTTOU), s, c, doubts)
    assert got is ruling and words in reason, reason


def test_pairs_speak_of_pairs():
    s = Samples(K, np.full((1, 3), 5.0), "exact", stochastic=True, over="pairs",
                hint="use --pairs ≥ 2")
    c = compare(s, np.ones(3), "float64")
    assert c.series["over"] == "pairs"               # spread reported even for one pair
    got, reason = decide(catalogue.get(E.BOTTOU), s, c, [])
    assert got is Ruling.INCONCLUSIVE and "one pair cannot refute" in reason
    assert "use --pairs ≥ 2" in reason
