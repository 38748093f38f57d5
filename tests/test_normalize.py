"""Normalisation: canonical text, route paths and request head inputs."""

from __future__ import annotations

import html
import random
import re

import pytest

from apishield.findings import Location, Source
from apishield.http import Headers, Request
from apishield.inputs import InputRejected, InputValue
from apishield.normalize import (
    LEGACY_ENTITY_NAMES,
    URI_TOO_LONG,
    Locations,
    _HeaderInputs,
    _loose_char,
    _percent_decode_each,
    _plain_text_in_python,
    _split_pairs_in_python,
    canonical,
    canonical_param,
    decode_bytes,
    decode_path,
    is_plain,
    parameter_inputs,
    percent_decode,
    prefix_tree_pattern,
    request_head_inputs,
)
from apishield.policy import Limits
from tests.support.speedups import needs_c, speedups

LIMITS = Limits()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # plain values come back as the same object's value
        ("hello world", "hello world"),
        ("a+b", "a+b"),  # '+' is literal outside query strings and forms
        ("SELECT * FROM t", "SELECT * FROM t"),  # case is kept
        # percent-encoding, repeated and mixed-case
        ("%3Cscript%3e", "<script>"),
        ("%253Cscript%253E", "<script>"),
        ("%252e%252e%252f", "../"),
        ("%25252e%25252e%25252f", "../"),
        ("%25%32%65", "."),  # %25 then %32%65 spell %2e
        ("100%", "100%"),
        ("%zz%4", "%zz%4"),
        ("%", "%"),
        # IIS %uXXXX
        ("%u002e%u002e%u002f", "../"),
        ("%U003Cscript%U003E", "<script>"),
        ("%uD83D%uDE00", "\U0001f600"),  # a surrogate pair joins
        ("%uD83D", "\ufffd"),  # a lone surrogate cannot be text
        ("%u12", "%u12"),
        # UTF-8: valid, overlong, CESU-8 and invalid bytes
        ("%C3%A9", "é"),
        ("%c0%af", "/"),
        ("%c0%ae%c0%ae%c0%af", "../"),
        ("%e0%80%af", "/"),
        ("%f0%80%80%af", "/"),
        ("%c1%9c", "\\"),
        ("%ed%a0%bd%ed%b8%80", "\U0001f600"),
        ("%ff%fe", "ÿþ"),  # invalid bytes read as latin-1, never lost
        ("%e0%80", "à\x80"),  # a truncated sequence
        # HTML character references
        ("&#x3c;script&#62;", "<script>"),
        ("&lt;img src=x onerror=alert(1)&gt;", "<img src=x onerror=alert(1)>"),
        ("&lt&#60&#x3C", "<<<"),  # without semicolons
        ("&#0000060;", "<"),
        ("javascript&colon;alert(1)", "javascript:alert(1)"),
        ("Tom & Jerry", "Tom & Jerry"),
        ("%26lt;script%26gt;", "<script>"),  # percent, then entities
        ("&#37;3cscript&#37;3e", "<script>"),  # entities, then percent
        # backslash escapes
        ("\\u003cscript\\u003e", "<script>"),
        ("\\x3cscript\\x3e", "<script>"),
        ("\\u{3c}svg", "<svg"),
        ("it\\'s", "it\\'s"),  # other backslashes are kept
        ("C:\\\\windows", "C:\\\\windows"),
        # NUL bytes
        ("ab\x00cd", "abcd"),
        ("file.php%00.jpg", "file.php.jpg"),
        # Unicode folding
        ("\uff1cscript\uff1e", "<script>"),
        ("\uff33\uff25\uff2c\uff25\uff23\uff34", "SELECT"),
        ("caf\u00e9", "café"),
        ("\u00c3\u00a9", "é"),  # raw UTF-8 bytes as an adapter's latin-1 text
    ],
)
def test_canonical(raw: str, expected: str) -> None:
    assert canonical(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("john+smith", "john smith"),
        ("1+OR+1%3D1", "1 OR 1=1"),
        ("a%2Bb", "a+b"),  # an encoded plus stays a plus
        ("a%252Bb", "a+b"),
        ("plain", "plain"),
    ],
)
def test_canonical_param(raw: str, expected: str) -> None:
    assert canonical_param(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "a=1&b=2",
        "x&notify=1",  # legacy name read without ";" as a prefix
        "&amp&lt&gt",
        "&#60;&#x3c&#X3C",
        "&lt;script&gt;",
        "&unknown; &AMP; &copy2 &Amp;",
        "tail&",
    ],
)
def test_canonical_reads_character_references_as_html_unescape_does(raw: str) -> None:
    assert canonical(raw) == html.unescape(raw)


def test_plain_values_are_returned_unchanged() -> None:
    value = "a perfectly ordinary value"
    assert canonical(value) is value
    assert canonical_param(value) is value


@pytest.mark.parametrize(
    ("text", "plus", "expected"),
    [
        ("a=1&b=2", False, True),  # '&' is the caller's business
        ("a+b", False, True),
        ("a+b", True, False),
        ("%41", False, False),
        ("a\\b", False, False),
        ("a\x00", False, False),
        ("caf\u00e9", False, False),
    ],
)
def test_is_plain(text: str, plus: bool, expected: bool) -> None:
    assert is_plain(text, plus=plus) is expected


def test_decoding_rounds_are_bounded() -> None:
    deep = "%" + "25" * 20 + "3c"
    assert canonical(deep).startswith("%")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("%41%u0042", "AB"),
        ("%252e", "%2e"),  # one round only
        ("a+b", "a+b"),
    ],
)
def test_percent_decode_is_one_round(raw: str, expected: str) -> None:
    assert percent_decode(raw) == expected


def test_decode_bytes_never_loses_a_byte() -> None:
    assert decode_bytes(b"ok \xc0\xaf \xff") == "ok / ÿ"


def _byte_by_byte(data: bytes) -> str:
    """The lenient reading, one character at a time (the specification of decode_bytes)."""
    chars, position = [], 0
    while position < len(data):
        if data[position] < 0x80:
            chars.append(chr(data[position]))
            position += 1
            continue
        char, position = _loose_char(data, position)
        chars.append(char)
    return "".join(chars)


@pytest.mark.parametrize("seed", range(30))
def test_decode_bytes_reads_every_run_as_one_character_at_a_time_would(seed: int) -> None:
    rng = random.Random(seed)
    # binary noise, overlong forms, CESU-8 surrogates (paired and lone), valid UTF-8
    pieces = [
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xed\xa0\xbd\xed\xb8\x80",
        b"\xed\xb8\x80",
        "é→😀".encode(),
        b"\xf8\x88\x80\x80\xaf",
        b"\xfc\x80\x80\x80\x80\xaf",
        b"\xf0\x8d\xa0\xbd\xf0\x8d\xb8\x80",  # an overlong surrogate pair
        b"\xf4\x90\x80\x80",  # past U+10FFFF
        b"\xe2\x82",  # a truncated sequence
        b"\xc3",
        b"\xbf",
        b"a",
        b"%",
    ]
    data = b"".join(
        rng.choice(pieces) if rng.random() < 0.5 else bytes([rng.randrange(256)])
        for _ in range(rng.randint(1, 60))
    )
    assert decode_bytes(data) == _byte_by_byte(data)


@pytest.mark.parametrize("seed", range(5))
def test_decode_bytes_reads_binary_as_one_character_at_a_time_would(seed: int) -> None:
    data = random.Random(seed).randbytes(4096)  # dense with runs, strict and loose
    assert decode_bytes(data) == _byte_by_byte(data)


def test_decode_bytes_decodes_the_strict_runs_of_a_mostly_valid_text() -> None:
    data = "Привет, мир 😀 ".encode() * 50 + b"\xff" + "é".encode()
    assert decode_bytes(data) == "Привет, мир 😀 " * 50 + "ÿé"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/users/42", "/users/42"),
        ("/", "/"),
        ("/users/", "/users/"),
        ("/a//b///c", "/a/b/c"),
        ("/a/./b/.", "/a/b/"),
        ("/a/b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/api/%2e%2e/admin", "/admin"),
        ("/api/%2E%2E%2Fadmin", "/admin"),
        ("/api/%252e%252e/admin", "/api/%2e%2e/admin"),  # decoded once, as a server does
        ("/api/%u002e%u002e/admin", "/admin"),
        ("/api/%c0%ae%c0%ae/admin", "/admin"),
        ("/api%c0%afadmin", "/api/admin"),
        ("/a\\..\\admin", "/admin"),
        ("/public/..;/admin", "/admin"),
        ("/users;jsessionid=1/42", "/users/42"),
        ("/users/42%00.json", "/users/42.json"),
        ("/caf%C3%A9", "/café"),
        ("/.well-known/x", "/.well-known/x"),
        ("*", "/*"),
        ("", "/"),
    ],
)
def test_decode_path(path: str, expected: str) -> None:
    assert decode_path(path) == expected


def _request(
    path: str = "/", query: str = "", headers: list[tuple[str, str]] | None = None
) -> Request:
    return Request("GET", path, query, Headers(headers or []))


def _located(values: list[InputValue]) -> list[tuple[Source, str, str, str]]:
    return [(v.location.source, v.location.name, v.raw, v.text) for v in values]


def test_path_inputs() -> None:
    values = request_head_inputs(_request("/files//%2e%2e%2fetc/passwd"), LIMITS)
    assert _located(values) == [
        (Source.PATH, "", "/files//%2e%2e%2fetc/passwd", "/files//../etc/passwd"),
        (Source.PATH_SEGMENT, "0", "files", "files"),
        (Source.PATH_SEGMENT, "2", "%2e%2e%2fetc", "../etc"),
        (Source.PATH_SEGMENT, "3", "passwd", "passwd"),
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "q=john+smith&page=2",
            [
                (Source.QUERY_KEY, "q", "q", "q"),
                (Source.QUERY, "q", "john+smith", "john smith"),
                (Source.QUERY_KEY, "page", "page", "page"),
                (Source.QUERY, "page", "2", "2"),
            ],
        ),
        (
            "id=1&id=%27%20OR%201%3D1--",
            [
                (Source.QUERY_KEY, "id", "id", "id"),
                (Source.QUERY, "id", "1", "1"),
                (Source.QUERY_KEY, "id", "id", "id"),
                (Source.QUERY, "id", "%27%20OR%201%3D1--", "' OR 1=1--"),
            ],
        ),
        (
            "a%5B0%5D=x;y&&flag&=v",
            [
                (Source.QUERY_KEY, "a[0]", "a%5B0%5D", "a[0]"),
                (Source.QUERY, "a[0]", "x;y", "x;y"),  # only '&' separates pairs
                (Source.QUERY_KEY, "flag", "flag", "flag"),
                (Source.QUERY_KEY, "", "", ""),
                (Source.QUERY, "", "v", "v"),
            ],
        ),
        (
            "f=%26%23x3c%3Bscript%26%2362%3B",
            [
                (Source.QUERY_KEY, "f", "f", "f"),
                (Source.QUERY, "f", "%26%23x3c%3Bscript%26%2362%3B", "<script>"),
            ],
        ),
    ],
)
def test_query_inputs(query: str, expected: list[tuple[Source, str, str, str]]) -> None:
    values = request_head_inputs(_request("/", query), LIMITS)
    assert _located(values)[1:] == expected


def test_header_and_cookie_inputs() -> None:
    headers = [
        ("Host", "api.example.com"),
        ("User-Agent", "sqlmap/1.7"),
        ("Accept", "*/*"),
        ("Accept-Language", "en"),
        ("Authorization", "Bearer secret.token"),
        ("Content-Type", "application/json"),
        ("Referer", "https://x.test/?q=%3Cscript%3E"),
        ("Sec-Fetch-Mode", "cors"),
        ("X-Custom-Id", "abc"),
        ("Cookie", "session=s1; pref=%3Cb%3E"),
        ("cookie", "=orphan; flag"),
        ("X-Forwarded-For", "1.2.3.4"),
    ]
    values = request_head_inputs(_request("/", "", headers), LIMITS)
    assert _located(values)[1:] == [
        (Source.HEADER, "user-agent", "sqlmap/1.7", "sqlmap/1.7"),
        (Source.HEADER, "content-type", "application/json", "application/json"),
        (Source.HEADER, "referer", "https://x.test/?q=%3Cscript%3E", "https://x.test/?q=<script>"),
        (Source.HEADER, "x-custom-id", "abc", "abc"),
        (Source.HEADER, "x-forwarded-for", "1.2.3.4", "1.2.3.4"),
        (Source.COOKIE_KEY, "session", "session", "session"),
        (Source.COOKIE, "session", "s1", "s1"),
        (Source.COOKIE_KEY, "pref", "pref", "pref"),
        (Source.COOKIE, "pref", "%3Cb%3E", "<b>"),
        (Source.COOKIE_KEY, "", "", ""),
        (Source.COOKIE, "", "orphan", "orphan"),
        (Source.COOKIE_KEY, "flag", "flag", "flag"),
    ]


def test_raw_utf8_in_a_header_is_read_as_utf8() -> None:
    header = "caf\u00c3\u00a9 \u00c0\u00af"  # b"caf\xc3\xa9 \xc0\xaf" decoded as latin-1
    values = request_head_inputs(_request("/", "", [("X-Note", header)]), LIMITS)
    assert values[-1].text == "café /"


@pytest.mark.parametrize(
    ("request_", "limits", "check", "status", "source"),
    [
        (
            _request("/" + "a" * 100),
            Limits(max_url_bytes=64),
            "limits.url",
            URI_TOO_LONG,
            Source.PATH,
        ),
        (
            _request("/", "q=" + "é" * 40),
            Limits(max_url_bytes=64),
            "limits.url",
            URI_TOO_LONG,
            Source.PATH,
        ),
        (
            _request(headers=[("X-A", "1")] * 3),
            Limits(max_headers=2),
            "limits.headers",
            431,
            Source.HEADER,
        ),
        (
            _request(headers=[("X-A", "v" * 300)]),
            Limits(max_header_bytes=256),
            "limits.headers",
            431,
            Source.HEADER,
        ),
        (
            _request("/", "&".join(f"p{i}=1" for i in range(4))),
            Limits(max_params=3),
            "limits.params",
            400,
            Source.QUERY,
        ),
        (
            _request("/", "a=1&b=2", [("Cookie", "c=1; d=2")]),
            Limits(max_params=3),
            "limits.params",
            400,
            Source.QUERY,
        ),
    ],
)
def test_head_limits(
    request_: Request, limits: Limits, check: str, status: int, source: Source
) -> None:
    with pytest.raises(InputRejected) as caught:
        request_head_inputs(request_, limits)
    assert (caught.value.check, caught.value.status) == (check, status)
    assert caught.value.location == Location(source)
    assert "limit" in caught.value.message


def test_head_within_limits_is_accepted() -> None:
    request = _request("/", "a=1&b=2", [("Cookie", "c=1")])
    assert len(request_head_inputs(request, Limits(max_params=3))) == 7


def _random_text(rng: random.Random) -> str:
    alphabet = "%uU+&#;x\\/.<>'\"=a0F\x00\u00c0\u00af\uff1c\ud800 "
    pieces = [rng.choice(alphabet) for _ in range(rng.randint(0, 40))]
    pieces += [chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(0, 3))]
    rng.shuffle(pieces)
    return "".join(pieces)


def test_fuzz_never_crashes_and_yields_valid_text() -> None:
    rng = random.Random(1234)
    for _ in range(3000):
        text = _random_text(rng)
        for result in (canonical(text), canonical_param(text), decode_path("/" + text)):
            result.encode("utf-8")  # no lone surrogates
            assert "\x00" not in result
        if is_plain(text) and "&" not in text:
            assert canonical(text) == text
        request = _request("/" + text, text, [("X-" + str(rng.random()), text), ("Cookie", text)])
        try:
            values = request_head_inputs(request, LIMITS)
        except InputRejected:
            continue
        for value in values:
            value.text.encode("utf-8")


@pytest.mark.parametrize(
    ("name", "value", "inspected"),
    [
        ("Sec-Fetch-Mode", "cors", False),
        ("Sec-Fetch-User", "?1", False),
        ("Sec-CH-UA-Platform", '"Windows"', False),
        ("Sec-CH-UA", '"Chromium";v="128", "Not;A=Brand";v="24", "Google Chrome";v="128"', False),
        (
            "Sec-CH-UA-Full-Version-List",
            '"Not)A;Brand";v="99.0.0.0", "Edge";v="127.0.2651.98"',
            False,
        ),
        ("Sec-Fetch-Dest", "${jndi:ldap://x.test/a}", True),
        ("Sec-CH-UA", '";cat /etc/passwd";v="1"', True),
        ("Sec-CH-UA-Platform", "\"x' OR '1'='1\"", True),
        ("Sec-Anything", "<script>alert(1)</script>", True),
    ],
)
def test_browser_sec_headers_are_skipped_only_in_their_exact_shape(
    name: str, value: str, inspected: bool
) -> None:
    values = request_head_inputs(_request("/", "", [(name, value)]), LIMITS)
    assert any(v.location.name == name.lower() for v in values) is inspected


def test_percent_decoding_in_c_matches_decoding_escape_by_escape() -> None:
    pieces = [
        "%", "%u", "%U", "a", "4", "f", "F", "z", "%41", "%e4%b8%ad", "%c0%af", "é", "中", "+",
        "%2", "\\", "\\x41", "%5c", "%5cx41", "%%", "\x00", "%00", "%u0041", "%ff",
    ]  # fmt: skip
    rng = random.Random(11)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(10)))
        plus = rng.random() < 0.5
        assert percent_decode(text, plus=plus) == _percent_decode_each(text, plus), text


def test_a_prefix_tree_pattern_finds_what_the_flat_alternation_finds() -> None:
    flat = re.compile("|".join(sorted(LEGACY_ENTITY_NAMES, key=len, reverse=True)))
    tree = re.compile(prefix_tree_pattern(LEGACY_ENTITY_NAMES))
    pieces = [*LEGACY_ENTITY_NAMES, "a", "am", "A", "Ag", "x", ";", "&", "1", " ", "é"]
    rng = random.Random(5)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(6)))
        found, expected = tree.search(text), flat.search(text)
        assert (found is None) is (expected is None), text
        assert found is None or found.start() == expected.start(), text  # type: ignore[union-attr]
    assert re.fullmatch(prefix_tree_pattern(["ab", "abc", "b"]), "abc")
    assert not re.fullmatch(prefix_tree_pattern(["ab", "abc", "b"]), "ac")


def test_locations_are_shared_by_name_and_stay_bounded() -> None:
    locations = Locations(Source.QUERY)
    first = locations.at("id")
    assert first is locations.at("id")
    assert (first.source, first.name) == (Source.QUERY, "id")
    for index in range(Locations.MAX_NAMES):  # invented names fill it: it starts over
        locations.at(f"name{index}")
    again = locations.at("id")
    assert again is not first
    assert (again.source, again.name) == (Source.QUERY, "id")
    assert again is locations.at("id")  # and learns the names that follow
    long_name = "n" * (Locations.MAX_NAME_CHARS + 1)
    assert locations.at(long_name) == locations.at(long_name)
    assert locations.at(long_name) is not locations.at(long_name)  # not remembered


@pytest.mark.parametrize(
    ("text", "stops", "plain"),
    [
        ("", "%", True),
        ("abc-_.~ /x", "%\\\x00&", True),
        ("50%", "%\\\x00&", False),
        ("a\x00b", "%\\\x00", False),
        ("a+b", "%\\\x00", True),
        ("a+b", "%\\\x00+", False),
        ("caf\u00e9", "%", False),  # not ASCII
        ("x" * 1000 + "&", "&", False),
    ],
)
def test_plain_text_in_c_and_in_python_agree(text: str, stops: str, plain: bool) -> None:
    assert _plain_text_in_python(text, stops) is plain
    if speedups is not None:
        assert speedups.plain_text(text, stops) is plain


@needs_c
def test_plain_text_in_c_checks_its_arguments() -> None:
    with pytest.raises(TypeError):
        speedups.plain_text("x", "\u00e9")  # the stops must be ASCII
    with pytest.raises(TypeError):
        speedups.plain_text(b"x", "%")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "flat"),
    [
        ("", []),
        ("a=1", ["a", "1"]),
        ("a=1&b=&c&&d=x=y", ["a", "1", "b", "", "c", "", "d", "x=y"]),
        ("&&=&=v&", ["", "", "", "v"]),
        ("q=blue+shoes&q=%41", ["q", "blue+shoes", "q", "%41"]),
    ],
)
def test_split_pairs_in_c_and_in_python_agree(text: str, flat: list[str]) -> None:
    assert _split_pairs_in_python(text) == flat
    if speedups is not None:
        assert speedups.split_pairs(text) == flat


@needs_c
def test_split_pairs_in_c_leaves_other_texts_to_python() -> None:
    assert speedups.split_pairs("caf\u00e9=1") is None
    with pytest.raises(TypeError):
        speedups.split_pairs(b"a=1")  # type: ignore[arg-type]
    rng = random.Random(5)
    for _ in range(3000):
        text = "".join(rng.choice("ab=&%+ ") for _ in range(rng.randint(0, 30)))
        assert speedups.split_pairs(text) == _split_pairs_in_python(text)


def test_parameters_that_are_not_ascii_are_split_too() -> None:
    locations = Locations(Source.QUERY)
    values = parameter_inputs("caf\u00e9=cr\u00e8me&x", locations, locations)
    assert [v.text for v in values] == ["caf\u00e9", "cr\u00e8me", "x"]


def test_header_inputs_are_remembered_per_name_and_value_and_stay_bounded() -> None:
    memo = _HeaderInputs()
    agent = memo.of("User-Agent", "curl/8.5")
    assert agent is not None and agent.text == "curl/8.5" and agent.location.name == "user-agent"
    assert memo.of("User-Agent", "curl/8.5") is agent
    assert memo.of("User-Agent", "curl/8.6") is not agent
    assert memo.of("Accept-Encoding", "gzip") is None  # not inspected: remembered too
    assert memo.of("Cookie", "a=1") is memo.of("cookie", "b=2")  # cookies go their own way
    for index in range(_HeaderInputs.MAX_ENTRIES):  # invented values fill it: it starts over
        memo.of("X-Id", str(index))
    again = memo.of("User-Agent", "curl/8.5")
    assert again is not agent and again == agent
    assert memo.of("User-Agent", "curl/8.5") is again
