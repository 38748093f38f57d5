"""CRLF injection: response splitting, header injection, request smuggling, log forging.

A line break is judged by where it arrived and by what follows it:

* Paths and parameter or cookie names never hold a line break honestly: any break
  there is an injection, and so is a literal CR/LF in a raw header value.
* Query, header and cookie values are single-line data: a break followed by a line
  shaped like an HTTP header (a known or hyphenated name), a status or request line,
  a log record (timestamp, client address, level word, ``ALL-CAPS TAG:``) or markup
  after a blank line is an injection. Generic ``name: value`` or ``name=value`` lines
  count when the first line is a single token, the shape of a value with an injected
  line (``6566\\nCHECKPOINT: user bob``); after prose they count only at ``strict``.
* Body values (JSON, form, XML, multipart) carry multi-line text honestly: poems,
  addresses, code, CSV, commit messages with ``Signed-off-by:`` lines, even pasted
  header dumps. There only the injection shape counts: a single-token first line
  followed by a status line, a request line, or a header the response is built from
  (``Set-Cookie``, ``Location``, ``Content-Length``, ...) with that header's own value
  grammar; or a value that is itself an HTTP request (request line plus headers).
  Log records and generic headers after a token count at ``strict``.

Unicode code points whose low byte is CR or LF (``嘍嘊``, U+560D/U+560A), which some
servers truncate to bytes, count as breaks right before a known header or a status
line (alone they are Cantonese text).
A request line inside a head value (``GET http://x HTTP/1.1``) is request smuggling
even without a break.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from apishield.checks import ValueCheck, register
from apishield.findings import Finding, Source
from apishield.inputs import InputValue
from apishield.signatures import BEGIN, Hit, register_check_signatures

SPLIT_SCORE: Final = 90
INJECTION_SCORE: Final = 85
REQUEST_LINE_SCORE: Final = 75
_MAX_LINES: Final = 64
_BREAK_FREE: Final = (Source.PATH, Source.PATH_SEGMENT, Source.QUERY_KEY, Source.COOKIE_KEY)
_SINGLE_LINE: Final = (Source.QUERY, Source.HEADER, Source.COOKIE)
_METHODS: Final = (
    "GET|POST|HEAD|PUT|DELETE|OPTIONS|CONNECT|TRACE|TRACK|PATCH|PROPFIND|PROPPATCH|MKCOL"
    "|COPY|MOVE|LOCK|UNLOCK"
)
_BREAKS: Final = re.compile(r"\r\n?|\n")
_STATUS_LINE: Final = re.compile(r"[ \t]*HTTP/\d(?:\.\d)?[ \t]+\d{3}\b", re.IGNORECASE)
# Upper case, as servers require ("get started with http/2" is a search); ``+``
# separates like a space, as form encoding spells it (``GET+/+HTTP/1.1``).
_REQUEST_LINE: Final = re.compile(rf"[ \t]*(?:{_METHODS})[ \t+]+[^\s+]+[ \t+]+HTTP/\d")
_EMBEDDED_REQUEST: Final = re.compile(rf"\S*?(?:{_METHODS})[ \t]+\S+[ \t]+HTTP/\d(?:\.\d)?[ \t]*$")
_HEADER: Final = re.compile(r"[ \t]*([A-Za-z][A-Za-z0-9_-]*)[ \t]*:(?!//)[ \t]*(.*)")
_ASSIGNMENT: Final = re.compile(r"[ \t]*[A-Za-z_][\w.\[\]-]*=\S*[ \t]*$")
# Mail protocol commands (SMTP, POP3, IMAP) with their own argument grammar.
_MAIL_COMMAND: Final = re.compile(
    r"[ \t]*(?:(?-i:HELO|EHLO)[ \t]+[\w.-]+[ \t]*$|MAIL[ \t]+FROM[ \t]*:|RCPT[ \t]+TO[ \t]*:"
    r"|(?:VRFY|EXPN)[ \t]+\S|(?-i:AUTH)[ \t]+[A-Z][\w-]*\b|APOP[ \t]+\S+[ \t]+[0-9a-f]{32}"
    r"|(?:RETR|DELE|LIST|TOP|UIDL)[ \t]+\d+(?:[ \t]+\d+)?[ \t]*$"
    r"|[A-Za-z]{0,4}\d{1,5}[ \t]+(?:"  # IMAP: a tag, then a command with its arguments
    r"(?:UID[ \t]+)?(?:FETCH|STORE|COPY|MOVE)[ \t]+[\d:*,]+(?:[ \t]+\S|[ \t]*$)"
    r"|(?:SELECT|EXAMINE|STATUS|CREATE|DELETE|SUBSCRIBE)[ \t]+(?:\"[^\"]*\"|\S+)[ \t]*(?:\(|$)"
    r"|APPEND[ \t]+\S+[ \t]+[({]|LOGIN[ \t]+\S+[ \t]+\S+[ \t]*$|AUTHENTICATE[ \t]+[\w-]+[ \t]*$"
    r"|SEARCH[ \t]+(?:CHARSET|ALL|FLAGGED|SINCE|BEFORE|TEXT|FROM|SUBJECT|UNSEEN|DELETED|HEADER)\b"
    r"|(?:LIST|LSUB)[ \t]+\"[^\"]*\"|(?:LOGOUT|CAPABILITY|NOOP|CHECK|CLOSE|EXPUNGE|QUIT)[ \t]*$)"
    r"|\S{1,8}[ \t]+(?:UID[ \t]+)?STORE[ \t]+[\d:*,]+[ \t]+[+-]?FLAGS\b)",
    re.IGNORECASE,
)
# Bare mail verbs on their own line: clear in single-line values, headings in text.
_MAIL_VERB: Final = re.compile(
    r"[ \t]*(?:DATA|QUIT|RSET|NOOP|STARTTLS|STAT|CAPA|HELP(?:[ \t]+\w+)?)[ \t]*$"
)
_MARKUP: Final = re.compile(r"[ \t]*<[A-Za-z!/]")
_LOG_RECORD: Final = re.compile(
    r"[ \t]*(?:\[?\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d"  # ISO timestamp
    r"|\[\d\d?/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d"  # access log date
    r"|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d"  # syslog
    r"|\d{1,3}(?:\.\d{1,3}){3} (?:-|\S+) (?:-|\S+) \["  # access log client
    r"|\[?(?:INFO|WARN|WARNING|ERROR|DEBUG|TRACE|FATAL|CRITICAL|NOTICE|SEVERE|ALERT|EMERG)"
    r"(?:\]|:|\s)"
    r"|[A-Z][A-Z0-9_]{2,}(?:[ _-][A-Z][A-Z0-9_]*)*[ \t]*:)"  # TAG: or MULTI WORD TAG:
)
# Request and response headers an injected line is aimed at (lower case).
_KNOWN_HEADERS: Final = frozenset(
    {
        "set-cookie",
        "cookie",
        "location",
        "content-type",
        "content-length",
        "content-disposition",
        "content-encoding",
        "content-security-policy",
        "transfer-encoding",
        "refresh",
        "host",
        "connection",
        "upgrade",
        "authorization",
        "www-authenticate",
        "cache-control",
        "expires",
        "pragma",
        "vary",
        "server",
        "referer",
        "origin",
        "user-agent",
        "link",
        "x-frame-options",
        "x-xss-protection",
        "strict-transport-security",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
    }
)
# U+560A/U+560D, cut to their low byte by some servers, become LF/CR: counted as
# breaks only right before a known header or a status line (嘍 is Cantonese text).
_FOLDED_SPLIT: Final = re.compile(
    rf"[\u560a\u560d]+(?:(?:{'|'.join(sorted(_KNOWN_HEADERS))})[ \t]*:|HTTP/\d)", re.IGNORECASE
)
# In bodies a header line counts only with its own value grammar (YAML's
# ``location: Berlin`` is no ``Location: /login``).
_HEADER_VALUES: dict[str, re.Pattern[str]] = {
    "set-cookie": re.compile(r"[^\s=;]+=[^\s;]*\s*(?:;|$)"),
    "location": re.compile(r"(?:https?:)?/\S*$", re.IGNORECASE),
    "content-length": re.compile(r"\d+"),
    "content-type": re.compile(r"[\w.+-]+/[\w.+-]+\s*(?:;|$)"),
    "transfer-encoding": re.compile(r"(?:chunked|gzip|deflate|compress|identity)\b", re.I),
    "refresh": re.compile(r"\d+\s*(?:[;,]\s*url\s*=|$)", re.IGNORECASE),
    "content-disposition": re.compile(r"(?:attachment|inline)\b", re.IGNORECASE),
    "access-control-allow-origin": re.compile(r"\*|https?://\S+$|null$", re.IGNORECASE),
    "x-forwarded-for": re.compile(r"[\d.:a-f]+\s*(?:,|$)", re.IGNORECASE),
}

register_check_signatures(
    "crlf",
    (
        # Gates only: inspect judges the shapes by location. Kept small and without
        # start offsets: they run on every value of every request.
        ("token_line", rf"{BEGIN}[^\s\x00]*[\r\n]", "line break after a token", 0),
        ("header_line", r"[\r\n][a-z][\w-]*[ \t]?:", "header-shaped line after a break", 0),
        ("status_line", r"[\r\n][ \t]*HTTP/\d", "status line after a break", 0),
        (
            "log_line",
            r"[\r\n]\[?(?:\d{1,3}\.\d|\d{4}-\d\d-|\d\d?/[a-z]{3}/|info\b|warn|error\b|debug\b"
            r"|trace\b|fatal\b|critical\b|notice\b|severe\b|alert\b|emerg)",
            "log record after a break",
            0,
        ),
        ("request_line", rf"(?-i:{_METHODS})\s+[^\s\x00]+\s+HTTP/\d", "request line", 0),
        ("folded", r"\xe5\x98[\x8a\x8d]", "CR/LF-folding code point", 0),
        (
            "any_header_line",
            r"[\r\n][ \t]*[a-z][\w-]*[ \t]*[:=]",
            "name: value line after a break",
            0,
            "strict",
        ),
    ),
)


class CrlfInjection(ValueCheck):
    """Line breaks that split responses, inject headers, smuggle requests or forge logs."""

    id = "crlf"
    category = "injection"
    title = "CRLF injection"
    description = "CR/LF followed by header, status, request or log lines in any request value"

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        source = value.location.source
        text = value.text
        folded = _FOLDED_SPLIT.search(text) if _gated(hits, "crlf.folded") else None
        if folded is not None:
            kind = "Unicode-folded CRLF header injection"
            return self.found(value, kind, folded.group(0), SPLIT_SCORE)
        if source in _BREAK_FREE or (source is Source.HEADER and _BREAKS.search(value.raw)):
            found = _BREAKS.search(text)
            if found is not None:
                where = "header" if source is Source.HEADER else source.value.replace("_", " ")
                return self.found(value, f"line break in a {where}", _around(text, found), 85)
        lines = _BREAKS.split(text, _MAX_LINES)
        if source in _BREAK_FREE or source in _SINGLE_LINE:
            kind = head_line_kind(lines, self.strict)
            if not kind and _REQUEST_LINE.search(text):
                return self.found(value, "request line", _request_line(text), REQUEST_LINE_SCORE)
        else:
            kind = body_line_kind(lines, self.strict)
        if not kind:
            return None
        return self.found(value, kind, _evidence(text), _score(kind))


def _gated(hits: Sequence[Hit], name: str) -> bool:
    return any(hit.signature.name == name for hit in hits)


def head_line_kind(lines: Sequence[str], strict: bool) -> str:
    """What the lines after the first of a single-line value reveal ("" if nothing)."""
    token_first = _is_token(lines[0])
    for index, line in enumerate(lines[1:], 1):
        kind = _protocol_kind(line)
        if kind:
            return kind
        header = _HEADER.match(line)
        if header is not None and (
            "-" in header.group(1) or header.group(1).lower() in _KNOWN_HEADERS
        ):
            return "header injection"
        if _LOG_RECORD.match(line):
            return "log forging"
        if _MAIL_VERB.match(line):
            return "mail command injection"
        if (token_first or strict) and (header is not None or _ASSIGNMENT.match(line)):
            return "header injection" if header is not None else "parameter injection"
        if _MARKUP.match(line) and not lines[index - 1].strip():
            return "response body injection"
    return ""


def body_line_kind(lines: Sequence[str], strict: bool) -> str:
    """What a multi-line body value reveals: only the injection shape counts."""
    if len(lines) > 1 and _EMBEDDED_REQUEST.match(lines[0]) and _HEADER.match(lines[1]):
        return "embedded HTTP request"
    if not _is_token(lines[0]):
        return ""
    following = next((line for line in lines[1:] if line.strip()), "")
    kind = _protocol_kind(following)
    if kind:
        return kind
    header = _HEADER.match(following)
    if header is not None:
        grammar = _HEADER_VALUES.get(header.group(1).lower())
        if grammar is not None and grammar.match(header.group(2)):
            return "header injection"
    if strict and _LOG_RECORD.match(following):
        return "log forging"
    if strict and _MAIL_VERB.match(following):
        return "mail command injection"
    if strict and header is not None:
        return "header injection"
    return ""


def _protocol_kind(line: str) -> str:
    """Status line, request line or mail command: which protocol the line speaks."""
    if _STATUS_LINE.match(line):
        return "response splitting"
    if _REQUEST_LINE.match(line):
        return "request smuggling"
    if _MAIL_COMMAND.match(line):
        return "mail command injection"
    return ""


def _is_token(line: str) -> bool:
    """True for an empty line or one without whitespace: what a parameter holds."""
    return len(line) <= 200 and not any(c.isspace() for c in line)


def _score(kind: str) -> int:
    return SPLIT_SCORE if kind in ("response splitting", "request smuggling") else INJECTION_SCORE


def _evidence(text: str) -> str:
    """The value's first lines, breaks written as ``\\r`` and ``\\n`` (one log line)."""
    return _escaped(text[:160])


def _escaped(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _around(text: str, found: re.Match[str]) -> str:
    return _escaped(text[max(0, found.start() - 40) : found.end() + 40])


def _request_line(text: str) -> str:
    found = _REQUEST_LINE.search(text)
    return found.group(0).strip() if found is not None else text[:120]


register(CrlfInjection)
