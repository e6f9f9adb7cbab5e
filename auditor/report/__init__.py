"""Reports: ``results.json`` rendered through Jinja as one offline HTML file and as
GitHub-flavoured Markdown with SVG plots beside it. They read only a results document (and a
comparison's ``compare.json``): never trace records, workloads or torch.

The templates (:mod:`approx_audit.templates`) compute nothing: :func:`report_context`
(:mod:`.context`) prepares every number and string they show. HTML is one self-contained
file — inline CSS, inline SVG plots (:mod:`.plots`, matplotlib), formulas as presentation
MathML from sympy, no script, font, image or stylesheet fetched from anywhere, autoescaping
on — and carries no ``http`` string at all: citations show their arXiv id or DOI, and
namespace declarations, which HTML5 does not need, are dropped from inline MathML and SVG.
Every write is atomic (a temporary file, then a rename; :mod:`.render`).
"""

from .context import PLOT_DIR, VERDICT_ORDER, ReportError, check_results, report_context
from .format import cite_ref, redact
from .render import (HTML_BUDGET, MD_BUDGET, append_step_summary, render_html, render_markdown,
                     write_reports, write_text_atomic)

__all__ = ["HTML_BUDGET", "MD_BUDGET", "PLOT_DIR", "VERDICT_ORDER", "ReportError",
           "append_step_summary", "check_results", "cite_ref", "redact", "render_html",
           "render_markdown", "report_context", "write_reports", "write_text_atomic"]
