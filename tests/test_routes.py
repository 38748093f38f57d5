"""Route templates and client address resolution."""

from __future__ import annotations

import os
import random

import pytest

from apishield.clientip import ClientResolver
from apishield.events import new_event_id
from apishield.http import Headers, Request
from apishield.routes import RouteTable


@pytest.fixture
def table() -> RouteTable[str]:
    return RouteTable(
        [
            ("/users/{id}", ["GET"], "get-user"),
            ("/users/me", ["GET"], "me"),
            ("/users/{id}", ["DELETE"], "delete-user"),
            ("/files/*", ["*"], "files"),
            ("/health", ["GET"], "health-get"),
            ("/health", ["HEAD"], "health-head"),
        ]
    )


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/users/42", ("/users/{id}", "get-user")),
        ("GET", "/users/me", ("/users/me", "me")),  # literal beats template
        ("DELETE", "/users/42", ("/users/{id}", "delete-user")),
        ("POST", "/users/42", None),
        ("GET", "/users/42/orders", None),  # a parameter is one segment
        ("PUT", "/files/a/b/c", ("/files/*", "files")),
        ("HEAD", "/health", ("/health", "health-head")),
        ("GET", "/nowhere", None),
    ],
)
def test_route_matching(
    table: RouteTable[str], method: str, path: str, expected: tuple[str, str] | None
) -> None:
    assert table.match(method, path) == expected


def test_an_empty_table_is_falsy() -> None:
    assert not RouteTable([])


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("10.1.1.1", [("x-forwarded-for", "198.51.100.1")], "198.51.100.1"),
        ("10.1.1.1", [("x-forwarded-for", "198.51.100.1, 10.2.2.2")], "198.51.100.1"),
        ("10.1.1.1", [("x-forwarded-for", "1.1.1.1, 198.51.100.1")], "198.51.100.1"),
        ("10.1.1.1", [("forwarded", 'for="[2001:db8::1]:4711"')], "2001:db8::1"),
        ("10.1.1.1", [("forwarded", "for=192.0.2.60;proto=http, for=10.3.3.3")], "192.0.2.60"),
        ("10.1.1.1", [], "10.1.1.1"),
        ("10.1.1.1", [("x-forwarded-for", "10.2.2.2")], "10.2.2.2"),
        ("192.0.2.5", [("x-forwarded-for", "198.51.100.1")], "192.0.2.5"),
    ],
)
def test_client_resolution(peer: str, headers: list[tuple[str, str]], expected: str) -> None:
    resolver = ClientResolver(["10.0.0.0/8"])
    assert resolver.resolve(peer, Headers(headers)) == expected


def test_event_ids_are_unique_and_sort_by_time() -> None:
    earlier = new_event_id(1_000.0)
    later = new_event_id(2_000.0)
    assert len(earlier) == 32
    assert earlier < later
    assert new_event_id(1_000.0) != earlier
    assert earlier.startswith(f"{1_000_000:012x}")


def test_forked_workers_issue_different_event_ids() -> None:
    """Even when the application seeds the global generator the same in each process."""
    read, write = os.pipe()
    random.seed(0)
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        random.seed(0)
        os.write(write, new_event_id(5_000.0).encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child_id) == 32
    assert child_id != new_event_id(5_000.0)


def test_request_target_joins_path_and_query() -> None:
    assert Request("GET", "/a", "b=1").target == "/a?b=1"
    assert Request("GET", "/a").target == "/a"
