"""report.md through a real CommonMark renderer (markdown-it-py, GFM tables on): code spans
hold their text literally, so no HTML entity may appear inside one (issue 22), and hostile
text stays inert."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from approx_audit.auditor import report as R
from approx_audit.auditor.report.format import _md_code

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results_logistic.json"
RENDER = MarkdownIt("commonmark").enable("table").render


def _codes(md: str) -> list[str]:
    return re.findall(r"<code>(.*?)</code>", RENDER(md), flags=re.S)


def test_no_code_span_shows_a_literal_entity():
    results = json.loads(FIXTURE.read_text())
    md, _ = R.render_markdown(results, images=False)
    codes = _codes(md)
    assert codes, "the report has code spans"
    # a literal '&lt;' in a code span renders as '&amp;lt;' in HTML
    assert [c for c in codes if re.search(r"&amp;(lt|gt|amp|quot|#\d+);", c)] == []
    assert any("&lt;=" in c for c in codes)      # conditions such as eta <= 1/L, shown as '<='


@pytest.mark.parametrize("text, shown", [
    ("eta <= 1/L", "eta &lt;= 1/L"),
    ("a | b", "a | b"),
    ("x`y", "x`y"),
    ("`start", "`start"),
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
])
def test_a_code_cell_renders_its_text_literally_inside_a_table(text, shown):
    md = f"| a | b |\n|---|---|\n| {_md_code(text)} | x |\n"
    html = RENDER(md)
    assert f"<code>{shown}</code>" in html, html
    assert "<script>" not in html


def test_hostile_condition_text_stays_in_its_cell():
    results = json.loads(FIXTURE.read_text())
    evil = copy.deepcopy(results)
    for v in evil["verdicts"]:
        v["id"] = "a|b`<img src=x onerror=alert(1)>"
    md, _ = R.render_markdown(evil, images=False)
    html = RENDER(md)
    assert "<img" not in html and "<script" not in html
