"""The inline reverse proxy: asyncio protocols on uvloop, llhttp (httptools) parsing.

Each client connection is an :class:`asyncio.Protocol` fed to an llhttp request
parser. Requests are handled one at a time per connection, in arrival order
(pipelined requests wait in a short queue). A request's body is buffered, up to
``limits.max_body_bytes``, because the engine inspects it whole; the upstream
response is streamed back unless the engine inspects response bodies.

Forwarding rules:

* the request target is forwarded byte for byte and ``Host`` as received
  (preserve-host); hop-by-hop headers (``Connection`` and the headers it names,
  ``Keep-Alive``, ``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``,
  ``Proxy-*``) and ``Expect`` are removed; the body goes with a ``Content-Length``;
* ``X-Forwarded-For`` and ``Forwarded`` get the peer appended;
  ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are replaced by what this hop saw;
* chunked request trailers are dropped; interim (1xx) upstream responses are dropped.

Framing defences: llhttp rejects Content-Length together with Transfer-Encoding,
repeated Content-Length, a Transfer-Encoding that does not end in ``chunked``,
obsolete line folding, bare CR/LF, NUL and other control bytes in headers, bad
chunk sizes and unknown methods. This module adds: Transfer-Encoding must be exactly
``chunked``, none in HTTP/1.0, exactly one Host in HTTP/1.1, origin-form targets
only (``*`` for OPTIONS), no CONNECT, and size limits on the head. Each of these
answers problem+json and closes the connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from collections import deque
from http import HTTPStatus
from typing import Any, Final, cast

import httptools

from apishield.adapters.upstream import ResponseHandler, UpstreamConnection, UpstreamPool
from apishield.adapters.workers import reserve_port, supervise
from apishield.engine import Engine, Transaction, head_first
from apishield.errors import UpstreamError, UpstreamTimeout
from apishield.events import EventSink
from apishield.findings import Location, Source, Verdict
from apishield.http import Headers, Request, Response
from apishield.policy import TLS, Limits
from apishield.problem import PROBLEM_CONTENT_TYPE, problem_json
from apishield.rawheaders import RawHeaders, find_headers, header_lines
from apishield.reload import PolicyHolder

log = logging.getLogger("apishield.proxy")

_HOP_BY_HOP: Final = (
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
)
_HOP_BY_HOP_AND_LENGTH: Final = (*_HOP_BY_HOP, b"content-length")
_REPLACED_REQUEST: Final = (
    *_HOP_BY_HOP,
    b"content-length",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"forwarded",
)
_FRAMING: Final = (b"host", b"transfer-encoding", b"content-length")
_EXPECT: Final = (b"expect",)
_BODY_METHODS: Final = frozenset({b"POST", b"PUT", b"PATCH"})
_IDEMPOTENT_METHODS: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
_IDEMPOTENCY_KEYS: Final = (b"idempotency-key", b"x-idempotency-key")
_PIPELINE_DEPTH: Final = 8
_FLUSH_BYTES: Final = 65536
_LINGER_SECONDS: Final = 2.0
_HEAD_SLACK: Final = 4096
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLIENT_GONE: Final = 499


def _status_line(status: int, _cache: dict[int, bytes] = {}) -> bytes:  # noqa: B006
    line = _cache.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _cache[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")
    return line


def _problem(
    status: int, body: bytes, headers: tuple[tuple[str, str], ...] = (), *, close: bool
) -> bytes:
    """A complete problem+json response."""
    parts = [
        _status_line(status),
        b"content-type: ",
        PROBLEM_CONTENT_TYPE.encode(),
        b"\r\ncontent-length: ",
        str(len(body)).encode(),
        b"\r\n",
    ]
    for name, value in headers:
        parts += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
    parts.append(b"connection: close\r\n\r\n" if close else b"\r\n")
    parts.append(body)
    return b"".join(parts)


_PLAIN_CONNECTION_VALUES: Final = frozenset({b"keep-alive", b"Keep-Alive", b"close", b"Close"})


def _connection_named(dropped: RawHeaders, base: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The header names, beyond ``base``, that the ``Connection`` headers among
    ``dropped`` declare hop-by-hop."""
    extra: list[bytes] = []
    for name, value in dropped:
        if name != b"connection" or value in _PLAIN_CONNECTION_VALUES:
            continue
        for token in value.lower().replace(b" ", b"").replace(b"\t", b"").split(b","):
            if token and token not in base and token not in extra:
                extra.append(token)
    return tuple(extra)


class _ReadLimits:
    """The policy's limits on what the proxy reads, as plain attributes: they are read
    for every header and chunk, where a policy model's attribute is a lookup by name."""

    __slots__ = (
        "body_bytes",
        "head_bytes",
        "header_bytes",
        "headers",
        "inspect_bytes",
        "url_bytes",
    )

    def __init__(self, limits: Limits) -> None:
        self.url_bytes: Final = limits.max_url_bytes
        self.headers: Final = limits.max_headers
        self.header_bytes: Final = limits.max_header_bytes
        self.head_bytes: Final = limits.max_header_bytes + limits.max_url_bytes + _HEAD_SLACK
        self.body_bytes: Final = limits.max_body_bytes
        self.inspect_bytes: Final = limits.max_response_inspect_bytes


class _Rejection:
    """A request refused for its framing or size, before the engine saw all of it."""

    __slots__ = ("check", "location", "message", "status")

    def __init__(self, status: int, check: str, message: str, location: Location) -> None:
        self.status = status
        self.check = check
        self.message = message
        self.location = location


def _malformed(message: str, name: str = "") -> _Rejection:
    return _Rejection(400, "protocol.malformed", message, Location(Source.HEADER, name))


class _Stop(Exception):
    """Raised inside an llhttp callback to stop parsing (the reason is kept aside)."""


class _Exchange(ResponseHandler):
    """One request and its response, from the head being parsed to the event."""

    __slots__ = (
        "body_parts",
        "body_size",
        "buffered",
        "chunked_out",
        "conn",
        "declared_length",
        "done",
        "engine",
        "expected_body",
        "flushed",
        "head_bytes",
        "head_done",
        "headers",
        "host",
        "keep_alive",
        "limits",
        "method",
        "out",
        "out_size",
        "pending_head",
        "rejection",
        "source",
        "started",
        "status",
        "tx",
        "url",
    )

    def __init__(self, conn: _ClientConnection, engine: Engine) -> None:
        self.conn = conn
        self.engine = engine
        self.limits = conn.server.read_limits(engine)
        self.url = b""
        self.method = b""
        self.headers: RawHeaders = []
        self.host: bytes | None = None
        self.head_done = False
        self.head_bytes = 0
        self.expected_body = False
        self.declared_length: int | None = None  # Content-Length (llhttp checked it)
        self.keep_alive = True
        self.body_parts: list[bytes] = []
        self.body_size = 0
        self.tx: Transaction | None = None
        self.rejection: _Rejection | None = None
        self.status = 0
        self.source: UpstreamConnection | None = None
        self.out: list[bytes] = []
        self.out_size = 0
        self.flushed = False
        self.chunked_out = False
        self.buffered: list[bytes] | None = None
        self.pending_head: tuple[int, RawHeaders, bool] | None = None
        self.started = 0.0
        self.done = False

    # -- running the exchange -----------------------------------------------------

    def start(self) -> None:
        """Answer the request: at once, or when the upstream's response is done."""
        try:
            if self.rejection is not None:
                self._reply_rejection(self.rejection)
                self._finish(keep=False)
                return
            tx = self.tx
            assert tx is not None
            verdict = tx.request_body(b"".join(self.body_parts))
            if verdict is not None and verdict.interrupts:
                self._reply_verdict(verdict)
                self._finish(keep=self.keep_alive and not self.expected_body_unread)
                return
            self._forward(tx)
        except Exception:
            log.exception("proxy: unexpected error while handling a request")
            self._fail()

    def abandon(self) -> None:
        """The client is gone: drop the upstream side and record what happened.

        The event's status is 499 (nginx's "client closed request") unless a response
        had begun.
        """
        if self.done:
            return
        if self.source is not None:
            self.source.drop()
        self.done = True
        if self.status == 0:
            self.status = _CLIENT_GONE
        self._record(None)

    def _finish(self, *, keep: bool, upstream_ms: float | None = None) -> None:
        """Record the event and hand the connection on (``keep``: to the next request)."""
        if self.done:
            return
        self.done = True
        self._record(upstream_ms)
        self.conn.exchange_finished(keep)

    def _fail(self, upstream_ms: float | None = None) -> None:
        """Answer 500 (unless part of the response is out) and close."""
        if not self.flushed:
            self.out.clear()
            self.status = 500
            self.conn.write(_problem(500, self._internal_error_body(), close=True))
        self._finish(keep=False, upstream_ms=upstream_ms)

    @property
    def expected_body_unread(self) -> bool:
        """True when a body was announced but the parser was stopped before it."""
        return self.expected_body and self.conn.dead

    def _internal_error_body(self) -> bytes:
        return problem_json(
            status=500,
            title="Internal error",
            detail="The proxy failed to handle the request.",
            event_id=self.tx.event_id if self.tx is not None else "",
        )

    def _record(self, upstream_ms: float | None) -> None:
        server = self.conn.server
        try:
            tx = self._transaction()
            if self.rejection is not None:
                self._reject(tx, self.rejection)
            event = tx.finish(status=self.status, upstream_ms=upstream_ms)
        except Exception:
            log.exception("proxy: recording a request failed")
            return
        if server.sinks is not None and self.engine.wants_event(event):
            try:
                server.sinks.emit(event)
            except Exception:
                log.exception("proxy: the event sink failed")

    def _transaction(self) -> Transaction:
        """The transaction, opened now from what was parsed if the head never completed."""
        if self.tx is None:
            path, _, query = self.url.decode("latin-1").partition("?")
            request = Request(
                method=self.method.decode("latin-1") or "-",
                path=path,
                query=query,
                client=self.conn.peer,
            )
            self.tx = self.engine.transaction(request)
        return self.tx

    @staticmethod
    def _reject(tx: Transaction, rejection: _Rejection) -> Verdict:
        return tx.reject(rejection.check, rejection.status, rejection.message, rejection.location)

    # -- answers of our own ---------------------------------------------------------

    def _reply_verdict(self, verdict: Verdict) -> None:
        self.status = verdict.status
        close = not self.keep_alive or self.conn.closing or self.expected_body_unread
        self.conn.write(_problem(verdict.status, verdict.body, verdict.headers, close=close))

    def _reply_rejection(self, rejection: _Rejection) -> None:
        verdict = self._reject(self._transaction(), rejection)
        self.status = verdict.status
        self.conn.write(_problem(verdict.status, verdict.body, verdict.headers, close=True))

    def _reply_upstream_error(self, tx: Transaction, exc: UpstreamError) -> None:
        timeout = isinstance(exc, UpstreamTimeout)
        self.status = 504 if timeout else 502
        body = problem_json(
            status=self.status,
            title="Upstream timed out" if timeout else "Bad gateway",
            detail=str(exc),
            event_id=tx.event_id,
        )
        self.conn.write(_problem(self.status, body, close=not self.keep_alive))

    # -- forwarding -----------------------------------------------------------------

    def _forward(self, tx: Transaction) -> None:
        pool = self.conn.server.pool_for(self.engine, tx)
        if pool is None:
            self._reply_upstream_error(tx, UpstreamError("no upstream is configured"))
            self._finish(keep=self.keep_alive)
            return
        body = tx.request.body
        head = self._upstream_head(pool.prefix, len(body))
        if self.engine.wants_response_body:
            self.buffered = []
        self.started = self.conn.loop.time()
        pool.request(head, body, self, head_request=self.method == b"HEAD")

    def replayable(self) -> bool:
        """True when sending the request twice does no harm: an idempotent method, or an
        ``Idempotency-Key`` (the upstream then recognises a repeat)."""
        return self.method in _IDEMPOTENT_METHODS or bool(
            find_headers(self.headers, _IDEMPOTENCY_KEYS)
        )

    def _upstream_head(self, prefix: bytes, length: int) -> bytes:
        conn = self.conn
        lines, dropped = header_lines(self.headers, _REPLACED_REQUEST)
        extra = _connection_named(dropped, _REPLACED_REQUEST)
        if extra:
            lines = header_lines(self.headers, _REPLACED_REQUEST + extra)[0]
        xff: list[bytes] = []
        forwarded: list[bytes] = []
        for name, value in dropped:
            if name == b"x-forwarded-for":
                xff.append(value)
            elif name == b"forwarded":
                forwarded.append(value)
        xff.append(conn.peer_bytes)
        parts = [
            self.method,
            b" ",
            prefix,
            self.url,
            b" HTTP/1.1\r\n",
            lines,
            b"X-Forwarded-For: ",
            b", ".join(xff),
            b"\r\n",
            conn.forwarding_lines(self.host, forwarded),
        ]
        if length or self.method in _BODY_METHODS:
            parts += (b"Content-Length: ", str(length).encode(), b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    # -- ResponseHandler: the upstream's response as it is parsed -------------------

    def attach(self, source: UpstreamConnection) -> None:
        """The upstream connection carrying the response (for back-pressure)."""
        self.source = source
        if self.conn.write_paused:
            source.pause()

    def response_head(self, status: int, headers: RawHeaders, length_known: bool) -> bool:
        """Check the head with the engine; False drops the rest of the upstream response."""
        assert self.tx is not None
        if self.done:
            return False  # the client went away while the connection was opened
        self.status = status
        verdict = self.tx.response_headers(Response(status, Headers.from_raw(headers)))
        if verdict is not None and verdict.interrupts:
            self._reply_verdict(verdict)
            return False
        self.chunked_out = not length_known
        if self.chunked_out and not self.conn.http11:
            self.keep_alive = False  # an HTTP/1.0 client reads to the close
            self.chunked_out = False
        if self.buffered is not None:
            self.pending_head = (status, headers, length_known)
        else:
            self._push(self._client_head(status, headers, self._framing()))
        return not self.conn.closed

    def response_body(self, chunk: bytes) -> bool:
        """Pass on (or buffer for inspection) a piece of the body."""
        buffered = self.buffered
        if buffered is not None:
            buffered.append(chunk)
            self.out_size += len(chunk)
            if self.out_size > self.limits.inspect_bytes:
                self._stop_buffering()
            return True
        if self.chunked_out:
            self._push(b"%x\r\n" % len(chunk), chunk, b"\r\n")
        else:
            self._push(chunk)
        if self.out_size >= _FLUSH_BYTES:
            self._flush()
        return not self.conn.closed

    def _stop_buffering(self) -> None:
        """The body is too large to inspect: send what we have and stream the rest."""
        assert self.buffered is not None and self.pending_head is not None
        chunks, self.buffered = self.buffered, None
        status, headers, _ = self.pending_head
        self.out_size = 0
        self._push(self._client_head(status, headers, self._framing()))
        for chunk in chunks:
            self.response_body(chunk)

    def response_done(self, error: UpstreamError | None) -> None:
        """The upstream exchange is over: finish the response and hand the connection on."""
        self.source = None
        if self.done:
            return  # the client went away meanwhile
        upstream_ms = (self.conn.loop.time() - self.started) * 1000.0
        try:
            tx = self.tx
            assert tx is not None
            if error is None:
                self._end_response(tx)
            elif self.flushed:
                self.conn.abort()
            else:
                self.out.clear()
                self._reply_upstream_error(tx, error)
        except Exception:
            log.exception("proxy: unexpected error while finishing a response")
            self._fail(upstream_ms)
            return
        self._finish(keep=self.keep_alive, upstream_ms=upstream_ms)

    def _end_response(self, tx: Transaction) -> None:
        if self.buffered is not None and self.pending_head is not None:
            body = b"".join(self.buffered)
            verdict = tx.response_body(body)
            if verdict is not None and verdict.interrupts:
                self._reply_verdict(verdict)
                return
            status, headers, _ = self.pending_head
            length = b"content-length: %d\r\n" % len(body)
            self.chunked_out = False
            self._push(self._client_head(status, headers, length, drop_length=True), body)
        elif self.chunked_out:
            self._push(b"0\r\n\r\n")
        self._flush()

    def _framing(self) -> bytes:
        return b"transfer-encoding: chunked\r\n" if self.chunked_out else b""

    def _client_head(
        self,
        status: int,
        headers: RawHeaders,
        framing: bytes,
        *,
        drop_length: bool = False,
    ) -> bytes:
        drop = _HOP_BY_HOP_AND_LENGTH if drop_length else _HOP_BY_HOP
        lines, dropped = header_lines(headers, drop)
        extra = _connection_named(dropped, drop)
        if extra:
            lines = header_lines(headers, drop + extra)[0]
        if not self.keep_alive or self.conn.closing:
            connection = b"connection: close\r\n"
        elif not self.conn.http11:
            connection = b"connection: keep-alive\r\n"
        else:
            connection = b""
        return b"".join((_status_line(status), lines, framing, connection, b"\r\n"))

    def _push(self, *pieces: bytes) -> None:
        for piece in pieces:
            self.out.append(piece)
            self.out_size += len(piece)

    def _flush(self) -> None:
        if self.out:
            self.flushed = True
            self.conn.write(b"".join(self.out))
            self.out.clear()
            self.out_size = 0


class _ClientConnection(asyncio.Protocol):
    """One client connection: parses requests and runs their exchanges in order."""

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.loop = server.loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.peer_bytes = b""
        self.forwarded_for = b""
        self.forwarding: tuple[bytes | None, bytes] | None = None  # the last host's lines
        self.http_version = "1.1"
        self.http11 = True
        self.current: _Exchange | None = None
        self.active: _Exchange | None = None
        self.queue: deque[_Exchange] = deque()
        self.parsing = False  # inside the parser: exchanges wait until it returns
        self.running = False  # inside _run_queue
        self.ended = False  # closing: no further request is answered
        self.stop_reason: _Rejection | None = None
        self.stopped = False
        self.head_seen = 0
        self.dead = False  # input is no longer parsed
        self.closing = False  # close after the response in progress
        self.reading_paused = False
        self.write_paused = False
        self.deadline: float | None = None
        self.deadline_kind = ""
        self.timer: asyncio.TimerHandle | None = None

    @property
    def closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def forwarding_lines(self, host: bytes | None, forwarded: list[bytes]) -> bytes:
        """``X-Forwarded-Proto``, ``X-Forwarded-Host`` and ``Forwarded`` (after the
        ``forwarded`` values received) for a request of this client to ``host``.

        The lines for the last host are kept: a keep-alive client asks the same one.
        """
        cached = self.forwarding
        if not forwarded and cached is not None and cached[0] == host:
            return cached[1]
        scheme = self.server.scheme_bytes
        element = b"for=" + self.forwarded_for + b";proto=" + scheme
        parts = [b"X-Forwarded-Proto: ", scheme, b"\r\n"]
        if host is not None:
            parts += (b"X-Forwarded-Host: ", host, b"\r\n")
            element += b';host="' + host.replace(b'"', b"") + b'"'
        parts += (b"Forwarded: ", b", ".join([*forwarded, element]), b"\r\n")
        lines = b"".join(parts)
        if not forwarded:
            self.forwarding = (host, lines)
        return lines

    # -- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if isinstance(peername, tuple) else ""
        self.peer_bytes = self.peer.encode("latin-1")
        self.forwarded_for = (
            b'"[' + self.peer_bytes + b']"' if ":" in self.peer else self.peer_bytes
        )
        self.server.connections.add(self)
        self._set_deadline(self.server.header_timeout, "header")

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.dead = True
        self.ended = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        active, self.active = self.active, None
        if active is not None:
            active.abandon()
        self.server.connection_closed(self)

    def eof_received(self) -> bool | None:
        """The client half-closed: finish what it sent, then close."""
        self.closing = True
        if self.idle or self.server.tls is not None:
            return None  # close now (TLS cannot stay half-open)
        return True

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.active is not None and self.active.source is not None:
            self.active.source.pause()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.active is not None and self.active.source is not None:
            self.active.source.resume()

    def data_received(self, data: bytes) -> None:
        if self.dead:
            return  # a rejection was answered; the rest is discarded until the close
        self.parsing = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.parsing = False
            self.parser = httptools.HttpRequestParser(self)  # upgrades are not supported
            rest = data[upgrade.args[0] :]
            if rest:
                self.data_received(rest)
            else:
                self._run_queue()
            return
        except httptools.HttpParserError as exc:
            self.parsing = False
            if not self.stopped:
                self.stop_reason = _malformed(f"malformed HTTP request: {exc}")
            self._reject(self.stop_reason)
            return
        self.parsing = False
        current = self.current
        if current is not None and not current.head_done:
            self.head_seen += len(data)
            if self.head_seen > current.limits.head_bytes:
                self._reject(self._too_large_head("request head"))
        if len(self.queue) >= _PIPELINE_DEPTH and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._run_queue()

    # -- llhttp callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self.current = _Exchange(self, self.server.holder.engine)
        self.head_seen = 0
        self._set_deadline(self.server.header_timeout, "header")

    def on_url(self, url: bytes) -> None:
        current = self.current
        assert current is not None
        current.url += url
        if len(current.url) > current.limits.url_bytes:
            self._stop(
                _Rejection(
                    414, "limits.url_size", "the request target is too long", Location(Source.PATH)
                )
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        current = self.current
        assert current is not None
        if current.head_done:
            return  # chunked trailers are not forwarded
        current.headers.append((name, value))
        current.head_bytes += len(name) + len(value) + 4
        limits = current.limits
        if len(current.headers) > limits.headers:
            self._stop(self._too_large_head("too many request headers"))
        if current.head_bytes > limits.header_bytes:
            self._stop(self._too_large_head("the request headers are too large"))

    def on_headers_complete(self) -> None:
        current = self.current
        assert current is not None
        current.head_done = True
        current.method = self.parser.get_method()
        current.keep_alive = self.parser.should_keep_alive() and not self.closing
        self.http_version = self.parser.get_http_version()  # a new string each call
        self.http11 = self.http_version == "1.1"
        rejection = self._check_head(current)
        if rejection is not None:
            self._stop(rejection)
        self._open_transaction(current)

    def on_body(self, body: bytes) -> None:
        current = self.current
        assert current is not None
        current.body_parts.append(body)
        current.body_size += len(body)
        limit = current.limits.body_bytes
        if current.body_size > limit:
            self._stop(self._body_too_large(current, limit))

    def on_message_complete(self) -> None:
        current = self.current
        assert current is not None
        self.current = None
        self.deadline = None
        self._enqueue(current)

    # -- request checks ---------------------------------------------------------------

    def _check_head(self, current: _Exchange) -> _Rejection | None:
        method = current.method
        if method == b"CONNECT":
            return _Rejection(
                405, "protocol.method", "CONNECT is not supported", Location(Source.PATH)
            )
        url = current.url
        if not url.startswith(b"/") and not (url == b"*" and method == b"OPTIONS"):
            return _malformed("the request target must be a path (origin-form)")
        hosts = 0
        for name, value in find_headers(current.headers, _FRAMING):
            if name == b"host":
                hosts += 1
                current.host = value
            elif name == b"transfer-encoding":
                if not self.http11:
                    return _malformed(
                        "Transfer-Encoding is not allowed in HTTP/1.0", "transfer-encoding"
                    )
                if value.strip().lower() != b"chunked":
                    return _malformed(
                        "only 'Transfer-Encoding: chunked' is supported", "transfer-encoding"
                    )
                current.expected_body = True
            else:  # content-length
                current.declared_length = int(value)
                current.expected_body = current.declared_length > 0
        if hosts > 1 or (hosts == 0 and self.http11):
            return _malformed("an HTTP/1.1 request needs exactly one Host header", "host")
        return None

    def _open_transaction(self, current: _Exchange) -> None:
        path, _, query = current.url.partition(b"?")
        request = Request(
            method=current.method.decode("latin-1"),
            path=path.decode("latin-1"),
            query=query.decode("latin-1"),
            headers=Headers.from_raw(current.headers),
            client=self.peer,
            scheme=self.server.scheme,
            http_version=self.http_version,
        )
        tx = current.engine.transaction(request)
        current.tx = tx
        if not current.expected_body:
            self.deadline = None
            return  # both request phases run in one pass once the exchange starts
        limit = current.limits.body_bytes
        declared = current.declared_length
        if declared is not None and declared > limit:
            self._stop(self._body_too_large(current, limit))
        expects_continue = self._expects_continue(current)
        if head_first(declared, expects_continue):
            verdict = tx.request_headers()
            if verdict is not None and verdict.interrupts:
                self._stop(None)  # answer now, without reading (or inviting) the body
        self._set_deadline(self.server.body_timeout, "body")
        if self.idle and expects_continue:
            self.write(_CONTINUE)

    @staticmethod
    def _expects_continue(current: _Exchange) -> bool:
        return any(v.lower() == b"100-continue" for _, v in find_headers(current.headers, _EXPECT))

    def _too_large_head(self, what: str) -> _Rejection:
        limits = self.server.holder.engine.policy.limits
        return _Rejection(
            limits.statuses.headers,
            "limits.header_size",
            f"{what} exceeds the limit",
            Location(Source.HEADER),
        )

    @staticmethod
    def _body_too_large(current: _Exchange, limit: int) -> _Rejection:
        status = current.engine.policy.limits.statuses.body
        return _Rejection(
            status, "limits.body_size", f"request body exceeds {limit} bytes", Location(Source.BODY)
        )

    # -- queueing and answering ---------------------------------------------------------

    def _stop(self, rejection: _Rejection | None) -> None:
        """Stop parsing from inside a callback; ``None`` answers the engine's verdict."""
        self.stop_reason = rejection
        self.stopped = True
        self.dead = True
        raise _Stop

    def _reject(self, rejection: _Rejection | None) -> None:
        """Queue the current (possibly partial) request as the last one of the connection."""
        self.dead = True
        self.deadline = None
        current = self.current or _Exchange(self, self.server.holder.engine)
        self.current = None
        current.rejection = rejection
        current.keep_alive = False
        self._enqueue(current)

    @property
    def idle(self) -> bool:
        """True when no parsed request is waiting or being answered."""
        return self.active is None and not self.queue

    def _enqueue(self, exchange: _Exchange) -> None:
        self.queue.append(exchange)
        if not self.parsing:
            self._run_queue()

    def _run_queue(self) -> None:
        """Start the queued exchanges in order until one waits for its upstream."""
        if self.running:
            return  # an exchange that finished at once: the loop below goes on
        self.running = True
        try:
            while self.active is None and self.queue and not self.ended:
                exchange = self.active = self.queue.popleft()
                exchange.start()
        finally:
            self.running = False
        if self.active is None and not self.ended:
            if self.reading_paused and self.transport is not None:
                self.reading_paused = False
                self.transport.resume_reading()
            if self.current is None:
                self._set_deadline(self.server.idle_timeout, "idle")

    def exchange_finished(self, keep: bool) -> None:
        """The active exchange has answered: close, or go on with the next request."""
        self.active = None
        if not keep or self.closing or self.closed:
            self._close(linger=self.dead)
        else:
            self._run_queue()

    def write(self, data: bytes) -> None:
        """Send to the client, unless it is gone."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def abort(self) -> None:
        """Drop the connection at once (a response cannot be completed)."""
        if self.transport is not None:
            self.transport.abort()

    def _close(self, *, linger: bool) -> None:
        """Close; with ``linger``, half-close first so the client can read our answer."""
        self.ended = True
        transport = self.transport
        if transport is None:
            return
        if linger and transport.can_write_eof():
            self.dead = True
            transport.write_eof()
            self._set_deadline(_LINGER_SECONDS, "linger")
        else:
            transport.close()

    def shutdown(self) -> None:
        """Graceful stop: close when idle, else after the response in progress."""
        self.closing = True
        if self.idle and self.current is None:
            self._close(linger=False)

    # -- timeouts -----------------------------------------------------------------------

    def _set_deadline(self, seconds: float, kind: str) -> None:
        """One lazily re-armed timer serves every deadline of the connection."""
        deadline = self.loop.time() + seconds
        self.deadline = deadline
        self.deadline_kind = kind
        timer = self.timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        deadline = self.deadline
        if deadline is None or self.transport is None:
            return
        if self.loop.time() < deadline:
            self.timer = self.loop.call_at(deadline, self._on_timer)
            return
        self.deadline = None
        if self.deadline_kind in ("idle", "linger") or (
            self.current is None
            and self.idle
            and self.deadline_kind == "header"
            and self.head_seen == 0
        ):
            self.transport.close()
        else:
            what = "request body" if self.deadline_kind == "body" else "request head"
            self._reject(
                _Rejection(
                    408,
                    "protocol.timeout",
                    f"the {what} was not received in time",
                    Location(Source.HEADER),
                )
            )


class ProxyServer:
    """The proxy in this process: ``await start()``, ``port``, ``await stop()``.

    ``listen`` overrides ``policy.server.listen`` (port 0 picks a free port);
    ``sinks`` receives the events (None drops them); ``poll_interval`` is how often
    the policy file is checked for changes (None: never).
    """

    def __init__(
        self,
        holder: PolicyHolder,
        *,
        sinks: EventSink | None = None,
        listen: str | None = None,
        reuse_port: bool = False,
        poll_interval: float | None = 1.0,
    ) -> None:
        self.holder = holder
        self.sinks = sinks
        settings = holder.engine.policy.server
        self.listen = listen or settings.listen
        self.timeouts = settings.timeouts
        # read on every request: plain attributes, not the policy model's
        self.header_timeout: Final = self.timeouts.header_read
        self.body_timeout: Final = self.timeouts.body_read
        self.idle_timeout: Final = self.timeouts.idle
        self.tls = settings.tls
        self.scheme = "https" if self.tls is not None else "http"
        self.scheme_bytes = self.scheme.encode()
        self.reuse_port = reuse_port
        self.poll_interval = poll_interval
        self.connections: set[_ClientConnection] = set()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._pools: dict[str, UpstreamPool] = {}
        self._pools_engine: Engine | None = None
        self._read_limits: tuple[Engine, _ReadLimits] | None = None
        self._idle = asyncio.Event()
        self._poller: asyncio.TimerHandle | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._loop = asyncio.get_running_loop()
        host, _, port = self.listen.rpartition(":")
        self._server = await self._loop.create_server(
            lambda: _ClientConnection(self),
            host.strip("[]") or None,
            int(port),
            ssl=_server_ssl(self.tls) if self.tls is not None else None,
            ssl_handshake_timeout=self.timeouts.header_read if self.tls is not None else None,
            reuse_port=self.reuse_port or None,
            backlog=2048,
        )
        sockets = cast(Any, self._server).sockets  # a list under uvloop, a tuple per typeshed
        self.port = sockets[0].getsockname()[1]
        if self.poll_interval is not None and self.holder.path is not None:
            self._poller = self._loop.call_later(self.poll_interval, self._poll_policy)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish within the grace time, close."""
        if self._server is None:
            return
        if self._poller is not None:
            self._poller.cancel()
        self._server.close()
        for conn in list(self.connections):
            conn.shutdown()
        if self.connections:
            self._idle.clear()
            try:
                async with asyncio.timeout(self.timeouts.shutdown_grace):
                    await self._idle.wait()
            except TimeoutError:
                for conn in list(self.connections):
                    conn.abort()
        await self._server.wait_closed()
        for pool in self._pools.values():
            pool.close()
        if self.sinks is not None:
            self.sinks.flush()
        self._server = None

    def connection_closed(self, conn: _ClientConnection) -> None:
        """Called by a connection when it is gone."""
        self.connections.discard(conn)
        if not self.connections:
            self._idle.set()

    def pool_for(self, engine: Engine, tx: Transaction) -> UpstreamPool | None:
        """The upstream pool for ``tx``: its route's upstream, else ``default``."""
        if engine is not self._pools_engine:
            self._rebuild_pools(engine)
        return self._pools.get(tx.upstream)

    def read_limits(self, engine: Engine) -> _ReadLimits:
        """``engine``'s limits on reading (built again when a reload brings another)."""
        cached = self._read_limits
        if cached is not None and cached[0] is engine:
            return cached[1]
        limits = _ReadLimits(engine.policy.limits)
        self._read_limits = (engine, limits)
        return limits

    def _rebuild_pools(self, engine: Engine) -> None:
        """Keep the pools whose upstream did not change across a reload."""
        old = self._pools
        self._pools = {}
        for name, upstream in engine.policy.upstreams.items():
            pool = old.pop(name, None)
            self._pools[name] = (
                pool if pool is not None and pool.config == upstream else (UpstreamPool(upstream))
            )
        for pool in old.values():
            if pool not in self._pools.values():
                pool.close()
        self._pools_engine = engine

    def _poll_policy(self) -> None:
        self.holder.reload_if_changed()
        assert self.poll_interval is not None
        self._poller = self.loop.call_later(self.poll_interval, self._poll_policy)


def _server_ssl(tls: TLS) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def serve(
    holder: PolicyHolder,
    *,
    listen: str | None = None,
    workers: int | None = None,
    sinks: EventSink | None = None,
) -> None:
    """Run the proxy until SIGTERM/SIGINT; blocking.

    ``listen`` and ``workers`` override ``policy.server`` (0 workers: one per core).
    With ``sinks`` None each worker opens ``policy.events.sinks`` itself, after the
    fork; an explicit ``sinks`` is inherited by every worker as it is.
    SIGHUP reloads the policy in every worker; the file is also polled every second.
    """
    settings = holder.engine.policy.server
    address = listen or settings.listen
    count = settings.workers if workers is None else workers
    count = count or os.cpu_count() or 1
    if count == 1:
        _run_worker(holder, address, sinks, reuse_port=False)
        return
    host, _, port = address.rpartition(":")
    reserved = reserve_port(host.strip("[]"), int(port))
    address = f"{host}:{reserved.getsockname()[1]}"
    log.info("apishield proxy: %d workers on %s", count, address)
    try:
        supervise(
            count,
            lambda: _run_worker(holder, address, sinks, reuse_port=True),
            grace=settings.timeouts.shutdown_grace,
        )
    finally:
        reserved.close()


def _run_worker(
    holder: PolicyHolder, listen: str, sinks: EventSink | None, *, reuse_port: bool
) -> None:
    """One worker: its own event loop (uvloop), its own sinks, signal handling."""
    import uvloop  # noqa: PLC0415 - only the process that serves needs it

    own_sinks = sinks if sinks is not None else _open_sinks(holder)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_worker_main(holder, listen, own_sinks, reuse_port))
    finally:
        if sinks is None:
            own_sinks.close()


async def _worker_main(
    holder: PolicyHolder, listen: str, sinks: EventSink, reuse_port: bool
) -> None:
    server = ProxyServer(holder, sinks=sinks, listen=listen, reuse_port=reuse_port)
    await server.start()
    log.info("apishield proxy worker %d listening on %s", os.getpid(), server.listen)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    loop.add_signal_handler(signal.SIGINT, stopped.set)
    loop.add_signal_handler(signal.SIGHUP, holder.reload)
    await stopped.wait()
    await server.stop()


def _open_sinks(holder: PolicyHolder) -> EventSink:
    """The policy's sinks, opened in this process (after the fork)."""
    from apishield.sinks import open_policy_sinks  # noqa: PLC0415 - each worker opens its own

    return open_policy_sinks(holder.engine.policy.events)
