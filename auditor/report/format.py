"""Text helpers of the reports: numbers as shown, inline MathML/SVG for HTML5, citation
references, Markdown table cells, and redaction of user, host and paths."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from typing import Any


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            return "—"
        if 0 < abs(x) < 1e-250:      # the engine's stand-in for an exact 0 (positive symbols)
            return "0"
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}g}"
    return str(x)


_NS = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')


def _inline(markup: str | None) -> str | None:
    """MathML or SVG for inlining in HTML5: no XML prolog, no namespace declarations."""
    if not markup:
        return None
    markup = re.sub(r"<\?xml[^>]*\?>\s*", "", markup)
    markup = re.sub(r"<!DOCTYPE[^>]*>\s*", "", markup)
    return _NS.sub("", markup)


def _scope_ids(svg: str | None, prefix: str) -> str | None:
    """Prefix every id of an inline SVG (and the references to it) so that several plots in
    one document never share an id."""
    if not svg:
        return svg
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    return re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', svg)


def cite_ref(url: str | None) -> str | None:
    """arXiv:ID, doi:ID, or host/path without the scheme."""
    if not url:
        return None
    m = re.search(r"arxiv\.org/(?:abs|pdf)/([^\s?#]+?)(?:\.pdf)?$", url)
    if m:
        return f"arXiv:{m.group(1)}"
    m = re.search(r"doi\.org/(.+)$", url)
    if m:
        return f"doi:{m.group(1)}"
    return re.sub(r"^[a-z]+://", "", url)


def redact(results: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without user, host and paths (provenance, the output folder, the config file)."""
    out = copy.deepcopy(dict(results))
    prov = out.get("provenance") or {}
    for key in ("user", "host", "cwd"):
        if key in prov:
            prov[key] = "[redacted]"
    if prov.get("command"):
        prov["command"] = _redact_paths(prov["command"])
    cfg = out.get("config") or {}
    for key in ("out", "config_file"):
        if cfg.get(key):
            cfg[key] = "[redacted]"
    out["redacted"] = True
    return out


def _redact_paths(text: str) -> str:
    return re.sub(r"(?<![\w-])(/|~/|[A-Za-z]:\\)[^\s'\"]+", "[path]", text)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _md_cell(text: Any) -> str:
    """Text safe inside a GitHub table cell: no pipes or newlines, HTML-escaped."""
    s = "" if text is None else str(text)
    s = s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_code(text: Any) -> str:
    """A code span safe inside a GitHub table cell, backticks included. Code spans show
    their content literally, so no HTML escaping (an entity there would be shown as
    ``&lt;``); pipes are escaped for the table (GFM removes the backslash before the span is
    parsed), newlines folded, and a content with backticks gets a longer fence."""
    s = "" if text is None else str(text)
    s = s.replace("\n", " ").replace("|", "\\|")
    run = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (run + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or run else ""
    return f"{fence}{pad}{s}{pad}{fence}"
