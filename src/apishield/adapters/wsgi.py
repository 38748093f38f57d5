"""WSGI middleware with the same semantics as the ASGI one.

The request body is read from ``wsgi.input`` up to ``limits.max_body_bytes`` (one
byte more answers 413 without calling the app) and the app gets it back as a
``BytesIO``. Without ``CONTENT_LENGTH`` the body is read only when the server sets
``wsgi.input_terminated`` (chunked requests); otherwise it is taken to be empty.

Limitation: the engine sees the path exactly as received only when the server
provides ``RAW_URI`` or ``REQUEST_URI`` (gunicorn, werkzeug). Otherwise it is
re-encoded from the decoded ``SCRIPT_NAME`` + ``PATH_INFO``, so ``%2F`` reads as
``/`` and other escapes are normalised. Header names arrive in lower case and
in ``environ`` order.

The transaction ends, and its event is recorded, when the server closes the
returned iterable. Reload works as in :mod:`apishield.adapters.asgi`; two threads
may both check a changed file, which only costs a second load.
"""

from __future__ import annotations

import http
import io
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Protocol
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from apishield.adapters.asgi import (
    STATUS_APP_ERROR,
    AdapterCore,
    PolicySource,
    oversized_verdict,
    quote_path,
)
from apishield.engine import Transaction, judge_head_first
from apishield.events import EventSink
from apishield.findings import Verdict
from apishield.http import Headers, Request, Response
from apishield.problem import PROBLEM_CONTENT_TYPE

Environ = WSGIEnvironment
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
Write = Callable[[bytes], object]
_READ_CHUNK = 65_536


def _header_items(environ: Environ) -> Iterator[tuple[str, str]]:
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            yield key[5:].replace("_", "-").lower(), value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            yield key.replace("_", "-").lower(), value


def request_from_environ(environ: Environ) -> Request:
    """The engine's view of a WSGI environ (see the module notes on the path)."""
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw_uri:
        path = raw_uri.partition("?")[0]
    else:
        decoded = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        path = quote_path(decoded.encode("latin-1"))
    protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    return Request(
        method=environ["REQUEST_METHOD"],
        path=path or "/",
        query=environ.get("QUERY_STRING", ""),
        headers=Headers(_header_items(environ)),
        client=environ.get("REMOTE_ADDR", ""),
        scheme=environ.get("wsgi.url_scheme", "http"),
        http_version=protocol.removeprefix("HTTP/"),
    )


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


def _read(stream: _Readable, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at end of stream."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(min(remaining, _READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_body(environ: Environ, limit: int) -> bytes:
    """The request body, cut at ``limit + 1`` bytes."""
    length = (environ.get("CONTENT_LENGTH") or "").strip()
    if length.isdigit():
        return _read(environ["wsgi.input"], min(int(length), limit + 1))
    if environ.get("wsgi.input_terminated"):
        return _read(environ["wsgi.input"], limit + 1)
    return b""


def _status_line(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _verdict_headers(verdict: Verdict) -> list[tuple[str, str]]:
    return [
        ("content-type", PROBLEM_CONTENT_TYPE),
        ("content-length", str(len(verdict.body))),
        *verdict.headers,
    ]


class ApishieldMiddleware:
    """Inspect every request (and response) of a WSGI ``app`` with the apishield engine.

    ``policy`` is a policy file path, a :class:`~apishield.policy.Policy` or a
    :class:`~apishield.reload.PolicyHolder`; ``sinks`` receives security events
    (default: the sinks the policy's ``events`` section names, closed at exit).
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        policy: PolicySource,
        sinks: EventSink | None = None,
        reload_every: float | None = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not callable(app):
            raise TypeError("app must be a WSGI application")
        self.app = app
        self.core = AdapterCore(policy, sinks, reload_every, clock)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        tx = self.core.engine().transaction(request_from_environ(environ))
        exchange = _Exchange(self.core, tx, start_response)
        try:
            return exchange.run(self.app, environ)
        except BaseException:
            self.core.record(tx, STATUS_APP_ERROR)
            raise


class _Exchange:
    """One WSGI exchange: the request phases, the app, the response phases."""

    def __init__(self, core: AdapterCore, tx: Transaction, start_response: StartResponse) -> None:
        self.core = core
        self.tx = tx
        self.start_response = start_response
        self.status: int | None = None
        self.replacement: bytes | None = None  # a response phase replaced the app's answer
        self._held: tuple[str, list[tuple[str, str]]] | None = None
        self._buffered: list[bytes] = []

    def run(self, app: WSGIApplication, environ: Environ) -> Iterable[bytes]:
        verdict = self._request_phases(environ)
        if verdict is not None:
            return _Body(self, self._answer(verdict))
        result = app(environ, self._start)
        if self.tx.engine.wants_response_body and self.replacement is None:
            return self._inspect(result)
        return _Body(self, [], result)

    def _request_phases(self, environ: Environ) -> Verdict | None:
        if judge_head_first(self.tx.request):
            verdict = self.tx.request_headers()
            if verdict is not None:
                return verdict
        limit = self.tx.engine.policy.limits.max_body_bytes
        body = read_body(environ, limit)
        if len(body) > limit:
            return oversized_verdict(self.tx)
        environ["wsgi.input"] = io.BytesIO(body)
        return self.tx.request_body(body)

    def _answer(self, verdict: Verdict, exc_info: ExcInfo | None = None) -> list[bytes]:
        self.status = verdict.status
        self.start_response(_status_line(verdict.status), _verdict_headers(verdict), exc_info)
        return [verdict.body]

    def _start(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Write:
        """The ``start_response`` the app sees."""
        self.status = int(status[:3])
        verdict = self.tx.response_headers(Response(self.status, Headers(headers)))
        if verdict is not None:
            self.replacement = self._answer(verdict, exc_info)[0]
            return _discard
        if self.tx.engine.wants_response_body:
            self._held = (status, headers)
            return self._buffered.append
        return self.start_response(status, headers, exc_info)

    def _inspect(self, result: Iterable[bytes]) -> Iterable[bytes]:
        """Buffer up to the inspection limit, run the response body phase, then answer."""
        iterator = iter(result)
        try:
            exhausted = self._fill(iterator)
        except BaseException:
            _close(result)
            raise
        if self.replacement is not None:
            _close(result)
            return _Body(self, [self.replacement])
        if not exhausted:
            self._release()
            return _Body(self, self._buffered, result, iterator)
        _close(result)
        verdict = self.tx.response_body(b"".join(self._buffered))
        if verdict is not None:
            return _Body(self, self._answer(verdict))
        self._release()
        return _Body(self, self._buffered)

    def _fill(self, iterator: Iterator[bytes]) -> bool:
        """Buffer the app's output; True when it ended within the inspection limit."""
        limit = self.tx.engine.policy.limits.max_response_inspect_bytes
        size = sum(len(chunk) for chunk in self._buffered)
        for chunk in iterator:
            self._buffered.append(chunk)
            size += len(chunk)
            if size > limit or self.replacement is not None:
                return False
        return True

    def _release(self) -> None:
        """Start the app's own response, held while its body was inspected."""
        if self._held is None:
            raise RuntimeError("the WSGI app returned its body without calling start_response")
        self.start_response(*self._held)


def _discard(data: bytes) -> None:
    """The ``write`` an app gets once its answer was replaced."""


def _close(result: Iterable[bytes]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


class _Body:
    """The iterable handed to the server.

    It yields ``prefix`` and then the app's remaining output (unless a response phase
    replaced the answer meanwhile), and on ``close`` closes the app's iterable and
    records the transaction's event.
    """

    def __init__(
        self,
        exchange: _Exchange,
        prefix: list[bytes],
        result: Iterable[bytes] | None = None,
        iterator: Iterator[bytes] | None = None,
    ) -> None:
        self.exchange = exchange
        self.prefix = prefix
        self.result = result
        self.iterator = iterator if iterator is not None or result is None else iter(result)

    def __iter__(self) -> Iterator[bytes]:
        yield from self.prefix
        if self.iterator is None:
            return
        try:
            for chunk in self.iterator:
                if self.exchange.replacement is not None:
                    break
                yield chunk
        except Exception:
            self.exchange.status = STATUS_APP_ERROR
            raise
        if self.exchange.replacement is not None:
            yield self.exchange.replacement

    def close(self) -> None:
        """Close the app's iterable, then record the event."""
        try:
            if self.result is not None:
                _close(self.result)
        finally:
            self.exchange.core.record(self.exchange.tx, self.exchange.status)
