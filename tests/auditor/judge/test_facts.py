"""Facts round-trip through results.json; the rounding of each dtype."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # the synthetic records beside this file
import judge_evidence as E  # noqa: E402

from approx_audit.auditor.judge import Facts
from approx_audit.auditor.judge.facts import eps_of


def test_round_trip():
    f = E.facts()
    assert Facts.from_dict(f.to_dict()) == f


def test_eps():
    assert eps_of("float64") < eps_of("float32") < eps_of("bfloat16")
    assert eps_of("something") == eps_of("float32")
