"""Verdict: a frozen value whose to_dict gives results.json's keys; Ruling; summarize."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))   # the synthetic records beside this file
import judge_evidence as E  # noqa: E402

import dataclasses
import json

from approx_audit.auditor.judge import VERDICTS, Ruling, Verdict, downsample, judge, summarize
from approx_audit.bounds import catalogue

SCHEMA = json.loads((Path(__file__).parents[3] / "auditor" / "results.schema.json").read_text())


def test_ruling_is_its_string_and_covers_the_schema():
    assert [r.value for r in Ruling] == list(VERDICTS)
    assert VERDICTS == tuple(SCHEMA["$defs"]["verdict"]["properties"]["verdict"]["enum"])
    assert Ruling("violated") is Ruling.VIOLATED and Ruling.VIOLATED == "violated"
    assert str(Ruling.NOT_APPLICABLE) == "not_applicable"


def test_to_dict_has_every_key_the_schema_requires_and_is_json():
    [v], _ = judge(E.gd_run(lambda k: 0.5 / max(k, 1)), E.facts(), E.GD, bounds=[E.BECK])
    d = v.to_dict()
    assert set(SCHEMA["$defs"]["verdict"]["required"]) <= set(d)
    assert d["verdict"] == "consistent" and type(d["verdict"]) is str
    assert isinstance(d["caveats"], list) and isinstance(d["assumptions"], list)
    json.dumps(d, allow_nan=False)


def test_a_verdict_is_frozen_and_takes_a_string_ruling():
    v = Verdict(catalogue.get(E.BECK), "error", "a run diverged")
    assert v.verdict is Ruling.ERROR
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.reason = "changed"
    with pytest.raises(ValueError):
        Verdict(catalogue.get(E.BECK), "maybe", "not a ruling")


def test_summarize_counts_every_ruling():
    b = catalogue.get(E.BECK)
    counts = summarize([Verdict(b, "error", ""), Verdict(b, Ruling.ERROR, ""),
                        Verdict(b, "consistent", "")])
    assert counts == {"consistent": 1, "violated": 0, "inconclusive": 0, "not_applicable": 0,
                      "error": 2}


def test_downsample_keeps_the_last_point_and_at_most_400():
    assert downsample(10).tolist() == list(range(10))
    idx = downsample(10_000)
    assert len(idx) <= 401 and idx[-1] == 9_999 and idx[0] == 0
