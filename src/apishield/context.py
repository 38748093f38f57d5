"""Parameter context: which values hold identifiers and which hold free text.

The same text means different things in different places: ``1 OR x=x#`` in a search
box may be someone's question about SQL, in an ``id`` parameter it can only be an
attack. So a parameter has a *kind*:

* ``id``: identifiers (numbers, UUIDs, slugs, tokens, dates, e-mail addresses). Its
  values are judged at ``strict`` sensitivity: the weak evidence that ``balanced``
  forgives in prose (a bare SQL clause, a command line, an operator key) counts here.
* ``text``: free text. Its values are judged at ``balanced`` sensitivity, even when
  the policy says ``strict``.

A kind is *declared* in the policy (``parameters:``) or *learned* from the traffic
that passes (``learning:``): a parameter whose values, on enough sampled requests
from enough clients, all have the shape of an identifier (:func:`is_identifier`)
is learned as ``id``. Learning only ever tightens: a parameter not learned keeps the
policy's sensitivity, and values that pass with another shape unlearn it (a search
box flooded with one-word queries becomes ``id`` only until real prose arrives).

Learned state is per process (each worker learns on its own) and bounded by
``learning.max_parameters``; counters updated from several threads may lose an
increment, which learning tolerates.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from apishield.findings import Source
from apishield.inputs import InputValue
from apishield.memo import remember
from apishield.policy import Learning, ParameterContext
from apishield.routes import compile_template


class Kind(StrEnum):
    """What a parameter holds."""

    ID = "id"
    TEXT = "text"


# The sensitivity a kind is judged at.
SENSITIVITY: Final = {Kind.ID: "strict", Kind.TEXT: "balanced"}

# Where parameters are: values a client chooses by name. Headers are left out (their
# names are the protocol's, not the API's), as are keys and names themselves.
LEARNABLE: Final = frozenset(
    {Source.QUERY, Source.FORM, Source.JSON, Source.COOKIE, Source.MULTIPART, Source.XML}
)

_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9_.:@+=~,-]{1,256}")
_ARRAY_INDEX: Final = re.compile(r"(?<=/)\d+(?=/|$)")
# A path segment that names one object rather than a collection: a number, a UUID,
# a long hex string, or a long token with digits in it.
_ID_SEGMENT: Final = re.compile(
    r"\d+|[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}|[0-9A-Fa-f]{16,}"
    r"|(?=[^/]*\d)[A-Za-z0-9_.~-]{20,}"
)
_TEMPLATE_CACHE: Final = 4096


def is_identifier(text: str) -> bool:
    """True when ``text`` has the shape of an identifier: one word of letters, digits
    and ``_ . : @ + = ~ , -``, at most 256 characters (numbers, UUIDs, slugs, ISO
    dates, e-mail addresses). Paths and URLs are not identifiers: a parameter that
    carries them is never learned as ``id``."""
    return _IDENTIFIER.fullmatch(text) is not None


def parameter_name(source: Source, name: str) -> str:
    """The name a parameter is known by: JSON array indices become ``*``
    (``/items/3/id`` → ``/items/*/id``), so every element shares one kind."""
    if source is Source.JSON and any(c.isdigit() for c in name):
        return _ARRAY_INDEX.sub("*", name)
    return name


def guess_template(path: str) -> str:
    """A path template for a path no route matched: segments that name one object
    (numbers, UUIDs, long hex or tokens) become ``{}``: ``/users/42/orders`` →
    ``/users/{}/orders``."""
    return "/".join(
        "{}" if segment and _ID_SEGMENT.fullmatch(segment) else segment
        for segment in path.split("/")
    )


@dataclass(frozen=True, slots=True)
class _Declaration:
    kind: Kind
    methods: frozenset[str]
    matches_path: Callable[[str], object]  # a compiled template's ``match``
    source: Source
    name: str  # '' for every parameter of the source

    def applies_to(self, method: str, path: str) -> bool:
        return ("*" in self.methods or method in self.methods) and bool(self.matches_path(path))


def compile_declarations(declared: Iterable[ParameterContext]) -> tuple[_Declaration, ...]:
    """The policy's ``parameters`` ready to match requests."""
    compiled = []
    for entry in declared:
        source_name, _, name = entry.location.partition(":")
        source = Source(source_name)
        compiled.append(
            _Declaration(
                kind=Kind(entry.kind),
                methods=frozenset(entry.methods),
                matches_path=compile_template(entry.path).match,
                source=source,
                name=name.lower() if source is Source.HEADER else name,
            )
        )
    return tuple(compiled)


class _Stats:
    """What learning saw of one parameter."""

    __slots__ = ("clients", "identifiers", "others")

    def __init__(self) -> None:
        self.identifiers = 0
        self.others = 0
        self.clients: set[str] = set()


class _Profile:
    """One endpoint's learning: its parameters' statistics and the kinds learned."""

    __slots__ = ("learned", "stats")

    def __init__(self) -> None:
        self.stats: dict[tuple[Source, str], _Stats] = {}
        self.learned: dict[tuple[Source, str], Kind] = {}


Endpoint = tuple[str, str, str]  # host, method, path template
_NOTHING_LEARNED: dict[tuple[Source, str], Kind] = {}


class ParameterLearner:
    """Learns which parameters hold identifiers, endpoint by endpoint.

    An endpoint is the host, the method and the path template (the matched route's,
    else :func:`guess_template`'s). One request in ``sample_every`` is observed; a
    parameter is learned as ``id`` once ``min_samples`` identifier-shaped values
    came from ``min_clients`` clients with at most one other value per hundred.
    Endpoints and parameters are each bounded by ``max_parameters``: past the bound,
    new ones are not learned.
    """

    MAX_CLIENTS_KEPT = 16

    def __init__(self, settings: Learning) -> None:
        self.configure(settings)
        self._profiles: dict[Endpoint, _Profile] = {}
        self._templates: dict[str, str] = {}
        self._parameters = 0
        self.has_learned = False  # some parameter was learned once (lookups are then due)

    def endpoint(self, host: str, method: str, route: str, path: str) -> Endpoint:
        """The endpoint a request belongs to."""
        if route:
            return (host, method, route)
        template = self._templates.get(path)
        if template is None:
            template = remember(self._templates, path, guess_template(path), _TEMPLATE_CACHE)
        return (host, method, template)

    def learned_at(self, endpoint: Endpoint) -> dict[tuple[Source, str], Kind]:
        """The kinds learned at ``endpoint`` (a live view: learning may add to it)."""
        profile = self._profiles.get(endpoint)
        return profile.learned if profile is not None else _NOTHING_LEARNED

    def configure(self, settings: Learning) -> None:
        """Learn under ``settings`` from now on (what was learned stays)."""
        self.settings = settings
        # next() of it says whether a request is observed: one in sample_every
        self.sampling = itertools.cycle([False] * (settings.sample_every - 1) + [True])

    def observe(self, endpoint: Endpoint, values: Sequence[InputValue], client: str) -> None:
        """Learn from the values of a request to ``endpoint`` that passed inspection."""
        settings = self.settings
        profile = self._profiles.get(endpoint)
        if profile is None:
            if len(self._profiles) >= settings.max_parameters:
                return
            profile = self._profiles.setdefault(endpoint, _Profile())
        stats = profile.stats
        for value in values:
            source = value.location.source
            if source not in LEARNABLE or not value.text:
                continue
            key = (source, parameter_name(source, value.location.name))
            seen = stats.get(key)
            if seen is None:
                if self._parameters >= settings.max_parameters:
                    continue
                self._parameters += 1
                seen = stats[key] = _Stats()
            if is_identifier(value.text):
                seen.identifiers += 1
            else:
                seen.others += 1
            if len(seen.clients) < self.MAX_CLIENTS_KEPT:
                seen.clients.add(client)
            if (
                seen.identifiers >= settings.min_samples
                and len(seen.clients) >= settings.min_clients
                and seen.others * 100 <= seen.identifiers
            ):
                profile.learned[key] = Kind.ID
                self.has_learned = True
            else:
                profile.learned.pop(key, None)

    def learned(self) -> dict[Endpoint, dict[str, str]]:
        """Every endpoint's learned parameters: ``(host, method, template)`` → location → kind."""
        return {
            key: {f"{s.value}:{n}": kind.value for (s, n), kind in profile.learned.items()}
            for key, profile in list(self._profiles.items())
            if profile.learned
        }


@dataclass(frozen=True, slots=True)
class Judged:
    """The kind a value's parameter has and why: 'declared' or 'learned'."""

    kind: Kind
    origin: str

    def describe(self) -> str:
        """For findings: ``'id (learned)'``."""
        return f"{self.kind.value} ({self.origin})"


_LEARNED: Final = {kind: Judged(kind, "learned") for kind in Kind}


class RequestContext:
    """The kinds of one request's parameters: its declarations, then what was learned."""

    __slots__ = ("_by_source", "_exact", "_learned")

    def __init__(
        self, declarations: Sequence[_Declaration], learned: dict[tuple[Source, str], Kind]
    ) -> None:
        self._exact: dict[tuple[Source, str], Judged] = {}
        self._by_source: dict[Source, Judged] = {}
        for declaration in declarations:
            judged = Judged(declaration.kind, "declared")
            if declaration.name:
                self._exact.setdefault((declaration.source, declaration.name), judged)
            else:
                self._by_source.setdefault(declaration.source, judged)
        self._learned = learned

    def of(self, value: InputValue) -> Judged | None:
        """The kind of ``value``'s parameter, or ``None`` when nothing is known of it."""
        location = value.location
        source = location.source
        name = location.name
        if source is Source.HEADER:
            name = name.lower()
        key = (source, parameter_name(source, name))
        judged = self._exact.get(key) or self._by_source.get(source)
        if judged is not None:
            return judged
        kind = self._learned.get(key)
        return _LEARNED[kind] if kind is not None else None
