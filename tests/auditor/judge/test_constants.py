"""Constants: which estimate a right-hand side uses, by direction and kind (DESIGN's logic of
directions), the interval they bound, conflicts, and Monotonicity's parse of directions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # the synthetic records beside this file
import judge_evidence as E  # noqa: E402

from approx_audit.auditor.judge import Certainty, Constant, Estimate, Monotonicity, build_constants


def c(*ests):
    return Constant("L", [Estimate(v, kind, kind) for v, kind in ests])


CHOICES = [
    # (estimates, direction, chosen value, conservative?)
    ([(2.0, "lower"), (5.0, "upper")], "increasing", 5.0, True),      # the upper end
    ([(2.0, "lower"), (5.0, "upper")], "decreasing", 2.0, True),      # the lower end
    ([(2.0, "lower"), (3.0, "lower")], "increasing", 3.0, False),     # largest, not proven
    ([(4.0, "upper"), (6.0, "upper")], "decreasing", 4.0, False),     # smallest, not proven
    ([(2.0, "lower"), (3.0, "exact")], "increasing", 3.0, True),      # exact wins
    ([(2.0, "lower"), (7.0, "asserted")], "decreasing", 7.0, True),   # assertion wins
    ([(2.0, "estimate")], "sampled:increasing", 2.0, False),
    ([(2.0, "lower"), (9.0, "upper")], "sampled:decreasing", 2.0, True),
    ([(2.0, "lower")], "constant", 2.0, True),
    ([(2.0, "lower"), (1.5, "estimate")], "non-monotone", 1.5, False),
]


@pytest.mark.parametrize("ests,direction,value,conservative", CHOICES)
def test_choose_follows_the_logic_of_directions(ests, direction, value, conservative):
    est, cons = c(*ests).choose(direction)
    assert (est.value, cons) == (value, conservative)


def test_interval_and_assertion():
    k = c((2.0, "lower"), (3.0, "lower"), (5.0, "upper"))
    assert (k.lo, k.hi, k.exact, k.asserted) == (3.0, 5.0, False, None)
    a = c((2.0, "lower"), (4.0, "asserted"))
    assert (a.lo, a.hi, a.exact) == (4.0, 4.0, True)
    assert Constant("R").choose("increasing") == (None, False)


def test_monotonicity_strips_the_sampled_prefix_once():
    assert Monotonicity.parse("sampled:increasing") == Monotonicity("increasing",
                                                                     Certainty.SAMPLED)
    assert Monotonicity.parse("decreasing") == Monotonicity("decreasing", Certainty.PROVEN)


def test_build_constants_finds_conflicts_only_when_asked():
    pairs = [("L", Estimate(3.0, "lower", "secant")), ("L", Estimate(1.0, "asserted", "user"))]
    assert build_constants(pairs)["L"].conflict is None
    got = build_constants(pairs, tol=1e-2)["L"]
    assert got.conflict.startswith("L ≥ 3 (lower: secant) contradicts L ≤ 1 (asserted: user)")
    ok = build_constants([("L", Estimate(1.005, "lower", "a")), ("L", Estimate(1.0, "upper", "b"))],
                         tol=1e-2)
    assert ok["L"].conflict is None           # within the rounding tolerance


def test_to_dict_keys():
    assert set(c((2.0, "lower")).to_dict()) == {"name", "lo", "hi", "asserted", "conflict",
                                                "estimates"}
