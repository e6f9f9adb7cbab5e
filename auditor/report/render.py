"""The reports rendered through Jinja: one offline HTML file, and GitHub-flavoured Markdown
with its SVG plots beside it; every file written atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.resources import files as _resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from .mathml import sanitize_mathml
from .context import PLOT_DIR, no_plots, report_context
from .format import _md_cell, _md_code

HTML_BUDGET = 1_000_000          # bytes, for a default run
MD_BUDGET = 65_536               # characters (GitHub's comment limit)
TEMPLATES = "approx_audit.templates"


def _template_source(name: str) -> str:
    """A template's text through importlib.resources: the same in a source checkout, an
    editable install and a wheel (or a zip)."""
    return _resources(TEMPLATES).joinpath(*name.split("/")).read_text("utf-8")


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_source),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"),
                                            default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)
    env.filters["md"] = _md_cell
    env.filters["mdcode"] = _md_code
    env.filters["mathml"] = _trusted_mathml
    return env


def _trusted_mathml(text: object):
    """results.json's MathML through the whitelist (:mod:`.mathml`), as markup; None (the
    template then shows the plain-text formula) when it is not plain MathML."""
    clean = sanitize_mathml(text)
    return None if clean is None else Markup(clean)


def render_html(results: Mapping[str, Any], *, compare: Mapping[str, Any] | None = None,
                context: Mapping[str, Any] | None = None, plots: bool = True) -> str:
    """The one-file HTML report (``context``: a :func:`report_context` already computed)."""
    env = _env()
    css_text = _template_source("report.css")
    ctx = context if context is not None else report_context(results, compare=compare,
                                                             with_plots=plots)
    return env.get_template("report.html.j2").render(**ctx, css=css_text)


def render_markdown(results: Mapping[str, Any], *, compare: Mapping[str, Any] | None = None,
                    images: bool = True, context: Mapping[str, Any] | None = None
                    ) -> tuple[str, dict[str, str]]:
    """(Markdown, {file name under report-plots/: SVG}); ``images=False`` links no plot (for
    ``GITHUB_STEP_SUMMARY``, which cannot reach files beside it)."""
    env = _env()
    env.autoescape = False          # Markdown: cells are escaped by the md filter
    ctx = context if context is not None else report_context(results, compare=compare,
                                                             with_plots=images)
    if not images:
        ctx = {**ctx, "plots": no_plots()}
    md = env.get_template("report.md.j2").render(**ctx)
    files: dict[str, str] = {}
    if images:
        p = ctx["plots"]
        for item in p["bounds"] + p["probes"] + [x for x in (p["sharpness"], p["frontier"],
                                                             p["stability"]) if x]:
            files[item["file"]] = item["svg"]
    if len(md) > MD_BUDGET:
        md = _shrink_markdown(md)
    return md, files


def _shrink_markdown(md: str) -> str:
    """Keep the report under GitHub's limit: cut the longest section tail, say so."""
    note = ("\n\n_The report was cut to stay under GitHub's 65,536-character limit; "
            "`report.html` and `results.json` have everything._\n")
    return md[: MD_BUDGET - len(note) - 1] + note


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write through a temporary file in the same folder, then rename: never a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_reports(results: Mapping[str, Any], out: str | Path, formats=("html", "md"), *,
                  compare: Mapping[str, Any] | None = None) -> list[Path]:
    """Render every format first, then write each file atomically; returns the paths."""
    out = Path(out)
    rendered: list[tuple[Path, str]] = []
    ctx = report_context(results, compare=compare) if formats else None   # plots drawn once
    if "html" in formats:
        rendered.append((out / "report.html", render_html(results, context=ctx)))
    if "md" in formats:
        md, files = render_markdown(results, context=ctx)
        rendered.append((out / "report.md", md))
        rendered += [(out / PLOT_DIR / name, _svg_file(svg)) for name, svg in files.items()]
    return [write_text_atomic(p, text) for p, text in rendered]


def _svg_file(svg: str) -> str:
    body = svg if "xmlns=" in svg else svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"', 1)
    if "xlink:" in body and "xmlns:xlink" not in body:
        body = body.replace("<svg", '<svg xmlns:xlink="http://www.w3.org/1999/xlink"', 1)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + body


def append_step_summary(results: Mapping[str, Any]) -> bool:
    """Append the Markdown summary (no images) to ``$GITHUB_STEP_SUMMARY`` when it is set."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return False
    md, _ = render_markdown(results, images=False)
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(md + "\n")
    return True
