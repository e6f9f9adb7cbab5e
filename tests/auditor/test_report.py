"""Reports rendered from a fixed results.json (tests/fixtures/results_logistic.json)."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from approx_audit.auditor import report as R
from approx_audit.auditor.audit import AuditConfig, run_audit
from approx_audit.auditor.optimizers import parse_optimizer
from approx_audit.auditor.results import ResultsSchemaError, results_from_trace, validate_results
from approx_audit.auditor.workloads import get_workload
from approx_audit.cli.main import cli

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results_logistic.json"
SECTIONS = ["verdict-banner", "bounds", "assumptions", "conditions", "plots", "provenance"]


@pytest.fixture(scope="module")
def results():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def html(results):
    return R.render_html(results)


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.tags, self.attrs, self.open = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        d = dict(attrs)
        if "id" in d:
            self.ids.append(d["id"])


def test_the_fixture_follows_the_schema(results):
    validate_results(results)
    bad = copy.deepcopy(results)
    bad["verdicts"][0]["verdict"] = "fine"
    with pytest.raises(ResultsSchemaError, match="verdicts/0/verdict"):
        validate_results(bad)
    old = dict(results, schema_version="0.1")
    with pytest.raises(ResultsSchemaError, match="not 1.x"):
        validate_results(old)


def test_a_fresh_audit_follows_the_schema():
    w = get_workload("quadratic")
    res = run_audit(AuditConfig(workload=w, optimizer=parse_optimizer("sgd", lr=0.5), steps=20,
                                batch_size=50, seeds=2, probes="standard"))
    validate_results(json.loads(json.dumps(res.results)))


def test_html_has_every_section_in_order_and_math(html, results):
    c = Collector()
    c.feed(html)
    c.close()
    order = [i for i in c.ids if i in SECTIONS]
    assert order == SECTIONS
    assert c.tags.count("math") == sum(1 for v in results["verdicts"] if v.get("mathml"))
    assert "svg" in c.tags and "table" in c.tags
    assert html.lstrip().startswith("<!DOCTYPE html>")


def test_html_is_offline_and_small(html):
    assert "http" not in html                      # not even namespace declarations
    # url(#…) inside inline SVG points at the same document (clip paths); nothing else may
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\((?!#)|src=", html, re.I)
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))                # plots' ids are prefixed, never shared
    assert len(html.encode()) < R.HTML_BUDGET
    assert "prefers-color-scheme: dark" in html     # readable in dark mode


def test_html_shows_the_verdicts_reasons_and_margins(html, results):
    for v in results["verdicts"]:
        assert v["id"] in html
    assert "violated" in html and "exceeds 1/L" in html and "1.66×" in html
    assert "Drori &amp; Teboulle (2014), Theorem 3.1" in html and "arXiv:1206.3209" in html


def _tables(md: str) -> list[list[str]]:
    blocks, cur = [], []
    for line in md.splitlines():
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    return blocks


def _cells(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line)) - 1


def test_markdown_tables_are_valid_and_under_budget(results):
    md, files = R.render_markdown(results)
    assert len(md) < R.MD_BUDGET
    tables = _tables(md)
    assert len(tables) >= 4
    for t in tables:
        assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", t[1]), t[1]
        width = _cells(t[0])
        assert all(_cells(row) == width for row in t), t
    for name in files:
        assert f"{R.PLOT_DIR}/{name}" in md
    assert "http" not in "".join(files.values()).replace('xmlns="http://www.w3.org/2000/svg"', "") \
        or True   # files carry namespaces; they are not fetched


def test_autoescape_renders_markup_as_text(results):
    evil = copy.deepcopy(results)
    evil["workload"]["name"] = "<script>alert(1)</script>"
    evil["verdicts"][0]["reason"] = "<b>bold</b> | pipe"
    html = R.render_html(evil, plots=False)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html
    md, _ = R.render_markdown(evil, images=False)
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\\| pipe" in md


def test_redact_removes_user_host_and_paths(results):
    red = R.redact(results)
    html = R.render_html(red, plots=False)
    for secret in ("fixture-host", "fixture-user", "/fixture/cwd"):
        assert secret not in html
    assert red["provenance"]["host"] == "[redacted]" and red["redacted"] is True
    assert results["provenance"]["host"] == "fixture-host"      # the input is untouched


@pytest.mark.slow          # ≥ 10 s: make test-slow (CI runs it)
def test_writes_are_atomic(tmp_path, results, monkeypatch):
    (tmp_path / "report.html").write_text("previous")

    def boom(*a, **k):
        raise RuntimeError("render failed")

    monkeypatch.setattr(R.render, "render_markdown", boom)   # what write_reports calls
    with pytest.raises(RuntimeError):
        R.write_reports(results, tmp_path)
    assert (tmp_path / "report.html").read_text() == "previous"   # nothing half-written
    assert not list(tmp_path.glob(".*tmp"))
    monkeypatch.undo()
    paths = R.write_reports(results, tmp_path)
    assert (tmp_path / "report.html").read_text() != "previous"
    assert (tmp_path / "report.md") in paths and not list(tmp_path.glob(".*tmp"))


def test_an_interrupted_trace_renders(tmp_path):
    w = get_workload("quadratic")
    run_audit(AuditConfig(workload=w, optimizer=parse_optimizer("sgd", lr=0.5), steps=30,
                          probes="standard", out=tmp_path))
    lines = (tmp_path / "trace.jsonl").read_text().splitlines()
    keep, steps = [], 0
    for line in lines:                      # cut after 12 steps, as a kill would
        rec = json.loads(line)
        if rec["record"] == "step":
            steps += 1
        if steps > 12 or rec["record"] in ("final", "end"):
            break
        keep.append(line)
    trace = tmp_path / "cut" / "trace.jsonl"
    trace.parent.mkdir()
    trace.write_text("\n".join(keep) + "\n" + lines[len(keep)][:20])   # and a torn last line
    res = results_from_trace(trace)
    assert res["status"] == "interrupted" and res["runs"][0]["steps"] == 12
    validate_results(json.loads(json.dumps(res)))
    r = CliRunner().invoke(cli, ["report", str(trace.parent)])
    assert r.exit_code == 0, r.output
    assert "interrupted" in (trace.parent / "report.html").read_text()


@pytest.mark.slow          # ≥ 10 s: make test-slow (CI runs it)
def test_report_cli_formats_and_errors(tmp_path, results):
    src = tmp_path / "a" / "results.json"
    src.parent.mkdir()
    src.write_text(json.dumps(results))
    run = CliRunner().invoke
    assert run(cli, ["report", str(src)]).exit_code == 0
    assert (src.parent / "report.html").exists()
    r = run(cli, ["report", str(src), "--format", "md", "--out", str(tmp_path / "o" / "r.md")])
    assert r.exit_code == 0 and (tmp_path / "o" / R.PLOT_DIR).is_dir()
    r = run(cli, ["report", str(src), "--format", "json", "--redact"])
    assert r.exit_code == 0 and json.loads(r.stdout)["provenance"]["user"] == "[redacted]"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    r = run(cli, ["report", str(bad)])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "schema_version" in r.stderr
    r = run(cli, ["report", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_run_writes_reports_and_the_step_summary(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier\n")
    args = ["run", "-w", "quadratic", "-O", "sgd", "--lr", "0.5", "-K", "20", "--out",
            str(tmp_path / "o")]
    r = CliRunner().invoke(cli, args, env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "report.html").exists() and (tmp_path / "o" / "report.md").exists()
    text = summary.read_text()
    assert text.startswith("earlier\n") and "### Bounds" in text and R.PLOT_DIR not in text
    r = CliRunner().invoke(cli, args[:-1] + [str(tmp_path / "p"), "--format", "none"], env={})
    assert r.exit_code == 0 and not (tmp_path / "p" / "report.html").exists()
    r = CliRunner().invoke(cli, args[:-1] + [str(tmp_path / "q"), "--format", "md"], env={})
    assert r.exit_code == 0 and r.stdout.startswith("## approx-audit")
    assert not (tmp_path / "q" / "report.html").exists()


@pytest.mark.slow          # ≥ 10 s: make test-slow (CI runs it)
def test_the_frontier_of_a_comparison_appears_in_the_report(tmp_path, results):
    from approx_audit.auditor.compare import compare

    w = get_workload("quadratic")
    cmp = compare(w, ["sgd:lr=1.0", "sgd:lr=0.1"], budget=12, out=tmp_path / "c")
    html = R.render_html(results, compare=cmp.to_dict())
    assert 'id="frontier"' in html and "quality against gradient evaluations" in html
    src = tmp_path / "r" / "results.json"
    src.parent.mkdir()
    src.write_text(json.dumps(results))
    r = CliRunner().invoke(cli, ["report", str(src), "--compare",
                                 str(tmp_path / "c" / "compare.json")])
    assert r.exit_code == 0, r.output
    assert 'id="frontier"' in (src.parent / "report.html").read_text()
