"""Raw header lists: the C functions and their Python forms give the same answers."""

from __future__ import annotations

import gc
import random
from collections.abc import Callable
from typing import Any

import pytest

from apishield.rawheaders import (
    _decode_headers_in_python,
    _find_headers_in_python,
    _header_lines_in_python,
    decode_headers,
    find_headers,
    header_lines,
)
from tests.support.speedups import needs_c, speedups

FIND: list[Callable[..., Any]] = [_find_headers_in_python, find_headers]
LINES: list[Callable[..., Any]] = [_header_lines_in_python, header_lines]
DECODE: list[Callable[..., Any]] = [_decode_headers_in_python, decode_headers]

HEADERS = [
    (b"Host", b"api.example"),
    (b"Connection", b"keep-alive"),
    (b"X-Forwarded-For", b"10.0.0.1"),
    (b"Accept", b"*/*"),
    (b"x-forwarded-for", b"10.0.0.2"),
    (b"CONTENT-LENGTH", b"12"),
]


@pytest.mark.parametrize("find", FIND)
def test_find_headers_matches_any_case_and_answers_with_the_given_spelling(
    find: Callable[..., Any],
) -> None:
    found = find(HEADERS, (b"x-forwarded-for", b"content-length", b"te"))
    assert found == [
        (b"x-forwarded-for", b"10.0.0.1"),
        (b"x-forwarded-for", b"10.0.0.2"),
        (b"content-length", b"12"),
    ]
    assert find(HEADERS, ()) == []
    assert find([], (b"host",)) == []


@pytest.mark.parametrize("lines", LINES)
def test_header_lines_keeps_order_and_bytes_of_what_it_keeps(lines: Callable[..., Any]) -> None:
    kept, dropped = lines(HEADERS, (b"connection", b"x-forwarded-for"))
    assert kept == b"Host: api.example\r\nAccept: */*\r\nCONTENT-LENGTH: 12\r\n"
    assert dropped == [
        (b"connection", b"keep-alive"),
        (b"x-forwarded-for", b"10.0.0.1"),
        (b"x-forwarded-for", b"10.0.0.2"),
    ]
    assert lines([], (b"host",)) == (b"", [])
    assert lines([(b"", b"")], ()) == (b": \r\n", [])


@pytest.mark.parametrize("lines", LINES)
def test_header_lines_handles_many_headers(lines: Callable[..., Any]) -> None:
    many = [(b"X-H%d" % i, b"v" * i) for i in range(300)]
    kept, dropped = lines(many, (b"x-h7", b"x-h299"))
    kept_lines = (b"X-H%d: %s\r\n" % (i, b"v" * i) for i in range(300) if i not in (7, 299))
    assert kept == b"".join(kept_lines)
    assert dropped == [(b"x-h7", b"v" * 7), (b"x-h299", b"v" * 299)]


@pytest.mark.parametrize("find", FIND)
def test_only_ascii_letters_fold(find: Callable[..., Any]) -> None:
    assert find([(b"\xc9TAG", b"1"), (b"\xe9tag", b"2")], (b"\xe9tag",)) == [(b"\xe9tag", b"2")]
    assert find([(b"X-\xc4", b"1")], (b"x-\xe4",)) == []


@pytest.mark.parametrize("decode", DECODE)
def test_decode_headers_is_latin_1(decode: Callable[..., Any]) -> None:
    assert decode([(b"Host", b"a"), (b"X-Name", b"caf\xe9"), (b"X-Long", b"x" * 100)]) == [
        ("Host", "a"),
        ("X-Name", "caf\u00e9"),
        ("X-Long", "x" * 100),
    ]
    assert decode([]) == []
    assert decode(()) == []


@needs_c
def test_decode_headers_takes_what_asgi_servers_give() -> None:
    # lists as pairs, any iterable of pairs, other byte buffers
    given = [[b"a", b"1"], (bytearray(b"b"), memoryview(b"2"))]
    assert speedups.decode_headers(given) == [("a", "1"), ("b", "2")]
    assert speedups.decode_headers(iter([(b"c", b"3")])) == [("c", "3")]


@needs_c
def test_decoded_short_texts_are_shared() -> None:
    first = speedups.decode_headers([(b"Content-Type", b"application/json")])
    second = speedups.decode_headers([(b"Content-Type", b"application/json")])
    assert first[0][0] is second[0][0] and first[0][1] is second[0][1]


def _random_headers(rng: random.Random) -> list[tuple[bytes, bytes]]:
    names = [b"Host", b"host", b"HOST", b"Connection", b"TE", b"te", b"X-A", b"x-\xc4", b""]
    return [
        (
            rng.choice(names) + rng.choice([b"", b"-x", b"\xff"]) * rng.randint(0, 1),
            bytes(rng.randrange(256) for _ in range(rng.randint(0, 70))),
        )
        for _ in range(rng.randint(0, 80))
    ]


@needs_c
def test_c_and_python_agree_on_random_lists() -> None:
    rng = random.Random(7)
    names = (b"host", b"connection", b"te", b"x-\xc4", b"")
    for _ in range(2000):
        headers = _random_headers(rng)
        drop = tuple(rng.sample(names, rng.randint(0, len(names))))
        assert speedups.find_headers(headers, drop) == _find_headers_in_python(headers, drop)
        assert speedups.header_lines(headers, drop) == _header_lines_in_python(headers, drop)
        assert speedups.decode_headers(headers) == _decode_headers_in_python(headers)


@needs_c
@pytest.mark.parametrize(
    "call",
    [
        lambda: speedups.find_headers((), ()),
        lambda: speedups.find_headers([], [b"host"]),
        lambda: speedups.find_headers([], ("host",)),
        lambda: speedups.find_headers([[b"a", b"b"]], ()),
        lambda: speedups.find_headers([(b"a",)], ()),
        lambda: speedups.find_headers([(b"a", "b")], ()),
        lambda: speedups.header_lines([(b"a", b"b", b"c")], ()),
        lambda: speedups.header_lines([("a", b"b")], (b"a",)),
        lambda: speedups.header_lines([], (b"a", 1)),
        lambda: speedups.header_lines([]),
        lambda: speedups.decode_headers(5),
        lambda: speedups.decode_headers([(b"a", b"b", b"c")]),
        lambda: speedups.decode_headers([b"ab"]),
        lambda: speedups.decode_headers([(b"a", 5)]),
    ],
)
def test_c_functions_refuse_other_arguments(call: Callable[[], object]) -> None:
    with pytest.raises(TypeError):
        call()


class _Shrinker:
    """Cyclic garbage whose finalizer empties a list (run by the collector)."""

    def __init__(self, shrunk: list[Any]) -> None:
        self.shrunk = shrunk
        self.cycle = self

    def __del__(self) -> None:
        self.shrunk.clear()


def _with_a_finalizer_at_each_allocation(shrunk: list[Any], call: Callable[[], object]) -> None:
    """Run ``call`` with a collection due at each of its first allocations, in turn, and
    a finalizer waiting to empty ``shrunk`` (a list ``call`` works on)."""
    old_threshold = gc.get_threshold()
    kept = list(shrunk)
    try:
        for threshold in range(1, 12):
            shrunk[:] = kept
            gc.collect()
            gc.disable()
            _Shrinker(shrunk)
            gc.set_threshold(threshold)
            gc.enable()
            call()
            gc.set_threshold(*old_threshold)
            gc.collect()
    finally:
        gc.set_threshold(*old_threshold)
        gc.enable()


@needs_c
def test_a_list_changed_by_a_finalizer_meanwhile_does_no_harm() -> None:
    """A collection during a call may run a finalizer that empties the list: the
    answer is then the one for the list before or for the empty list, never a crash."""
    headers = [(b"Connection", b"close")] * 4 + [(b"X-Kept", b"v" * 20)] * 4
    drop = (b"connection",)
    expected = _header_lines_in_python(list(headers), drop)
    lines: list[object] = []
    _with_a_finalizer_at_each_allocation(
        headers, lambda: lines.append(speedups.header_lines(headers, drop))
    )
    assert lines and all(result in (expected, (b"", [])) for result in lines)
    found: list[object] = []
    _with_a_finalizer_at_each_allocation(
        headers, lambda: found.append(speedups.find_headers(headers, drop))
    )
    assert found and all(result in (expected[1], []) for result in found)
    pair = [b"X-Name", b"value"]
    decoded: list[object] = []

    def decode() -> None:
        try:
            decoded.append(speedups.decode_headers([pair]))
        except TypeError:  # the pair was emptied before it was read
            decoded.append(None)

    _with_a_finalizer_at_each_allocation(pair, decode)
    assert decoded and all(result in ([("X-Name", "value")], None) for result in decoded)
