"""SQL injection: libinjection's tokenizer first, own signatures for what it misses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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

# /* ... */ written out: a lazy /\*.*?\*/ under repeats costs 10+ MiB of hyperscan state
_COMMENT = r"/\*[^*]*\*+(?:[^/*][^*]*\*+)*/"
# SQL whitespace, including comments; a line comment is a word at most ("#x\n", as
# sqlmap writes them): any-text line comments under repeats cost 10+ MiB of state too.
_C = rf"(?:\s|{_COMMENT}|\+|(?:#|--)\w*\n)"
_LITERAL = r"(?:\d+|'[^'\x00]*'|\"[^\"\x00]*\")"
_INFO_FUNCTION = r"(?:version|database|schema|current_user|session_user|system_user|user)"
# What a UNION SELECT of an injection selects: a literal, NULL, a function call, a
# column list or a FROM; not prose ("union select keyword usage").
_SELECTED = (
    rf"(?:{_C}|\()*(?:[\d@*'\"`(-]|0x|null\b|(?:all|distinct|top)\b|[a-z_]\w*(?:\s*[(,.]"
    rf"|{_C}+(?:from|as|into)\b|{_C}*(?:--|#|/\*|{END})))"
)
LIBINJECTION_SCORE = 90
# Values without a quote, comment, logical operator or SQL keyword skip libinjection.
_GATE = (
    r"['\"`]|--|#|/\*[^;,]|&&|\|\||\b(?:and|or|xor|not|union|select|insert|update|delete"
    r"|drop|having|where|order|group|limit|sleep|benchmark|exec|execute|declare|waitfor"
    r"|case|when|like|rlike|regexp|into|from|procedure|div|null|in|is|between|if|char"
    r"|concat|ascii|substring|version|user|database|load_file|pg_sleep|analyse|create|alter)\b"
)

register_check_signatures(
    "sqli",
    (
        (
            "time_delay",
            r"\b(?:sleep|benchmark)\s*\(\s*[\d(]|\bpg_sleep\s*\(",
            "time-based blind",
            90,
        ),
        ("waitfor", r"\bwaitfor\s+(?:delay|time)\s*['\"]", "time-based blind", 95),
        (
            "union_select",
            rf"\bunion{_C}+(?:(?:all|distinct){_C}+)?\(?\s*select\b{_SELECTED}",
            "UNION query",
            90,
        ),
        (
            "stacked",
            r";\s*(?:(?:drop|truncate|alter)\s+(?:table|database|schema|user)\b"
            r"|insert\s+into\b|delete\s+from\b|update\s+\w+\s+set\b|shutdown\b"
            r"|exec(?:ute)?\s+(?:xp_|sp_|master\.)|declare\s+@|create\s+table\b"
            r"|grant\s+\w+(?:\s*,\s*\w+)*\s+to\b)",
            "stacked query",
            90,
        ),
        (
            "schema",
            r"\b(?:information_schema|mysql\.user|pg_catalog|pg_shadow|sqlite_master"
            r"|sys\.(?:objects|tables|columns)|all_tables|sysobjects)\b",
            "schema enumeration",
            75,
        ),
        ("file_io", r"\bload_file\s*\(|\binto\s+(?:out|dump)file\b", "file read/write", 90),
        ("error_based", r"\b(?:extractvalue|updatexml)\s*\(|\bexp\s*\(\s*~", "error-based", 85),
        ("xp_cmdshell", r"\bxp_cmdshell\b", "xp_cmdshell", 95),
        (
            "tautology",
            rf"\b(?:and|or|xor|having|where)\s+{_LITERAL}\s*(?:=|<>|!=|<|>|\blike\b)\s*{_LITERAL}"
            rf"\s*(?:--|#|/\*|;|\)|'|\"|{END}|(?:and|or|order|group|limit|union)\b)",
            "tautology",
            80,
        ),
        ("subquery", r"=\s*\(\s*select\b", "subquery comparison", 85),
        (
            "blind_extract",
            rf"\b(?:substr(?:ing)?|mid|left|right|ascii|ord|length)\s*\([^\x00]*?"
            rf"\b{_INFO_FUNCTION}\s*\(\s*\)",
            "blind data extraction",
            85,
        ),
        ("info_call", rf"(?:\|\||\bconcat\s*\()\s*{_INFO_FUNCTION}\s*\(\s*\)", "server probe", 80),
        ("dual", r"\bselect\s[^\x00]*?\bfrom\s+dual\b", "Oracle probe", 85),
        ("dynamic_exec", r"\bexec(?:ute)?\s*\(\s*@\w+\s*\)", "dynamic SQL", 90),
        ("backup", r"\bbackup\s+database\s+\w+\s+to\b", "database backup", 85),
        ("version_probe", r"@@(?:version|datadir|hostname|basedir)\b", "server probe", 75),
        (
            "versioned_comment",
            r"/\*!\d*\s*(?:select|union|and|or)\b",
            "MySQL versioned comment",
            85,
        ),
        (
            "char_chain",
            r"\b(?:concat|char|chr|group_concat)\s*\(\s*(?:(?:0x[0-9a-f]+|\d+)\s*,\s*){2,}",
            "encoded string building",
            75,
        ),
        ("gate", _GATE, "SQL-like token", 0),
    ),
)

# libinjection fingerprint tokens mapped to what they reveal, most telling first.
_FINGERPRINT_KINDS = (("U", "UNION query"), (";", "stacked query"), ("&", "tautology"))


@register
class SqlInjection(ValueCheck):
    """SQL injection, by libinjection's SQL tokenizer and fingerprints plus signatures."""

    id = "sqli"
    category = "injection"
    title = "SQL injection"
    owasp = None
    description = "SQL injection in any request value"

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        text = value.text
        hit, gated = best_of(hits)
        if hit is not None and hit.signature.score >= LIBINJECTION_SCORE:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        result = libinjection.is_sql_injection(text) if gated else None
        if result is not None and result["is_sqli"]:
            kind = _kind(result["fingerprint"])
            return self.found(value, kind, _token_span(result, text), LIBINJECTION_SCORE)
        if hit is not None:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        return None


def _kind(fingerprint: str) -> str:
    """What a libinjection fingerprint shows, e.g. ``s&sos`` is a tautology."""
    for token, kind in _FINGERPRINT_KINDS:
        if token in fingerprint:
            return kind
    if fingerprint.endswith("c"):
        return "comment truncation"
    return f"SQL syntax (fingerprint {fingerprint})"


def _token_span(result: dict[str, Any], text: str) -> str:
    """The part of ``text`` covered by libinjection's tokens."""
    tokens = [t for t in result.get("token_vector", ()) if t["len"]]
    if not tokens:
        return text
    start = max(0, min(t["pos"] for t in tokens) - 1)
    end = max(t["pos"] + t["len"] for t in tokens) + 1
    return text[start:end].strip() or text
