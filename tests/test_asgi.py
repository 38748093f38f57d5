"""The ASGI middleware, in process: a Starlette echo app and raw scope calls."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import apishield.asgi
from apishield.adapters.asgi import ApishieldMiddleware, Message, Scope, request_from_scope
from apishield.policy import Policy, policy_from_dict
from apishield.reload import PolicyHolder
from tests.support.policies import SQLI_QUERY, holder, leak_holder, make_policy
from tests.support.sinks import CollectingSink


async def echo(request: StarletteRequest) -> Response:
    scope = request.scope
    target = scope["raw_path"].decode("latin-1")
    if scope["query_string"]:
        target += "?" + scope["query_string"].decode("latin-1")
    body = await request.body()
    if request.url.path == "/fail":
        raise RuntimeError("app failure")
    if request.url.path == "/secret":
        return Response(b"the SECRET is out", media_type="text/plain")
    return JSONResponse(
        {
            "method": request.method,
            "target": target,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_b64": base64.b64encode(body).decode(),
        }
    )


ECHO = Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST", "PUT"])])


def shield(**overrides: Any) -> tuple[ApishieldMiddleware, CollectingSink]:
    sink = CollectingSink()
    return ApishieldMiddleware(ECHO, policy=holder(**overrides), sinks=sink), sink


def call(app: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(go())


def http_scope(path: str = "/x", method: str = "POST") -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"text/plain")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }


def run_raw(app: Any, scope: Scope, incoming: Sequence[Message]) -> list[Message]:
    """Call ``app`` with scripted ``receive`` messages; return what it sent."""
    sent: list[Message] = []
    queue = list(incoming)

    async def receive() -> Message:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_public_import_path() -> None:
    assert apishield.asgi.ApishieldMiddleware is ApishieldMiddleware


def test_clean_requests_reach_the_app_untouched() -> None:
    app, sink = shield()
    response = call(app, "GET", "/items/a%2Fb?q=hello%20world&x=1")
    assert response.status_code == 200
    assert response.json()["target"] == "/items/a%2Fb?q=hello%20world&x=1"
    body = b'{"name": "caf\xc3\xa9", "n": 1}'
    posted = call(app, "POST", "/items", content=body, headers={"content-type": "application/json"})
    assert base64.b64decode(posted.json()["body_b64"]) == body
    assert [(e.verdict, e.method, e.path, e.status) for e in sink.events] == [
        ("allow", "GET", "/items/a%2Fb", 200),
        ("allow", "POST", "/items", 200),
    ]
    assert sink.events[0].client_ip == "10.1.2.3"


def test_sqli_in_query_is_blocked_with_problem_json() -> None:
    app, sink = shield()
    response = call(app, "GET", f"/search?{SQLI_QUERY}")
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 403
    [event] = sink.events
    assert (event.event_id, event.verdict, event.status) == (problem["event_id"], "block", 403)
    assert event.findings[0].check == "sqli"


def test_attack_in_body_is_blocked_before_the_app() -> None:
    app, sink = shield()
    response = call(app, "POST", "/search", content=b"q=1' OR 1=1--")
    assert response.status_code == 403
    assert sink.events[0].verdict == "block"


def test_block_response_headers_from_the_policy() -> None:
    app, _ = shield(block_response={"headers": {"x-blocked": "yes"}})
    response = call(app, "GET", f"/search?{SQLI_QUERY}")
    assert response.headers["x-blocked"] == "yes"


def test_oversized_body_is_answered_413_without_the_app() -> None:
    app, sink = shield(limits={"max_body_bytes": 10})
    chunks = [{"type": "http.request", "body": b"x" * 6, "more_body": True}] * 3
    sent = run_raw(app, http_scope(), chunks)
    assert sent[0]["status"] == 413
    assert (b"content-type", b"application/problem+json") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["event_id"] == sink.events[0].event_id
    assert (sink.events[0].verdict, sink.events[0].status) == ("reject", 413)


def test_oversized_body_is_refused_even_with_the_engine_off() -> None:
    app, sink = shield(mode="off", limits={"max_body_bytes": 4})
    response = call(app, "POST", "/x", content=b"too long")
    assert response.status_code == 413
    assert response.json()["event_id"] == sink.events[0].event_id


def test_body_at_the_limit_is_replayed_in_chunks_to_the_app() -> None:
    app, _ = shield(limits={"max_body_bytes": 12})
    chunks = [
        {"type": "http.request", "body": b"abcdef", "more_body": True},
        {"type": "http.request", "body": b"ghijkl", "more_body": False},
    ]
    sent = run_raw(app, http_scope(), chunks)
    assert sent[0]["status"] == 200
    assert base64.b64decode(json.loads(sent[1]["body"])["body_b64"]) == b"abcdefghijkl"


def test_scope_without_raw_path_is_requoted() -> None:
    scope = http_scope("/caf\u00e9 \u2615")
    del scope["raw_path"]
    scope["query_string"] = b"a=%20"
    request = request_from_scope(scope)
    assert (request.path, request.query, request.client) == (
        "/caf%C3%A9%20%E2%98%95",
        "a=%20",
        "127.0.0.1",
    )


def test_client_gone_before_the_body_skips_the_app() -> None:
    app, sink = shield()
    sent = run_raw(app, http_scope(), [{"type": "http.disconnect"}])
    assert sent == []
    assert sink.events[0].status == 499


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
def test_non_http_scopes_pass_through(kind: str) -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "marker"})

    sink = CollectingSink()
    app = ApishieldMiddleware(inner, policy=holder(), sinks=sink)
    scope: Scope = {"type": kind}
    assert run_raw(app, scope, []) == [{"type": "marker"}]
    assert seen == [scope]
    assert sink.events == []


def test_app_exception_propagates_after_the_event() -> None:
    app, sink = shield()
    with pytest.raises(RuntimeError, match="app failure"):
        call(app, "GET", "/fail")
    assert (sink.events[0].status, sink.events[0].path) == (500, "/fail")


def test_record_findings_skips_clean_transactions() -> None:
    app, sink = shield(events={"record": "findings"})
    call(app, "GET", "/clean")
    call(app, "GET", f"/search?{SQLI_QUERY}")
    assert [e.verdict for e in sink.events] == ["block"]


def test_monitor_mode_forwards_and_records() -> None:
    app, sink = shield(mode="monitor")
    response = call(app, "GET", f"/search?{SQLI_QUERY}")
    assert response.status_code == 200
    assert (sink.events[0].verdict, sink.events[0].status) == ("monitor", 200)


def test_response_body_block_replaces_the_answer() -> None:
    sink = CollectingSink()
    app = ApishieldMiddleware(ECHO, policy=leak_holder(), sinks=sink)
    response = call(app, "GET", "/secret")
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert b"SECRET" not in response.content
    assert sink.events[0].verdict == "block"


def test_response_body_inspection_passes_clean_and_oversized_bodies() -> None:
    async def chunked(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"SEC", b"RET", b" and more"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    assert call(ApishieldMiddleware(ECHO, policy=leak_holder()), "GET", "/clean").status_code == 200
    small = leak_holder(max_response_inspect_bytes=4)
    response = call(ApishieldMiddleware(chunked, policy=small), "GET", "/")
    assert (response.status_code, response.content) == (200, b"SECRET and more")


def test_policy_file_is_reloaded_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("mode: block\nevents: {record: all}\n")
    now = [0.0]
    app = ApishieldMiddleware(ECHO, policy=path, reload_every=1.0, clock=lambda: now[0])
    path.write_text("mode: monitor\nevents: {record: all}\n")
    assert call(app, "GET", f"/s?{SQLI_QUERY}").status_code == 200  # first check is due
    path.write_text("mode: block\nevents: {record: all}\n# changed\n")
    now[0] = 0.5
    assert call(app, "GET", f"/s?{SQLI_QUERY}").status_code == 200
    now[0] = 1.5
    assert call(app, "GET", f"/s?{SQLI_QUERY}").status_code == 403


def test_holder_is_used_as_given() -> None:
    given = PolicyHolder(None, policy=make_policy(), engine_factory=lambda _: holder().engine)
    app = ApishieldMiddleware(ECHO, policy=given)
    assert app.core.holder is given
    given.engine = holder(mode="monitor").engine
    assert call(app, "GET", f"/s?{SQLI_QUERY}").status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"policy": 42}, TypeError),
        ({"policy": Policy(), "sinks": object()}, TypeError),
        ({"policy": Policy(), "reload_every": 0}, ValueError),
    ],
)
def test_options_are_validated_up_front(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        ApishieldMiddleware(ECHO, **kwargs)


def test_without_sinks_the_policys_own_sinks_record_events(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    policy = policy_from_dict({"events": {"sinks": [f"file://{log}"]}})
    app = ApishieldMiddleware(ECHO, policy=policy)
    assert call(app, "GET", "/search?" + SQLI_QUERY).status_code == 403
    assert app.core.sinks.flush(timeout=5)
    event = json.loads(log.read_text().splitlines()[-1])
    assert (event["verdict"], event["findings"][0]["check"]) == ("block", "sqli")
