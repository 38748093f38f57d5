"""The WSGI middleware, in process: a Flask echo app and raw environ calls."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any
from wsgiref.types import StartResponse

import flask
import pytest
from werkzeug.test import EnvironBuilder

import apishield.wsgi
from apishield.adapters.wsgi import ApishieldMiddleware, Environ, request_from_environ
from tests.support.policies import SQLI_QUERY, holder, leak_holder
from tests.support.sinks import CollectingSink

ECHO = flask.Flask("echo")
ECHO.testing = True


@ECHO.route("/<path:path>", methods=["GET", "POST", "PUT"])
@ECHO.route("/", methods=["GET", "POST"])
def echo(path: str = "") -> flask.Response:
    environ = flask.request.environ
    if path == "fail":
        raise RuntimeError("app failure")
    if path == "secret":
        return flask.Response(b"the SECRET is out", mimetype="text/plain")
    target = environ["RAW_URI"]
    if "?" not in target and environ.get("QUERY_STRING"):
        target += "?" + environ["QUERY_STRING"]
    return flask.jsonify(
        method=flask.request.method,
        target=target,
        headers=[[k, v] for k, v in flask.request.headers.items()],
        body_b64=base64.b64encode(flask.request.get_data()).decode(),
    )


def shield(**overrides: Any) -> tuple[ApishieldMiddleware, CollectingSink]:
    sink = CollectingSink()
    return ApishieldMiddleware(ECHO.wsgi_app, policy=holder(**overrides), sinks=sink), sink


def run_wsgi(app: Any, environ: Environ) -> tuple[int, dict[str, str], bytes]:
    """Call ``app`` like a server: start_response, iterate, close."""
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append((status, headers))
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    status, headers = started[-1]
    return int(status[:3]), {k.lower(): v for k, v in headers}, body


def environ_for(path: str = "/", **kwargs: Any) -> Environ:
    return dict(EnvironBuilder(path=path, **kwargs).get_environ())


def echoed_body(body: bytes) -> bytes:
    return base64.b64decode(json.loads(body)["body_b64"])


def test_public_import_path() -> None:
    assert apishield.wsgi.ApishieldMiddleware is ApishieldMiddleware


def test_clean_requests_reach_the_app_untouched() -> None:
    app, sink = shield()
    status, _, body = run_wsgi(app, environ_for("/items/a%2Fb", query_string="q=hello%20world"))
    assert (status, json.loads(body)["target"]) == (200, "/items/a%2Fb?q=hello%20world")
    payload = b'{"name": "caf\xc3\xa9"}'
    environ = environ_for("/items", method="POST", data=payload, content_type="application/json")
    status, _, body = run_wsgi(app, environ)
    assert (status, echoed_body(body)) == (200, payload)
    assert [(e.verdict, e.method, e.path, e.status) for e in sink.events] == [
        ("allow", "GET", "/items/a%2Fb", 200),
        ("allow", "POST", "/items", 200),
    ]


def test_sqli_in_query_is_blocked_with_problem_json() -> None:
    app, sink = shield()
    status, headers, body = run_wsgi(app, environ_for("/search", query_string=SQLI_QUERY))
    assert (status, headers["content-type"]) == (403, "application/problem+json")
    assert headers["content-length"] == str(len(body))
    [event] = sink.events
    assert (event.event_id, event.verdict, event.status) == (
        json.loads(body)["event_id"],
        "block",
        403,
    )


def test_attack_in_body_is_blocked() -> None:
    app, sink = shield()
    status, _, _ = run_wsgi(app, environ_for("/search", method="POST", data=b"q=1' OR 1=1--"))
    assert (status, sink.events[0].verdict) == (403, "block")


def test_blocked_request_never_reaches_the_app_through_flask_client() -> None:
    flask_app = flask.Flask("wrapped")
    calls: list[str] = []

    @flask_app.route("/search")
    def search() -> str:
        calls.append("hit")
        return "ok"

    flask_app.wsgi_app = ApishieldMiddleware(flask_app.wsgi_app, policy=holder())  # type: ignore[method-assign]
    with flask_app.test_client() as client:
        assert client.get(f"/search?{SQLI_QUERY}").status_code == 403
        assert client.get("/search?q=shoes").status_code == 200
    assert calls == ["hit"]


def test_oversized_body_is_answered_413_without_the_app() -> None:
    app, sink = shield(limits={"max_body_bytes": 10})
    status, _, body = run_wsgi(app, environ_for("/x", method="POST", data=b"x" * 50))
    assert status == 413
    assert json.loads(body)["event_id"] == sink.events[0].event_id
    assert (sink.events[0].verdict, sink.events[0].status) == ("reject", 413)


def chunked_environ(data: bytes) -> Environ:
    environ = environ_for("/x", method="POST")
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BytesIO(data)
    environ["wsgi.input_terminated"] = True
    return environ


def test_chunked_bodies_are_read_to_the_end_within_the_limit() -> None:
    app, _ = shield(limits={"max_body_bytes": 10})
    status, _, body = run_wsgi(app, chunked_environ(b"0123456789"))
    assert (status, echoed_body(body)) == (200, b"0123456789")
    assert run_wsgi(app, chunked_environ(b"0123456789A"))[0] == 413


def test_body_without_length_or_terminator_is_empty() -> None:
    app, _ = shield()
    environ = chunked_environ(b"ignored")
    del environ["wsgi.input_terminated"]
    status, _, body = run_wsgi(app, environ)
    assert (status, echoed_body(body)) == (200, b"")


def test_request_from_environ_without_raw_uri() -> None:
    environ = environ_for("/a b/é", query_string="x=1", headers={"X-Trace": "t"})
    environ.update(CONTENT_TYPE="text/plain", REMOTE_ADDR="10.0.0.7")
    del environ["RAW_URI"], environ["REQUEST_URI"]
    request = request_from_environ(environ)
    assert (request.path, request.query, request.client) == ("/a%20b/%C3%A9", "x=1", "10.0.0.7")
    assert request.headers.get("x-trace") == "t"
    assert request.headers.get("content-type") == "text/plain"


def test_app_exception_propagates_after_the_event() -> None:
    app, sink = shield()
    with pytest.raises(RuntimeError, match="app failure"):
        run_wsgi(app, environ_for("/fail"))
    assert (sink.events[0].status, sink.events[0].path) == (500, "/fail")


class Closing:
    """An app iterable that records whether it was closed, optionally failing midway."""

    def __init__(self, chunks: list[bytes], fail: bool = False) -> None:
        self.chunks = chunks
        self.fail = fail
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.fail:
            raise RuntimeError("stream broke")

    def close(self) -> None:
        self.closed = True


def app_returning(result: Iterable[bytes]) -> Any:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("content-type", "text/plain")])
        return result

    return app


def middleware(app: Any, sink: CollectingSink) -> ApishieldMiddleware:
    return ApishieldMiddleware(app, policy=holder(), sinks=sink)


def test_app_iterable_is_closed_and_stream_errors_are_recorded() -> None:
    sink = CollectingSink()
    ok, broken = Closing([b"a", b"b"]), Closing([b"a"], fail=True)
    assert (
        run_wsgi(
            ApishieldMiddleware(app_returning(ok), policy=holder(), sinks=sink), environ_for()
        )[2]
        == b"ab"
    )
    with pytest.raises(RuntimeError, match="stream broke"):
        run_wsgi(
            ApishieldMiddleware(app_returning(broken), policy=holder(), sinks=sink), environ_for()
        )
    assert ok.closed and broken.closed
    assert [e.status for e in sink.events] == [200, 500]


def test_record_findings_skips_clean_transactions() -> None:
    app, sink = shield(events={"record": "findings"})
    run_wsgi(app, environ_for("/clean"))
    run_wsgi(app, environ_for("/search", query_string=SQLI_QUERY))
    assert [e.verdict for e in sink.events] == ["block"]


def test_response_body_block_replaces_the_answer() -> None:
    sink = CollectingSink()
    app = ApishieldMiddleware(ECHO.wsgi_app, policy=leak_holder(), sinks=sink)
    status, headers, body = run_wsgi(app, environ_for("/secret"))
    assert (status, headers["content-type"]) == (403, "application/problem+json")
    assert b"SECRET" not in body
    assert run_wsgi(app, environ_for("/clean"))[0] == 200
    assert [e.verdict for e in sink.events] == ["block", "allow"]


def test_lazy_start_and_oversized_responses_pass_uninspected() -> None:
    def lazy(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield from (b"SEC", b"RET", b" and more")

    source = ApishieldMiddleware(lazy, policy=leak_holder(max_response_inspect_bytes=4))
    assert run_wsgi(source, environ_for())[::2] == (200, b"SECRET and more")
    closing = Closing([b"SECRET"])
    blocked = ApishieldMiddleware(app_returning(closing), policy=leak_holder())
    assert run_wsgi(blocked, environ_for())[0] == 403
    assert closing.closed


def test_options_are_validated_up_front() -> None:
    with pytest.raises(TypeError):
        ApishieldMiddleware(ECHO.wsgi_app, policy=holder(), sinks=object())  # type: ignore[arg-type]
