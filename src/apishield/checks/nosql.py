"""NoSQL injection: MongoDB query operators where a plain value was expected, and
server-side JavaScript aimed at ``$where`` clauses.

An operator arrives as an object key: a JSON key (``{"password": {"$ne": null}}``),
a bracketed query or form key (``password[$ne]=x``, which qs-style parsers turn into
the same object) or JSON text inside a value (``where={"pass": {"$gt": ""}}``).
Operators that run JavaScript on the server (``$where``, ``$function``,
``$accumulator``) or read other collections (``$lookup``, ``$graphLookup``,
``$unionWith``) are injection wherever they appear as a key. Comparison, regex and
logic operators are also an honest filter syntax (Strapi, Feathers, Parse), so they
count at ``balanced`` only on a credential field, which no honest client filters
by operator; on any other field only at ``strict``. Dollar keys that are not query
operators are left alone: JSON Schema (``$ref``, ``$id``), MongoDB Extended JSON
(``$oid``, ``$date``) and the ``$set``/``$setOnce`` property operators of analytics
SDKs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from apishield.checks import ValueCheck, register
from apishield.findings import Finding, Source
from apishield.inputs import InputValue
from apishield.signatures import BEGIN, END, Hit, best_of, register_check_signatures

_JAVASCRIPT_OPERATORS: Final = frozenset({"where", "function", "accumulator"})
_COLLECTION_OPERATORS: Final = frozenset({"lookup", "graphlookup", "unionwith"})
_QUERY_OPERATORS: Final = (
    "ne|eq|gte?|lte?|n?in|regex|exists|not|nor|or|and|elemMatch|type|size|mod|all|expr"
    "|jsonSchema|text|options|where|function|accumulator|lookup|graphLookup|unionWith"
)
_OPERATOR: Final = rf"\$(?:{_QUERY_OPERATORS})"
_OPERATOR_NAME: Final = re.compile(_QUERY_OPERATORS, re.IGNORECASE)
_KEY_SOURCES: Final = frozenset(
    {Source.JSON_KEY, Source.QUERY_KEY, Source.FORM_KEY, Source.COOKIE_KEY, Source.MULTIPART_NAME}
)
# Field names of credentials and identities: what an authentication bypass targets.
_CREDENTIAL: Final = re.compile(
    r"\w*(?:password|passwd|passcode|pwd|secret|token|apikey|otp)|pass|(?:user|account)(?:name|id)?"
    r"|uname|login|e?mail|emailaddress|pin|role|admin|isadmin"
)
_SEPARATORS: Final = str.maketrans("", "", "_-. ")
_BRACKETED: Final = re.compile(rf"([^\[\]\s&=]*)\]?\s*\[\s*({_OPERATOR})\s*\]", re.IGNORECASE)
_EMBEDDED: Final = re.compile(
    rf"[\"']?([\w.-]*)[\"']?\s*:\s*\{{\s*[\"']({_OPERATOR})[\"']\s*:|[\"']({_OPERATOR})[\"']\s*:",
    re.IGNORECASE,
)

register_check_signatures(
    "nosql",
    (
        ("bracket_operator", rf"\[\s*{_OPERATOR}\s*\]", "operator in a bracketed key", 0),
        ("key_operator", rf"{BEGIN}\s*{_OPERATOR}\s*{END}", "operator key", 0),
        ("json_operator", rf"[\"']{_OPERATOR}[\"']\s*:", "operator in JSON text", 0),
        (
            "js_return",
            r"['\"]\s*;\s*return\s+(?:true|1|!0|this)\b",
            "JavaScript return injection",
            90,
        ),
        (
            "js_tautology",
            r"['\"]\s*(?:\|\||&&)\s*(?:['\"][^'\"\x00]*['\"]|\d+|true)\s*===?"
            r"\s*(?:['\"][^'\"\x00]*['\"]?|\d+|true)",
            "JavaScript tautology",
            85,
        ),
        (
            "this_match",
            r"(?:['\"]\s*(?:\|\||&&|;)|\breturn)\s*this\s*\.\s*\w+\s*\.\s*match\s*\(",
            "$where field probe",
            80,
        ),
        (
            "shell",
            r"\bdb\s*\.\s*(?:getCollection(?:Names)?|getSiblingDB|dropDatabase|runCommand"
            r"|adminCommand|eval|getMongo)\s*\(",
            "MongoDB shell command",
            85,
        ),
        (
            "shell_query",
            r"\bdb\s*\.\s*\w+\s*\.\s*(?:find(?:One)?|insert\w*|remove|drop|update\w*|delete\w*"
            r"|aggregate|mapReduce)\s*\(",
            "MongoDB shell query",
            60,
            "strict",
        ),
    ),
)


class NoSqlInjection(ValueCheck):
    """MongoDB operator injection and ``$where`` JavaScript injection."""

    id = "nosql"
    category = "injection"
    title = "NoSQL injection"
    description = "MongoDB query operators in keys and server-side JavaScript in values"

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        hit, gated = best_of(hits)
        operator = self._operator(value) if gated else None
        if operator is not None and (hit is None or operator[2] >= hit.signature.score):
            return self.found(value, *operator)
        if hit is not None:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        return None

    def _operator(self, value: InputValue) -> tuple[str, str, int] | None:
        """The most telling operator use in ``value``: (kind, evidence, score)."""
        best: tuple[str, str, int] | None = None
        for field, operator, evidence in operator_uses(value):
            judged = judge_operator(field, operator)
            if judged is None or (judged[1] <= 60 and not self.strict):
                continue
            if best is None or judged[1] > best[2]:
                best = (judged[0], evidence, judged[1])
        return best


def operator_uses(value: InputValue) -> list[tuple[str, str, str]]:
    """Each (field, operator, evidence) in ``value``: the field the operator applies to
    (``""`` when unknown) and the operator name without ``$``, lower-cased."""
    text = value.text
    uses = [
        (m.group(1), m.group(2)[1:].lower(), m.group(0).strip()) for m in _BRACKETED.finditer(text)
    ]
    for match in _EMBEDDED.finditer(text):
        operator = match.group(2) or match.group(3)
        uses.append((match.group(1) or "", operator[1:].lower(), match.group(0).strip()))
    bare = text.strip()
    if (
        value.location.source in _KEY_SOURCES
        and bare.startswith("$")
        and _OPERATOR_NAME.fullmatch(bare[1:])
    ):
        uses.append((_parent_field(value), bare[1:].lower(), bare))
    return uses


def _parent_field(value: InputValue) -> str:
    """The field an operator key applies to: the JSON member it sits in, skipping array
    indexes (``/password/$ne`` and ``/password/0/$ne`` give ``password``)."""
    if value.location.source is not Source.JSON_KEY:
        return ""
    segments = [s for s in value.location.name.split("/")[:-1] if s and not s.isdigit()]
    return segments[-1] if segments else ""


def judge_operator(field: str, operator: str) -> tuple[str, int] | None:
    """(kind, score) of ``operator`` applied to ``field``; score 60 counts only at strict."""
    if operator in _JAVASCRIPT_OPERATORS:
        return f"server-side JavaScript operator ${operator}", 95
    if operator in _COLLECTION_OPERATORS:
        return f"cross-collection operator ${operator}", 85
    if operator == "expr":
        return "aggregation expression operator $expr", 80
    if _CREDENTIAL.fullmatch(field.lower().translate(_SEPARATORS)):
        return f"query operator ${operator} on credential field {field!r}", 90
    return f"query operator ${operator}", 60


register(NoSqlInjection)
