"""Conditions with interval reasoning: certain failure only from the favourable end."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # the synthetic records beside this file
import judge_evidence as E  # noqa: E402

import sympy as sp

from approx_audit.auditor.judge import Constant, Estimate, check_condition
from approx_audit.bounds import symbols as S

eta, L = S.SYMBOLS["eta"].symbol, S.SYMBOLS["L"].symbol


def L_(v, kind):
    return {"L": Constant("L", [Estimate(v, kind, "test")])}


CASES = [
    # (condition, eta, what is known of L, status)
    (sp.Le(eta, 1 / L), 0.5, L_(3.0, "lower"), "fails"),               # η > 1/L̂ ≥ 1/L
    (sp.Le(eta, 1 / L), 0.5, L_(1.0, "upper"), "holds"),               # η ≤ 1/L̂ ≤ 1/L
    (sp.Le(eta, 1 / L), 0.5, L_(3.0, "upper"), "fails_at_estimate"),
    (sp.Le(eta, 1 / L), 0.5, L_(1.0, "lower"), "holds_at_estimate"),
    (sp.Le(eta, 1 / L), 0.5, L_(2.0, "exact"), "holds"),               # equality holds
    (sp.Lt(eta, 2 / L), 1.0, L_(2.0, "exact"), "fails"),               # strict: equality fails
    (sp.Le(eta, 1 / L), 0.5, {}, "unknown"),
]


@pytest.mark.parametrize("cond,eta_v,consts,status", CASES)
def test_condition_status(cond, eta_v, consts, status):
    got = check_condition(cond, {"eta": eta_v}, consts)
    assert got.status == status, got.text


def test_a_certain_failure_says_by_how_much():
    got = check_condition(sp.Le(eta, 1 / L), {"eta": 0.5}, L_(3.0, "lower"))
    assert "exceeds" in got.text and "1.5×" in got.text and got.ratio == pytest.approx(1.5)
    assert set(got.to_dict()) == {"condition", "status", "text", "lhs", "rhs", "ratio"}
