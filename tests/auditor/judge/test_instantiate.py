"""Instantiation: conservative values, the record of each, and why one is not conservative."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # the synthetic records beside this file
import judge_evidence as E  # noqa: E402

from approx_audit.auditor.judge import Constant, Estimate, instantiate
from approx_audit.bounds import catalogue


def test_conservative_and_not():
    b = catalogue.get(E.BOTTOU)                     # increasing in Delta, L, sigma
    consts = {"Delta": Constant("Delta", [Estimate(1.0, "exact", "f*")]),
              "L": Constant("L", [Estimate(2.0, "lower", "secant")]),
              "sigma": Constant("sigma", [Estimate(0.5, "upper", "x")])}
    inst = instantiate(b, {"eta": 0.1}, consts)
    assert inst.missing is None and inst.values == {"eta": 0.1, "Delta": 1.0, "L": 2.0,
                                                    "sigma": 0.5}
    assert inst.constants["L"]["conservative"] is False and inst.constants["sigma"]["conservative"]
    assert inst.nonconservative == ("L = 2 is lower and the bound is increasing in it",)
    assert set(inst.constants["L"]) == {"value", "kind", "source", "direction", "conservative",
                                        "lo", "hi"}


def test_a_missing_constant_keeps_the_ones_before_it():
    b = catalogue.get(E.BOTTOU)
    inst = instantiate(b, {"eta": 0.1}, {"Delta": Constant("Delta", [Estimate(1.0, "exact", "")])})
    assert inst.missing == "L" and list(inst.constants) == ["Delta"]
