"""SQL injection: signatures, libinjection's fingerprints, and what follows a break-out quote.

Everything below runs only on values a signature of this check hit (a gate at least):

1. Signatures name block-worthy SQL (UNION SELECT, time delays, stacked statements).
2. libinjection fingerprints the value as SQL in its three quoting contexts.
3. Break-out analysis tokenises the SQL that follows the value's first quote. After an
   honest apostrophe comes prose (``I'll``, ``O'Brien``, ``parents' or yours``); an
   injection continues the query: ``';SELECT ...``, ``'|email--``, ``' or 1=``,
   ``1' and f(x) and 'true``.

A value is read in more than one way when it may carry SQL hidden from the canonical
text: a raw body that is really a form (``pay=AND+1=1``) per field with ``+`` as a
space; ``+`` between SQL keywords as a space; typographic single quotes (U+2018,
U+2019, U+02BC) before SQL operators as quotes, since databases may fold them to ASCII.
"""

from __future__ import annotations

import ctypes
import functools
import re
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

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
    is_plain,
    register_check_signatures,
)

# /* ... */ written out: a lazy /\*.*?\*/ under repeats costs 10+ MiB of hyperscan state
_COMMENT: Final = r"/\*[^*]*\*+(?:[^/*][^*]*\*+)*/"
# SQL whitespace, including comments; a line comment is a word at most ("#x\n", as
# sqlmap writes them): any-text line comments under repeats cost 10+ MiB of state too.
_C: Final = rf"(?:\s|{_COMMENT}|\+|(?:#|--)\w*\n)"
# A line comment glued to the keyword before it ("union#x*/y\r\n"): no prose writes one
# between UNION and SELECT, so what follows SELECT no longer matters. Non-space text
# only: that is what keeps its state small (see above).
_GLUED_COMMENT: Final = r"(?:#|--)[^\s\x00]*\r?\n"
_LITERAL: Final = r"(?:\d+|'[^'\x00]*'|\"[^\"\x00]*\")"
_INFO_FUNCTION: Final = r"(?:version|database|schema|current_user|session_user|system_user|user)"
# What a UNION SELECT of an injection selects: a literal, NULL, a function call, a
# column list or a FROM; not prose ("union select keyword usage").
_SELECTED: Final = (
    rf"(?:{_C}|\()*(?:[\d@*'\"`(-]|0x|null\b|(?:all|distinct|top)\b|[a-z_]\w*(?:\s*[(,.]"
    rf"|{_C}+(?:from|as|into)\b|{_C}*(?:--|#|/\*|{END})))"
)
# Statements an injection stacks after a ";".
_STACKED: Final = (
    r"(?:(?:drop|truncate|alter)\s+(?:table|database|schema|user|function|procedure)\b"
    r"|insert\s+into\b|delete\s+from\b|update\s+\w+\s+set\b|shutdown\b"
    r"|exec(?:ute)?\s+(?:xp_|sp_|master\.)|declare\s+@|create\s+table\b"
    r"|set\s+@\w+\s*=|replace\s*\w*\s*\([^)\x00]*\)\s*values\b"
    r"|grant\s+\w+(?:\s*,\s*\w+)*\s+to\b)"
)
# A quote or typographic look-alike, then what continues a query, for the break-out gate.
_QUOTE_GATE: Final = (
    r"['\"`]\s*(?:;|--|#|/\*|\|\||&&|[|^&<>=/%*~!?+-]|(?:or|and|xor|not|is|like|ilike|glob"
    r"|mod|div|regexp|rlike|sounds|collate|notnull|isnull|union|select|escape|similar|in)\b)"
)
LIBINJECTION_SCORE: Final = 90
BREAKOUT_SCORE: Final = 85
STRICT_SCORE: Final = 60
# Values without a quote, comment, logical operator or SQL keyword skip libinjection.
_GATE: Final = (
    first_in_value("'\"`#")
    + r"|--|/\*[^;,\x00]|&&|\|\||\b(?:and|or|xor|not|union|select|insert|update|delete"
    r"|drop|having|where|order|group|limit|sleep|benchmark|exec|execute|declare|waitfor"
    r"|case|when|like|rlike|regexp|into|from|procedure|div|null|in|is|between|if|char"
    r"|concat|ascii|substring|version|user|database|load_file|pg_sleep|analyse|create|alter)\b"
)

register_check_signatures(
    "sqli",
    (
        (
            "time_delay",
            rf"\b(?:sleep|benchmark)\s*\((?:\s|{_COMMENT})*(?:['\"]?-?[\d(]|[a-z_]\w*\s*\()"
            r"|\bpg_sleep\s*\(",
            "time-based blind",
            90,
        ),
        ("pg_sleep_select", r"\bselect\s+pg_sleep\b", "time-based blind", 85),
        ("waitfor", r"\bwaitfor\s+(?:delay|time)\s*['\"]", "time-based blind", 95),
        (
            "union_select",
            rf"\bunion{_C}+(?:(?:all|distinct(?:row)?){_C}+)?\(?\s*select\b{_SELECTED}"
            rf"|\bunion(?:{_C}+(?:all|distinct(?:row)?))?{_GLUED_COMMENT}{_C}*\(?\s*select\b",
            "UNION query",
            90,
        ),
        ("stacked", rf";\s*{_STACKED}", "stacked query", 90),
        (
            "terminated_statement",
            r"\b(?:delete\s+from|drop\s+table|truncate\s+table|insert\s+into)"
            r"\s+[\w.`\[\]]+[^;\x00]*;\s*(?:--|#|/\*)|\bdrop\s+[\w.`]+\s*;\s*(?:--|#|/\*)",
            "destructive statement",
            90,
        ),
        (
            "schema",
            r"\b(?:information_schema|mysql\.user|pg_catalog|pg_shadow|sqlite_master"
            r"|sys\.(?:objects|tables|columns)|all_tables|sysobjects|sysusers|sysservers|sysibm\.\w+"
            r"|syscat\.\w+|pg_group|pg_user|pg_roles|master\.\.\w+)\b",
            "schema enumeration",
            75,
        ),
        ("file_io", r"\bload_file\s*\(|\binto\s+(?:out|dump)file\b", "file read/write", 90),
        (
            "pg_file_io",
            r"\b(?:lo_import|lo_export|lo_get|pg_read_file|pg_read_binary_file|pg_ls_dir)\s*\(",
            "file read/write",
            85,
        ),
        (
            "error_based",
            r"\b(?:extractvalue|updatexml)\s*\(|\bexp\s*\(\s*~"
            r"|\bfloor\s*\(\s*rand\s*\(\s*\d*\s*\)\s*\*\s*2\s*\)"
            r"|\bcount\s*\(\s*\*\s*\)\s*,\s*concat\s*\(",
            "error-based",
            85,
        ),
        ("xp_cmdshell", r"\bxp_cmdshell\b", "xp_cmdshell", 95),
        (
            "tautology",
            rf"\b(?:and|or|xor|having|where)\s+{_LITERAL}\s*(?:=|<>|!=|<|>|\blike\b)\s*{_LITERAL}"
            rf"\s*(?:--|#|/\*|;|\)|'|\"|{END}|(?:and|or|order|group|limit|union)\b)",
            "tautology",
            80,
        ),
        (
            # A condition a value begins with: "AND 2771=1709)", "or 1='", "OR (7=8)".
            "leading_condition",
            rf"{BEGIN}[\s)'\"]*(?:and|or|xor|&&|\|\|){_C}+\(?\s*(?:\d+|[a-z_]\w*)\s*"
            rf"(?:=|<>|!=|==|<=|>=)=?\s*(?:\(|\d+\s*(?:\)|=|'|\"|--|#|{END})|['\"]\s*{END})",
            "injected condition",
            80,
        ),
        ("subquery", r"(?:=|\brlike|\bregexp)\s*\(\s*select\b", "subquery comparison", 85),
        ("concat_subquery", r"\|\|\s*\(\s*select\b", "subquery concatenation", 80),
        ("in_subquery", r"\bin\s*\(\s*select\s+(?:\*|\w+\s*,)", "subquery comparison", 80),
        (
            "blind_extract",
            rf"\b(?:substr(?:ing)?|mid|left|right|ascii|ord|length)\s*\([^\x00]*?"
            rf"\b{_INFO_FUNCTION}\s*\(\s*\)",
            "blind data extraction",
            85,
        ),
        (
            "info_call",
            rf"(?:\|\||\bconcat(?:_ws)?\s*\([^)\x00]*?)\b{_INFO_FUNCTION}\s*\(\s*\)",
            "server probe",
            80,
        ),
        ("dual", r"\bselect\s[^\x00]*?\bfrom\s+dual\b", "Oracle probe", 85),
        ("dynamic_exec", r"\bexec(?:ute)?\s*\(\s*@\w*", "dynamic SQL", 85),
        ("prepare", r"\bprepare\s+\w+\s+from\s+@\w+", "dynamic SQL", 85),
        ("backup", r"\bbackup\s+database\s+\w+\s+to\b", "database backup", 85),
        ("version_probe", r"@@(?:version|datadir|hostname|basedir)\b", "server probe", 75),
        (
            "server_probe",
            rf"\bselect\s+(?:{_INFO_FUNCTION}\s*\(\s*\)|@@\w+"
            rf"|(?:current_user|session_user|system_user)\s*(?:;|from\b|{END}))"
            r"|\bcurrent_setting\s*\(|\bcurrent_database\s*\(\s*\)",
            "server probe",
            80,
        ),
        (
            # A call's result cast to a number: PostgreSQL error-based extraction.
            "pg_error_cast",
            r"\)\s*::\s*(?:int|integer|bigint|smallint|bool|boolean|numeric)\b"
            r"|\boverlay\s*\([^)\x00]*\bplacing\b",
            "error-based",
            75,
        ),
        ("variable_dump", r"\(\s*@\s*:=", "MySQL variable dump", 85),
        ("procedure_analyse", r"\bprocedure\s+analyse\s*\(", "MySQL probe", 85),
        (
            "versioned_comment",
            r"/\*!\d*\s*(?:select|union|and|or|from|where|insert|update|delete|drop)\b",
            "MySQL versioned comment",
            85,
        ),
        (
            "char_chain",
            r"\b(?:concat|char|chr|group_concat)\s*\(\s*(?:(?:0x[0-9a-f]+|\d+)\s*,\s*){2,}"
            r"|\b(?:char|chr)\s*\(\s*\d+\s*\)\s*(?:\|\||\+)\s*(?:char|chr)\s*\(\s*\d+\s*\)"
            r"|\bconcat\s*\(\s*0x[0-9a-f]+\s*,\s*\(\s*select\b",
            "encoded string building",
            75,
        ),
        ("scientific_call", r"\b\d+\.e\s*\(\s*[a-z(]", "MySQL number-call evasion", 80),
        (
            # Keywords spelled across or separated by empty comments: DR/**/OP, SELECT/**/x
            "comment_split",
            r"\b(?:select|union|insert|update|delete|drop|from|where|and|or|order|exec|into"
            r"|replace|table|declare)\s*/\*(?:\*/|[^*\x00]*\*/)\s*[a-z_@*(]"
            r"|\bdr/\*[^*\x00]*\*/op\b|\bsel/\*[^*\x00]*\*/ect\b"
            r"|\bun/\*[^*\x00]*\*/ion\b|\b[a-z_]\w*/\*[^*\x00]*\*/\s*\(",
            "comment-obfuscated keywords",
            85,
        ),
        (
            "leading_statement",
            rf"{BEGIN}[\s'\"`)]*;\s*(?:select|insert|update|delete|drop|truncate|alter|create"
            r"|exec|execute|declare|set|shutdown)\s+[@\w]",
            "stacked query",
            80,
        ),
        (
            "leading_truncation",
            rf"{BEGIN}[\s'\"]*(?:or|and)\s+(?:\d+|true|false)\s*(?:#|--|/\*)",
            "comment truncation",
            80,
        ),
        (
            "leading_xor",
            rf"{BEGIN}\s*(?:xor\s+(?:\d+|{_LITERAL})|(?:or|and)\s+'[^'\x00]*'|(?:or|and)\s+\"[^\"\x00]*\")"
            r"\s*(?:[<>=]|!=)",
            "injected condition",
            75,
        ),
        (
            "leading_number_comparison",
            rf"{BEGIN}\s*(?:or|and)\s+\d+\s*(?:[<>=]|!=)",
            "injected condition",
            STRICT_SCORE,
            "strict",
        ),
        (
            "json_function",
            r"\b(?:or|and)\s+json_\w+\s*\(\s*'[\[{]",
            "JSON function condition",
            80,
        ),
        (
            "json_operator",
            r"\b(?:or|and)\s+'[\[{][^'\x00]*'\s*(?:::\s*jsonb?\b|(?:<@|@>|\?[|&]?|#>>?|#-"
            r"|->>?|@\?|@@))",
            "JSON operator condition",
            80,
        ),
        (
            "having_aggregate",
            r"\bhaving\s+(?:count|sum|avg|min|max)\s*\([^)\x00]*\)\s*(?:[<>=!]=?|<>)\s*\d",
            "HAVING condition",
            80,
        ),
        (
            "backslash_quote",
            r"\\['\"`]\s*(?:or|and|xor|\|\||&&)\s*['\"`\d]",
            "escaped-quote bypass",
            80,
        ),
        # Weaker evidence: SQL that an honest client may quote (docs, SQL consoles).
        (
            "json_expression",
            r"'[\[{][^'\x00]*'\s*(?:::\s*jsonb?\b|<@|@>|\?[|&]|#>>?|#-|->>|@\?|@@)",
            "JSON SQL expression",
            STRICT_SCORE,
            "strict",
        ),
        (
            "pg_cast",
            r"\)\s*::\s*(?:text|varchar|double\b|jsonb?\b)"
            rf"|\b{_INFO_FUNCTION}\s*::\s*(?:int|text)\b",
            "PostgreSQL cast",
            STRICT_SCORE,
            "strict",
        ),
        (
            "alias_from",
            r"[)`'\"]\s*as\s+[`'\"]?\w+[`'\"]?\s+from\b",
            "column alias before FROM",
            STRICT_SCORE,
            "strict",
        ),
        (
            "ddl",
            r"\b(?:alter\s+table\s+\S+\s+(?:add|change|modify|drop)\b|create\s+table\s+\w+"
            r"|create\s+(?:or\s+replace\s+)?function\s+\w+\s*\([^\x00]*?\)\s*returns\b"
            r"|declare\s+@\w+)",
            "DDL statement",
            STRICT_SCORE,
            "strict",
        ),
        (
            "dangerous_routine",
            r"\b(?:xp_(?:dirtree|regread|fileexist|servicecontrol)|sp_(?:password|executesql"
            r"|oacreate|makewebtask)|openrowset|opendatasource|utl_http|utl_inaddr"
            r"|dbms_pipe|execute\s+immediate)\b",
            "dangerous database routine",
            STRICT_SCORE,
            "strict",
        ),
        (
            "select_call",
            r"\bselect\s+(?:char|chr|group_concat|concat|if|iif)\s*\(",
            "SELECT of a function",
            STRICT_SCORE,
            "strict",
        ),
        ("bare_union", r"\bunion{_C}+select\b", "UNION SELECT", STRICT_SCORE, "strict"),
        ("gate", _GATE, "SQL-like token", 0),
        ("quote_gate", _QUOTE_GATE, "quote before SQL", 0),
        ("plus_gate", r"\+(?:union|select|from|where|and|or|into|delay|by)\+", "+-spaced SQL", 0),
        (
            "homoglyph_gate",
            "(?:\u2018|\u2019|\u02bc| \u0301)\\s*(?:(?:or|and|xor|union|select)\\b|;|--|#)",
            "typographic quote",
            0,
        ),
    ),
)

# libinjection fingerprint tokens mapped to what they reveal, most telling first.
_FINGERPRINT_KINDS: Final = (("U", "UNION query"), (";", "stacked query"), ("&", "tautology"))
_FORM_BODY: Final = re.compile(r"[\w.\-\[\]]+=")
_FORM_FIELD: Final = re.compile(r"[&\r\n]+")
_HOMOGLYPHS: Final = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'"})
_MAX_READING: Final = 4096
# Control characters that are neither SQL whitespace nor text, C1 controls, U+FFFD.
_BINARY: Final = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")
_BINARY_MIN: Final = 64


class _Reading(NamedTuple):
    """One way to read a value: its text, that text's signature hits, and whether
    semantic analysis applies (not to a form body as a whole: its fields are judged)."""

    text: str
    hits: Sequence[Hit]
    semantic: bool


class SqlInjection(ValueCheck):
    """SQL injection, by signatures, libinjection and break-out analysis."""

    id = "sqli"
    rescans = True  # other readings of a value (form fields, + as space)
    plain_signatures = frozenset({"sqli.plus_gate"})  # "1+union+select+1,2,3--"
    category = "injection"
    title = "SQL injection"
    owasp = None
    description = "SQL injection in any request value"

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        text = value.text
        form = value.location.source is Source.BODY and _FORM_BODY.match(text) is not None
        best = self._judge(_Reading(text, hits, not form))
        if best is None or best[2] < LIBINJECTION_SCORE:
            others = _other_readings(value, hits, form)
            found = self.signature_set.scan_many(others) if others else {}
            for index, other_hits in found.items():
                judged = self._judge(_Reading(others[index], other_hits, True))
                if judged is not None and (best is None or judged[2] > best[2]):
                    best = judged
        return None if best is None else self.found(value, *best)

    def _judge(self, reading: _Reading) -> tuple[str, str, int] | None:
        """(kind, evidence, score) of the strongest SQL injection evidence in ``reading``."""
        text, hits = reading.text, reading.hits
        hit, gated = best_of(hits)
        if hit is not None and hit.signature.score >= LIBINJECTION_SCORE:
            return hit.signature.label, hit.evidence, hit.signature.score
        if gated and reading.semantic:
            semantic = _semantic(text, _has(hits, "sqli.quote_gate"))
            if semantic is not None:
                return semantic
        if hit is not None:
            return hit.signature.label, hit.evidence, hit.signature.score
        return None


def _semantic(text: str, quoted: bool) -> tuple[str, str, int] | None:
    """libinjection's verdict on ``text``, else the break-out analysis (if ``quoted``).

    A fingerprint that starts with a SELECT is a whole statement, not an injection
    into one: SQL text such as a search for a query; signatures judge what it does.
    Binary data decoded as text is no SQL at all.
    """
    if _reads_as_sqli(text):
        result = libinjection.is_sql_injection(text)
        if not result["fingerprint"].startswith("E") and not _binary(text):
            return _kind(result["fingerprint"]), _token_span(result, text), LIBINJECTION_SCORE
    breakout = break_out(text) if quoted else None
    if breakout is not None and not _binary(text):
        return breakout[0], breakout[1], BREAKOUT_SCORE
    return None


def _libinjection_sqli() -> Callable[[bytes, int, Any], int] | None:
    """libinjection's ``libinjection_sqli`` C function, or None if its library hides it.

    The binding's ``is_sql_injection`` builds a dictionary per token on every call: on
    a 100-character value that is three times the work of the C function itself. Most
    values libinjection sees are clean, so they get the bare function (from the same
    library, which exports it); only a value it flags goes through the binding, for
    the fingerprint and tokens. ``PyDLL`` keeps the GIL (the function is short).
    """
    try:
        function = ctypes.PyDLL(libinjection.__file__).libinjection_sqli
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p)
    function.restype = ctypes.c_int
    return function


_LIBINJECTION_SQLI: Final = _libinjection_sqli()
# The fingerprint the bare function writes: never read (the binding reports it), so
# threads may share it.
_SCRATCH: Final = ctypes.create_string_buffer(8)


def _reads_as_sqli(text: str) -> bool:
    """libinjection's verdict on ``text``; remembered for short texts, see below."""
    if len(text) <= _REMEMBERED_CHARS:
        return _remembered_verdict(text)
    return _verdict(text)


def _verdict(text: str) -> bool:
    """libinjection's verdict on ``text`` (encoded as UTF-8, like the binding does)."""
    function = _LIBINJECTION_SQLI
    if function is None:
        return bool(libinjection.is_sql_injection(text)["is_sqli"])
    data = text.encode("utf-8")
    return function(data, len(data), _SCRATCH) != 0


# The verdict depends on the text alone, and the same texts come back request after
# request: every browser's User-Agent says "like Gecko", which passes the gate.
_REMEMBERED_CHARS: Final = 512
_remembered_verdict: Final = functools.lru_cache(maxsize=2048)(_verdict)


def _binary(text: str) -> bool:
    """True for binary data decoded as text (compressed blobs): control characters abound."""
    sample = text[:_MAX_READING]
    return len(sample) > _BINARY_MIN and len(_BINARY.findall(sample)) * 20 > len(sample)


def _has(hits: Sequence[Hit], name: str) -> bool:
    return any(h.signature.name == name for h in hits)


def _other_readings(value: InputValue, hits: Sequence[Hit], form: bool) -> list[str]:
    """Other plausible readings of a value's text than the canonical one (see module docs)."""
    text = value.text
    if len(text) > _MAX_READING:
        return []
    readings = []
    if _has(hits, "sqli.homoglyph_gate"):
        readings.append(text.replace(" \u0301", "'").translate(_HOMOGLYPHS))
    if form:
        for field in _FORM_FIELD.split(text):
            field_value = field.partition("=")[2]
            if field_value and not is_plain(field_value):
                readings.append(field_value.replace("+", " "))
                if "+" in field_value:
                    readings.append(field_value)
    elif "+" in text and (value.location.source is Source.BODY or _has(hits, "sqli.plus_gate")):
        readings.append(text.replace("+", " "))
    return readings


# -- break-out analysis ---------------------------------------------------------------

_TOKEN: Final = re.compile(
    r"""\s+
    |(?P<comment>--[^\n]*|\#[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<str>'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|`[^`]*`?)
    |(?P<num>0x[0-9a-f]+|0b[01]+|\d+(?:\.\d*)?(?:e[-+]?\d+)?|\.\d+)
    |(?P<word>@{0,2}[a-z_$][\w$]*(?:\.[a-z_$][\w$]*)*)
    |(?P<op>::|\|\||&&|<=>|<>|!=|<=|>=|==|->>?|[-+*/%^|&<>=!~?:@])
    |(?P<punct>[(),;\[\]{}])
    |(?P<other>.)""",
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
_MAX_TOKENS: Final = 40
_BREAKOUT_WINDOW: Final = 200  # characters after the quote that the analysis reads
_LOGICAL: Final = frozenset({"or", "and", "xor", "||", "&&"})
_WORD_OPERATORS: Final = _LOGICAL | {
    "not", "is", "like", "ilike", "glob", "mod", "div", "regexp", "rlike", "sounds",
    "collate", "notnull", "isnull", "escape", "similar", "between", "in",
}  # fmt: skip
_COMPARISONS: Final = frozenset(
    {"=", "==", "<", ">", "<=", ">=", "<>", "!=", "<=>", "~", "like", "ilike", "glob",
     "regexp", "rlike", "is", "in", "between", "similar", "sounds"}
)  # fmt: skip
_STATEMENTS: Final = frozenset(
    {"select", "insert", "update", "delete", "drop", "create", "alter", "truncate", "exec",
     "execute", "declare", "set", "shutdown", "waitfor", "print", "replace", "grant",
     "revoke", "call", "load", "handler", "show", "use", "begin", "prepare", "analyze",
     "union", "copy"}
)  # fmt: skip
_QUOTES: Final = "'\"`"
# The first words after a quote that _continuation reads on from.
_CONTINUING_WORDS: Final = _WORD_OPERATORS | {"union", "select", "where", "having"}
# What a parenthesised SELECT follows when it is an operand: an argument, EXISTS, ANY.
_SUBQUERY_OPERAND: Final = frozenset({"(", ",", "exists", "any", "all", "some", "not"})


class _Token(NamedTuple):
    kind: str  # comment, str, num, word, op, punct, other
    text: str  # lower-cased
    end: int  # offset after the token in the analysed text


def _tokens(text: str, cut: bool) -> list[_Token]:
    """SQL tokens of ``text`` (whitespace skipped), at most :data:`_MAX_TOKENS`.

    When ``text`` was ``cut`` from a longer one, or has more tokens, an ``other``
    token stands for the rest: nothing is then taken to end the value.
    """
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind is None:
            continue
        if len(tokens) == _MAX_TOKENS:
            cut = True
            break
        tokens.append(_Token(kind, match.group().lower(), match.end()))
    if cut:
        tokens.append(_Token("other", "", len(text)))
    return tokens


def break_out(text: str) -> tuple[str, str] | None:
    """(kind, evidence) when the SQL after ``text``'s first quote continues a query.

    The first quote of a value is where an injection closes the application's string
    literal; what an attacker writes next must be SQL: a statement terminator, a
    comment, an operator, or UNION/SELECT.
    """
    for quote in _QUOTES:
        start = text.find(quote)
        if start < 0:
            continue
        end = start + 1 + _BREAKOUT_WINDOW
        if not _may_continue(text, start + 1, end):
            continue
        kind, length = _continuation(_tokens(text[start + 1 : end], end < len(text)))
        if kind is not None:
            return kind, text[start : start + 1 + length].strip()
    return None


def _may_continue(text: str, start: int, end: int) -> bool:
    """Whether the first token after the quote (inline comments skipped) is one that
    :func:`_continuation` reads on from: most quotes are followed by a plain word,
    and tokenising the whole window for them is wasted."""
    for match in _TOKEN.finditer(text, start, end):
        kind = match.lastgroup
        if kind is None:
            continue
        token = match.group().lower()
        if kind == "comment" and token.startswith("/*"):
            continue
        return _continues(kind, token)
    return False


def _continues(kind: str, text: str) -> bool:
    """Whether a first token after a break-out quote is one :func:`_continuation` reads on from."""
    return kind in ("comment", "op") or text == ";" or text in _CONTINUING_WORDS


def _continuation(tokens: list[_Token]) -> tuple[str | None, int]:
    """What the tokens after a break-out quote do, and where that evidence ends."""
    while tokens and tokens[0].kind == "comment" and tokens[0].text.startswith("/*"):
        tokens = tokens[1:]  # an inline comment is whitespace
    if not tokens or not _continues(tokens[0].kind, tokens[0].text):
        return None, 0
    first = tokens[0]
    if first.text == ";":
        return _terminated(tokens, 1)
    if first.kind == "comment":
        return ("comment truncation", first.end) if _trailing(first) else (None, 0)
    if first.text in ("union", "select"):
        return _select(tokens)
    if first.text in ("where", "having"):
        end = _subquery(tokens, 1)
        return ("subquery condition", end) if end else (None, 0)
    if first.kind == "op" or first.text in _WORD_OPERATORS:
        return _expression(tokens)
    return None, 0


def _subquery(tokens: list[_Token], start: int) -> int:
    """Where a subquery that is an operand (``((select``, ``= (select``, ``exists (``)
    ends its opening, from ``tokens[start]`` on; 0 if there is none.

    A parenthesis right after a clause word is not an operand (``'Where (select one)``).
    """
    for index in range(max(start, 1), len(tokens) - 1):
        token, after = tokens[index], tokens[index + 1]
        if token.text == "exists" and after.text == "(":
            return after.end
        before = tokens[index - 1].text
        if (
            token.text == "("
            and after.text == "select"
            and (before in _SUBQUERY_OPERAND or before in _COMPARISONS)
        ):
            return after.end
    return 0


def _trailing(token: _Token) -> bool:
    """True for a line comment with nothing in it (``--``, ``-- -``, ``#``)."""
    return token.text.startswith("/*") or not token.text.strip("-# \t\r\n")


def _terminated(tokens: list[_Token], index: int) -> tuple[str | None, int]:
    """After a ``;``: the end, an empty comment, or a stacked statement."""
    if index >= len(tokens) or (tokens[index].kind == "comment" and _trailing(tokens[index])):
        return "query termination", tokens[index - 1].end
    statement = tokens[index]
    if index == len(tokens) - 1 and statement.text.strip() in _QUOTES:
        return "query termination", statement.end  # the application's closing quote
    if statement.text in _STATEMENTS and index + 1 < len(tokens):
        following = tokens[index + 1]
        if following.kind != "comment" or _trailing(following):
            return "stacked query", following.end
    return None, 0


def _select(tokens: list[_Token]) -> tuple[str | None, int]:
    """UNION [ALL] SELECT, or a SELECT of a short list, right after the quote."""
    index = 1
    if tokens[0].text == "union":
        while index < len(tokens) and tokens[index].text in ("all", "distinct"):
            index += 1
        if index < len(tokens) and tokens[index].text == "select":
            return "UNION query", tokens[index].end
        return None, 0
    if index >= len(tokens) or tokens[index].kind not in ("word", "num", "op", "punct"):
        return None, 0
    if tokens[index].text in (";", ")", ","):
        return None, 0
    after = tokens[index + 1] if index + 1 < len(tokens) else None
    if after is None or after.text in ("from", ",", ";") or after.kind == "comment":
        return "injected SELECT", tokens[index].end
    return None, 0


def _expression(tokens: list[_Token]) -> tuple[str | None, int]:
    """An operator expression after the quote that ends the way injections end.

    Ends that count: an empty trailing comment or a ``;`` (the rest of the query cut
    off), or an unterminated string after a comparison or call (the application's own
    closing quote balances it). A logical operator, a literal and a comparison make a
    tautology even when cut short (``' or 1=``).
    """
    compares = calls = False
    for index, token in enumerate(tokens):
        if token.text == ";":
            return _terminated(tokens, index + 1)
        if token.kind == "comment":
            return ("comment truncation", token.end) if _trailing(token) else (None, 0)
        if token.text in _COMPARISONS and index > 0:
            compares = True
        if token.text == "(" and index > 0 and tokens[index - 1].kind == "word":
            calls = True
        if token.kind == "str" and index == len(tokens) - 1 and _unterminated(token.text):
            return ("quote-balanced condition", token.end) if compares or calls else (None, 0)
    if len(tokens) >= 3 and tokens[0].text in _LOGICAL:
        operand, operator = tokens[1], tokens[2]
        if operand.kind in ("num", "str") and operator.text in _COMPARISONS:
            return "tautology", operator.end
        end = _exists(tokens) or _subquery(tokens, 1)
        if end:
            return "subquery condition", end
    return None, 0


def _exists(tokens: list[_Token]) -> int:
    """Where an EXISTS predicate after a logical operator ends (``or (exists``,
    ``and not exists (``); 0 if there is none. A parenthesis next to EXISTS is required:
    prose says "or exists".
    """
    index = 1
    opened = False
    while index < len(tokens) - 1 and tokens[index].text in ("(", "not"):
        opened = opened or tokens[index].text == "("
        index += 1
    token = tokens[index]
    if token.text != "exists":
        return 0
    if opened:
        return token.end
    after = tokens[index + 1] if index + 1 < len(tokens) else None
    return after.end if after is not None and after.text == "(" else 0


def _unterminated(literal: str) -> bool:
    """True for a string literal that its text does not close."""
    return len(literal) == 1 or literal[-1] != literal[0] or literal.endswith("\\" + literal[0])


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


register(SqlInjection)
