"""Header lists as HTTP parsers give them: ``(name, value)`` byte pairs, in order.

The proxy reads a few headers of every request and response (framing, forwarding)
and writes the others on unchanged; the engine wants them as text. These three
functions do that in one pass each, in C when the build has ``apishield._speedups``
and in the Python below otherwise (the same results, tested against each other).

Names to look for are given lower-case, as a tuple; a match is reported with that
spelling, whatever case the header arrived in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from apishield.native import SPEEDUPS

RawHeaders = list[tuple[bytes, bytes]]


def _find_headers_in_python(headers: RawHeaders, names: tuple[bytes, ...]) -> RawHeaders:
    found = []
    for name, value in headers:
        lower = name.lower()
        if lower in names:
            found.append((names[names.index(lower)], value))
    return found


def _header_lines_in_python(
    headers: RawHeaders, drop: tuple[bytes, ...]
) -> tuple[bytes, RawHeaders]:
    lines: list[bytes] = []
    dropped = []
    for name, value in headers:
        lower = name.lower()
        if lower in drop:
            dropped.append((drop[drop.index(lower)], value))
        else:
            lines += (name, b": ", value, b"\r\n")
    return b"".join(lines), dropped


def _decode_headers_in_python(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    decoded = []
    for name, value in headers:
        decoded.append((name.decode("latin-1"), value.decode("latin-1")))
    return decoded


find_headers: Final[Callable[[RawHeaders, tuple[bytes, ...]], RawHeaders]] = (
    _find_headers_in_python if SPEEDUPS is None else SPEEDUPS.find_headers
)
"""The ``(name, value)`` of every header named in ``names``, in order."""

header_lines: Final[Callable[[RawHeaders, tuple[bytes, ...]], tuple[bytes, RawHeaders]]] = (
    _header_lines_in_python if SPEEDUPS is None else SPEEDUPS.header_lines
)
"""``b"name: value\\r\\n"`` for every header not named in ``drop``, joined; and the
``(name, value)`` of those that are, in order."""

decode_headers: Final[Callable[[Iterable[tuple[bytes, bytes]]], list[tuple[str, str]]]] = (
    _decode_headers_in_python if SPEEDUPS is None else SPEEDUPS.decode_headers
)
"""The pairs as latin-1 text, as HTTP/1.1 allows (short ASCII texts come from the C
module's cache of recurring texts: the same ``str``, its hash computed once)."""
