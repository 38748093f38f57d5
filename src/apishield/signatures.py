"""Signature matching: detector patterns compiled into hyperscan databases.

Detectors declare :class:`Signature` values at import time with
:func:`register_signatures`. A :class:`SignatureSet` compiles any selection of them,
so one pass over a value (or over many values joined) finds every hit of every
signature in the set. Sets are built when a policy is compiled and are read-only
afterwards; the scratch space hyperscan needs is kept per thread.

:func:`is_plain` is the cheap pre-test every detector runs first: values made only
of letters, digits and a few inert punctuation marks cannot carry an injection.
"""

from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import functools
import itertools
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import hyperscan

from apishield.dbcache import cached_compile

DEFAULT_FLAGS: Final = (
    hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SOM_LEFTMOST | hyperscan.HS_FLAG_DOTALL
)
# Where a value begins and ends. Signatures write these instead of ``^`` and ``$``,
# because :meth:`SignatureSet.scan_many` scans many values joined by NUL bytes
# (canonical text never contains NUL: normalisation removes it).
BEGIN: Final = r"(?:^|\x00)"
END: Final = r"(?:$|\x00)"
_SEPARATOR: Final = "\x00"


def first_in_value(chars: str) -> str:
    """A pattern matching only the first of ``chars`` (a character-class body) in a value.

    For a gate alternative: a gate keeps just its first hit per value, but hyperscan
    calls back for every match, and a common character (a quote in a JSON-like text)
    matches dozens of times per value. This form ends once per value, at the same
    first occurrence.
    """
    return rf"{BEGIN}[^{chars}\x00]*[{chars}]"


def longest_first(word: str) -> tuple[int, str]:
    """Sort key for the words of an alternation: longer first (so that a word's prefix
    does not match in its place), then alphabetical, so that a pattern built from a
    set is the same in every process (a set's order changes with string hashing) and
    so is its compiled database (and its key in :mod:`apishield.dbcache`)."""
    return (-len(word), word)


_PLAIN: Final = re.compile(r"[A-Za-z0-9_.,:@+\-]*")
_REGISTRY: dict[str, Signature] = {}


@dataclass(frozen=True, slots=True)
class Signature:
    """One pattern of one check.

    ``name`` is unique across checks (``"sqli.time_based"``); ``label`` says what a
    hit means, for finding messages; ``score`` is the confidence (0-100) of a hit.
    A score of 0 marks a *gate*: its hit is no finding, it only tells the check
    that the value deserves its slower semantic analysis (libinjection). Gates are
    matched without start offsets (cheaper for hyperscan): a gate's hit is the empty
    span at the end of its first match.
    A ``strict`` signature is compiled only when the policy's sensitivity is
    ``strict``: weaker evidence that ``balanced`` does not act on.
    ``pattern`` is a hyperscan (PCRE-subset) expression matched against the
    UTF-8 bytes of a value's canonical text.
    """

    name: str
    check: str
    pattern: str
    label: str
    score: int
    flags: int = DEFAULT_FLAGS
    strict: bool = False


@dataclass(init=False, unsafe_hash=True, slots=True)  # see findings.Location
class Hit:
    """A signature's leftmost match in a value; ``evidence`` is the matched text."""

    signature: Final[Signature]
    start: Final[int]
    end: Final[int]
    evidence: Final[str]

    def __init__(self, signature: Signature, start: int, end: int, evidence: str) -> None:
        self.signature = signature
        self.start = start
        self.end = end
        self.evidence = evidence


def register_signatures(signatures: Iterable[Signature]) -> None:
    """Make ``signatures`` available to :func:`signatures_for`; names must be unique."""
    for signature in signatures:
        existing = _REGISTRY.get(signature.name)
        if existing is not None and existing != signature:
            raise ValueError(f"signature {signature.name!r} is already registered")
        _REGISTRY[signature.name] = signature


SignatureRow = tuple[str, str, str, int] | tuple[str, str, str, int, Literal["strict"]]


def register_check_signatures(check: str, table: Iterable[SignatureRow]) -> None:
    """Register a check's ``(name, pattern, label, score[, "strict"])`` rows as signatures.

    Each row becomes ``Signature("check.name", ...)``; a trailing ``"strict"`` marks a
    signature used only at ``strict`` sensitivity.
    """
    register_signatures(
        Signature(f"{check}.{row[0]}", check, row[1], row[2], row[3], strict=len(row) == 5)
        for row in table
    )


def signatures_for(*checks: str) -> tuple[Signature, ...]:
    """The registered signatures of ``checks`` (of every check when none is named)."""
    wanted = set(checks)
    return tuple(s for s in _REGISTRY.values() if not wanted or s.check in wanted)


def is_plain(text: str) -> bool:
    """True when ``text`` holds only ASCII letters, digits and ``_ . , : @ + -``."""
    return text.isascii() and (text.isalnum() or _PLAIN.fullmatch(text) is not None)


class SignatureSet:
    """Signatures compiled into hyperscan databases; immutable after construction.

    A short text is scanned once with a database of every signature that tracks
    where each match starts (for spans and evidence). Many texts (or a long one) are
    joined and scanned once with a database of the same signatures that reports only
    where matches end, which hyperscan runs over twice as fast: it tells which
    signatures match which text, and is all a gate needs. A text where other
    signatures matched is then scanned again for start offsets, with a database of
    each of their checks' signatures (a few of the set's patterns, four to eight
    times faster than all of them) or, when that would cost more, with the database
    of all of them.

    The databases are compiled at construction, or on first use when ``lazy`` (a
    check's own set, used only to rescan a re-decoded value: the engine's combined set
    compiles, and so validates, the same patterns eagerly).
    """

    __slots__ = ("_databases", "_gates", "_groups", "_local", "_patterns", "signatures")

    def __init__(self, signatures: Sequence[Signature], *, lazy: bool = False) -> None:
        """Compile ``signatures``; raise ``ValueError`` if a pattern does not compile."""
        if not signatures:
            raise ValueError("a signature set needs at least one signature")
        self.signatures = tuple(signatures)
        self._gates = frozenset(i for i, s in enumerate(self.signatures) if s.score == 0)
        self._patterns = tuple(
            (s.pattern, s.flags & ~hyperscan.HS_FLAG_SOM_LEFTMOST if s.score == 0 else s.flags)
            for s in self.signatures
        )
        by_check: dict[str, list[int]] = {}
        for index, signature in enumerate(self.signatures):
            if index not in self._gates:
                by_check.setdefault(signature.check, []).append(index)
        self._groups = tuple(tuple(indices) for indices in by_check.values())
        self._databases: _Databases | None = None if lazy else self._compile()
        self._local = threading.local()

    def _compile(self) -> _Databases:
        return _Databases(
            _compile(self._patterns),
            _compile(_without_starts(self._patterns)),
            tuple(_compile(tuple(self._patterns[i] for i in group)) for group in self._groups),
            self._groups,
            self._gates,
        )

    def _compiled(self) -> _Databases:
        databases = self._databases
        if databases is None:  # two threads may both compile: the cache makes it one
            databases = self._databases = self._compile()
        return databases

    def scan(self, text: str) -> list[Hit]:
        """Every signature that matches ``text``, once each, at its leftmost match."""
        databases = self._compiled()
        data = text.encode("utf-8", "surrogatepass")
        found: dict[int, tuple[int, int]] = {}
        databases.every.scan(
            data,
            match_event_handler=_collect,
            context=_Matches(databases.identity, databases.gates, found),
            scratch=self._scratches(databases)[0],
        )
        return self._hits(found, data, 0) if found else []

    def scan_many(self, texts: Sequence[str]) -> dict[int, list[Hit]]:
        """:meth:`scan` for many texts in one hyperscan pass; only texts with hits appear.

        The texts are joined with NUL bytes (a NUL within a text reads as a space)
        and scanned once for match ends; :data:`BEGIN` and :data:`END` match at every
        text's edges. A match belongs to the text it ends in. A gate's hit is the
        empty span at its first end in the text. A text where another signature
        ends a match is scanned again on its own for the starts, which also drops a
        match that began in a neighbour.
        """
        if not texts:
            return {}
        if len(texts) == 1 and len(texts[0]) < _LONG_TEXT:  # short, alone: one pass
            hits = self.scan(texts[0].replace(_SEPARATOR, " "))
            return {0: hits} if hits else {}
        databases = self._compiled()
        scratches = self._scratches(databases)
        data, starts, ends = _join(texts)
        batch = _Batch(starts, ends, databases.group_of)
        databases.ends.scan(
            data, match_event_handler=_collect_ends, context=batch, scratch=scratches[1]
        )
        spans: dict[int, dict[int, tuple[int, int]]] = {}
        for (index, text_index), end in batch.gate_ends.items():
            at = end - starts[text_index]
            spans.setdefault(text_index, {})[index] = (at, at)
        for text_index, groups in batch.rescan.items():
            found = spans.setdefault(text_index, {})
            piece = data[starts[text_index] : ends[text_index]]
            if not _by_check(len(groups), len(piece)):
                found.clear()  # the pass over every signature finds the gates too
                databases.every.scan(
                    piece,
                    match_event_handler=_collect,
                    context=_Matches(databases.identity, databases.gates, found),
                    scratch=scratches[0],
                )
                continue
            for group in sorted(groups):
                databases.starts[group].scan(
                    piece,
                    match_event_handler=_collect,
                    context=_Matches(databases.groups[group], _NO_GATES, found),
                    scratch=scratches[group + 2],
                )
        return {
            text_index: self._hits(found, data, starts[text_index])
            for text_index, found in sorted(spans.items())
            if found
        }

    def _hits(self, found: dict[int, tuple[int, int]], data: bytes, offset: int) -> list[Hit]:
        """``found`` spans (relative to the text at ``offset`` in ``data``) as sorted hits."""
        return [
            Hit(
                self.signatures[index],
                start,
                end,
                data[offset + start : offset + end].decode("utf-8", "replace"),
            )
            for index, (start, end) in sorted(found.items(), key=_by_span)
        ]

    def best(self, text: str) -> tuple[Hit | None, bool]:
        """The highest-scoring hit in ``text`` (leftmost among equals), and whether a gate hit."""
        return best_of(self.scan(text))

    def _scratches(self, databases: _Databases) -> tuple[hyperscan.Scratch, ...]:
        """This thread's scratch space for each database (every, ends, then starts)."""
        scratches: tuple[hyperscan.Scratch, ...] | None = getattr(self._local, "scratches", None)
        if scratches is None:
            scratches = tuple(
                hyperscan.Scratch(database)
                for database in (databases.every, databases.ends, *databases.starts)
            )
            self._local.scratches = scratches
        return scratches


# A text alone is scanned once with start offsets unless it is this long: most long
# texts hold no hit (but of gates), and the pass for ends alone costs half as much.
_LONG_TEXT: Final = 256
# What a rescan costs, measured on this project's machine (default policy): about
# 1 µs a call and 10 ns a byte with the starts database of one check, 1.5 µs and
# 29 ns with that of every signature; in bytes scanned, a call is worth 100 bytes.
_CALL_BYTES: Final = 100


def _by_check(checks: int, size: int) -> bool:
    """True when rescanning ``size`` bytes with the starts databases of ``checks``
    checks costs less than one pass with every signature."""
    return checks * (_CALL_BYTES + size) < 3 * (_CALL_BYTES // 2 + size)


_NO_GATES: frozenset[int] = frozenset()


class _Databases:
    """The compiled state of a :class:`SignatureSet`: every signature with start
    offsets (gates without), every signature without, and a starts database per
    group (a check's signatures other than gates), with each signature's group
    (-1 for a gate)."""

    __slots__ = ("ends", "every", "gates", "group_of", "groups", "identity", "starts")

    def __init__(
        self,
        every: hyperscan.Database,
        ends: hyperscan.Database,
        starts: tuple[hyperscan.Database, ...],
        groups: tuple[tuple[int, ...], ...],
        gates: frozenset[int],
    ) -> None:
        self.every = every
        self.ends = ends
        self.starts = starts
        self.groups = groups
        self.gates = gates
        count = len(gates) + sum(len(group) for group in groups)
        self.identity = tuple(range(count))
        group_of = [-1] * count
        for number, group in enumerate(groups):
            for index in group:
                group_of[index] = number
        self.group_of = tuple(group_of)


def _by_span(item: tuple[int, tuple[int, int]]) -> tuple[int, int, int]:
    index, (start, end) = item
    return start, end, index


def _without_starts(patterns: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    return tuple((pattern, flags & ~hyperscan.HS_FLAG_SOM_LEFTMOST) for pattern, flags in patterns)


@functools.lru_cache(maxsize=64)
def _compile(patterns: tuple[tuple[str, int], ...]) -> hyperscan.Database:
    """A hyperscan database for ``patterns``; compiled databases are read-only, so a
    reloaded policy with the same signatures reuses them instead of recompiling, and a
    new process loads them from the on-disk cache (:mod:`apishield.dbcache`)."""
    try:
        return cached_compile(patterns, _compile_now)
    finally:
        _release_compiler_memory()  # the compiler's heap, or a loaded file's buffers


def _compile_now(patterns: tuple[tuple[str, int], ...]) -> hyperscan.Database:
    database = hyperscan.Database()
    try:
        database.compile(
            expressions=[pattern.encode() for pattern, _ in patterns],
            ids=list(range(len(patterns))),
            flags=[flags for _, flags in patterns],
        )
    except (hyperscan.error, hyperscan.CompilerError) as exc:
        raise ValueError(f"signature pattern does not compile: {exc}") from exc
    return database


def _release_compiler_memory() -> None:
    """Give the hyperscan compiler's freed heap (or a cache file's buffers) back to the OS.

    Compiling takes tens of MiB that glibc keeps after they are freed; every proxy
    worker forked afterwards would carry them (measured: 95 MiB resident per worker
    instead of 44). Elsewhere than glibc this does nothing.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def best_of(hits: Sequence[Hit]) -> tuple[Hit | None, bool]:
    """The highest-scoring of ``hits`` (leftmost among equals) and whether a gate is among them."""
    top: Hit | None = None
    gated = False
    for hit in hits:  # a plain loop: max() with a key and any() cost 2 k instructions a call
        score = hit.signature.score
        if score == 0:
            gated = True
        elif (
            top is None
            or score > top.signature.score
            or (score == top.signature.score and hit.start < top.start)
        ):
            top = hit
    return top, gated


def _join(texts: Sequence[str]) -> tuple[bytes, list[int], list[int]]:
    """The texts as one NUL-separated buffer, with each text's start and end offset."""
    joined = _SEPARATOR.join(texts)
    if joined.isascii() and joined.count(_SEPARATOR) == len(texts) - 1:
        lengths = [len(t) for t in texts]  # ASCII: one byte per character
        data = joined.encode("ascii")
    else:
        parts = [
            (t.replace(_SEPARATOR, " ") if _SEPARATOR in t else t).encode("utf-8", "surrogatepass")
            for t in texts
        ]
        lengths = [len(p) for p in parts]
        data = b"\x00".join(parts)
    starts = list(itertools.accumulate((n + 1 for n in lengths[:-1]), initial=0))
    ends = [start + n for start, n in zip(starts, lengths, strict=True)]
    return data, starts, ends


class _Matches:
    """Match state of one scan with start offsets: the database's ids as signature
    indices, the gates among them, and the text's spans by signature index, which
    it adds to."""

    __slots__ = ("gates", "indices", "spans")

    def __init__(
        self, indices: tuple[int, ...], gates: frozenset[int], spans: dict[int, tuple[int, int]]
    ) -> None:
        self.indices = indices
        self.gates = gates
        self.spans = spans


class _Batch:
    """Match state of one ends-only pass."""

    __slots__ = ("ends", "gate_ends", "group_of", "rescan", "starts")

    def __init__(self, starts: list[int], ends: list[int], group_of: tuple[int, ...]) -> None:
        self.starts = starts
        self.ends = ends
        self.group_of = group_of
        self.gate_ends: dict[tuple[int, int], int] = {}
        self.rescan: dict[int, set[int]] = {}


def _collect_ends(index: int, start: int, end: int, flags: int, batch: Any) -> None:
    """Hyperscan match callback of the ends-only pass: which text each match ends in.

    The match's last byte places it (a separator that ends it is an :data:`END`
    anchor of the text before). A gate keeps its first end per text; any other
    signature marks its group for a rescan of its text with start offsets.
    """
    text_index = bisect.bisect_right(batch.starts, end - 1) - 1
    group = batch.group_of[index]
    if group >= 0:
        groups = batch.rescan.get(text_index)
        if groups is None:
            batch.rescan[text_index] = {group}
        else:
            groups.add(group)
        return
    if end == batch.ends[text_index] + 1:
        end -= 1
    key = (index, text_index)
    first = batch.gate_ends.get(key)
    if first is None or end < first:
        batch.gate_ends[key] = end


def _collect(index: int, start: int, end: int, flags: int, matches: Any) -> None:
    """Hyperscan match callback with start offsets: keep the leftmost (then longest)
    match per signature; a gate's is the empty span at its first end."""
    index = matches.indices[index]
    if index in matches.gates:
        start = end
    spans = matches.spans
    previous = spans.get(index)
    if previous is None or start < previous[0] or (start == previous[0] and end > previous[1]):
        spans[index] = (start, end)
