"""The table of assumption checkers: every catalogue assumption has one, each status arises."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # the synthetic records beside this file
import judge_evidence as E  # noqa: E402

from approx_audit.auditor.judge import Constant, Estimate, runs_from_records
from approx_audit.auditor.judge.assumptions import CHECKERS, Context, check_assumptions
from approx_audit.bounds.assumptions import ASSUMPTIONS

OK = runs_from_records(E.gd_run(lambda k: 1.0 / max(k, 1)))
GAP = runs_from_records(E.gd_run(lambda k: 1.0, step_extra={"full_convexity_gap": -0.3}))
R = {"R": Constant("R", [Estimate(1.0, "exact", "x*")])}
MU = {"mu": Constant("mu", [Estimate(0.1, "lower", "x")])}


def test_every_catalogue_assumption_has_a_checker():
    assert set(ASSUMPTIONS) <= set(CHECKERS), set(ASSUMPTIONS) - set(CHECKERS)


TABLE = [
    # (assumption, facts, runs, constants, status, words)
    ("convex", E.facts(), OK, {}, "holds", "by construction"),
    ("convex", E.facts(convex=False), OK, {}, "refuted", "non-convex"),
    ("convex", E.facts(convex=None), OK, {}, "unknown", "not refuted"),
    ("convex", E.facts(), GAP, {}, "refuted", "negative convexity gap -0.3"),
    ("strongly_convex", E.facts(), OK, {}, "unknown", "no lower bound on mu"),
    ("strongly_convex", E.facts(), OK, MU, "holds", "by construction"),
    ("quadratic", E.facts(quadratic=True), OK, {}, "holds", "quadratic"),
    ("quadratic", E.facts(), OK, {}, "refuted", "not a quadratic"),
    ("pl", E.facts(), OK, MU, "holds", "implies PL"),
    ("pl", E.facts(), OK, {}, "unknown", "not refutable"),
    ("minimizer_exists", E.facts(), OK, R, "holds", "knows its minimizer"),
    ("minimizer_exists", E.facts(), OK, {}, "unknown", "--assume R="),
    ("lower_bounded", E.facts(), OK, {}, "holds", "f*"),
    ("lower_bounded", E.facts(f_star=None), OK, {}, "unknown", "no lower bound"),
    ("unbiased_gradients", E.facts(), OK, {}, "holds", "i.i.d."),
    ("unbiased_gradients", E.facts(sampling="user"), OK, {}, "assumed", "user's loop"),
    ("bounded_domain", E.facts(), OK, {}, "refuted", "unconstrained"),
    ("doubly_stochastic_mixing", E.facts(), OK, {}, "unknown", "no mixing matrix"),
    ("initial_consensus", E.facts(), OK, {}, "unknown", "not a decentralized run"),
    ("bounded_variance", E.facts(), OK, {}, "estimated", "estimated along the path"),
    ("no_such_assumption", E.facts(), OK, {}, "unknown", "not checked by a run"),
]


@pytest.mark.parametrize("aid,facts,runs,consts,status,words", TABLE,
                         ids=[f"{t[0]}-{t[4]}" for t in TABLE])
def test_checker(aid, facts, runs, consts, status, words):
    [a] = check_assumptions([aid], Context(facts, runs, consts))
    assert a["id"] == aid and a["status"] == status and words in a["reason"], a
