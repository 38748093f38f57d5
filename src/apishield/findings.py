"""What the engine concludes: locations, findings and verdicts, all plain values."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from apishield.redact import mask_evidence


class Mode(enum.StrEnum):
    """How much the engine acts on what it finds."""

    OFF = "off"  # checks do not run
    MONITOR = "monitor"  # checks run, findings are recorded, nothing is blocked
    BLOCK = "block"  # findings at or above the threshold block the request


class Action(enum.StrEnum):
    """What an adapter must do with the transaction."""

    ALLOW = "allow"  # forward as-is
    BLOCK = "block"  # answer with the policy's block response (a security decision)
    REJECT = "reject"  # answer with a 4xx for malformed or oversized input


class Phase(enum.IntEnum):
    """The phases of a transaction, in the order an adapter feeds them."""

    REQUEST_HEADERS = 1
    REQUEST_BODY = 2
    RESPONSE_HEADERS = 3
    RESPONSE_BODY = 4
    LOGGING = 5


class Severity(enum.IntEnum):
    """Coarse severity; the numeric score on a finding is the fine-grained one."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class Source(enum.StrEnum):
    """Where in the HTTP message an inspected value came from."""

    PATH = "path"  # the whole decoded path
    PATH_SEGMENT = "path_segment"
    QUERY = "query"  # a query parameter value; name is the parameter
    QUERY_KEY = "query_key"  # a query parameter name
    HEADER = "header"
    COOKIE = "cookie"
    COOKIE_KEY = "cookie_key"
    BODY = "body"  # the raw body of an unparsed media type
    JSON = "json"  # a JSON string value; name is the JSON pointer
    JSON_KEY = "json_key"  # a JSON object key; name is the pointer of the object member
    FORM = "form"  # an urlencoded form value
    FORM_KEY = "form_key"
    MULTIPART = "multipart"  # a multipart part's content; name is the part name
    MULTIPART_NAME = "multipart_name"  # a part name or filename
    XML = "xml"  # XML text or attribute; name is an XPath-like pointer
    RESPONSE_BODY = "response_body"
    RESPONSE_HEADER = "response_header"


@dataclass(frozen=True, slots=True)
class Location:
    """Where something was found: a source and, where it has one, a name or pointer."""

    source: Source
    name: str = ""

    def __str__(self) -> str:
        return f"{self.source.value}:{self.name}" if self.name else self.source.value

    def to_json(self) -> dict[str, str]:
        """A JSON-ready form."""
        return {"source": self.source.value, "name": self.name}


EVIDENCE_LIMIT = 120


def truncate_evidence(text: str, limit: int = EVIDENCE_LIMIT) -> str:
    """Shorten ``text`` for an event, keeping its start, where attacks usually show."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's conclusion about one location.

    ``score`` is 0-100; the policy's threshold decides whether it blocks.
    ``owasp`` names the OWASP API Security Top 10 (2023) category where one fits.
    ``context`` says, when the value's parameter has a kind, which kind and whence
    (``"id (learned)"``): the value was judged at that kind's sensitivity.
    """

    check: str
    category: str
    location: Location
    message: str
    evidence: str = ""
    score: int = 50
    severity: Severity = Severity.MEDIUM
    owasp: str | None = None
    mode: Mode = Mode.BLOCK
    context: str = ""

    def with_mode(self, mode: Mode, context: str = "") -> Finding:
        """The same finding under the mode in force where it was raised (and, when
        given, the kind of parameter its value was judged as)."""
        return Finding(
            self.check,
            self.category,
            self.location,
            self.message,
            self.evidence,
            self.score,
            self.severity,
            self.owasp,
            mode,
            context or self.context,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, as written to security events; secrets are masked."""
        evidence, message = mask_evidence(self.evidence, self.message, self.location)
        return {
            "check": self.check,
            "category": self.category,
            "owasp": self.owasp,
            "location": self.location.to_json(),
            "message": message,
            "evidence": truncate_evidence(evidence),
            "score": self.score,
            "severity": self.severity.name.lower(),
            "mode": self.mode.value,
            **({"context": self.context} if self.context else {}),
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """The engine's answer for a phase: a value, never an exception.

    For ``BLOCK`` and ``REJECT`` the adapter answers with ``status`` and the
    problem+json ``body`` (which carries ``event_id``) and does not forward.
    """

    action: Action
    status: int = 200
    reason: str = ""
    findings: tuple[Finding, ...] = field(default=())
    event_id: str = ""
    headers: tuple[tuple[str, str], ...] = field(default=())
    body: bytes = b""

    @property
    def interrupts(self) -> bool:
        """True when the adapter must answer itself instead of forwarding."""
        return self.action is not Action.ALLOW
