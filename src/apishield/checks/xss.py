"""Cross-site scripting: libinjection's HTML5 tokenizer plus signatures for script sinks."""

from __future__ import annotations

import re
from collections.abc import Sequence

import libinjection

from apishield.checks import ValueCheck, register
from apishield.findings import Finding
from apishield.inputs import InputValue
from apishield.signatures import (
    END,
    Hit,
    best_of,
    register_check_signatures,
)

LIBINJECTION_SCORE = 90
_HANDLER = r"on[a-z]{3,}\s*="
# Values without markup, an event handler, a script URL or an entity skip libinjection.
_GATE = rf"[<>`]|\b{_HANDLER}|script\s*:|&#|\bdata\s*:|\b(?:style|src|href|formaction)\s*="
# Markup libinjection flags but no current browser runs: XML declarations, doctypes,
# namespace attributes, bogus comments (``<?``, ``<%``, ``<!x``, ``</1``: inert in HTML5) and
# style attributes without active CSS. Removed before libinjection looks at a value.
_INERT = re.compile(
    r"<\?xml\b[^<>]*\?>|<!doctype\b[^<>]*>|\bxmlns(?::[\w.-]+)?\s*=|<(?=[?%]|![^\-\[]|/[^a-z])"
    r"|\bstyle\s*=\s*\\*(?:\"[^\"]*\"|'[^']*'|[^\s>\"'`]*)",
    re.IGNORECASE,
)
_ACTIVE_CSS = re.compile(
    r"expression|url\s*\(|script|behavior|binding|import|position\s*:\s*fixed|\\[\da-f]|/\*|[<>{}]",
    re.IGNORECASE,
)
_VOID_URI = re.compile(r"\s*javascript\s*:\s*void\s*\(\s*0?\s*\)\s*;?\s*", re.IGNORECASE)

register_check_signatures(
    "xss",
    (
        ("script_tag", rf"<\s*/?\s*(?:[\w-]+:)?script(?:[\s/>]|{END})", "script tag", 95),
        ("event_handler", rf"<[a-z!/?][^>]*?[\s/\"'`]{_HANDLER}", "event handler attribute", 90),
        ("script_uri", r"(?:java|vb|live)script\s*:[^\s]*?[(`=]", "script URI", 85),
        (
            "active_tag",
            r"<\s*(?:iframe|frame|frameset|object|embed|applet|base|meta|link|import)\b",
            "active content tag",
            70,
        ),
        (
            "js_sink",
            r"\bdocument\s*\.\s*(?:cookie|domain|write(?:ln)?)\b|\.innerHTML\s*=|\beval\s*\("
            r"|\bString\s*\.\s*fromCharCode\s*\(|\bwindow\s*\.\s*location\s*="
            r"|\b(?:alert|prompt|confirm)\s*(?:`|\(\s*(?:[\d'\"`/]|document|window))",
            "script sink",
            75,
        ),
        (
            "data_uri",
            r"\bdata\s*:\s*(?:text/html|image/svg\+xml|application/(?:x-)?(?:java|ecma)script)",
            "HTML data URI",
            80,
        ),
        ("css_expression", r":\s*expression\s*\(|-moz-binding\s*:", "CSS expression", 75),
        ("gate", _GATE, "markup-like token", 0),
    ),
)


@register
class CrossSiteScripting(ValueCheck):
    """XSS, by libinjection's HTML5 tokenizer and signatures for script sinks."""

    id = "xss"
    category = "injection"
    title = "XSS"
    description = "HTML and JavaScript injection in any request value"

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        text = value.text
        hit, gated = best_of(hits)
        if hit is not None and hit.signature.score >= LIBINJECTION_SCORE:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        if hit is not None and hit.signature.name == "xss.script_uri" and _VOID_URI.fullmatch(text):
            hit = None
        if gated and libinjection.is_xss(_INERT.sub(_neutral, text))["is_xss"]:
            evidence = hit.evidence if hit is not None else text
            return self.found(value, "HTML/script markup", evidence, LIBINJECTION_SCORE)
        if hit is not None:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        return None


def _neutral(match: re.Match[str]) -> str:
    """The replacement of one inert construct: gone, or ``<`` made plain text."""
    found = match.group(0)
    if found == "<":
        return "< "
    if found[:1] in "sS" and _ACTIVE_CSS.search(found, 5):
        return found
    return " "
