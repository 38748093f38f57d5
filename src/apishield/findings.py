"""What the engine concludes: locations, findings and verdicts, all plain values."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

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


# The value classes made per request (here, Hit, Request, Response) are dataclasses
# for equality, hashing and repr, with an __init__ of their own and Final fields:
# compiled by mypyc, that __init__ is native and the fields are read-only. A frozen
# dataclass's generated __init__ stays interpreted and costs ten times as much.


@dataclass(init=False, unsafe_hash=True, slots=True)
class Location:
    """Where something was found: a source and, where it has one, a name or pointer."""

    source: Final[Source]
    name: Final[str]

    def __init__(self, source: Source, name: str = "") -> None:
        self.source = source
        self.name = name

    def __str__(self) -> str:
        return f"{self.source.value}:{self.name}" if self.name else self.source.value

    def to_json(self) -> dict[str, str]:
        """A JSON-ready form."""
        return {"source": self.source.value, "name": self.name}


EVIDENCE_LIMIT = 120


def truncate_evidence(text: str, limit: int = EVIDENCE_LIMIT) -> str:
    """Shorten ``text`` for an event, keeping its start, where attacks usually show."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(init=False, unsafe_hash=True, slots=True)
class Finding:
    """One check's conclusion about one location.

    ``score`` is 0-100; the policy's threshold decides whether it blocks.
    ``owasp`` names the OWASP API Security Top 10 (2023) category where one fits.
    ``context`` says, when the value's parameter has a kind, which kind and whence
    (``"id (learned)"``): the value was judged at that kind's sensitivity.
    """

    check: Final[str]
    category: Final[str]
    location: Final[Location]
    message: Final[str]
    evidence: Final[str]
    score: Final[int]
    severity: Final[Severity]
    owasp: Final[str | None]
    mode: Final[Mode]
    context: Final[str]

    def __init__(  # noqa: PLR0917 - a record's fields, in order
        self,
        check: str,
        category: str,
        location: Location,
        message: str,
        evidence: str = "",
        score: int = 50,
        severity: Severity = Severity.MEDIUM,
        owasp: str | None = None,
        mode: Mode = Mode.BLOCK,
        context: str = "",
    ) -> None:
        self.check = check
        self.category = category
        self.location = location
        self.message = message
        self.evidence = evidence
        self.score = score
        self.severity = severity
        self.owasp = owasp
        self.mode = mode
        self.context = context

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


@dataclass(init=False, unsafe_hash=True, slots=True)
class Verdict:
    """The engine's answer for a phase: a value, never an exception.

    For ``BLOCK`` and ``REJECT`` the adapter answers with ``status`` and the
    problem+json ``body`` (which carries ``event_id``) and does not forward.
    """

    action: Final[Action]
    status: Final[int]
    reason: Final[str]
    findings: Final[tuple[Finding, ...]]
    event_id: Final[str]
    headers: Final[tuple[tuple[str, str], ...]]
    body: Final[bytes]

    def __init__(  # noqa: PLR0917 - a record's fields, in order
        self,
        action: Action,
        status: int = 200,
        reason: str = "",
        findings: tuple[Finding, ...] = (),
        event_id: str = "",
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> None:
        self.action = action
        self.status = status
        self.reason = reason
        self.findings = findings
        self.event_id = event_id
        self.headers = headers
        self.body = body

    @property
    def interrupts(self) -> bool:
        """True when the adapter must answer itself instead of forwarding."""
        return self.action is not Action.ALLOW
