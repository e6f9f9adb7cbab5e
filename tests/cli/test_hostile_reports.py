"""``approx-audit report`` on hostile or foreign files (issue 21): a one-line error and exit 2,
never an internal error (exit 3) or a hang."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from approx_audit.cli.main import cli


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit")
    r = CliRunner().invoke(cli, ["run", "-w", "quadratic", "-O", "sgd", "--lr", "0.1", "-K", "5",
                                 "--out", str(out), "--format", "none"])
    assert r.exit_code == 0, r.output
    return out


def _report(path, tmp_path):
    return CliRunner().invoke(cli, ["report", str(path), "--out", str(tmp_path / "r.html")])


def _one_line_exit_2(r, needle):
    assert r.exit_code == 2, r.output
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


def _edited_trace(audit, tmp_path, edit):
    recs = [json.loads(line) for line in (audit / "trace.jsonl").read_text().splitlines()]
    edit(recs)
    p = tmp_path / "trace.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    return p


@pytest.mark.parametrize("edit, needle", [
    (lambda rs: rs[0]["config"].__setitem__("assume", {"L": "abc"}), "config.assume"),
    (lambda rs: rs[0].__setitem__("facts", {"x": 1}), "facts have no 'name'"),
    (lambda rs: rs[0].__setitem__("optimizer", "evil"), "'optimizer' is not an object"),
    (lambda rs: [r.__setitem__("run", "zero") for r in rs], "'run' is 'zero'"),
    (lambda rs: rs[2].__setitem__("step", "x"), "'step' is 'x'"),
    (lambda rs: rs[0]["optimizer"].__setitem__("lr", "fast"), "non-number lr"),
], ids=["assume", "facts", "optimizer", "run", "step", "lr"])
def test_edited_traces_are_one_line_errors(audit, tmp_path, edit, needle):
    _one_line_exit_2(_report(_edited_trace(audit, tmp_path, edit), tmp_path), needle)


def test_deeply_nested_json_is_a_one_line_error(tmp_path):
    deep = "[" * 100_000
    for name in ("results.json", "trace.jsonl"):
        p = tmp_path / name
        p.write_text(deep)
        _one_line_exit_2(_report(p, tmp_path), "nested too deeply")


def test_a_results_json_with_tens_of_thousands_of_verdicts_is_refused(audit, tmp_path):
    data = json.loads((audit / "results.json").read_text())
    data["verdicts"] = ((data["verdicts"] or [{}]) * 2_500)[:2_500]   # above the cap of 2,000
    p = tmp_path / "results.json"
    p.write_text(json.dumps(data))
    _one_line_exit_2(_report(p, tmp_path), "verdicts")
