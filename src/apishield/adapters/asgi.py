"""Pure ASGI middleware: translates each HTTP exchange into engine phases.

Reading the body: the request body is buffered from ``receive`` up to
``limits.max_body_bytes``; one byte more and the request is answered 413 without
calling the app. The app then receives the buffered body in one message.

Hot reload: the engine is read from the :class:`~apishield.reload.PolicyHolder` per
request. When the holder has a policy file, the middleware asks it to reload a
changed file at most once per ``reload_every`` seconds (by the injected monotonic
``clock``); the stat and, after a change, the parse and compile run on the event loop
thread. Pass ``reload_every=None`` to leave reloading to the caller.

:class:`AdapterCore` also serves the WSGI middleware.
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from apishield.engine import Engine, Transaction, judge_head_first
from apishield.events import EventSink, SecurityEvent
from apishield.findings import Location, Source, Verdict
from apishield.http import Headers, Request, Response
from apishield.policy import Policy
from apishield.problem import PROBLEM_CONTENT_TYPE
from apishield.reload import PolicyHolder
from apishield.sinks import open_policy_sinks

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PolicySource = str | os.PathLike[str] | Policy | PolicyHolder
STATUS_APP_ERROR = 500
STATUS_CLIENT_GONE = 499  # the client disconnected before its body arrived
_PATH_SAFE = "/:@!$&'()*+,;=~"


class AdapterCore:
    """What every middleware shares: the policy holder, throttled reload, event emission."""

    def __init__(
        self,
        policy: PolicySource,
        sinks: EventSink | None,
        reload_every: float | None,
        clock: Callable[[], float],
    ) -> None:
        if sinks is not None and not callable(getattr(sinks, "emit", None)):
            raise TypeError(f"sinks must be an EventSink with emit(), got {type(sinks).__name__}")
        if reload_every is not None and reload_every <= 0:
            raise ValueError(f"reload_every must be positive seconds or None, got {reload_every}")
        self.holder = _as_holder(policy)
        self.sinks: EventSink = sinks if sinks is not None else _policy_sinks(self.holder)
        self.reload_every = reload_every if self.holder.path is not None else None
        self.clock = clock
        self._next_reload_check = clock()

    def engine(self) -> Engine:
        """The engine for a new request, after a reload check when one is due."""
        if self.reload_every is not None:
            now = self.clock()
            if now >= self._next_reload_check:
                self._next_reload_check = now + self.reload_every
                self.holder.reload_if_changed()
        return self.holder.engine

    def record(self, tx: Transaction, status: int | None) -> SecurityEvent:
        """Finish ``tx`` and emit its event as ``events.record`` asks."""
        event = tx.finish(status=status)
        if tx.engine.wants_event(event):
            self.sinks.emit(event)
        return event


def _policy_sinks(holder: PolicyHolder) -> EventSink:
    """The policy's own sinks, flushed and closed when the process exits."""
    sinks = open_policy_sinks(holder.engine.policy.events)
    atexit.register(sinks.close)
    return sinks


def _as_holder(policy: PolicySource) -> PolicyHolder:
    if isinstance(policy, PolicyHolder):
        return policy
    if isinstance(policy, Policy):
        return PolicyHolder(None, policy=policy)
    if isinstance(policy, str | os.PathLike):
        return PolicyHolder(Path(policy))
    raise TypeError(
        f"policy must be a path, a Policy or a PolicyHolder, got {type(policy).__name__}"
    )


def quote_path(decoded: bytes) -> str:
    """Re-encode a decoded path; ``%2F`` and ``/`` can no longer be told apart."""
    return quote(decoded, safe=_PATH_SAFE)


def oversized_verdict(tx: Transaction) -> Verdict:
    """The answer to a body past the limit, enforced whatever the engine's mode."""
    limits = tx.engine.policy.limits
    return tx.reject(
        "limits.body_size",
        limits.statuses.body,
        f"request body exceeds {limits.max_body_bytes} bytes",
        Location(Source.BODY),
    )


def request_from_scope(scope: Scope) -> Request:
    """The engine's view of an HTTP scope; path and query exactly as received."""
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote_path(scope["path"].encode())
    client = scope.get("client")
    return Request(
        method=scope["method"],
        path=path,
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=Headers.from_raw(scope.get("headers", ())),
        client=client[0] if client else "",
        scheme=scope.get("scheme", "http"),
        http_version=scope.get("http_version", "1.1"),
    )


async def send_verdict(send: Send, verdict: Verdict) -> None:
    """Answer with the verdict's problem+json body."""
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(verdict.body)).encode()),
        *Headers(verdict.headers).raw(),
    ]
    await send({"type": "http.response.start", "status": verdict.status, "headers": headers})
    await send({"type": "http.response.body", "body": verdict.body})


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, cut at ``limit + 1`` bytes; ``None`` if the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[: limit + 1]
        if not message.get("more_body", False):
            return b"".join(chunks)


class ApishieldMiddleware:
    """Inspect every HTTP request (and response) of ``app`` with the apishield engine.

    ``policy`` is a policy file path, a :class:`~apishield.policy.Policy` or a
    :class:`~apishield.reload.PolicyHolder`; ``sinks`` receives security events
    (default: the sinks the policy's ``events`` section names, closed at exit).
    WebSocket and lifespan scopes pass through untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: PolicySource,
        sinks: EventSink | None = None,
        reload_every: float | None = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not callable(app):
            raise TypeError("app must be an ASGI application")
        self.app = app
        self.core = AdapterCore(policy, sinks, reload_every, clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tx = self.core.engine().transaction(request_from_scope(scope))
        exchange = _Exchange(self.app, tx, receive, send)
        try:
            await exchange.run(scope)
        except BaseException:
            exchange.status = STATUS_APP_ERROR
            raise
        finally:
            self.core.record(tx, exchange.status)


class _Exchange:
    """One HTTP exchange: the request phases, then the app with wrapped receive/send."""

    def __init__(self, app: ASGIApp, tx: Transaction, receive: Receive, send: Send) -> None:
        self.app = app
        self.tx = tx
        self.receive = receive
        self.send = send
        self.status: int | None = None
        self.body = b""
        self._replayed = False
        self._held: Message | None = None  # response start held while the body is inspected
        self._chunks: list[bytes] = []
        self._size = 0
        self._done = False  # the answer is complete (or replaced): drop further app output

    async def run(self, scope: Scope) -> None:
        verdict = await self._request_phases()
        if verdict is not None:
            await self._answer(verdict)
        elif self.status is None:
            await self.app(scope, self._receive, self._send)

    async def _request_phases(self) -> Verdict | None:
        if judge_head_first(self.tx.request):
            verdict = self.tx.request_headers()
            if verdict is not None:
                return verdict
        limits = self.tx.engine.policy.limits
        body = await read_body(self.receive, limits.max_body_bytes)
        if body is None:
            self.status = STATUS_CLIENT_GONE
            return None
        if len(body) > limits.max_body_bytes:
            return oversized_verdict(self.tx)
        self.body = body
        return self.tx.request_body(body)

    async def _answer(self, verdict: Verdict) -> None:
        self._done = True
        self.status = verdict.status
        await send_verdict(self.send, verdict)

    async def _receive(self) -> Message:
        if self._replayed:
            return await self.receive()
        self._replayed = True
        return {"type": "http.request", "body": self.body, "more_body": False}

    async def _send(self, message: Message) -> None:
        if self._done:
            return
        kind = message["type"]
        if kind == "http.response.start":
            await self._start(message)
        elif kind == "http.response.body" and self._held is not None:
            await self._buffer(message)
        else:
            await self.send(message)

    async def _start(self, message: Message) -> None:
        self.status = message["status"]
        response = Response(message["status"], Headers.from_raw(message.get("headers", ())))
        verdict = self.tx.response_headers(response)
        if verdict is not None:
            await self._answer(verdict)
        elif self.tx.engine.wants_response_body:
            self._held = message
        else:
            await self.send(message)

    async def _buffer(self, message: Message) -> None:
        chunk = message.get("body", b"")
        self._chunks.append(chunk)
        self._size += len(chunk)
        more = message.get("more_body", False)
        if self._size > self.tx.engine.policy.limits.max_response_inspect_bytes:
            await self._release(more)
        elif not more:
            verdict = self.tx.response_body(b"".join(self._chunks))
            if verdict is not None:
                await self._answer(verdict)
            else:
                await self._release(more)

    async def _release(self, more: bool) -> None:
        """Send the held start and buffered body; later body messages pass through."""
        assert self._held is not None
        held, self._held = self._held, None
        await self.send(held)
        await self.send(
            {"type": "http.response.body", "body": b"".join(self._chunks), "more_body": more}
        )
        self._chunks = []
