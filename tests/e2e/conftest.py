"""One end-to-end harness for every adapter: a real server on 127.0.0.1:<port 0>.

Each adapter (``proxy``, ``asgi``, ``wsgi``) is started once per session around an
echo application, with a :class:`PolicyHolder` whose engine the tests swap between
a few precompiled policies, which is exactly what a hot reload does.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import flask
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from werkzeug.serving import make_server

from apishield.adapters import asgi, wsgi
from apishield.engine import Engine
from apishield.events import SecurityEvent
from apishield.policy import policy_from_dict
from apishield.reload import PolicyHolder
from tests.support.echo import echo_upstream
from tests.support.sinks import CollectingSink

ADAPTERS = ("proxy", "asgi", "wsgi")
MAX_BODY = 4096
READY_TIMEOUT = 10.0
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _policy(upstream: str, **overrides: Any) -> dict[str, Any]:
    return {
        "upstreams": {"default": {"url": upstream, "read_timeout": 5.0}},
        "limits": {"max_body_bytes": MAX_BODY},
        "events": {"record": "all", "sinks": []},
        **overrides,
    }


def compile_engines(upstream: str) -> dict[str, Engine]:
    """The policies the suite runs under, compiled once (compiling is slow)."""
    exclusion = {"check": "sqli", "path": "/search", "location": "query:q"}
    variants = {
        "block": _policy(upstream),
        "monitor": _policy(upstream, mode="monitor"),
        "exclusion": _policy(upstream, exclusions=[exclusion]),
    }
    return {name: Engine(policy_from_dict(data)) for name, data in variants.items()}


# -- echo applications: the same JSON document as tests/support/echo.py -------------


def _echo_document(method: str, target: str, headers: Any, body: bytes) -> dict[str, Any]:
    return {
        "method": method,
        "target": target,
        "headers": [[k, v] for k, v in headers],
        "body_b64": base64.b64encode(body).decode(),
    }


async def _starlette_echo(request: Request) -> JSONResponse:
    target = request.scope["raw_path"].decode("latin-1")
    if request.scope["query_string"]:
        target += "?" + request.scope["query_string"].decode("latin-1")
    body = await request.body()
    return JSONResponse(_echo_document(request.method, target, request.headers.items(), body))


def starlette_echo() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", _starlette_echo, methods=METHODS)])


def flask_echo() -> flask.Flask:
    app = flask.Flask("e2e-echo")

    @app.route("/", defaults={"path": ""}, methods=METHODS)
    @app.route("/<path:path>", methods=METHODS)
    def echo(path: str) -> flask.Response:
        request = flask.request
        target = request.environ["RAW_URI"]
        document = _echo_document(
            request.method, target, request.headers.items(), request.get_data()
        )
        return flask.jsonify(document)

    return app


# -- servers ----------------------------------------------------------------------


def wait_until_ready(base_url: str) -> None:
    """Poll until the server answers HTTP at all."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            httpx.get(f"{base_url}/__ready", timeout=1.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def serve_asgi(holder: PolicyHolder, sink: CollectingSink) -> Iterator[str]:
    app = asgi.ApishieldMiddleware(starlette_echo(), policy=holder, sinks=sink)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="e2e-uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not (server.started and server.servers):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        base_url = f"http://127.0.0.1:{port}"
        wait_until_ready(base_url)
        yield base_url
    finally:
        server.should_exit = True
        thread.join()


@contextmanager
def serve_wsgi(holder: PolicyHolder, sink: CollectingSink) -> Iterator[str]:
    echo = flask_echo()
    echo.wsgi_app = wsgi.ApishieldMiddleware(echo.wsgi_app, policy=holder, sinks=sink)  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, echo, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-werkzeug", daemon=True)
    thread.start()
    try:
        base_url = f"http://127.0.0.1:{server.server_port}"
        wait_until_ready(base_url)
        yield base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def serve_proxy(holder: PolicyHolder, sink: CollectingSink) -> Iterator[str]:
    try:
        from apishield.adapters.proxy import ProxyServer
    except ModuleNotFoundError as exc:
        if exc.name != "apishield.adapters.proxy":
            raise
        pytest.skip("apishield.adapters.proxy is not written yet")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="e2e-proxy", daemon=True)
    thread.start()

    async def start() -> ProxyServer:
        server = ProxyServer(holder, sinks=sink, listen="127.0.0.1:0", poll_interval=None)
        await server.start()
        return server

    try:
        server = asyncio.run_coroutine_threadsafe(start(), loop).result(READY_TIMEOUT)
        base_url = f"http://127.0.0.1:{server.port}"
        wait_until_ready(base_url)
        try:
            yield base_url
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(READY_TIMEOUT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


SERVERS = {"proxy": serve_proxy, "asgi": serve_asgi, "wsgi": serve_wsgi}


@dataclass
class Shielded:
    """A running adapter: its URL, the holder it reads and the events it recorded."""

    name: str
    base_url: str
    holder: PolicyHolder
    engines: dict[str, Engine]
    sink: CollectingSink
    client: httpx.Client

    def use(self, variant: str) -> None:
        """Swap the policy in force, as a hot reload would."""
        self.holder.engine = self.engines[variant]

    def event(self, event_id: str) -> SecurityEvent:
        return self.sink.wait_for(lambda e: e.event_id == event_id)

    def event_for(self, method: str, path: str) -> SecurityEvent:
        return self.sink.wait_for(lambda e: (e.method, e.path) == (method, path))


@pytest.fixture(scope="session")
def engines() -> Iterator[dict[str, Engine]]:
    with echo_upstream() as upstream:
        yield compile_engines(upstream)


@pytest.fixture(scope="session", params=ADAPTERS)
def running(request: pytest.FixtureRequest, engines: dict[str, Engine]) -> Iterator[Shielded]:
    name: str = request.param
    block = engines["block"]
    holder = PolicyHolder(None, policy=block.policy, engine_factory=lambda _: block)
    sink = CollectingSink()
    with SERVERS[name](holder, sink) as base_url, httpx.Client(base_url=base_url) as client:
        yield Shielded(name, base_url, holder, engines, sink, client)


@pytest.fixture
def shielded(running: Shielded) -> Shielded:
    """The running adapter, reset to the blocking policy with no events."""
    running.use("block")
    running.sink.clear()
    return running
