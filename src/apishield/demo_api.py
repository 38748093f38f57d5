"""A small, deliberately naive demo REST API to put apishield in front of.

Standard library only (``ThreadingHTTPServer``, HTTP/1.1 keep-alive, Content-Length),
so the demo runs anywhere. The handlers show what an unprotected API would do with
hostile input (the search reports the SQL it *would* run, the file endpoint the path
it *would* open) but nothing is ever executed, queried or read from disk.

Endpoints, all JSON::

    GET  /api/health
    GET  /api/users[?id=N]        POST /api/users   {"name", "email"}
    GET  /api/users/{id}
    GET  /api/orders              POST /api/orders  {"item", "quantity"}
    GET  /api/orders/{id}
    GET  /api/search?q=TEXT
    POST /api/login               {"username", "password"}  (demo / demo)
    GET  /api/files?name=NAME
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Payload = dict[str, Any] | list[dict[str, Any]]
Reply = tuple[int, Payload]
MAX_BODY = 1_048_576
SHUTDOWN_POLL = 0.05  # seconds; how quickly stop() returns


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Call:
    """One parsed request as the handlers see it."""

    params: dict[str, str]
    match: re.Match[str]
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            document = json.loads(self.body or b"null")
        except ValueError as exc:
            raise _HTTPError(400, f"invalid JSON body: {exc}") from None
        if not isinstance(document, dict):
            raise _HTTPError(400, "the body must be a JSON object")
        return document


@dataclass
class DemoData:
    """The API's in-memory records."""

    users: dict[int, dict[str, Any]] = field(
        default_factory=lambda: {
            1: {"id": 1, "name": "Ada Lovelace", "email": "ada@example.com"},
            2: {"id": 2, "name": "Alan Turing", "email": "alan@example.com"},
            3: {"id": 3, "name": "Grace Hopper", "email": "grace@example.com"},
        }
    )
    orders: dict[int, dict[str, Any]] = field(
        default_factory=lambda: {
            1: {"id": 1, "user_id": 1, "item": "notebook", "quantity": 3},
            2: {"id": 2, "user_id": 3, "item": "compiler manual", "quantity": 1},
        }
    )
    products: tuple[str, ...] = (
        "blue running shoes",
        "red running shoes",
        "trail shoes",
        "notebook",
        "compiler manual",
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, table: dict[int, dict[str, Any]], record: dict[str, Any]) -> dict[str, Any]:
        """Store ``record`` under the next id and return it."""
        with self.lock:
            record = {"id": max(table, default=0) + 1, **record}
            table[record["id"]] = record
            return record


def _lookup(table: dict[int, dict[str, Any]], raw_id: str, kind: str) -> dict[str, Any]:
    record = table.get(int(raw_id)) if raw_id.isdigit() else None
    if record is None:
        raise _HTTPError(404, f"no {kind} {raw_id}")
    return record


def _require(document: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if n not in document]
    if missing:
        raise _HTTPError(400, f"missing field(s): {', '.join(missing)}")


def _routes(data: DemoData) -> list[tuple[str, re.Pattern[str], Callable[[_Call], Reply]]]:
    def list_users(call: _Call) -> Reply:
        if "id" in call.params:
            # Naive on purpose: the id would be pasted into SQL. Shown, never run.
            sql = f"SELECT * FROM users WHERE id = {call.params['id']}"
            return 200, {"query": sql, "users": [_lookup(data.users, call.params["id"], "user")]}
        return 200, list(data.users.values())

    def create_user(call: _Call) -> Reply:
        document = call.json()
        _require(document, "name", "email")
        return 201, data.add(data.users, {"name": document["name"], "email": document["email"]})

    def create_order(call: _Call) -> Reply:
        document = call.json()
        _require(document, "item")
        order = {"user_id": 1, "item": document["item"], "quantity": document.get("quantity", 1)}
        return 201, data.add(data.orders, order)

    def search(call: _Call) -> Reply:
        q = call.params.get("q", "")
        # Naive on purpose: this is the SQL an unprotected API would build. Shown, never run.
        sql = f"SELECT name FROM products WHERE name LIKE '%{q}%'"
        hits = [{"name": p} for p in data.products if q.lower() in p]
        return 200, {"q": q, "query": sql, "results": hits}

    def login(call: _Call) -> Reply:
        document = call.json()
        _require(document, "username", "password")
        if (document["username"], document["password"]) != ("demo", "demo"):
            raise _HTTPError(401, "invalid credentials")
        return 200, {"token": secrets.token_urlsafe(24), "user": document["username"]}

    def files(call: _Call) -> Reply:
        name = call.params.get("name", "readme.txt")
        # Naive on purpose: the path an unprotected API would open. Nothing is read.
        return 200, {"name": name, "path": f"/srv/files/{name}", "content": "(simulated)"}

    return [
        ("GET", re.compile(r"/api/health"), lambda call: (200, {"status": "ok"})),
        ("GET", re.compile(r"/api/users"), list_users),
        ("POST", re.compile(r"/api/users"), create_user),
        (
            "GET",
            re.compile(r"/api/users/(\w+)"),
            lambda c: (200, _lookup(data.users, c.match[1], "user")),
        ),
        ("GET", re.compile(r"/api/orders"), lambda call: (200, list(data.orders.values()))),
        ("POST", re.compile(r"/api/orders"), create_order),
        (
            "GET",
            re.compile(r"/api/orders/(\w+)"),
            lambda c: (200, _lookup(data.orders, c.match[1], "order")),
        ),
        ("GET", re.compile(r"/api/search"), search),
        ("POST", re.compile(r"/api/login"), login),
        ("GET", re.compile(r"/api/files"), files),
    ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _DemoServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the demo prints its own summary."""

    def _handle(self) -> None:
        try:
            body = self._read_body()
            status, payload = self._dispatch(body)
        except _HTTPError as exc:
            status, payload = exc.status, {"error": str(exc)}
        self._send(status, payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

    def _read_body(self) -> bytes:
        length = self.headers.get("content-length") or "0"
        if not length.isdigit():
            self.close_connection = True
            raise _HTTPError(400, "invalid Content-Length")
        if int(length) > MAX_BODY:
            self.close_connection = True
            raise _HTTPError(413, "body too large")
        return self.rfile.read(int(length))

    def _dispatch(self, body: bytes) -> Reply:
        target = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(target.query, keep_blank_values=True).items()}
        path_matched = False
        for method, pattern, handler in self.server.routes:
            match = pattern.fullmatch(target.path)
            if match is None:
                continue
            path_matched = True
            if method == self.command:
                return handler(_Call(params, match, body))
        if path_matched:
            raise _HTTPError(405, f"method {self.command} not allowed")
        raise _HTTPError(404, f"no route for {target.path}")

    def _send(self, status: int, payload: Payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _DemoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], data: DemoData) -> None:
        super().__init__(address, _Handler)
        self.routes = _routes(data)


class DemoAPI:
    """A running demo API; stop it with :meth:`stop` or use it as a context manager."""

    def __init__(self, server: _DemoServer) -> None:
        self._server = server
        self.host, self.port = str(server.server_address[0]), int(server.server_address[1])
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL},
            name="apishield-demo-api",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> DemoAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_demo_api(host: str = "127.0.0.1", port: int = 0) -> DemoAPI:
    """Serve a fresh demo API on ``host:port`` (0 picks a free port) in a thread.

    The socket is listening when this returns.
    """
    return DemoAPI(_DemoServer((host, port), DemoData()))
