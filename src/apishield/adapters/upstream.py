"""A small pooled HTTP/1.1 client for the proxy's upstreams, on asyncio + llhttp.

One :class:`UpstreamPool` per configured upstream keeps idle keep-alive connections.
A request is written in one go (the proxy has already buffered the body) and the
response is pushed, as it is parsed, to a :class:`ResponseHandler`, whose
``response_done`` ends the exchange. Nothing is awaited on a reused connection: no
task, coroutine or future per request; only opening a new connection runs a task.
Back-pressure from the client side pauses the upstream socket. Interim (1xx)
responses are dropped; HEAD responses end at their head.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import Any, Final, cast

import httptools

from apishield.errors import UpstreamError, UpstreamTimeout
from apishield.policy import Upstream
from apishield.rawheaders import RawHeaders, find_headers

_FRAMING: Final = (b"content-length", b"transfer-encoding")


class ResponseHandler(ABC):
    """Receives one upstream response as it is parsed.

    A base class rather than a protocol: compiled, calls through it are direct.
    """

    __slots__ = ()

    @abstractmethod
    def attach(self, source: UpstreamConnection) -> None:
        """The connection that will carry the response (to pause it under back-pressure)."""

    @abstractmethod
    def response_head(self, status: int, headers: RawHeaders, length_known: bool) -> bool:
        """The status and headers; ``length_known`` is False for chunked or close-delimited.

        Returning False abandons the rest of the response (the connection is dropped).
        """

    @abstractmethod
    def response_body(self, chunk: bytes) -> bool:
        """A piece of the (de-chunked) body; returning False abandons the rest."""

    @abstractmethod
    def response_done(self, error: UpstreamError | None) -> None:
        """The exchange is over: the response was handed over (``None``) or failed.

        Called exactly once per request, and it must not raise.
        """

    @abstractmethod
    def replayable(self) -> bool:
        """True when the request may be sent twice (asked only before a resend)."""


class _Request:
    """One request to the upstream: what sending it, or sending it again, needs."""

    __slots__ = ("body", "data", "handler", "head_request")

    def __init__(
        self, data: bytes, body: bytes, handler: ResponseHandler, head_request: bool
    ) -> None:
        self.data = data
        self.body = body
        self.handler = handler
        self.head_request = head_request


class UpstreamConnection(asyncio.Protocol):
    """One connection to an upstream; carries one exchange at a time."""

    def __init__(self, pool: UpstreamPool, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = pool
        self._loop = loop
        self._read_timeout = pool.config.read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._request: _Request | None = None  # the exchange in flight
        self._headers: RawHeaders = []
        self._interim = False
        self._until_close = False
        self._stale_parser = False
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self.reused = False
        self.received_any = False
        self.reusable = True
        self.idle_since = 0.0

    # -- the exchange ------------------------------------------------------------

    def send(self, request: _Request) -> None:
        """Write a request; its handler hears of the response and of the end."""
        assert self._transport is not None
        self._request = request
        request.handler.attach(self)
        self._until_close = False
        self.received_any = False
        self._deadline = self._loop.time() + self._read_timeout
        if self._timer is None:  # else the running timer moves on to the new deadline
            self._timer = self._loop.call_at(self._deadline, self._check_timeout)
        if len(request.body) < 65536:
            self._transport.write(request.data + request.body)
        else:
            self._transport.writelines((request.data, request.body))

    def pause(self) -> None:
        """Stop reading the upstream (the client cannot take more yet)."""
        if self._transport is not None and not self._paused:
            self._paused = True
            self._transport.pause_reading()

    def resume(self) -> None:
        """Read the upstream again."""
        if self._transport is not None and self._paused:
            self._paused = False
            self._transport.resume_reading()

    def drop(self) -> None:
        """Close without a word to the handler of the exchange in flight (it is gone)."""
        self._request = None
        self.close()

    def close(self) -> None:
        """Drop the connection (idle or not); an exchange in flight fails."""
        self.reusable = False
        if self._transport is not None:
            self._transport.close()

    @property
    def closed(self) -> bool:
        """True once the connection cannot carry another request."""
        return self._transport is None or self._transport.is_closing() or not self.reusable

    def _finish(self, error: UpstreamError | None = None) -> None:
        request, self._request = self._request, None
        if request is None:
            return
        if error is not None:
            self.close()
        elif self._paused:
            self.resume()
        self._pool.exchange_done(self, request, error)

    def _abandon(self) -> None:
        """The handler wants no more of this response: end the exchange, drop the socket."""
        self.reusable = False
        self._finish()
        self.close()

    def _check_timeout(self) -> None:
        """One lazily re-armed timer per connection serves every read deadline."""
        self._timer = None
        if self._request is None or self._transport is None:
            return  # idle: the next request arms it again
        if self._loop.time() >= self._deadline:
            self._finish(UpstreamTimeout(f"no response data within {self._read_timeout:g} s"))
        else:
            self._timer = self._loop.call_at(self._deadline, self._check_timeout)

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.reusable = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._request is None:
            return
        if self._until_close:
            self._finish()
        else:
            self._finish(UpstreamError("the upstream closed the connection"))

    def data_received(self, data: bytes) -> None:
        if self._request is None:
            self.close()  # unsolicited bytes: the connection is out of step
            return
        self.received_any = True
        self._deadline = self._loop.time() + self._read_timeout
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(UpstreamError(f"broken response from the upstream: {exc}"))
        if self._stale_parser:
            self._stale_parser = False
            self._parser = httptools.HttpResponseParser(self)

    # -- llhttp callbacks --------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status: int = self._parser.get_status_code()
        request = self._request
        if request is None:
            self.close()
            return
        if 100 <= status < 200:
            self._interim = status != 101
            if status == 101:
                self._finish(UpstreamError("the upstream switched protocols unasked"))
            return
        headers = self._headers
        length: bytes | None = None
        chunked = False
        for name, value in find_headers(headers, _FRAMING):
            if name == b"content-length":
                length = value
            else:
                chunked = True
        length_known = length is not None
        bodyless = request.head_request or status in (204, 304)
        self._until_close = not (length_known or chunked or bodyless)
        if status in (204, 304) and (chunked or length not in (None, b"0")):
            self.reusable = False  # it may send the body it announced anyway
        if not request.handler.response_head(status, headers, length_known or bodyless):
            self._abandon()
        elif request.head_request:
            self._stale_parser = True  # llhttp would wait for the announced body
            self._finish()

    def on_body(self, body: bytes) -> None:
        request = self._request
        if request is None:
            self.close()
        elif not self._interim and not request.handler.response_body(body):
            self._abandon()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self._request is None:
            return
        if not self._parser.should_keep_alive():
            self.reusable = False
        self._finish()


class UpstreamPool:
    """Keep-alive connections to one upstream, with its timeouts."""

    def __init__(self, upstream: Upstream, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = upstream
        # read on every request: plain attributes, not the policy model's
        self._idle_timeout: Final = upstream.idle_timeout
        self._pool_size: Final = upstream.pool_size
        self._clock = clock
        # Any: its fields are None when absent, whatever the stubs say (compiled code checks)
        url: Any = httptools.parse_url(upstream.url.encode("latin-1"))
        self.https = url.schema == b"https"
        self.host = url.host.decode("idna")
        self.port = url.port or (443 if self.https else 80)
        self.prefix: bytes = (url.path or b"").rstrip(b"/")
        self._ssl = ssl.create_default_context() if self.https else None
        self._idle: deque[UpstreamConnection] = deque()
        self._opening: set[asyncio.Task[None]] = set()
        self._closed = False

    def request(
        self, data: bytes, body: bytes, handler: ResponseHandler, *, head_request: bool
    ) -> None:
        """Send one request; ``handler`` gets its response, then ``response_done``.

        When a reused keep-alive connection dies before any response byte (the
        upstream closed it while idle), the request is sent again on a fresh
        connection if the handler says it is ``replayable``: the upstream may have
        acted on it before the connection died.
        """
        request = _Request(data, body, handler, head_request)
        conn = self._take_idle()
        if conn is None:
            self._open_and_send(request)
        else:
            conn.reused = True
            conn.send(request)

    def exchange_done(
        self, conn: UpstreamConnection, request: _Request, error: UpstreamError | None
    ) -> None:
        """Called by ``conn`` when its exchange ends: keep it or drop it, tell the handler."""
        if error is None:
            self._release(conn)
        elif (
            conn.reused
            and not conn.received_any
            and not isinstance(error, UpstreamTimeout)
            and request.handler.replayable()
        ):
            self._open_and_send(request)  # a stale keep-alive connection: try a fresh one
            return
        request.handler.response_done(error)

    def _take_idle(self) -> UpstreamConnection | None:
        """The most recently used live connection (the least likely to have gone stale).

        Connections idle past ``idle_timeout`` are closed first: they are the oldest,
        on the left.
        """
        idle = self._idle
        oldest_allowed = self._clock() - self._idle_timeout
        while idle and idle[0].idle_since < oldest_allowed:
            idle.popleft().close()
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def _release(self, conn: UpstreamConnection) -> None:
        if self._closed or conn.closed or len(self._idle) >= self._pool_size:
            conn.close()
        else:
            conn.idle_since = self._clock()
            self._idle.append(conn)

    def _open_and_send(self, request: _Request) -> None:
        task = asyncio.get_running_loop().create_task(self._connect_and_send(request))
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    async def _connect_and_send(self, request: _Request) -> None:
        try:
            conn = await self._connect()
        except UpstreamError as exc:
            request.handler.response_done(exc)
            return
        conn.send(request)

    async def _connect(self) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        timeout = self.config.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(self, loop),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"connecting to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return conn

    def close(self) -> None:
        """Close every idle connection; connections still busy close when they are done."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
