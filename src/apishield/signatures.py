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
from typing import Any, Literal

import hyperscan

from apishield.dbcache import cached_compile

DEFAULT_FLAGS = (
    hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SOM_LEFTMOST | hyperscan.HS_FLAG_DOTALL
)
# Where a value begins and ends. Signatures write these instead of ``^`` and ``$``,
# because :meth:`SignatureSet.scan_many` scans many values joined by NUL bytes
# (canonical text never contains NUL: normalisation removes it).
BEGIN = r"(?:^|\x00)"
END = r"(?:$|\x00)"
_SEPARATOR = "\x00"


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


_PLAIN = re.compile(r"[A-Za-z0-9_.,:@+\-]*")
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


@dataclass(frozen=True, slots=True)
class Hit:
    """A signature's leftmost match in a value; ``evidence`` is the matched text."""

    signature: Signature
    start: int
    end: int
    evidence: str


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

    Two databases hold the same patterns: one tracks where each match starts
    (:meth:`scan` of one value, for spans and evidence), the other only where
    matches end, which hyperscan runs over two times faster; :meth:`scan_many`
    passes over many values with the second and rescans with the first only the
    values where a signature other than a gate matched.

    The start-tracking database is compiled at construction unless ``lazy``, then
    on first use (a check's own set, used only to rescan a re-decoded value: the
    engine's combined set compiles, and so validates, the same patterns eagerly).
    The end-only one is compiled with it when ``batch`` (the engine's set), else
    on the first :meth:`scan_many`.
    """

    __slots__ = ("_compiled", "_ends_only", "_gates", "_local", "_patterns", "signatures")

    def __init__(
        self, signatures: Sequence[Signature], *, lazy: bool = False, batch: bool = False
    ) -> None:
        """Compile ``signatures``; raise ``ValueError`` if a pattern does not compile."""
        if not signatures:
            raise ValueError("a signature set needs at least one signature")
        self.signatures = tuple(signatures)
        self._gates = frozenset(i for i, s in enumerate(self.signatures) if s.score == 0)
        self._patterns = tuple(
            (s.pattern, s.flags & ~hyperscan.HS_FLAG_SOM_LEFTMOST if s.score == 0 else s.flags)
            for s in self.signatures
        )
        self._compiled: hyperscan.Database | None = None if lazy else _compile(self._patterns)
        self._ends_only: hyperscan.Database | None = (
            _compile(_without_starts(self._patterns)) if batch else None
        )
        self._local = threading.local()

    @property
    def _database(self) -> hyperscan.Database:
        database = self._compiled
        if database is None:  # two threads may both compile: the cache makes it one
            database = self._compiled = _compile(self._patterns)
        return database

    @property
    def _ends_database(self) -> hyperscan.Database:
        database = self._ends_only
        if database is None:
            database = self._ends_only = _compile(_without_starts(self._patterns))
        return database

    def scan(self, text: str) -> list[Hit]:
        """Every signature that matches ``text``, once each, at its leftmost match."""
        data = text.encode("utf-8", "surrogatepass")
        matches = _Matches(self._gates)
        self._database.scan(
            data, match_event_handler=_collect, context=matches, scratch=self._scratch()
        )
        if not matches.spans:
            return []
        return [
            Hit(self.signatures[i], start, end, data[start:end].decode("utf-8", "replace"))
            for i, (start, end) in sorted(
                matches.spans.items(), key=lambda item: (item[1], item[0])
            )
        ]

    def scan_many(self, texts: Sequence[str]) -> dict[int, list[Hit]]:
        """:meth:`scan` for many texts in one hyperscan pass; only texts with hits appear.

        The texts are joined with NUL bytes and scanned once for match ends only;
        :data:`BEGIN` and :data:`END` match at every text's edges. A match belongs
        to the text it ends in. A text where a signature other than a gate ends a
        match is scanned again on its own by :meth:`scan`, for the start of each
        match, which also drops a match that began in a neighbour. Texts with gate
        hits only get each gate's hit at its first end.
        """
        if not texts:
            return {}
        if len(texts) == 1:  # no neighbours: one pass with start offsets
            hits = self.scan(texts[0].replace(_SEPARATOR, " "))
            return {0: hits} if hits else {}
        data, starts, ends = _join(texts)
        batch = _Batch(starts, ends, self._gates)
        self._ends_database.scan(
            data, match_event_handler=_collect_ends, context=batch, scratch=self._ends_scratch()
        )
        found: dict[int, list[Hit]] = {}
        for (index, text_index), end in sorted(batch.gate_ends.items(), key=_by_text_then_end):
            if text_index not in batch.rescan:
                at = end - starts[text_index]
                found.setdefault(text_index, []).append(Hit(self.signatures[index], at, at, ""))
        for text_index in sorted(batch.rescan):
            text = texts[text_index]
            hits = self.scan(text.replace(_SEPARATOR, " ") if _SEPARATOR in text else text)
            if hits:
                found[text_index] = hits
        return found

    def best(self, text: str) -> tuple[Hit | None, bool]:
        """The highest-scoring hit in ``text`` (leftmost among equals), and whether a gate hit."""
        return best_of(self.scan(text))

    def _scratch(self) -> hyperscan.Scratch:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._database)
        return scratch

    def _ends_scratch(self) -> hyperscan.Scratch:
        scratch = getattr(self._local, "ends_scratch", None)
        if scratch is None:
            scratch = self._local.ends_scratch = hyperscan.Scratch(self._ends_database)
        return scratch


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
    if not hits:
        return None, False
    top = max(hits, key=lambda h: (h.signature.score, -h.start))
    gated = any(h.signature.score == 0 for h in hits)
    return (top if top.signature.score else None), gated


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
    """Match state of one :meth:`SignatureSet.scan` call."""

    __slots__ = ("gates", "spans")

    def __init__(self, gates: frozenset[int]) -> None:
        self.gates = gates
        self.spans: dict[int, tuple[int, int]] = {}


class _Batch:
    """Match state of one :meth:`SignatureSet.scan_many` call."""

    __slots__ = ("ends", "gate_ends", "gates", "rescan", "starts")

    def __init__(self, starts: list[int], ends: list[int], gates: frozenset[int]) -> None:
        self.starts = starts
        self.ends = ends
        self.gates = gates
        self.gate_ends: dict[tuple[int, int], int] = {}
        self.rescan: set[int] = set()


def _by_text_then_end(item: tuple[tuple[int, int], int]) -> tuple[int, int, int]:
    (index, text_index), end = item
    return text_index, end, index


def _collect_ends(index: int, start: int, end: int, flags: int, batch: Any) -> None:
    """Hyperscan match callback for batches: which text each match ends in.

    The match's last byte places it (a separator that ends it is an :data:`END`
    anchor of the text before). A gate keeps its first end per text; any other
    signature marks its text for a rescan with start offsets.
    """
    text_index = bisect.bisect_right(batch.starts, end - 1) - 1
    if index not in batch.gates:
        batch.rescan.add(text_index)
        return
    if end == batch.ends[text_index] + 1:
        end -= 1
    key = (index, text_index)
    first = batch.gate_ends.get(key)
    if first is None or end < first:
        batch.gate_ends[key] = end


def _collect(index: int, start: int, end: int, flags: int, matches: Any) -> None:
    """Hyperscan match callback: keep the leftmost (then longest) match per signature."""
    if index in matches.gates:
        start = end
    spans = matches.spans
    previous = spans.get(index)
    if previous is None or start < previous[0] or (start == previous[0] and end > previous[1]):
        spans[index] = (start, end)
