"""Body parsers: every value of a request body, with its location.

The media type comes from ``Content-Type``, parsed case-insensitively with quoted
parameters; a parameter given twice (two ``boundary`` or ``charset`` values, a
parser-differential trick) is rejected. Parsers by media type:

* JSON (``application/json``, ``application/*+json``): every string value
  (``JSON``, name = RFC 6901 pointer) and every object key (``JSON_KEY``, name =
  the member's pointer). Numbers, booleans and null are not text and are skipped.
  Duplicate keys are all inspected, not only the last one a parser keeps.
* Forms (``application/x-www-form-urlencoded``): keys and values, as a query string.
* ``multipart/form-data``: each part's name and filename(s) (``MULTIPART_NAME``,
  name = part name) and its content (``MULTIPART``, name = part name).
* XML (``application/xml``, ``text/xml``, ``application/*+xml``): text and attribute
  values (``XML``, name = ``/a/b[2]/@attr``-style path). Parsed by expat without
  ever expanding entities into text or fetching anything; the raw ``<!DOCTYPE …>``
  with its internal subset is itself a value (name ``!DOCTYPE``) for XXE checks,
  and entity references stay visible as ``&name;`` in the text.
* Anything else: one ``BODY`` value, decoded with the declared charset. A body
  without a JSON type that starts with ``{`` or ``[`` and parses as JSON is treated
  as JSON, since attackers omit content types.

Bodies and files of a binary media type (:data:`BINARY_PREFIXES`,
:data:`BINARY_TYPES`) are inspected only for their first :data:`FILE_PREVIEW_BYTES`,
enough for a script hidden at the start of an "image"; everything else is
inspected whole (the engine bounds the body size).

A body sent with a ``Content-Encoding`` (``gzip``, ``x-gzip``, ``deflate``, in any
sequence) is decompressed first (:func:`decode_content`), so a compressed payload is
inspected as the application will read it; its decompressed size is bounded by the
body limit (a decompression bomb is answered ``limits.body_size``). An encoding this
module cannot undo (``br``, ``zstd``, ...) is refused (``parse.content_encoding``, with
the policy's ``encoding`` status, 415 by default) rather than passed on uninspected.

A body that cannot be parsed as its declared type is rejected (``parse.json``,
``parse.xml``, ``parse.multipart``, ``parse.content_type``) with the policy's
``malformed`` status, rather than passed on uninspected. ``max_params`` bounds the
body's values (JSON scalars, form pairs, parts, XML texts and attributes) and
``max_depth`` JSON and XML nesting. The body size is bounded by the engine.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Collection
from functools import lru_cache
from typing import Any, Final
from xml.parsers import expat

import orjson

from apishield.findings import Location, Source
from apishield.inputs import InputRejected, InputValue
from apishield.memo import remember
from apishield.native import SPEEDUPS
from apishield.normalize import (
    Locations,
    canonical,
    count_parameters,
    decode_bytes,
    parameter_inputs,
    percent_decode,
)
from apishield.policy import Limits

FILE_PREVIEW_BYTES: Final = 4096
MAX_PART_HEADERS: Final = 32
MAX_BOUNDARY_LENGTH: Final = 200

_BODY_LOCATION: Final = Location(Source.BODY)
_UTF8_BOM: Final = b"\xef\xbb\xbf"  # some clients send one; orjson refuses it
_json_locations: Final = Locations(Source.JSON)
_form_locations: Final = Locations(Source.FORM)
_form_key_locations: Final = Locations(Source.FORM_KEY)
_multipart_locations: Final = Locations(Source.MULTIPART)
_multipart_name_locations: Final = Locations(Source.MULTIPART_NAME)
_xml_locations: Final = Locations(Source.XML)
_PARAMETER: Final = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_QUOTED_PAIR: Final = re.compile(r"\\(.)")
_QUOTED_FILENAME: Final = re.compile(r';\s*filename\s*=\s*"((?:[^"\\]|\\.)*)"', re.IGNORECASE)
_MEMBER_COLON: Final = re.compile(rb'"[ \t\r\n]*:')
_QUOTE_SPACE: Final = re.compile(rb'"[ \t\r\n]')
BINARY_PREFIXES: Final = ("image/", "audio/", "video/", "font/")
BINARY_TYPES: Final = frozenset({"application/zip", "application/gzip", "application/pdf"})


# -- content types ------------------------------------------------------------------


def parse_header_parameters(value: str) -> tuple[str, dict[str, str]]:
    """``'Text/HTML; charset="utf-8"'`` → ``('text/html', {'charset': 'utf-8'})``.

    The leading token is lower-cased, parameter names too; quoted values are
    unquoted. A parameter given twice raises ``ValueError``.
    """
    head, sep, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAMETER.finditer(sep + rest):
        name = match.group(1).lower()
        raw = match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = _QUOTED_PAIR.sub(r"\1", raw[1:-1])
        if name in params:
            raise ValueError(f"parameter {name!r} is given twice")
        params[name] = raw
    return head.strip().lower(), params


# Parsed Content-Type values (read, never changed): clients send the same few.
_content_types: Final[dict[str, tuple[str, dict[str, str]]]] = {}
_CONTENT_TYPES_REMEMBERED: Final = 256


def _content_type(value: str | None, limits: Limits) -> tuple[str, dict[str, str]]:
    value = value or ""
    parsed = _content_types.get(value)
    if parsed is not None:
        return parsed
    try:
        parsed = parse_header_parameters(value)
    except ValueError as exc:
        raise _malformed("parse.content_type", f"Content-Type is ambiguous: {exc}", limits) from exc
    return remember(_content_types, value, parsed, _CONTENT_TYPES_REMEMBERED)


def _is_json(media: str) -> bool:
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _is_xml(media: str) -> bool:
    return media in ("application/xml", "text/xml") or (
        media.startswith("application/") and media.endswith("+xml")
    )


def _is_binary(media: str) -> bool:
    return media.startswith(BINARY_PREFIXES) or media in BINARY_TYPES


def _malformed(check: str, message: str, limits: Limits) -> InputRejected:
    return InputRejected(check, limits.statuses.malformed, message, _BODY_LOCATION)


def _too_many(count: int, limits: Limits, where: Location) -> InputRejected:
    return InputRejected(
        "limits.params",
        limits.statuses.malformed,
        f"request body has more than {limits.max_params} values ({count} so far)",
        where,
    )


def _too_deep(limits: Limits, where: Location) -> InputRejected:
    return InputRejected(
        "limits.depth",
        limits.statuses.malformed,
        f"request body nests deeper than {limits.max_depth} levels",
        where,
    )


def _is_utf8(charset: str | None) -> bool:
    return charset is None or charset.lower().replace("_", "-") in ("utf-8", "utf8")


def decode_text(body: bytes, charset: str | None) -> str:
    """``body`` in ``charset``; UTF-8 (lenient) when none is given or it is unknown."""
    if charset is not None and not _is_utf8(charset):
        try:
            return body.decode(charset, "replace")
        except (LookupError, ValueError):  # unknown, not a text codec, or a bad name
            pass
    return decode_bytes(body)


# -- JSON ---------------------------------------------------------------------------


class _Pairs:
    """A JSON object as its member list, duplicates kept (from the fallback parser)."""

    __slots__ = ("members",)

    def __init__(self, members: list[tuple[str, Any]]) -> None:
        self.members = members


def _pointer(parent: str, key: str) -> str:
    """``parent`` extended by ``key`` as an RFC 6901 reference token."""
    if "~" in key or "/" in key:
        key = key.replace("~", "~0").replace("/", "~1")
    return f"{parent}/{key}"


class _JsonWalker:
    """Collects the string values and keys of a parsed JSON document, depth first."""

    __slots__ = ("decode", "limits", "members", "scalars", "values")

    def __init__(self, limits: Limits, decode: bool) -> None:
        self.decode = decode  # False when no string in the document can need decoding
        self.limits = limits
        self.values: list[InputValue] = []
        self.members = 0
        self.scalars = 0

    def node(self, node: Any, pointer: str, depth: int) -> None:
        kind = type(node)
        if kind is dict:
            self.members_of(node.items(), pointer, depth + 1)
        elif kind is _Pairs:
            self.members_of(node.members, pointer, depth + 1)
        elif kind is list:
            self.elements(node, pointer, depth + 1)
        else:
            if kind is str:
                text = canonical(node) if self.decode else node
                self.values.append(InputValue(_json_locations.at(pointer), node, text))
            self.count(1, pointer)

    def count(self, scalars: int, pointer: str) -> None:
        self.scalars += scalars
        if self.scalars > self.limits.max_params:
            raise _too_many(self.scalars, self.limits, Location(Source.JSON, pointer))

    def members_of(self, items: Collection[tuple[str, Any]], pointer: str, depth: int) -> None:
        if depth > self.limits.max_depth:
            raise _too_deep(self.limits, Location(Source.JSON, pointer))
        append = self.values.append
        decode = self.decode
        scalars = 0
        for key, child in items:
            child_pointer = (
                f"{pointer}/{key}" if "~" not in key and "/" not in key else _pointer(pointer, key)
            )
            key_location, location = _member_locations(child_pointer)
            append(InputValue(key_location, key, canonical(key) if decode else key))
            kind = type(child)
            if kind is str:
                append(InputValue(location, child, canonical(child) if decode else child))
                scalars += 1
            elif kind in _CONTAINERS:
                self.node(child, child_pointer, depth)
            else:
                scalars += 1
        self.members += len(items)
        self.count(scalars, pointer)

    def elements(self, items: list[Any], pointer: str, depth: int) -> None:
        if depth > self.limits.max_depth:
            raise _too_deep(self.limits, Location(Source.JSON, pointer))
        append = self.values.append
        decode = self.decode
        scalars = 0
        for index, child in enumerate(items):
            kind = type(child)
            if kind is str:
                location = _json_locations.at(f"{pointer}/{index}")
                append(InputValue(location, child, canonical(child) if decode else child))
                scalars += 1
            elif kind in _CONTAINERS:
                self.node(child, f"{pointer}/{index}", depth)
            else:
                scalars += 1
        self.count(scalars, pointer)


@lru_cache(maxsize=2048)
def _member_locations(pointer: str) -> tuple[Location, Location]:
    """The locations of an object member's key and of its value (one cache lookup)."""
    return Location(Source.JSON_KEY, pointer), Location(Source.JSON, pointer)


_CONTAINERS: Final = frozenset({dict, list, _Pairs})


def _walk_json(document: Any, data: bytes | str, limits: Limits) -> _JsonWalker:
    walker = _JsonWalker(limits, decode=not _is_plain_json(data))
    walker.node(document, "", 0)
    return walker


def _is_plain_json(data: bytes | str) -> bool:
    """True when no string in ``data`` can need decoding: ASCII, no ``%``, ``&`` or
    backslash (so no JSON escapes either, hence no NUL)."""
    # find, not ``in``: ``bytes in bytes`` first tries the needle as an int and formats
    # a TypeError message before it searches (four times the cost of the search)
    return (
        isinstance(data, bytes)
        and data.isascii()
        and data.find(b"%") < 0
        and data.find(b"&") < 0
        and data.find(b"\\") < 0
    )


def _may_repeat_keys(data: bytes | str, members: int) -> bool:
    """True when the valid JSON text ``data`` may have more keys than the parsed object
    members (``members``): when its quotes before a colon outnumber them.

    A quote escaped by an odd run of backslashes (``\\":`` in JSON sent within a JSON
    string) is inside a string and not counted. The count never misses a key; it can
    take a string that starts with a colon for one, which costs a reparse.
    """
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    if raw.count(b":") <= members:
        return False
    if _QUOTE_SPACE.search(raw) is not None:  # one pass, not a search per space
        keys = len(_MEMBER_COLON.findall(raw))
    else:
        keys = raw.count(b'":')
    return keys > members and keys - _escaped_member_colons(raw) > members


def _escaped_member_colons(raw: bytes) -> int:
    """How many ``":`` in ``raw`` follow an odd run of backslashes (escaped quotes)."""
    escaped, run = 0, 1
    ending = raw.count(b'\\":')  # runs of at least one
    while ending:
        longer = raw.count(b"\\" * (run + 1) + b'":')
        if run % 2:
            escaped += ending - longer
        ending, run = longer, run + 1
    return escaped


def _load_json(data: bytes | str, limits: Limits) -> list[InputValue]:
    """Parse with orjson; when the document may repeat a key, which orjson would
    silently collapse to the last one, parse again keeping every duplicate."""
    walker = _walk_json(orjson.loads(data), data, limits)
    if _may_repeat_keys(data, walker.members):
        walker = _walk_json(json.loads(data, object_pairs_hook=_Pairs), data, limits)
    return walker.values


def _parse_json(body: bytes, charset: str | None, limits: Limits) -> list[InputValue]:
    data: bytes | str = (
        body.removeprefix(_UTF8_BOM)
        if _is_utf8(charset)
        else decode_text(body, charset).removeprefix("\ufeff")
    )
    try:
        return _load_json(data, limits)
    except (orjson.JSONDecodeError, ValueError, RecursionError) as exc:
        if "depth" in str(exc) or isinstance(exc, RecursionError):
            raise _too_deep(limits, _BODY_LOCATION) from exc
        raise _malformed("parse.json", f"request body is not valid JSON: {exc}", limits) from exc


def _sniff_json(body: bytes, limits: Limits) -> list[InputValue] | None:
    """The JSON values of a body that looks like JSON and is, else ``None``."""
    body = body.removeprefix(_UTF8_BOM)
    if body.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return _load_json(body, limits)
    except (orjson.JSONDecodeError, ValueError, RecursionError):
        return None


# -- content codings ----------------------------------------------------------------

_GZIP_MAGIC: Final = b"\x1f\x8b"
_MAX_GZIP_MEMBERS: Final = 16  # concatenated members are one valid gzip stream


def decode_content(body: bytes, content_encoding: str | None, limits: Limits) -> bytes:
    """``body`` with its ``Content-Encoding`` codings undone, last applied first.

    Raises :class:`InputRejected` for a coding that cannot be undone (unknown, or
    corrupt data) and for a decompressed size past ``limits.max_body_bytes``.
    """
    if not content_encoding or not body:
        return body
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    for coding in reversed(codings):
        if coding in ("", "identity"):
            continue
        if coding in ("gzip", "x-gzip"):
            body = _gunzip(body, limits)
        elif coding == "deflate":
            body = _inflate(body, limits)
        else:
            raise InputRejected(
                "parse.content_encoding",
                limits.statuses.encoding,
                f"request body content coding {coding!r} is not supported",
                _BODY_LOCATION,
            )
    return body


def _gunzip(body: bytes, limits: Limits) -> bytes:
    out: list[bytes] = []
    rest = body
    for _ in range(_MAX_GZIP_MEMBERS):
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        out.append(_decompress(decompressor, rest, "gzip", limits, sum(map(len, out))))
        rest = decompressor.unused_data
        if not rest.startswith(_GZIP_MAGIC):
            break
    if rest.strip(b"\x00"):  # trailing zero bytes are a common, harmless padding
        raise _malformed(
            "parse.content_encoding", "request body has data after its gzip stream", limits
        )
    return b"".join(out)


def _inflate(body: bytes, limits: Limits) -> bytes:
    """HTTP ``deflate`` is a zlib stream; some clients send raw deflate: both read."""
    try:
        return _inflate_stream(body, zlib.MAX_WBITS, limits)
    except InputRejected as rejected:
        if rejected.check != "parse.content_encoding":
            raise
    return _inflate_stream(body, -zlib.MAX_WBITS, limits)


def _inflate_stream(body: bytes, wbits: int, limits: Limits) -> bytes:
    decompressor = zlib.decompressobj(wbits=wbits)
    data = _decompress(decompressor, body, "deflate", limits, 0)
    if decompressor.unused_data:
        raise _malformed(
            "parse.content_encoding", "request body has data after its deflate stream", limits
        )
    return data


def _decompress(decompressor: Any, data: bytes, coding: str, limits: Limits, already: int) -> bytes:
    """One stream's bytes, refused past the body limit (``already`` bytes came before)."""
    room = limits.max_body_bytes - already
    try:
        out: bytes = decompressor.decompress(data, room + 1)
    except zlib.error as exc:
        raise _malformed(
            "parse.content_encoding", f"request body is not valid {coding}: {exc}", limits
        ) from exc
    if len(out) > room:
        raise InputRejected(
            "limits.body_size",
            limits.statuses.body,
            f"decompressed request body exceeds {limits.max_body_bytes} bytes",
            _BODY_LOCATION,
        )
    if not decompressor.eof:
        raise _malformed(
            "parse.content_encoding", f"request body is a truncated {coding} stream", limits
        )
    return out


# -- forms --------------------------------------------------------------------------


def _parse_form(body: bytes, limits: Limits) -> list[InputValue]:
    text = body.decode("latin-1")  # bytes kept as they are; canonical reads them as UTF-8
    count = count_parameters(text)
    if count > limits.max_params:
        raise _too_many(count, limits, Location(Source.FORM))
    return parameter_inputs(text, _form_key_locations, _form_locations)


# -- multipart ----------------------------------------------------------------------


def _part_head(part: bytes, limits: Limits) -> tuple[dict[str, str], bytes]:
    """The headers (lower-cased names) and content of one part."""
    headers: dict[str, str] = {}
    position = 0
    for _ in range(MAX_PART_HEADERS + 1):
        end = part.find(b"\n", position)
        if end < 0:
            raise _malformed("parse.multipart", "multipart part has no end of headers", limits)
        line = part[position:end].rstrip(b"\r")
        position = end + 1
        if not line:
            return headers, part[position:]
        name, _, value = decode_bytes(line).partition(":")
        headers[name.strip().lower()] = value.strip()
    raise _malformed("parse.multipart", "multipart part has too many headers", limits)


def _part_header(header: str, limits: Limits) -> tuple[str, dict[str, str]]:
    try:
        return parse_header_parameters(header)
    except ValueError as exc:
        message = f"multipart part header is ambiguous: {exc}"
        raise _malformed("parse.multipart", message, limits) from exc


def _disposition(header: str, limits: Limits) -> tuple[str, list[str]]:
    """The part name and filenames (``filename`` and a decoded ``filename*``).

    Browsers send backslashes in a quoted file name as they are (``..\\1.7z``) while
    quoted-pair unescaping reads ``\\1`` as ``1``: when the two readings differ, both
    are file names to inspect.
    """
    _, params = _part_header(header, limits)
    filenames = [params["filename"]] if "filename" in params else []
    as_sent = _QUOTED_FILENAME.search(header)
    if as_sent is not None and as_sent.group(1) not in filenames:
        filenames.append(as_sent.group(1))
    extended = params.get("filename*")
    if extended is not None:
        _, _, encoded = extended.rpartition("'")
        filenames.append(percent_decode(encoded))
    return params.get("name", ""), filenames


def _part_inputs(part: bytes, limits: Limits) -> list[InputValue]:
    headers, content = _part_head(part, limits)
    name, filenames = _disposition(headers.get("content-disposition", ""), limits)
    media, params = _part_header(headers.get("content-type", ""), limits)
    where = _multipart_name_locations.at(name)
    values = [InputValue(where, label, canonical(label)) for label in (name, *filenames) if label]
    if _is_binary(media):
        content = content[:FILE_PREVIEW_BYTES]
    if content:
        raw = decode_text(content, params.get("charset"))
        values.append(InputValue(_multipart_locations.at(name), raw, canonical(raw)))
    return values


def _multipart_parts(body: bytes, boundary: str, limits: Limits) -> list[bytes]:
    """The raw parts between delimiters (CRLF or bare LF line ends accepted)."""
    chunks = (b"\n" + body).split(b"\n--" + boundary.encode("latin-1"))
    parts: list[bytes] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            return parts
        if len(parts) >= limits.max_params:
            raise _too_many(len(parts) + 1, limits, Location(Source.MULTIPART))
        padding, newline, part = chunk.partition(b"\n")
        if padding.strip() or not newline:
            raise _malformed("parse.multipart", "multipart delimiter line is malformed", limits)
        parts.append(part.removesuffix(b"\r"))
    raise _malformed("parse.multipart", "multipart body has no closing delimiter", limits)


def _parse_multipart(body: bytes, params: dict[str, str], limits: Limits) -> list[InputValue]:
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > MAX_BOUNDARY_LENGTH or not boundary.isascii():
        raise _malformed("parse.multipart", "multipart body without a valid boundary", limits)
    values: list[InputValue] = []
    for part in _multipart_parts(body, boundary, limits):
        values += _part_inputs(part, limits)
    return values


# -- XML ----------------------------------------------------------------------------


class _XmlCollector:
    """Expat callbacks that collect text and attribute values with their paths."""

    def __init__(self, parser: expat.XMLParserType, body: bytes, limits: Limits) -> None:
        self.parser = parser
        self.body = body
        self.limits = limits
        self.values: list[InputValue] = []
        self.paths: list[str] = []
        self.texts: list[list[str]] = []
        self.siblings: list[dict[str, int]] = [{}]
        self.doctype_start = -1

    def _add(self, path: str, raw: str) -> None:
        if len(self.values) >= self.limits.max_params:
            raise _too_many(len(self.values) + 1, self.limits, Location(Source.XML, path))
        self.values.append(InputValue(_xml_locations.at(path), raw, canonical(raw)))

    def start(self, name: str, attributes: dict[str, str]) -> None:
        counts = self.siblings[-1]
        counts[name] = index = counts.get(name, 0) + 1
        parent = self.paths[-1] if self.paths else ""
        path = f"{parent}/{name}" if index == 1 else f"{parent}/{name}[{index}]"
        if len(self.paths) >= self.limits.max_depth:
            raise _too_deep(self.limits, Location(Source.XML, path))
        self.paths.append(path)
        self.texts.append([])
        self.siblings.append({})
        for attribute, raw in attributes.items():
            self._add(f"{path}/@{attribute}", raw)

    def end(self, name: str) -> None:
        path = self.paths.pop()
        self.siblings.pop()
        text = "".join(self.texts.pop())
        if text.strip():
            self._add(path, text)

    def text(self, data: str) -> None:
        if self.texts:
            self.texts[-1].append(data)

    def unexpanded(self, data: str) -> None:
        """Entity references expat leaves alone (never expanded) stay visible as text."""
        if self.texts and data.startswith("&") and data.endswith(";"):
            self.texts[-1].append(data)

    def doctype(self, *_: object) -> None:
        index = self.parser.CurrentByteIndex  # expat reports where the subset starts
        self.doctype_start = max(self.body.rfind(b"<!DOCTYPE", 0, index + 1), 0)

    def doctype_end(self) -> None:
        end = self.body.find(b">", self.parser.CurrentByteIndex)
        raw = decode_bytes(self.body[self.doctype_start : end + 1 if end >= 0 else None])
        self._add("!DOCTYPE", raw)


def _parse_xml(body: bytes, charset: str | None, limits: Limits) -> list[InputValue]:
    try:
        parser = expat.ParserCreate(charset)
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        collector = _XmlCollector(parser, body, limits)
        parser.StartElementHandler = collector.start
        parser.EndElementHandler = collector.end
        parser.CharacterDataHandler = collector.text
        parser.DefaultHandler = collector.unexpanded  # also turns off internal entity expansion
        parser.StartDoctypeDeclHandler = collector.doctype
        parser.EndDoctypeDeclHandler = collector.doctype_end
        parser.Parse(body, True)
    except (expat.ExpatError, LookupError, ValueError) as exc:
        raise _malformed("parse.xml", f"request body is not valid XML: {exc}", limits) from exc
    return collector.values


# -- dispatch -----------------------------------------------------------------------

_PlainJsonScanner = Callable[[bytes, int, int], "list[str] | None"]


# The C scanner of plain JSON bodies, when the build has it.
_scan_plain_json: Final[_PlainJsonScanner | None] = (
    None if SPEEDUPS is None else SPEEDUPS.plain_texts
)


def plain_json_texts(body: bytes, content_type: str | None, limits: Limits) -> list[str] | None:
    """Every key and string of a plain JSON body, in order, without their locations.

    For a UTF-8 JSON body that is ASCII without ``%``, ``&`` or backslashes (so
    without escapes: every ``"`` opens or closes a string), valid and within the
    limits, the canonical texts are the strings themselves: exactly the texts
    :func:`body_inputs` would give, in its order, but without building a location for
    each. ``None`` when any of that does not hold (or, without the C scanner, when a
    key repeats); :func:`body_inputs` then decides.
    """
    if not body:
        return None
    media, params = _content_type(content_type, limits)
    if not _is_json(media) or not _is_utf8(params.get("charset")):
        return None
    if _scan_plain_json is not None:
        return _scan_plain_json(body, limits.max_depth, limits.max_params)
    return walked_plain_json_texts(body, limits)


def walked_plain_json_texts(body: bytes, limits: Limits) -> list[str] | None:
    """:func:`plain_json_texts` of a JSON body without the C scanner: orjson's tree,
    walked; ``None`` also when a key repeats (orjson keeps only the last)."""
    if not _is_plain_json(body):
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    texts: list[str] = []
    scalars = _collect_texts(document, texts, limits.max_depth)
    if not 0 <= scalars <= limits.max_params:
        return None  # past a limit: the walk says where
    if 2 * len(texts) != body.count(b'"'):
        return None  # a repeated key, which orjson collapsed: the walk keeps each
    return texts


def _collect_texts(node: object, texts: list[str], depth_left: int) -> int:
    """Append the keys and strings of the parsed JSON ``node`` to ``texts``, depth
    first; the number of scalars in it, or -1 when containers nest deeper than
    ``depth_left``."""
    if isinstance(node, str):
        texts.append(node)
        return 1
    if not isinstance(node, (dict, list)):
        return 1
    if depth_left <= 0:
        return -1
    scalars = 0
    if isinstance(node, dict):
        for key, child in node.items():
            texts.append(key)
            inner = _collect_texts(child, texts, depth_left - 1)
            if inner < 0:
                return -1
            scalars += inner
    else:
        for child in node:
            inner = _collect_texts(child, texts, depth_left - 1)
            if inner < 0:
                return -1
            scalars += inner
    return scalars


def body_inputs(body: bytes, content_type: str | None, limits: Limits) -> list[InputValue]:
    """The values of ``body`` according to ``content_type`` (see the module docstring)."""
    if not body:
        return []
    media, params = _content_type(content_type, limits)
    charset = params.get("charset")
    if _is_json(media):
        return _parse_json(body, charset, limits)
    if media == "application/x-www-form-urlencoded":
        return _parse_form(body, limits)
    if media == "multipart/form-data":
        return _parse_multipart(body, params, limits)
    if _is_xml(media):
        return _parse_xml(body, charset, limits)
    sniffed = _sniff_json(body, limits)
    if sniffed is not None:
        return sniffed
    text = decode_text(body[:FILE_PREVIEW_BYTES] if _is_binary(media) else body, charset)
    return [InputValue(_BODY_LOCATION, text, canonical(text))]
