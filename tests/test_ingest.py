"""Requests from JSON records and raw HTTP messages."""

from __future__ import annotations

import base64

import pytest

from apishield.ingest import IngestError, parse_raw_request, request_from_record


def test_record_with_text_body() -> None:
    request = request_from_record(
        {
            "method": "post",
            "path": "/a%20b",
            "query": "x=%27",
            "headers": {"Content-Type": "application/json"},
            "body": '{"k": "v"}',
        }
    )
    assert (request.method, request.path, request.query) == ("POST", "/a%20b", "x=%27")
    assert request.headers.get("content-type") == "application/json"
    assert request.body == b'{"k": "v"}'
    assert request.client == "127.0.0.1"


def test_record_with_base64_body_and_query_in_path() -> None:
    request = request_from_record(
        {
            "path": "/p?q=1",
            "headers": [["X-A", "1"]],
            "body": base64.b64encode(b"\xff\x00").decode(),
            "body_encoding": "base64",
            "client": "192.0.2.1",
        }
    )
    assert (request.path, request.query, request.body) == ("/p", "q=1", b"\xff\x00")
    assert request.client == "192.0.2.1"


@pytest.mark.parametrize(
    "record",
    [
        {"headers": "nope"},
        {"body": "%%%", "body_encoding": "base64"},
        {"body": "x", "body_encoding": "rot13"},
    ],
)
def test_bad_records_are_ingest_errors(record: dict[str, object]) -> None:
    with pytest.raises(IngestError):
        request_from_record(record)


def test_raw_request_with_content_length() -> None:
    raw = b"POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcdef"
    request = parse_raw_request(raw)
    assert (request.method, request.path, request.query, request.body) == (
        "POST",
        "/x",
        "y=1",
        b"abc",
    )
    assert request.http_version == "1.1"


def test_raw_request_with_bare_newlines_and_chunked_body() -> None:
    raw = b"PUT / HTTP/1.1\nTransfer-Encoding: chunked\n\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n"
    assert parse_raw_request(raw).body == b"abcde"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"GARBAGE\r\n\r\n", "not an HTTP request line"),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", "malformed header line"),
        (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "invalid Content-Length"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5", "truncated chunked body"),
    ],
)
def test_malformed_raw_requests(raw: bytes, message: str) -> None:
    with pytest.raises(IngestError, match=message):
        parse_raw_request(raw)
