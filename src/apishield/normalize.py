"""Request normalisation: decode what attackers encode, once, for every check.

Canonical text (:func:`canonical`) undoes, in bounded rounds until nothing changes:

* percent-encoding, repeated (``%252e`` → ``.``), including IIS ``%uXXXX``;
* UTF-8 decoded leniently: overlong forms (``%c0%af``, ``%e0%80%af``) become the
  character they spell, CESU-8 surrogate pairs are joined, and any other invalid
  byte is read as latin-1, so no byte is ever lost to a replacement character;
* ``\\xHH``, ``\\uHHHH`` and ``\\u{H…}`` escapes (as a JavaScript consumer would);
* HTML character references: named, decimal, hex, with or without ``;``.

Then NUL bytes are removed and non-ASCII text is NFKC-folded (fullwidth ``U+FF1C`` is
``<``). Case and whitespace are kept: detectors match case-insensitively. Other
backslashes are kept too (they matter to SQL and shell detectors); only paths
treat ``\\`` as ``/``. Plain ASCII values without ``%``, ``&``, ``\\`` or NUL are
returned unchanged at the cost of a few ``in`` tests. ``+`` means a space only in
query strings and form bodies (:func:`canonical_param`), and only before the first
decoding round, as an ``application/x-www-form-urlencoded`` reader would see it.

Text chars U+0000-U+00FF are read as the bytes they stand for (adapters decode the
request head as latin-1), so raw UTF-8 in a header is seen as the text it spells.

Request head inputs (:func:`request_head_inputs`):

* the whole path (``PATH``: decoded, dot segments kept so traversal stays visible)
  and each raw segment (``PATH_SEGMENT``, name = 0-based index, empty ones skipped);
* query keys and values, split on ``&`` only, duplicates kept, empty values skipped;
* cookie keys and values from every ``Cookie`` header;
* every other header, except :data:`SKIPPED_HEADERS`. Protocol headers (``Accept*``,
  ``Cache-Control``, ``If-*``, ``Range``, ``Host``, ...) and ``Sec-Fetch-*``/``Sec-CH-*``
  are inspected unless their value has exactly the grammar of that header
  (:data:`_PROTOCOL_GRAMMARS`, :data:`_BROWSER_SEC_VALUE`): nothing stops a client
  from putting a payload there. ``Authorization`` and ``Proxy-Authorization`` are
  skipped on purpose: they carry credentials (base64, JWTs) that would be noise for
  detectors and must not end up as evidence in security events.

Limits: the request target against ``max_url_bytes`` (status 414), the header count
and size (name + value + 4 bytes for ``": "`` and CRLF) against ``max_headers`` and
``max_header_bytes``, and query pairs plus cookies against ``max_params``.
"""

from __future__ import annotations

import codecs
import html
import html.entities
import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Final

from apishield.findings import Location, Source
from apishield.http import Request
from apishield.inputs import InputRejected, InputValue
from apishield.memo import remember
from apishield.native import SPEEDUPS
from apishield.policy import Limits

MAX_DECODE_ROUNDS: Final = 5
URI_TOO_LONG: Final = 414
# Headers that carry credentials: never inspected (their base64 and JWT values are
# noise to detectors and must not end up as evidence), and the Cookie header, which
# is inspected cookie by cookie.
SKIPPED_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie"})

# Protocol headers are skipped only while their value has the grammar the protocol
# gives it: a list of tokens with parameters, a date, an entity tag, a byte range.
# Anything else (a ``${jndi:...}`` appended to Accept-Encoding) is inspected like any
# other header: nothing stops a client from putting a payload there.
_TOKEN: Final = r"[A-Za-z0-9*+._/-]+"  # RFC 9110 tokens allow more; real values never need it
_PARAMETER_VALUE: Final = rf'(?:{_TOKEN}|"[A-Za-z0-9 *+,.:;=?@_/-]*")'
_TOKEN_LIST: Final = re.compile(
    rf"(?:{_TOKEN}(?:\s*=\s*{_PARAMETER_VALUE})?(?:\s*[,;]\s*|\s*$))*",
)
# Dates as sent, with any zone name (``Asia/Shanghai``), or a bare number.
_HTTP_DATE: Final = r"[A-Za-z]{3}, \d{1,2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} [\w/+-]+|\d{1,19}"
_ENTITY_TAG: Final = r'(?:W/)?(?:"[A-Za-z0-9+/=._:-]*"|[A-Za-z0-9+/=._:-]+)'  # quoted or not
_ENTITY_TAGS: Final = rf"\*|{_ENTITY_TAG}(?:\s*,\s*{_ENTITY_TAG})*"
_PROTOCOL_GRAMMARS: dict[str, re.Pattern[str]] = {
    **dict.fromkeys(
        (
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "cache-control",
            "pragma",
            "connection",
            "keep-alive",
            "te",
            "trailer",
            "upgrade",
            "transfer-encoding",
            "content-encoding",
            "priority",
            "dnt",
            "upgrade-insecure-requests",
        ),
        _TOKEN_LIST,
    ),
    "host": re.compile(r"(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"),
    "content-length": re.compile(r"\d{1,19}"),
    "if-match": re.compile(_ENTITY_TAGS),
    "if-none-match": re.compile(_ENTITY_TAGS),
    "if-modified-since": re.compile(_HTTP_DATE),
    "if-unmodified-since": re.compile(_HTTP_DATE),
    "if-range": re.compile(rf"{_HTTP_DATE}|{_ENTITY_TAGS}"),
    "range": re.compile(r"bytes=\d*-\d*(?:\s*,\s*\d*-\d*)*"),
}

# The exact shapes browsers send in Sec-Fetch-* and Sec-CH-* headers: a boolean
# (?0/?1), a lowercase token, a quoted token, or a list of "brand";v="version" whose
# brands are words or GREASE brands ("Not;A=Brand"). Values of exactly that shape
# cannot carry a payload and are not inspected (their quotes and semicolons would
# send every browser request through the SQL and shell analysers); anything else in
# a Sec-* header is inspected like any other header.
_BRAND: Final = r'"(?:[A-Za-z0-9 ._-]{1,48}|Not[ -/:-@_]A[ -/:-@_]Brand)";v="[0-9.]{1,24}"'
_BROWSER_SEC_VALUE: Final = re.compile(
    rf'\?[01]|[a-z][a-z-]{{0,31}}|"[A-Za-z0-9 ._-]{{0,48}}"|{_BRAND}(?:, ?{_BRAND}){{0,15}}'
)
# A run of complete loose UTF-8 sequences in bytes read as latin-1: a lead byte and
# as many continuation bytes as it announces, then maybe more such sequences. The lead
# comes first, alone, so that the regex engine skips to candidate bytes at C speed.
_LOOSE_TAIL: Final = (
    "(?:(?<=[\xc0-\xdf])[\x80-\xbf]|(?<=[\xe0-\xef])[\x80-\xbf]{2}"
    "|(?<=[\xf0-\xf7])[\x80-\xbf]{3}|(?<=[\xf8-\xfb])[\x80-\xbf]{4}"
    "|(?<=[\xfc\xfd])[\x80-\xbf]{5})"
)
_SEQUENCE_RUN: Final = re.compile(f"([\xc0-\xfd]{_LOOSE_TAIL}(?:[\xc0-\xfd]{_LOOSE_TAIL})*)")
# A ``%`` that starts no ``%XX`` escape: kept as it is.
_STRAY_PERCENT: Final = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_HEX_BYTES: Final = {
    f"{high}{low}".encode(): bytes([int(high + low, 16)])
    for high in "0123456789abcdefABCDEF"
    for low in "0123456789abcdefABCDEF"
}

_PrefixTree = dict[str, "_PrefixTree"]  # a character to the tree of what may follow it


def prefix_tree_pattern(words: Iterable[str]) -> str:
    """A regex matching where one of ``words`` starts, as a prefix tree of alternations.

    Python's ``re`` tries the branches of a flat alternation one after another; in a
    tree it tries one branch per distinct next character (a search for one of the 106
    legacy HTML entity names runs about twice as fast).
    """
    root: _PrefixTree = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def branches(node: _PrefixTree) -> str:
        alternatives = [
            re.escape(char) + branches(child) for char, child in sorted(node.items()) if char
        ]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"
        return f"(?:{body})?" if "" in node else body

    return branches(root)


# Where html.unescape would change something: a numeric reference, a name ending in
# ";", or the start of one of the legacy names it also reads without the ";".
LEGACY_ENTITY_NAMES: Final = tuple(n for n in html.entities.html5 if not n.endswith(";"))
_CHARACTER_REFERENCE: Final = re.compile(
    f"&(?:#|[A-Za-z0-9]+;|{prefix_tree_pattern(LEGACY_ENTITY_NAMES)})"
)
_BACKSLASH_ESCAPE: Final = re.compile(
    r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|u\{([0-9a-fA-F]{1,6})\})"
)
_PATH_LOCATION: Final = Location(Source.PATH)
_QUERY_LOCATION: Final = Location(Source.QUERY)
_HEADER_LOCATION: Final = Location(Source.HEADER)


# -- lenient UTF-8 ------------------------------------------------------------------


def _sequence(data: bytes, start: int) -> tuple[int, int] | None:
    """The code point and end of a loose (possibly overlong) UTF-8 sequence at ``start``."""
    lead = data[start]
    if 0xC0 <= lead <= 0xDF:
        length, point = 2, lead & 0x1F
    elif 0xE0 <= lead <= 0xEF:
        length, point = 3, lead & 0x0F
    elif 0xF0 <= lead <= 0xF7:
        length, point = 4, lead & 0x07
    elif 0xF8 <= lead <= 0xFD:
        length, point = (5, lead & 0x03) if lead <= 0xFB else (6, lead & 0x01)
    else:
        return None
    end = start + length
    if end > len(data):
        return None
    for byte in data[start + 1 : end]:
        if byte & 0xC0 != 0x80:
            return None
        point = point << 6 | byte & 0x3F
    return (point, end) if point <= 0x10FFFF else None


def _loose_char(data: bytes, start: int) -> tuple[str, int]:
    """The character at ``start`` read loosely, and where the next one starts."""
    found = _sequence(data, start)
    if found is None:
        return chr(data[start]), start + 1
    point, end = found
    if 0xDC00 <= point <= 0xDFFF:
        return "\ufffd", end
    if 0xD800 <= point <= 0xDBFF:
        low = _sequence(data, end) if end < len(data) else None
        if low is None or not 0xDC00 <= low[0] <= 0xDFFF:
            return "\ufffd", end
        return chr(0x10000 + ((point - 0xD800) << 10) + (low[0] - 0xDC00)), low[1]
    return chr(point), end


def _loose_run(data: bytes) -> str:
    """A run of complete loose sequences, read one character at a time."""
    chars, position = [], 0
    while position < len(data):
        char, position = _loose_char(data, position)
        chars.append(char)
    return "".join(chars)


def _read_run(run: str) -> str:
    """A run of :data:`_SEQUENCE_RUN` (its bytes as latin-1), strictly when it is UTF-8."""
    data = run.encode("latin-1")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _loose_run(data)


def decode_bytes(data: bytes) -> str:
    """``data`` as UTF-8, decoded leniently (overlong forms decoded, bad bytes latin-1).

    A byte outside a complete (strict or loose) sequence reads as latin-1, so the
    text is first read as latin-1 and split around the runs of complete sequences;
    the runs are decoded all at once when they are strict UTF-8 (the common case),
    else one by one.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    parts = _SEQUENCE_RUN.split(data.decode("latin-1"))  # runs at the odd indices
    if len(parts) == 1:
        return parts[0]
    runs = parts[1::2]
    try:  # runs hold no NUL: it separates them
        parts[1::2] = "\x00".join(runs).encode("latin-1").decode("utf-8").split("\x00")
    except UnicodeDecodeError:
        parts[1::2] = [_read_run(run) for run in runs]
    return "".join(parts)


def _to_bytes(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


# -- decoding steps -----------------------------------------------------------------


def percent_decode(text: str, *, plus: bool = False) -> str:
    """One round of ``%XX`` and ``%uXXXX`` decoding, then lenient UTF-8.

    ``%XX`` escapes become ``\\xXX`` ones that CPython's escape decoder reads in C
    (backslashes doubled first, a ``%`` that starts no escape spelled ``\\x25``);
    only a text with ``%u`` forms among such stray ``%`` is read escape by escape.
    """
    data = _to_bytes(text.replace("+", " ") if plus else text)
    if data.find(b"\\") >= 0:  # find: see parsers._is_plain_json
        data = data.replace(b"\\", b"\\\\")
    try:  # a stray ``%`` is rare: the decoder's error finds one faster than a search
        raw = codecs.escape_decode(data.replace(b"%", b"\\x"))[0]
    except ValueError:  # invalid \\x escape: some ``%`` starts no escape
        if b"%u" in data or b"%U" in data:
            return _percent_decode_each(text, plus)
        stray_spelled = _STRAY_PERCENT.sub(rb"\\x25", data)
        raw = codecs.escape_decode(stray_spelled.replace(b"%", b"\\x"))[0]
    return decode_bytes(raw)


def _percent_decode_each(text: str, plus: bool) -> str:
    """:func:`percent_decode`, one ``%`` at a time (for ``%uXXXX`` forms)."""
    parts = _to_bytes(text.replace("+", " ") if plus else text).split(b"%")
    out = [parts[0]]
    for part in parts[1:]:
        byte = _HEX_BYTES.get(part[:2])
        if byte is not None:
            out.append(byte)
            out.append(part[2:])
        elif part[:1] in (b"u", b"U") and _HEX_BYTES.keys() >= {part[1:3], part[3:5]}:
            out.append(chr(int(part[1:5], 16)).encode("utf-8", "surrogatepass"))
            out.append(part[5:])
        else:
            out.append(b"%")
            out.append(part)
    return decode_bytes(b"".join(out))


def _unescape_backslash(match: re.Match[str]) -> str:
    digits = match.group(1) or match.group(2) or match.group(3)
    point = int(digits, 16)
    return chr(point) if point <= 0x10FFFF else match.group(0)


def _decode_round(text: str, plus: bool, first: bool) -> str:
    if "%" in text or (first and not text.isascii()):
        text = percent_decode(text, plus=plus and first)
    elif plus and first and "+" in text:
        text = text.replace("+", " ")
    if "\\" in text:
        text = _BACKSLASH_ESCAPE.sub(_unescape_backslash, text)
    if "&" in text and _CHARACTER_REFERENCE.search(text) is not None:
        text = html.unescape(text)
    return text


def _fold_unicode(text: str) -> str:
    """Join or replace stray surrogates, then NFKC (fullwidth and compatibility forms)."""
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return unicodedata.normalize("NFKC", text)


def _decode(text: str, plus: bool) -> str:
    for round_ in range(MAX_DECODE_ROUNDS):
        decoded = _decode_round(text, plus, round_ == 0)
        if decoded == text:
            break
        text = decoded
        if "%" not in text and "\\" not in text and "&" not in text:
            break  # a further round could not change it
    if not text.isascii():
        text = _fold_unicode(text)
    return text.replace("\x00", "") if "\x00" in text else text


def _plain_text_in_python(text: str, stops: str) -> bool:
    """True when ``text`` is ASCII without any character of ``stops``."""
    if not text.isascii():
        return False
    return all(stop not in text for stop in stops)


# The C form when the build has it: one pass instead of a method call and a search
# per character.
_plain_text: Final[Callable[[str, str], bool]] = (
    _plain_text_in_python if SPEEDUPS is None else SPEEDUPS.plain_text
)

# What keeps a text from being its own canonical form (see the module docstring):
_DECODING_STOPS: Final = "%\\\x00"  # percent-encoding, backslash escapes, NUL
_PARAMETER_DECODING_STOPS: Final = "%\\\x00+"  # and + for a space in a parameter
_CANONICAL_STOPS: Final = "%\\\x00&"  # and HTML entities
_PARAMETER_CANONICAL_STOPS: Final = "%\\\x00&+"


def is_plain(text: str, *, plus: bool = False) -> bool:
    """True when no decoding step applies to ``text``, ``&`` aside (callers split on it
    or test it). Checking a whole container once spares a call per value."""
    return _plain_text(text, _PARAMETER_DECODING_STOPS if plus else _DECODING_STOPS)


# Decoded texts of up to this many characters are remembered: browsers repeat the
# same encoded Referer, query values and cookies request after request.
REMEMBERED_TEXT_CHARS: Final = 1024
_decode_remembered: Final = lru_cache(maxsize=2048)(_decode)


def _decoded(text: str, plus: bool) -> str:
    if len(text) <= REMEMBERED_TEXT_CHARS:
        return _decode_remembered(text, plus)
    return _decode(text, plus)


def canonical(text: str) -> str:
    """The canonical form detectors match against (see the module docstring)."""
    if _plain_text(text, _CANONICAL_STOPS):  # called for every value, mostly plain ones
        return text
    return _decoded(text, False)


def canonical_param(text: str) -> str:
    """:func:`canonical` for query and form parameters, where ``+`` is a space (without
    a ``+``, decoding a parameter is decoding any text)."""
    if _plain_text(text, _PARAMETER_CANONICAL_STOPS):
        return text
    return _decoded(text, "+" in text)


# -- paths --------------------------------------------------------------------------


def _resolve_dots(path: str) -> str:
    """Collapse ``//``, drop ``;params`` and resolve ``.``/``..`` without leaving the root."""
    parts = path.split("/")
    kept: list[str] = []
    for part in parts:
        segment = part.partition(";")[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if kept:
                kept.pop()
            continue
        kept.append(segment)
    last = parts[-1].partition(";")[0]
    trailing = "/" if kept and last in ("", ".", "..") else ""
    return "/" + "/".join(kept) + trailing


def decode_path(path: str) -> str:
    """The path used for route matching, as a lenient server would resolve it.

    Percent-decoded once (``%uXXXX`` and overlong UTF-8 included), ``\\`` read as
    ``/``, NUL removed, then empty segments, ``;`` path parameters (Tomcat's
    ``/..;/`` trick) and dot segments resolved; ``..`` never climbs above ``/``.
    """
    if (
        path.startswith("/")
        and _plain_text(path, "%\\;\x00")
        and "//" not in path
        and "/." not in path
    ):
        return path
    decoded = percent_decode(path) if "%" in path or not path.isascii() else path
    return _resolve_dots(decoded.replace("\\", "/").replace("\x00", ""))


# -- request head -------------------------------------------------------------------


class Locations:
    """``name → Location(source, name)``, remembered: values from one place share a
    Location. Past :attr:`MAX_NAMES` names (hostile traffic inventing them) it starts
    over, so it stays bounded and learns the names of the traffic that follows; names
    longer than :attr:`MAX_NAME_CHARS` get a Location of their own each time."""

    MAX_NAMES: Final = 2048
    MAX_NAME_CHARS: Final = 256

    def __init__(self, source: Source) -> None:
        self.source = source
        self._known: dict[str, Location] = {}

    def at(self, name: str) -> Location:
        """The Location of ``name`` in this source."""
        location = self._known.get(name)
        if location is None:
            location = Location(self.source, name)
            if len(name) <= self.MAX_NAME_CHARS:
                remember(self._known, name, location, self.MAX_NAMES)
        return location


_segment_locations: Final = Locations(Source.PATH_SEGMENT)
_header_locations: Final = Locations(Source.HEADER)
_cookie_locations: Final = Locations(Source.COOKIE)
_cookie_key_locations: Final = Locations(Source.COOKIE_KEY)
_query_locations: Final = Locations(Source.QUERY)
_query_key_locations: Final = Locations(Source.QUERY_KEY)


def parameter_inputs(
    text: str, key_locations: Locations, value_locations: Locations
) -> list[InputValue]:
    """Keys and values of an ``&``-separated, urlencoded string; duplicates kept.

    Each pair gives a key value (name = decoded key) and, when not empty, a value;
    ``key_locations`` and ``value_locations`` place them.
    """
    values: list[InputValue] = []
    decode = not is_plain(text, plus=True)
    flat = _split_pairs(text)
    if flat is None:
        flat = _split_pairs_in_python(text)
    for index in range(0, len(flat), 2):
        key = flat[index]
        name = canonical_param(key) if decode else key
        values.append(InputValue(key_locations.at(name), key, name))
        raw = flat[index + 1]
        if raw:
            text_ = canonical_param(raw) if decode else raw
            values.append(InputValue(value_locations.at(name), raw, text_))
    return values


def _split_pairs_in_python(text: str) -> list[str]:
    """Key, raw value, key, raw value... of the non-empty ``&``-separated pieces of
    ``text`` (the value empty when there is no ``=``)."""
    flat: list[str] = []
    for pair in text.split("&"):
        if pair:
            key, _, raw = pair.partition("=")
            flat.append(key)
            flat.append(raw)
    return flat


# The C form when the build has it: for ASCII texts (else None), its texts from a
# cache of recurring ones, hashed once.
_split_pairs: Final[Callable[[str], list[str] | None]] = (
    _split_pairs_in_python if SPEEDUPS is None else SPEEDUPS.split_pairs
)


def count_parameters(text: str) -> int:
    """The number of ``&``-separated pairs in ``text``, empty ones included (an upper bound)."""
    return text.count("&") + 1 if text else 0


def _path_inputs(path: str) -> tuple[InputValue, ...]:
    decode = not is_plain(path) or "&" in path
    values = [InputValue(_PATH_LOCATION, path, canonical(path) if decode else path)]
    for index, segment in enumerate(path.split("/")[1:]):
        if segment:
            text = canonical(segment) if decode else segment
            values.append(InputValue(_segment_locations.at(str(index)), segment, text))
    return tuple(values)


# Remembered for paths of up to REMEMBERED_TEXT_CHARS: clients call the same endpoints.
_remembered_path_inputs: Final = lru_cache(maxsize=4096)(_path_inputs)


def _cookie_inputs(header: str) -> list[InputValue]:
    values: list[InputValue] = []
    decode = not is_plain(header) or "&" in header
    for piece in header.split(";"):
        key, _, raw = piece.partition("=")
        key, raw = key.strip(), raw.strip()
        if not key and not raw:
            continue
        values.append(
            InputValue(_cookie_key_locations.at(key), key, canonical(key) if decode else key)
        )
        if raw:
            text = canonical(raw) if decode else raw
            values.append(InputValue(_cookie_locations.at(key), raw, text))
    return values


def _check_request_line(request: Request, limits: Limits) -> None:
    target = request.target
    ascii_only = _plain_text(target, "")  # no stop characters: ASCII alone
    size = len(target) if ascii_only else len(target.encode("utf-8", "surrogatepass"))
    if size > limits.max_url_bytes:
        raise InputRejected(
            "limits.url",
            URI_TOO_LONG,
            f"request target is {size} bytes, more than the limit of {limits.max_url_bytes}",
            _PATH_LOCATION,
        )
    if len(request.headers) > limits.max_headers:
        raise InputRejected(
            "limits.headers",
            limits.statuses.headers,
            f"request has {len(request.headers)} headers, more than the limit of "
            f"{limits.max_headers}",
            _HEADER_LOCATION,
        )


def _has_protocol_grammar(name: str, value: str) -> bool:
    """True when header ``name`` (lower-case) has exactly the grammar its protocol gives it."""
    grammar = _PROTOCOL_GRAMMARS.get(name)
    if grammar is not None:
        return grammar.fullmatch(value) is not None
    return name.startswith("sec-") and _BROWSER_SEC_VALUE.fullmatch(value) is not None


# What _header_input gives for a Cookie header, which is inspected cookie by cookie.
_COOKIE_HEADER: Final = InputValue(Location(Source.HEADER, "cookie"), "", "")


def _header_input(name: str, value: str) -> InputValue | None:
    """The inspected value of one header, ``None`` if it is not inspected, or
    :data:`_COOKIE_HEADER`."""
    lower = name.lower()
    if lower == "cookie":
        return _COOKIE_HEADER
    if lower in SKIPPED_HEADERS or _has_protocol_grammar(lower, value):
        return None
    return InputValue(_header_locations.at(lower), value, canonical(value))


class _HeaderInputs:
    """:func:`_header_input` remembered in a dictionary per header name: clients send
    the same User-Agent, Accept, Referer and Sec-* values request after request. Two
    lookups of strings whose hashes are known, where ``lru_cache`` would build and
    hash a key tuple. Past :attr:`MAX_ENTRIES` it starts over."""

    MAX_ENTRIES: Final = 4096

    def __init__(self) -> None:
        self._by_name: dict[str, dict[str, InputValue | None]] = {}
        self._entries = 0

    def of(self, name: str, value: str) -> InputValue | None:
        """What :func:`_header_input` gives for this header."""
        by_value = self._by_name.get(name)
        if by_value is None:
            by_value = self._by_name[name] = {}
        found = by_value.get(value, _UNKNOWN)
        if found is _UNKNOWN:
            found = _header_input(name, value)
            if self._entries >= self.MAX_ENTRIES:
                self._by_name.clear()
                self._entries = 0
                by_value = self._by_name[name] = {}
            by_value[value] = found
            self._entries += 1
        return found


_UNKNOWN: Final = InputValue(Location(Source.HEADER, ""), "", "")  # not yet remembered
# For headers of up to REMEMBERED_TEXT_CHARS, name and value together
_remembered_header_inputs: Final = _HeaderInputs()


def _header_inputs(request: Request, limits: Limits) -> tuple[list[InputValue], list[str]]:
    """Inspected header values and the raw ``Cookie`` headers; checks the header size."""
    values: list[InputValue] = []
    cookies: list[str] = []
    size = 0  # names and values, plus ": " and CRLF per header
    for name, value in request.headers:
        size += len(name) + len(value) + 4
        found = (
            _remembered_header_inputs.of(name, value)
            if len(name) + len(value) <= REMEMBERED_TEXT_CHARS
            else _header_input(name, value)
        )
        if found is _COOKIE_HEADER:
            cookies.append(value)
        elif found is not None:
            values.append(found)
    if size > limits.max_header_bytes:
        raise InputRejected(
            "limits.headers",
            limits.statuses.headers,
            f"request headers are {size} bytes, more than the limit of {limits.max_header_bytes}",
            _HEADER_LOCATION,
        )
    return values, cookies


def request_head_inputs(request: Request, limits: Limits) -> list[InputValue]:
    """Every user-controlled value of the request line and headers."""
    _check_request_line(request, limits)
    header_values, cookies = _header_inputs(request, limits)
    query = request.query
    count = count_parameters(query)
    count += sum(header.count(";") + 1 for header in cookies)
    if count > limits.max_params:
        raise InputRejected(
            "limits.params",
            limits.statuses.malformed,
            f"request has {count} query parameters and cookies, more than the limit of "
            f"{limits.max_params}",
            _QUERY_LOCATION,
        )
    path = request.path
    values = list(
        _remembered_path_inputs(path) if len(path) <= REMEMBERED_TEXT_CHARS else _path_inputs(path)
    )
    if query:
        values += parameter_inputs(query, _query_key_locations, _query_locations)
    values += header_values
    for header in cookies:
        values += _cookie_inputs(header)
    return values
