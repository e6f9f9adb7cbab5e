"""``auditor/results.py``: results.json's assembly, schema, atomic write and rebuild from a trace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from approx_audit.auditor.audit import AuditConfig, run_audit
from approx_audit.auditor.optimizers import parse_optimizer
from approx_audit.auditor.results import (RESULTS_SCHEMA_VERSION, ResultsSchemaError,
                                          results_from_trace, validate_results,
                                          write_json_atomic)
from approx_audit.auditor.workloads import get_workload
from approx_audit.bounds.errors import ApproxAuditError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results_logistic.json"


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit")
    res = run_audit(AuditConfig(workload=get_workload("quadratic"),
                                optimizer=parse_optimizer("sgd", lr=0.5), steps=20,
                                batch_size=50, seeds=2, probes="standard", out=out))
    return out, res


def test_write_and_read_round_trip(tmp_path):
    data = json.loads(FIXTURE.read_text())
    target = tmp_path / "deep" / "results.json"
    write_json_atomic(target, data)
    assert json.loads(target.read_text()) == data
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]   # no temp file


def test_a_non_finite_value_is_written_as_null(tmp_path):
    write_json_atomic(tmp_path / "r.json", {"x": float("nan"), "y": [1.0, float("inf")]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"x": None, "y": [1.0, None]}


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "results.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1}


def test_the_audit_writes_what_it_returns_and_it_follows_the_schema(audited):
    out, res = audited
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(res.results))
    assert on_disk["schema_version"] == RESULTS_SCHEMA_VERSION
    validate_results(on_disk)
    assert [r["steps"] for r in on_disk["runs"]] == [20, 20]
    assert not list(out.glob(".*tmp"))


def test_the_schema_refuses_a_wrong_document():
    data = json.loads(FIXTURE.read_text())
    del data["verdicts"]
    with pytest.raises(ResultsSchemaError, match="verdicts"):
        validate_results(data)


def test_the_trace_rebuilds_the_results(audited):
    out, res = audited
    rebuilt = results_from_trace(out / "trace.jsonl")
    validate_results(json.loads(json.dumps(rebuilt)))
    assert rebuilt["status"] == "completed"
    for key in ("counts", "verdicts", "constants", "runs", "probes", "lr_series", "workload",
                "gradient_evaluations"):
        assert json.loads(json.dumps(rebuilt[key])) == json.loads(json.dumps(res.results[key]))
    assert "rebuilt from the trace" in rebuilt["provenance"]["command"]


def test_a_cut_trace_rebuilds_an_interrupted_result(audited, tmp_path):
    out, _ = audited
    lines = (out / "trace.jsonl").read_text().splitlines()
    keep, steps = [], 0
    for line in lines:                          # the first run cut after 7 steps
        rec = json.loads(line)
        steps += rec["record"] == "step"
        if steps > 7 or rec["record"] in ("final", "end"):
            break
        keep.append(line)
    (tmp_path / "trace.jsonl").write_text("\n".join(keep) + "\n")
    rebuilt = results_from_trace(tmp_path / "trace.jsonl")
    assert rebuilt["status"] == "interrupted" and rebuilt["runs"][0]["steps"] == 7
    assert rebuilt["message"] == "rebuilt from trace.jsonl: 7 steps recorded"
    validate_results(json.loads(json.dumps(rebuilt)))


def test_a_trace_without_a_start_record_is_refused(tmp_path):
    (tmp_path / "trace.jsonl").write_text('{"record": "step", "step": 0, "k": 1}\n')
    with pytest.raises(ApproxAuditError, match="no start record"):
        results_from_trace(tmp_path / "trace.jsonl")
