"""The demo upstream API: endpoints, errors, keep-alive, start and stop."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from apishield.demo_api import DemoAPI, start_demo_api


@pytest.fixture
def api() -> Iterator[DemoAPI]:
    with start_demo_api() as api:
        yield api


@pytest.fixture
def conn(api: DemoAPI) -> Iterator[http.client.HTTPConnection]:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    yield conn
    conn.close()


def call(
    conn: http.client.HTTPConnection, method: str, target: str, body: object = None
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} if data is not None else {}
    conn.request(method, target, body=data, headers=headers)
    response = conn.getresponse()
    assert response.getheader("content-type") == "application/json"
    return response.status, json.loads(response.read())


def test_url_and_port(api: DemoAPI) -> None:
    assert api.port > 0
    assert api.url == f"http://127.0.0.1:{api.port}"


def test_users(conn: http.client.HTTPConnection) -> None:
    status, users = call(conn, "GET", "/api/users")
    assert status == 200
    assert [u["id"] for u in users] == [1, 2, 3]
    assert call(conn, "GET", "/api/users/2")[1]["name"] == "Alan Turing"
    status, created = call(conn, "POST", "/api/users", {"name": "Edsger", "email": "e@x.org"})
    assert (status, created["id"]) == (201, 4)
    assert call(conn, "GET", "/api/users/4")[1] == created


def test_user_by_query_id_shows_the_naive_sql(conn: http.client.HTTPConnection) -> None:
    status, found = call(conn, "GET", "/api/users?id=3")
    assert status == 200
    assert found["query"] == "SELECT * FROM users WHERE id = 3"
    assert found["users"][0]["name"] == "Grace Hopper"


def test_orders(conn: http.client.HTTPConnection) -> None:
    assert len(call(conn, "GET", "/api/orders")[1]) == 2
    status, order = call(conn, "POST", "/api/orders", {"item": "book", "quantity": 2})
    assert (status, order["item"], order["quantity"]) == (201, "book", 2)
    assert call(conn, "GET", f"/api/orders/{order['id']}")[1] == order


def test_search_echoes_and_simulates(conn: http.client.HTTPConnection) -> None:
    status, result = call(conn, "GET", "/api/search?q=running")
    assert status == 200
    assert [r["name"] for r in result["results"]] == ["blue running shoes", "red running shoes"]
    attack = "' OR '1'='1"
    status, result = call(conn, "GET", "/api/search?q=%27%20OR%20%271%27%3D%271")
    assert status == 200
    assert result["q"] == attack
    assert result["query"] == f"SELECT name FROM products WHERE name LIKE '%{attack}%'"
    assert result["results"] == []


def test_files_never_reads_the_disk(conn: http.client.HTTPConnection) -> None:
    status, result = call(conn, "GET", "/api/files?name=../../../../etc/passwd")
    assert status == 200
    assert result["content"] == "(simulated)"
    assert "root:" not in json.dumps(result)


def test_login(conn: http.client.HTTPConnection) -> None:
    status, result = call(conn, "POST", "/api/login", {"username": "demo", "password": "demo"})
    assert status == 200
    assert len(result["token"]) > 20
    status, result = call(conn, "POST", "/api/login", {"username": "demo", "password": "x"})
    assert (status, result) == (401, {"error": "invalid credentials"})


@pytest.mark.parametrize(
    ("method", "target", "body", "expected"),
    [
        ("GET", "/api/nothing", None, "404 no route for /api/nothing"),
        ("GET", "/api/users/99", None, "404 no user 99"),
        ("DELETE", "/api/users", None, "405 method DELETE not allowed"),
        ("POST", "/api/users", b"{not json", "400 invalid JSON body"),
        ("POST", "/api/users", [1, 2], "400 the body must be a JSON object"),
        ("POST", "/api/users", {"name": "x"}, "400 missing field(s): email"),
    ],
)
def test_errors(
    conn: http.client.HTTPConnection, method: str, target: str, body: object, expected: str
) -> None:
    status, error = expected.split(" ", 1)
    got_status, result = call(conn, method, target, body)
    assert got_status == int(status)
    assert result["error"].startswith(error)


def test_keep_alive_reuses_one_connection(conn: http.client.HTTPConnection) -> None:
    call(conn, "GET", "/api/health")
    sock = conn.sock
    assert sock is not None
    for _ in range(3):
        assert call(conn, "GET", "/api/health") == (200, {"status": "ok"})
    assert conn.sock is sock


def test_stop_closes_the_port() -> None:
    api = start_demo_api()
    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    assert call(conn, "GET", "/api/health")[0] == 200
    conn.close()
    api.stop()
    with pytest.raises(OSError), socket.create_connection((api.host, api.port), timeout=2):
        pass
