"""MathML from results.json, re-emitted through a whitelist before it enters report.html.

A results.json may come from a CI artifact or a pull request: its ``verdicts[].mathml`` is
data, never trusted markup. :func:`sanitize_mathml` parses it and writes it again from the
parsed tokens: only MathML presentation elements, only presentational attributes with plain
values, every text escaped. Anything else (a ``<script>``, an event attribute, a link, an
``<img>``, a comment, a processing instruction) rejects the whole formula: the report then
shows the bound's plain-text right-hand side instead.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

__all__ = ["sanitize_mathml"]

ELEMENTS = frozenset({
    "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msub", "msup", "msubsup",
    "mfrac", "msqrt", "mroot", "mfenced", "mtable", "mtr", "mtd", "mstyle", "mover", "munder",
    "munderover", "mpadded", "mphantom", "menclose", "semantics"})
VOID = frozenset({"mspace"})
ATTRIBUTES = frozenset({
    "display", "mathvariant", "stretchy", "fence", "separator", "separators", "lspace",
    "rspace", "columnalign", "rowalign", "linethickness", "accent", "accentunder", "form",
    "largeop", "movablelimits", "symmetric", "minsize", "maxsize", "columnspan", "rowspan",
    "open", "close", "notation", "width", "height", "depth", "scriptlevel", "displaystyle"})
MATHML_NS = "http://www.w3.org/1998/Math/MathML"
_PLAIN = re.compile(r"^[\w .,%+\-#()]*$")   # no ':', '/', quotes, '<', '&' in a value
MAX_CHARS = 200_000


class _Rejected(Exception):
    pass


class _Writer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in ELEMENTS:
            raise _Rejected(tag)
        kept = []
        for name, value in attrs:
            if name == "xmlns" and value == MATHML_NS:
                continue                     # HTML5 inline MathML needs no namespace
            if name not in ATTRIBUTES or value is None or not _PLAIN.match(value):
                raise _Rejected(name)
            kept.append(f' {name}="{html.escape(value, quote=True)}"')
        self.out.append(f"<{tag}{''.join(kept)}>")
        if tag in VOID:
            self.out.append(f"</{tag}>")
        else:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.open or self.open[-1] != tag:
            raise _Rejected(f"/{tag}")
        self.open.pop()
        self.out.append(f"</{tag}>")

    def handle_data(self, data):
        self.out.append(html.escape(data, quote=False))

    def handle_comment(self, data):
        raise _Rejected("comment")

    def handle_decl(self, decl):
        raise _Rejected("declaration")

    def handle_pi(self, data):
        raise _Rejected("processing instruction")

    def unknown_decl(self, data):
        raise _Rejected("declaration")


def sanitize_mathml(text: object) -> str | None:
    """The formula re-emitted from its parsed tokens, or None when it is not plain MathML
    (then the caller shows the plain-text formula)."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_CHARS:
        return None
    w = _Writer()
    try:
        w.feed(text)
        w.close()
    except (_Rejected, AssertionError):
        return None
    if w.open or not w.out or not w.out[0].startswith("<math"):
        return None
    return "".join(w.out)
