"""The check registry: checks register by id and see a read-only view of a transaction.

A check class is instantiated once per compiled policy with its settings (so it can
validate options and precompile patterns eagerly) and is then called for every
transaction. Checks never do I/O and never keep per-request state on ``self``.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

from apishield.findings import Finding, Location, Phase, Severity
from apishield.http import Request, Response
from apishield.inputs import InputValue

if TYPE_CHECKING:
    from apishield.policy import CheckSettings, Policy

_BUILTIN_MODULES = (
    "apishield.checks.sqli",
    "apishield.checks.xss",
    "apishield.checks.cmdi",
    "apishield.checks.traversal",
)
_REGISTRY: dict[str, type[Check]] = {}
_builtins_loaded = False


class TransactionView(Protocol):
    """What a check may see of a transaction (read-only)."""

    @property
    def request(self) -> Request: ...

    @property
    def response(self) -> Response | None: ...

    @property
    def route(self) -> str:
        """The matched path template, or '' when no route matched."""
        ...

    @property
    def client_ip(self) -> str: ...

    def inputs_for(self, check_id: str) -> Sequence[InputValue]:
        """The inputs of the current phase that ``check_id`` may inspect (exclusions applied)."""
        ...


class Check(abc.ABC):
    """Base class of every check.

    Subclasses set ``id``, ``category``, ``phases`` and implement :meth:`run`.
    """

    id: ClassVar[str]
    category: ClassVar[str]
    owasp: ClassVar[str | None] = None
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.REQUEST_HEADERS, Phase.REQUEST_BODY})
    description: ClassVar[str] = ""

    def __init__(self, settings: CheckSettings, policy: Policy) -> None:
        """Validate ``settings.options`` and precompile; raise ``ValueError`` if invalid."""
        self.settings = settings
        self.sensitivity = policy.sensitivity

    @abc.abstractmethod
    def run(self, view: TransactionView, phase: Phase) -> Iterable[Finding]:
        """Inspect ``view`` in ``phase`` and yield findings."""

    def finding(
        self,
        location: Location,
        message: str,
        evidence: str,
        score: int,
        severity: Severity = Severity.HIGH,
    ) -> Finding:
        """A finding stamped with this check's id, category and OWASP mapping."""
        return Finding(
            check=self.id,
            category=self.category,
            location=location,
            message=message,
            evidence=evidence,
            score=score,
            severity=severity,
            owasp=self.owasp,
        )


class ValueCheck(Check):
    """A check that judges each request input value on its own (injection detectors)."""

    def run(self, view: TransactionView, phase: Phase) -> Iterable[Finding]:
        for value in view.inputs_for(self.id):
            finding = self.inspect(value)
            if finding is not None:
                yield finding

    @abc.abstractmethod
    def inspect(self, value: InputValue) -> Finding | None:
        """Judge one value; return a finding or ``None``."""


def register(cls: type[Check]) -> type[Check]:
    """Class decorator: make ``cls`` available to policies under ``cls.id``."""
    existing = _REGISTRY.get(cls.id)
    if existing is not None and existing is not cls:
        raise ValueError(f"check id {cls.id!r} is already registered by {existing.__qualname__}")
    _REGISTRY[cls.id] = cls
    return cls


def registered_checks() -> dict[str, type[Check]]:
    """Every registered check by id, built-ins included."""
    global _builtins_loaded  # noqa: PLW0603 - one-time lazy import of built-in checks
    if not _builtins_loaded:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _builtins_loaded = True
    return dict(_REGISTRY)
