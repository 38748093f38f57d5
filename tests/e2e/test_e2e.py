"""The same cases against every adapter, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import gzip
import json

import httpx

from tests.e2e.conftest import MAX_BODY, Shielded
from tests.support.echo import decode_echo

SQLI = "1%27%20OR%201%3D1--"
JSON = {"content-type": "application/json"}


def sent_target(response: httpx.Response) -> str:
    """The request target exactly as the client put it on the wire."""
    return response.request.url.raw_path.decode("ascii")


def assert_problem(response: httpx.Response, status: int) -> str:
    """Check a problem+json answer; return its event id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    event_id: str = problem["event_id"]
    return event_id


def test_clean_get_with_query_is_forwarded_untouched(shielded: Shielded) -> None:
    response = shielded.client.get(
        "/items/a%2Fb?q=hello%20world&tags=a&tags=b&empty=", headers={"x-trace": "t-1"}
    )
    assert response.status_code == 200
    echoed = decode_echo(response.content)
    assert (echoed["method"], echoed["target"]) == ("GET", sent_target(response))
    assert ["x-trace", "t-1"] in [[k.lower(), v] for k, v in echoed["headers"]]
    event = shielded.event_for("GET", "/items/a%2Fb")
    assert (event.verdict, event.status) == ("allow", 200)


def test_clean_json_post_is_forwarded_byte_for_byte(shielded: Shielded) -> None:
    body = '{"name":  "Café ☕", "tags": ["a", "b"], "n": 1.50}\n'.encode()
    response = shielded.client.post("/orders?v=2", content=body, headers=JSON)
    assert response.status_code == 200
    echoed = decode_echo(response.content)
    assert (echoed["method"], echoed["target"], echoed["body"]) == (
        "POST",
        "/orders?v=2",
        body,
    )
    event = shielded.event_for("POST", "/orders")
    assert (event.verdict, event.status) == ("allow", 200)


def test_sqli_in_query_is_blocked_and_recorded(shielded: Shielded) -> None:
    response = shielded.client.get(f"/search?q={SQLI}")
    event = shielded.event(assert_problem(response, 403))
    assert (event.method, event.path, event.status, event.verdict) == (
        "GET",
        "/search",
        403,
        "block",
    )
    assert [f.check for f in event.findings] == ["sqli"]


def test_attack_in_json_body_is_blocked(shielded: Shielded) -> None:
    body = json.dumps({"filter": {"name": "x' OR 1=1--"}}).encode()
    response = shielded.client.post("/search", content=body, headers=JSON)
    event = shielded.event(assert_problem(response, 403))
    assert (event.method, event.path, event.verdict) == ("POST", "/search", "block")


def test_oversized_body_is_rejected(shielded: Shielded) -> None:
    response = shielded.client.post("/upload", content=b"x" * (2 * MAX_BODY))
    event = shielded.event(assert_problem(response, 413))
    assert (event.method, event.path, event.status, event.verdict) == (
        "POST",
        "/upload",
        413,
        "reject",
    )


def test_malformed_json_is_rejected(shielded: Shielded) -> None:
    response = shielded.client.post("/orders", content=b'{"name": "unterminated', headers=JSON)
    event = shielded.event(assert_problem(response, 400))
    assert (event.path, event.status, event.verdict) == ("/orders", 400, "reject")


def test_monitor_mode_forwards_the_attack_and_records_it(shielded: Shielded) -> None:
    shielded.use("monitor")
    response = shielded.client.get(f"/search?q={SQLI}")
    assert response.status_code == 200
    assert decode_echo(response.content)["target"] == f"/search?q={SQLI}"
    event = shielded.event_for("GET", "/search")
    assert (event.verdict, event.status) == ("monitor", 200)
    assert [f.check for f in event.findings] == ["sqli"]


def test_exclusion_lets_only_the_excluded_parameter_through(shielded: Shielded) -> None:
    shielded.use("exclusion")
    allowed = shielded.client.get(f"/search?q={SQLI}")
    assert allowed.status_code == 200
    assert decode_echo(allowed.content)["target"] == f"/search?q={SQLI}"
    assert shielded.event_for("GET", "/search").verdict == "allow"
    assert_problem(shielded.client.get(f"/search?other={SQLI}"), 403)
    assert_problem(shielded.client.get(f"/elsewhere?q={SQLI}"), 403)


def test_connection_stays_usable_after_an_unread_body_is_refused(shielded: Shielded) -> None:
    blocked = shielded.client.post(f"/search?q={SQLI}", content=b"a=1&" * 256)
    assert_problem(blocked, 403)
    assert_problem(shielded.client.post("/upload", content=b"y" * (MAX_BODY + 10)), 413)
    followed = shielded.client.get("/after?x=1")
    assert followed.status_code == 200
    assert decode_echo(followed.content)["target"] == "/after?x=1"


def test_attack_in_a_gzip_body_is_blocked(shielded: Shielded) -> None:
    body = gzip.compress(json.dumps({"filter": {"name": "x' OR 1=1--"}}).encode())
    headers = {**JSON, "content-encoding": "gzip"}
    response = shielded.client.post("/search", content=body, headers=headers)
    event = shielded.event(assert_problem(response, 403))
    assert [f.check for f in event.findings] == ["sqli"]


def test_clean_gzip_body_is_forwarded_still_compressed(shielded: Shielded) -> None:
    body = gzip.compress(b'{"name": "Caf\\u00e9", "n": 1}')
    headers = {**JSON, "content-encoding": "gzip"}
    response = shielded.client.post("/orders", content=body, headers=headers)
    assert response.status_code == 200
    assert decode_echo(response.content)["body"] == body


def test_unsupported_content_coding_is_refused(shielded: Shielded) -> None:
    headers = {**JSON, "content-encoding": "br"}
    response = shielded.client.post("/orders", content=b"\x8b\x02\x80{}\x03", headers=headers)
    event = shielded.event(assert_problem(response, 415))
    assert (event.status, event.verdict) == (415, "reject")
