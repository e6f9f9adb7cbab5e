"""auditor/report/mathml.py: results.json's MathML is data; only plain MathML reaches the
HTML report, re-emitted from its parsed tokens (issue 21, stored script)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from approx_audit.auditor import report as R
from approx_audit.auditor.report.mathml import sanitize_mathml
from approx_audit.bounds import catalogue

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results_logistic.json"

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=https://evil.example/x onerror="alert(1)">',
    '<math><mi>x</mi><img src=https://evil.example/x onerror=alert(1)></math>',
    '<math onload="alert(1)"><mi>x</mi></math>',
    '<math><mi>x</mi></math><script>fetch("https://evil.example")</script>',
    '<math><mi href="javascript:alert(1)">x</mi></math>',
    '<math><mi style="background:url(https://evil.example)">x</mi></math>',
    '<math><!-- --><mi>x</mi></math>',
    '<math><mi>x</mi>',                     # unclosed
    '<svg onload=alert(1)><math><mi>x</mi></math></svg>',
    '<math><mtext><iframe src="https://evil.example"></iframe></mtext></math>',
]


@pytest.mark.parametrize("text", HOSTILE)
def test_anything_but_plain_mathml_is_rejected(text):
    assert sanitize_mathml(text) is None


def test_every_catalogue_formula_survives_with_the_same_elements():
    tags = lambda s: re.findall(r"<(/?\w+)", s)     # noqa: E731
    for b in catalogue:
        raw = b.mathml() if callable(b.mathml) else b.mathml
        clean = sanitize_mathml(raw)
        assert clean is not None, b.id
        assert clean.startswith("<math") and "http" not in clean
        assert tags(clean) == tags(raw), b.id


def test_text_inside_mathml_is_escaped():
    assert sanitize_mathml("<math><mtext>&lt;script&gt;</mtext></math>") == \
        "<math><mtext>&lt;script&gt;</mtext></math>"


@pytest.mark.parametrize("text", HOSTILE)
def test_a_report_from_hostile_results_holds_no_script_event_or_link(text):
    results = json.loads(FIXTURE.read_text())
    evil = copy.deepcopy(results)
    for v in evil["verdicts"]:
        v["mathml"] = text
    html = R.render_html(evil, plots=False)
    assert "<script" not in html.lower()
    assert not re.search(r"<[^>]+\son\w+\s*=", html, flags=re.I)
    assert "http" not in html and "javascript:" not in html
    assert "<img" not in html and "<iframe" not in html
    # the formula falls back to its plain text
    assert f"<code>{evil['verdicts'][0]['rhs']}" in html or "<code>" in html


def test_a_report_from_real_results_keeps_its_formulas():
    results = json.loads(FIXTURE.read_text())
    html = R.render_html(results, plots=False)
    assert html.count("<math") >= sum(1 for v in results["verdicts"] if v.get("mathml"))
