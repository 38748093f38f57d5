"""Requests from outside a live connection: JSON records and raw HTTP messages."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from apishield.http import Headers, Request


class IngestError(ValueError):
    """A record or raw message cannot be turned into a request."""


def request_from_record(record: Mapping[str, Any], *, client: str = "127.0.0.1") -> Request:
    """A request from a corpus-style JSON record.

    Fields: ``method``, ``path`` (raw, percent-encoding kept), ``query`` (raw, no
    ``?``), ``headers`` (object or list of pairs), ``body`` (text, or base64 when
    ``body_encoding`` is ``"base64"``), optional ``client``.
    """
    try:
        method = str(record.get("method") or "GET").upper()
        path = str(record.get("path") or "/")
        query = str(record.get("query") or "")
        if not query and "?" in path:
            path, _, query = path.partition("?")
        headers = _headers(record.get("headers") or {})
        body = _body(record.get("body") or "", record.get("body_encoding"))
    except (TypeError, ValueError, binascii.Error) as exc:
        raise IngestError(f"invalid request record: {exc}") from exc
    return Request(
        method=method,
        path=path,
        query=query,
        headers=headers,
        body=body,
        client=str(record.get("client") or client),
    )


def _headers(raw: Any) -> Headers:
    if isinstance(raw, Mapping):
        return Headers((str(k), str(v)) for k, v in raw.items())
    if isinstance(raw, list):
        return Headers((str(k), str(v)) for k, v in raw)
    raise TypeError("headers must be an object or a list of [name, value] pairs")


def _body(raw: Any, encoding: Any) -> bytes:
    if encoding == "base64":
        return base64.b64decode(str(raw), validate=True)
    if encoding not in (None, "", "utf-8"):
        raise ValueError(f"unknown body_encoding {encoding!r}")
    return str(raw).encode("utf-8", "surrogatepass")


def parse_raw_request(data: bytes, *, client: str = "127.0.0.1") -> Request:
    """A request from a raw HTTP/1.x message (request line, headers, blank line, body).

    Bare ``\\n`` line endings are accepted (hand-written files); a ``Content-Length``
    shorter than the body trims it; chunked bodies are de-chunked.
    """
    head, body = _split_head(data)
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise IngestError(f"not an HTTP request line: {lines[0][:80]!r}")
    method, target, version = parts
    pairs = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise IngestError(f"malformed header line: {line[:80]!r}")
        pairs.append((name, value.strip()))
    headers = Headers(pairs)
    body = _frame_body(body, headers)
    path, _, query = target.partition("?")
    return Request(
        method=method.upper(),
        path=path,
        query=query,
        headers=headers,
        body=body,
        client=client,
        http_version=version.removeprefix("HTTP/"),
    )


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Split at the first blank line, whichever line ending the head uses."""
    candidates = [(data.find(sep), sep) for sep in (b"\r\n\r\n", b"\n\n")]
    found = [(index, sep) for index, sep in candidates if index >= 0]
    if not found:
        return data, b""
    index, sep = min(found)
    return data[:index], data[index + len(sep) :]


def _frame_body(body: bytes, headers: Headers) -> bytes:
    if (headers.get("transfer-encoding") or "").lower().endswith("chunked"):
        return _dechunk(body)
    length = headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise IngestError(f"invalid Content-Length {length!r}")
        return body[: int(length)]
    return body


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    position = 0
    while True:
        end = data.find(b"\r\n", position)
        if end < 0:
            raise IngestError("truncated chunked body")
        size_text = data[position:end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as exc:
            raise IngestError(f"invalid chunk size {size_text!r}") from exc
        if size == 0:
            return bytes(out)
        start = end + 2
        out += data[start : start + size]
        position = start + size + 2
