"""The check registry: checks register by id and see a read-only view of a transaction.

A check class is instantiated once per compiled policy with its settings (so it can
validate options and precompile patterns eagerly) and is then called for every
transaction. Checks never do I/O and never keep per-request state on ``self``.
"""

from __future__ import annotations

import abc
import importlib
import pkgutil
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar, Final, Protocol

from mypy_extensions import mypyc_attr

from apishield.findings import Finding, Location, Phase, Severity
from apishield.http import Request, Response
from apishield.inputs import InputValue
from apishield.signatures import Hit, SignatureSet, is_plain, signatures_for

if TYPE_CHECKING:
    from apishield.policy import CheckSettings, Policy

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


@mypyc_attr(allow_interpreted_subclasses=True)  # checks may stay interpreted Python
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


@mypyc_attr(allow_interpreted_subclasses=True)
class ValueCheck(Check):
    """A check that judges each request input value on its own (injection detectors).

    A value check declares its signatures in ``signature_set``. The engine scans each
    value once with all value checks' signatures together (:class:`ValueScanner`) and
    calls :meth:`inspect` only for the checks that had a hit, or whose :meth:`wants`
    asks to see the value anyway (e.g. to rescan it after its own decoding).
    """

    title: ClassVar[str]  # what the check finds, e.g. "SQL injection", for messages
    inspects_plain: ClassVar[bool] = False  # see signatures.is_plain
    # Names of signatures whose hit counts on plain text even when the check does not
    # inspect plain values ("1+union+select+1" is made of plain characters).
    plain_signatures: ClassVar[frozenset[str]] = frozenset()
    # True when inspect() rescans text with ``signature_set`` (after its own decoding):
    # that database is then compiled with the engine, not on a request's first use.
    rescans: ClassVar[bool] = False

    def __init__(self, settings: CheckSettings, policy: Policy) -> None:
        super().__init__(settings, policy)
        self.strict = policy.sensitivity == "strict"
        self.signature_set = SignatureSet(
            [s for s in signatures_for(self.id) if self.strict or not s.strict],
            lazy=not self.rescans,
        )

    def run(self, view: TransactionView, phase: Phase) -> Iterable[Finding]:
        for value in view.inputs_for(self.id):
            finding = self.check_value(value)
            if finding is not None:
                yield finding

    def check_value(self, value: InputValue) -> Finding | None:
        """Judge one value on its own, scanning it with this check's signatures only."""
        text = value.text
        plain = not self.inspects_plain and is_plain(text)
        if plain and not self.plain_signatures:
            return None
        hits = self.signature_set.scan(text)
        if plain:
            hits = [h for h in hits if h.signature.name in self.plain_signatures]
            if not hits:
                return None
        elif not hits and not self.wants(text):
            return None
        return self.inspect(value, hits)

    def wants(self, text: str) -> bool:
        """True to inspect ``text`` even without a hit of this check's signatures.

        It must hold for any text that contains a wanted one (the engine asks it of
        all values joined first), as tests for the presence of characters do.
        """
        return False

    @abc.abstractmethod
    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        """Judge one value given this check's signature ``hits`` in its text."""

    def found(self, value: InputValue, kind: str, evidence: str, score: int) -> Finding:
        """A finding at ``value`` saying what kind of attack was recognised, and where."""
        return self.finding(value.location, f"{self.title}: {kind} `{evidence}`", evidence, score)


_Candidates = tuple[tuple["ValueCheck", tuple[Hit, ...]], ...]


class ValueScanner:
    """Runs the signatures of many value checks over all of a request's values at once.

    One hyperscan pass covers every value and every check
    (:meth:`SignatureSet.scan_many`); Python only touches values that had a hit or
    that a check :meth:`~ValueCheck.wants` to see.

    Which checks must inspect a text, with their hits, depends on the text alone, so
    it is remembered for up to :attr:`memo_entries` (default :attr:`MEMO_ENTRIES`)
    texts of at most :attr:`MEMO_TEXT_CHARS` characters (oldest forgotten first): API
    traffic repeats the same header values, parameter names and enum-like values request
    after request (over 80 % of the values in the benign-browsing corpus are repeats), and
    a repeated text costs one dictionary lookup instead of a scan. The judging
    itself (:meth:`ValueCheck.inspect`) is never remembered: it may depend on where
    the value arrived.
    """

    MEMO_ENTRIES: Final = 4096
    MEMO_TEXT_CHARS: Final = 1024

    def __init__(self, checks: Sequence[ValueCheck], *, memo: bool = True) -> None:
        signatures = [s for check in checks for s in check.signature_set.signatures]
        self._set = SignatureSet(signatures) if signatures else None
        self._by_id = {check.id: check for check in checks}
        self._wanting = tuple(c for c in checks if type(c).wants is not ValueCheck.wants)
        self._memo: OrderedDict[str, _Candidates] | None = OrderedDict() if memo else None
        self.memo_entries = self.MEMO_ENTRIES
        # The remembered texts that no check must inspect: a request made only of
        # them (most are) is settled by one set operation, without a loop in Python.
        self._clean: set[str] = set()

    def candidates(
        self, values: Sequence[InputValue]
    ) -> list[tuple[InputValue, ValueCheck, Sequence[Hit]]]:
        """Each (value, check, the check's hits) triple the check must inspect."""
        triples: list[tuple[InputValue, ValueCheck, Sequence[Hit]]] = []
        for index, found in enumerate(self._candidates_of([v.text for v in values])):
            for check, hits in found:
                triples.append((values[index], check, hits))
        return triples

    def found_for(self, texts: list[str]) -> list[_Candidates]:
        """Per text, the checks that must inspect it and their hits (remembered)."""
        return self._candidates_of(texts)

    def has_candidates(self, texts: list[str]) -> bool:
        """True when some check must inspect one of ``texts`` (remembered like any scan)."""
        if self._memo is not None and self._clean.issuperset(texts):
            return False  # the usual answer, without a list of empty results
        return any(self._candidates_of(texts))

    def _candidates_of(self, texts: list[str]) -> list[_Candidates]:
        memo = self._memo
        if memo is None:
            return self._scan(texts)
        if self._clean.issuperset(texts):
            return [()] * len(texts)
        results: list[_Candidates | None] = [memo.get(text) for text in texts]
        missing = [i for i, found in enumerate(results) if found is None]
        if missing:
            scanned = self._scan([texts[i] for i in missing])
            for i, found in zip(missing, scanned, strict=True):
                results[i] = found
                if len(texts[i]) <= self.MEMO_TEXT_CHARS:
                    self._remember(texts[i], found)
        return results  # type: ignore[return-value]  # every None was filled

    def _remember(self, text: str, found: _Candidates) -> None:
        memo = self._memo
        assert memo is not None
        if len(memo) >= self.memo_entries:
            # O(1), unlike deleting a plain dict's first key, which leaves a run of dead
            # slots that every later eviction walks again; another thread may evict first
            # (try, not contextlib.suppress: that is a Python object made on every call)
            try:  # noqa: SIM105
                self._clean.discard(memo.popitem(False)[0])
            except KeyError:
                pass
        memo[text] = found
        if not found:
            self._clean.add(text)

    def _scan(self, texts: list[str]) -> list[_Candidates]:
        """The candidates of each text, from one batch scan."""
        found = self._set.scan_many(texts) if self._set is not None else {}
        wanting = self._wanting_for("\n".join(texts)) if self._wanting else ()
        results: list[_Candidates] = []
        for index, text in enumerate(texts):
            hits = found.get(index)
            if hits is None and not wanting:
                results.append(())
                continue
            grouped = self._group(text, hits or (), wanting)
            results.append(
                tuple((self._by_id[check_id], tuple(hits)) for check_id, hits in grouped.items())
            )
        return results

    def _wanting_for(self, joined: str) -> tuple[ValueCheck, ...]:
        """The checks that want some value: ``wants`` of the whole is a sure pre-test."""
        return tuple(c for c in self._wanting if c.wants(joined))

    def _group(
        self, text: str, hits: Sequence[Hit], wanting: Sequence[ValueCheck]
    ) -> dict[str, list[Hit]]:
        plain = is_plain(text)
        grouped: dict[str, list[Hit]] = {}
        for hit in hits:
            if _counts(hit, self._by_id[hit.signature.check], plain):
                grouped.setdefault(hit.signature.check, []).append(hit)
        if not plain:
            for check in wanting:
                if check.id not in grouped and check.wants(text):
                    grouped[check.id] = []
        return grouped


def _counts(hit: Hit, check: ValueCheck, plain: bool) -> bool:
    """True when ``hit`` makes its text a candidate of ``check`` (see ``is_plain``)."""
    return not plain or check.inspects_plain or hit.signature.name in check.plain_signatures


class SensitivityShift:
    """Judges values at the sensitivity the policy does not use (see :mod:`apishield.context`).

    A value's candidates start from the engine's scan (:meth:`ValueScanner.found_for`,
    remembered as usual), less the hits of signatures the other sensitivity does not
    use, plus the hits of those it adds (a small database of its own); the other
    sensitivity's instances of the checks judge them.
    """

    def __init__(self, primary: Sequence[ValueCheck], shifted: Sequence[ValueCheck]) -> None:
        primary_names = {s.name for check in primary for s in check.signature_set.signatures}
        signatures = [s for check in shifted for s in check.signature_set.signatures]
        self._kept = frozenset(s.name for s in signatures)
        added = [s for s in signatures if s.name not in primary_names]
        self._added = SignatureSet(added) if added else None
        self._by_id = {check.id: check for check in shifted}

    def candidates(
        self, values: Sequence[InputValue], found: Sequence[_Candidates]
    ) -> Iterator[tuple[InputValue, ValueCheck, Sequence[Hit]]]:
        """Each (value, shifted check, hits) pair to inspect; ``found`` is the
        engine's candidates of each value's text."""
        texts = [v.text for v in values]
        added = self._added.scan_many(texts) if self._added is not None else {}
        for index, (value, primary) in enumerate(zip(values, found, strict=True)):
            grouped = self._kept_hits(value.text, primary)
            plain = is_plain(value.text)
            for hit in added.get(index, ()):
                check = self._by_id[hit.signature.check]
                if _counts(hit, check, plain):
                    grouped.setdefault(check.id, []).append(hit)
            for check_id, hits in grouped.items():
                yield value, self._by_id[check_id], sorted(hits, key=_by_start)

    def adds(self, texts: list[str]) -> bool:
        """True when a signature that only the shifted sensitivity uses matches one of
        ``texts`` (without it, no text is a candidate here unless it is one in the
        engine's own scan)."""
        return self._added is not None and bool(self._added.scan_many(texts))

    def _kept_hits(self, text: str, primary: _Candidates) -> dict[str, list[Hit]]:
        """The engine's candidates less the hits of signatures not used here; a check
        left without hits stays only if it wants the text anyway."""
        grouped: dict[str, list[Hit]] = {}
        for check, hits in primary:
            shifted = self._by_id.get(check.id)
            if shifted is None:
                continue
            kept = [h for h in hits if h.signature.name in self._kept]
            if kept or not hits or shifted.wants(text):
                grouped[check.id] = kept
        return grouped


def _by_start(hit: Hit) -> int:
    return hit.start


def word_set(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text``: word lists written as one string."""
    return frozenset(text.split())


def register(cls: type[Check]) -> type[Check]:
    """Make ``cls`` available to policies under ``cls.id``; returns ``cls``.

    Built-in checks call it after the class body: mypyc compiles a class natively
    only when no decorator of its own wraps it. A check kept in plain Python may
    use it as a class decorator.
    """
    existing = _REGISTRY.get(cls.id)
    if existing is not None and existing is not cls:
        raise ValueError(f"check id {cls.id!r} is already registered by {existing.__qualname__}")
    _REGISTRY[cls.id] = cls
    return cls


def registered_checks() -> dict[str, type[Check]]:
    """Every registered check by id, built-ins included."""
    global _builtins_loaded  # noqa: PLW0603 - one-time lazy import of built-in checks
    if not _builtins_loaded:
        for module in pkgutil.iter_modules(__path__, f"{__name__}."):
            importlib.import_module(module.name)
        _builtins_loaded = True
    return dict(_REGISTRY)
