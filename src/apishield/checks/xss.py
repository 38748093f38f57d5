"""Cross-site scripting: libinjection's HTML5 tokenizer plus signatures for script sinks."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import libinjection

from apishield.checks import ValueCheck, register
from apishield.findings import Finding, Source
from apishield.inputs import InputValue
from apishield.signatures import (
    BEGIN,
    END,
    Hit,
    best_of,
    first_in_value,
    register_check_signatures,
)

LIBINJECTION_SCORE: Final = 90
_HANDLER: Final = r"on[a-z]{3,}\s*="
# Values without markup, an event handler, a script URL or an entity skip libinjection.
_GATE: Final = (
    first_in_value("<>`")
    + rf"|\b{_HANDLER}|script\s*:|&#|\bdata\s*:|\b(?:style|src|href|formaction)\s*="
)
# Markup libinjection flags but no current browser runs: XML declarations, doctypes,
# namespace attributes, bogus comments (``<?``, ``<%``, ``<!x``, ``</1``: inert in HTML5) and
# style attributes without active CSS. Removed before libinjection looks at a value.
_INERT_MARKUP: Final = r"<(?:\?xml\b[^<>]*\?>|!doctype\b[^<>]*>|(?=[?%]|![^\-\[]|/[^a-z]))"
_INERT_ATTRIBUTE: Final = (
    r"\bxmlns(?::[\w.-]+)?\s*=|\bstyle\s*=\s*\\*(?:\"[^\"]*\"|'[^']*'|[^\s>\"'`]*)"
)
_INERT: Final = re.compile(f"{_INERT_MARKUP}|{_INERT_ATTRIBUTE}", re.IGNORECASE)
# The same without the attributes, for a text that names neither: starting with a
# literal ``<``, it is searched for at C speed instead of tried at every character.
_INERT_MARKUP_ONLY: Final = re.compile(_INERT_MARKUP, re.IGNORECASE)
_ACTIVE_CSS: Final = re.compile(
    r"expression|url\s*\(|script|behavior|binding|import|position\s*:\s*fixed|\\[\da-f]|/\*|[<>{}]",
    re.IGNORECASE,
)
# ¼ and ¾ in UTF-8, as sent or after NFKC (1, U+2044, 4): < and > with the high bit set.
_QUARTER: Final = r"(?:\xc2\xbc|1\xe2\x81\x844)"
_THREE_QUARTERS: Final = r"(?:\xc2\xbe|3\xe2\x81\x844)"
_SCRIPT_OPEN: Final = re.compile(r"<\s*/?\s*(?:[\w-]+:)?script(?=[\s/>]|$)", re.IGNORECASE)
_VOID_URI: Final = re.compile(r"\s*javascript\s*:\s*void\s*\(\s*0?\s*\)\s*;?\s*", re.IGNORECASE)
# Script obfuscation, judged after JS comments and whitespace are removed: global objects
# indexed by a string (``self["alert"]``, ``(document)["cookie"]``), ``document.cookie``,
# functions called through a tagged template (``[].sort.call`${alert}1337```).
_JS_NOISE: Final = re.compile(r"/\*.*?\*/|\s+", re.DOTALL)
_JS_OBFUSCATED: Final = re.compile(
    r"(?<![\w$.])\(?(?:window|self|top|parent|frames|globalthis|document)\)?\[[\"'`]"
    r"|(?<![\w$])\(?document\)?\.cookie\b|\.(?:call|apply|bind)`",
    re.IGNORECASE,
)
# A script scheme spelled with entity or whitespace noise inside the word: ``ja&Tab;vascript:``.
_SCHEME_NOISE: Final = re.compile(r"&(?:tab|newline);|[\s\x00-\x1f]", re.IGNORECASE)
_NOISY_SCHEME: Final = re.compile(r"(?:java|vb|live)script:", re.IGNORECASE)
# A quote that closes an attribute value, then attributes up to an event handler: the
# break-out libinjection misses when earlier markup in the value pairs its quotes wrongly
# (``<input value="x" /> " autofocus onfocus=(alert)(1)``). Linear: one start per quote,
# each run ends at the next quote or angle bracket.
_ATTRIBUTE_BREAKOUT: Final = re.compile(rf"[\"'`][^\"'`<>]*?[\s/]{_HANDLER}")
# A URL attribute whose value is a script scheme split by tab, CR or LF, which the URL
# parser removes anywhere (``href="j&Tab;av&NewLine;ascript:``).
_URL_ATTRIBUTE: Final = r"\b(?:href|src|action|formaction|data|poster|background|codebase)\s*="
_SPLIT: Final = r"(?:[\t\n\r]|&(?:tab|newline);)*"  # as decoded, or as sent if left encoded


def _split_word(word: str) -> str:
    return _SPLIT.join(word)


_SPLIT_SCHEME: Final = (
    rf"{_URL_ATTRIBUTE}\s*(?:[\"'`][\x01-\x20]*)?"
    rf"(?:{_split_word('javascript')}|{_split_word('vbscript')}){_SPLIT}(?::|&colon;)"
)

register_check_signatures(
    "xss",
    (
        ("script_tag", rf"<\s*/?\s*(?:[\w-]+:)?script(?:[\s/>]|{END})", "script tag", 95),
        ("event_handler", rf"<[a-z!/?][^>]*?[\s/\"'`]{_HANDLER}", "event handler attribute", 90),
        ("script_uri", r"(?:java|vb|live)script\s*:[^\s]*?[(`=]", "script URI", 85),
        ("split_script_uri", _SPLIT_SCHEME, "script URI split by whitespace", 85),
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
        (
            "ie_vector",
            r"<\s*(?:[\w-]*:)?vmlframe\b|<\?\s*import\b[^>\x00]*implementation\s*="
            r"|<\s*import\s*implementation\s*=",
            "legacy IE markup loading code",
            75,
        ),
        ("xinclude", r"<\s*[\w-]+:include\s[^>\x00]*\bhref\s*=", "XInclude of a resource", 80),
        ("utf7_markup", r"\+ADw-\s*/?\s*[a-z!]", "UTF-7 encoded markup", 85),
        (
            "ascii_masked_markup",  # US-ASCII with the high bit dropped: ¼script¾ is <script>
            rf"{_QUARTER}[a-z][a-z\d]+(?:\xc3[\x80-\xbf])?{_THREE_QUARTERS}[^\x00]*?"
            rf"{_QUARTER}/[a-z][a-z\d]+(?:\xc3[\x80-\xbf])?{_THREE_QUARTERS}",
            "markup with its high bit set (¼tag¾)",
            85,
        ),
        ("jsfuck", r"\(!!?\[\][+\s]\[\]\)|\[[+\s]!?[+\s]?\[\]\]|!!\[\]", "JSFuck", 80),
        ("breakout_call", r"[\"'`]\s*;\s*set(?:timeout|interval)\s*\(", "string breakout", 80),
        (
            "js_gate",
            r"\b(?:window|self|top|parent|frames|globalthis|document)[\s+]*\)?[\s+]*(?:\[|/\*)"
            r"|\bdocument[\s+]*(?:\)|\.[\s+]*/\*|[\s+]\.)"
            r"|\.\s*(?:/\*[^\x00]*?\*/\s*)?(?:call|apply|bind)\s*`|&(?:tab|newline);",
            "script-like token",
            0,
        ),
        ("gate", _GATE, "markup-like token", 0),
        # What every attribute break-out holds (see _ATTRIBUTE_BREAKOUT), loosely: any
        # byte of a Unicode space before the name, anything but a letter after it.
        ("handler_gate", rf"(?:{BEGIN}|[^a-z0-9_])on[a-z]{{3,}}[^a-z\x00]*=", "handler name", 0),
    ),
)


class CrossSiteScripting(ValueCheck):
    """XSS, by libinjection's HTML5 tokenizer and signatures for script sinks."""

    id = "xss"
    category = "injection"
    title = "XSS"
    description = "HTML and JavaScript injection in any request value"
    inspects_plain = True  # "+ADw-script+AD4-" (UTF-7) is made of plain characters

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        text = value.text
        if any(h.signature.name == "xss.script_tag" for h in hits):
            text, hits = _without_open_script(text, hits)
        hit, _ = best_of(hits)
        if hit is not None and hit.signature.score >= LIBINJECTION_SCORE:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        if hit is not None and hit.signature.name == "xss.script_uri" and _VOID_URI.fullmatch(text):
            hit = None
        gates = {h.signature.name for h in hits if not h.signature.score}
        if "xss.gate" in gates:
            found = self._markup(value, text, hit, "xss.handler_gate" in gates)
            if found is not None:
                return found
        if hit is None and "xss.js_gate" in gates:
            return self._obfuscated(value)
        if hit is not None:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        return None

    def _markup(
        self, value: InputValue, text: str, hit: Hit | None, handler: bool
    ) -> Finding | None:
        """Markup libinjection flags in the whole text or from an attribute break-out on
        (sought only when ``handler``: an event handler's name is in the text)."""
        if libinjection.is_xss(_without_inert(text))["is_xss"]:
            evidence = hit.evidence if hit is not None else text
            return self.found(value, "HTML/script markup", evidence, LIBINJECTION_SCORE)
        breakout = _ATTRIBUTE_BREAKOUT.search(text) if handler else None
        if breakout is not None and breakout.start() > 0:
            rest = text[breakout.start() :]
            if libinjection.is_xss(_without_inert(rest))["is_xss"]:
                evidence = breakout.group(0)
                return self.found(value, "attribute break-out", evidence, LIBINJECTION_SCORE)
        return None

    def _obfuscated(self, value: InputValue) -> Finding | None:
        """Script hidden by comments, string indexing, template calls or a noisy scheme."""
        text = value.text
        if value.location.source is Source.BODY:  # an unparsed body may be urlencoded
            text = text.replace("+", " ")
        found = _JS_OBFUSCATED.search(_JS_NOISE.sub("", text))
        if found is not None:
            return self.found(value, "obfuscated script access", found.group(0), 80)
        scheme = _NOISY_SCHEME.search(_SCHEME_NOISE.sub("", value.text))
        if scheme is not None and "&" in value.text:
            return self.found(value, "script URI hidden by entities", scheme.group(0), 80)
        return None


def _without_open_script(text: str, hits: Sequence[Hit]) -> tuple[str, Sequence[Hit]]:
    """``text`` and ``hits`` without a ``<script`` that never ends its tag.

    ``binary<script is incorrect`` opens a tag in a value with no ``>`` at all and no
    attribute value after it: it cannot load or run anything, so it is prose.
    """
    found = _SCRIPT_OPEN.search(text)
    if found is None or ">" in text or "=" in text[found.end() :]:
        return text, hits
    rest = [h for h in hits if h.signature.name != "xss.script_tag"]
    return text[: found.start()] + "< " + text[found.start() + 1 :], rest


def _without_inert(text: str) -> str:
    """``text`` with its inert markup neutralised (see :data:`_INERT`)."""
    folded = text.casefold()  # as IGNORECASE matches: the long s (U+017F) folds to s
    inert = _INERT if "xmlns" in folded or "style" in folded else _INERT_MARKUP_ONLY
    return inert.sub(_neutral, text)


def _neutral(match: re.Match[str]) -> str:
    """The replacement of one inert construct: gone, or ``<`` made plain text."""
    found = match.group(0)
    if found == "<":
        return "< "
    if found[:1] in "sS" and _ACTIVE_CSS.search(found, 5):
        return found
    return " "


register(CrossSiteScripting)
