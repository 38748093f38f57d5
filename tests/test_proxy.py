"""The reverse proxy end to end: real sockets, an echo upstream, the in-process server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvloop
import yaml

from apishield.adapters.proxy import ProxyServer
from apishield.adapters.upstream import UpstreamPool
from apishield.engine import Engine
from apishield.policy import Policy, Upstream, policy_from_dict
from apishield.reload import PolicyHolder
from tests.support.echo import decode_echo, echo_upstream
from tests.support.sinks import CollectingSink

T = TypeVar("T")
ATTACK = "/?id=1%27%20OR%20%271%27=%271"


class LoopThread:
    """A uvloop event loop in a thread, so tests can use blocking clients."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with echo_upstream() as url:
        yield url


def policy_data(upstream_url: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "upstreams": {"default": {"url": upstream_url}},
        "events": {"record": "all"},
        "server": {"listen": "127.0.0.1:0"},
    }
    data.update(overrides)
    return data


@contextmanager
def running(
    loop_thread: LoopThread, holder: PolicyHolder, sink: CollectingSink | None = None
) -> Iterator[ProxyServer]:
    server = ProxyServer(holder, sinks=sink, poll_interval=None)
    loop_thread.run(server.start())
    try:
        yield server
    finally:
        loop_thread.run(server.stop())


@contextmanager
def proxy_for(
    loop_thread: LoopThread, upstream_url: str, sink: CollectingSink | None = None, **overrides: Any
) -> Iterator[str]:
    holder = PolicyHolder(None, policy=policy_from_dict(policy_data(upstream_url, **overrides)))
    with running(loop_thread, holder, sink) as server:
        yield f"http://127.0.0.1:{server.port}"


def raw_exchange(port: int, data: bytes, *, close: bool = False, timeout: float = 5.0) -> bytes:
    """Send raw bytes (with ``close``, then half-close); read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def problem_of(response: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    return int(head.split(b" ")[1]), json.loads(body)


# -- forwarding ------------------------------------------------------------------------


def test_get_and_post_are_forwarded_byte_for_byte(loop_thread: LoopThread, upstream: str) -> None:
    with proxy_for(loop_thread, upstream) as base, httpx.Client(base_url=base) as client:
        target = b"/a/%7Ebob//x;p?b=2&a=1&a=%2F&c"
        got = raw_exchange(
            port_of(base), b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n", close=True
        )
        assert got.startswith(b"HTTP/1.1 200 OK\r\n")
        assert decode_echo(got.partition(b"\r\n\r\n")[2])["target"] == target.decode()
        payload = b'{"name": "caf\xc3\xa9", "n": [1, 2]}'
        posted = client.post(
            "/items", content=payload, headers={"content-type": "application/json"}
        )
        echoed = decode_echo(posted.content)
        assert (echoed["method"], echoed["body"]) == ("POST", payload)
        headers = {k.lower(): v for k, v in echoed["headers"]}
        assert headers["host"] == base.removeprefix("http://")
        assert headers["x-forwarded-for"] == "127.0.0.1"
        assert headers["x-forwarded-proto"] == "http"
        assert headers["forwarded"].startswith("for=127.0.0.1;proto=http;host=")


def test_forwarding_headers_follow_each_request_on_a_connection(
    loop_thread: LoopThread, upstream: str
) -> None:
    """The forwarding lines are kept per connection for the last Host: a request to
    another Host, or with a Forwarded header of its own, gets its own."""

    def forwarding(client: httpx.Client, headers: dict[str, str]) -> tuple[str, str]:
        echoed = decode_echo(client.get("/f", headers=headers).content)
        seen = {k.lower(): v for k, v in echoed["headers"]}
        return seen["x-forwarded-host"], seen["forwarded"]

    with proxy_for(loop_thread, upstream) as base, httpx.Client(base_url=base) as client:
        sent = [
            {"host": "a.example"},
            {"host": "a.example"},
            {"host": "b.example"},
            {"host": "b.example", "forwarded": "for=192.0.2.9"},
            {"host": "b.example"},
        ]
        assert [forwarding(client, headers) for headers in sent] == [
            ("a.example", 'for=127.0.0.1;proto=http;host="a.example"'),
            ("a.example", 'for=127.0.0.1;proto=http;host="a.example"'),
            ("b.example", 'for=127.0.0.1;proto=http;host="b.example"'),
            ("b.example", 'for=192.0.2.9, for=127.0.0.1;proto=http;host="b.example"'),
            ("b.example", 'for=127.0.0.1;proto=http;host="b.example"'),
        ]


def test_routes_choose_their_upstream(loop_thread: LoopThread, upstream: str) -> None:
    overrides = {
        "upstreams": {"default": {"url": upstream}, "reports": {"url": upstream + "/reports-api"}},
        "routes": [{"path": "/reports/*", "upstream": "reports"}],
    }
    with proxy_for(loop_thread, upstream, **overrides) as base, httpx.Client() as client:
        routed = decode_echo(client.get(f"{base}/reports/7?x=1").content)
        assert routed["target"] == "/reports-api/reports/7?x=1"
        assert decode_echo(client.get(f"{base}/users/7").content)["target"] == "/users/7"


def test_hop_by_hop_headers_are_removed(loop_thread: LoopThread, upstream: str) -> None:
    with proxy_for(loop_thread, upstream) as base:
        request = (
            b"GET /h HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\n"
            b"Keep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 10.0.0.1\r\nX-Kept: yes\r\n\r\n"
        )
        response = raw_exchange(port_of(base), request, close=True)
        headers = {
            k.lower(): v for k, v in decode_echo(response.partition(b"\r\n\r\n")[2])["headers"]
        }
        assert "x-secret" not in headers and "keep-alive" not in headers and "te" not in headers
        assert headers["x-kept"] == "yes"
        assert headers["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"


def test_chunked_request_body_is_forwarded(loop_thread: LoopThread, upstream: str) -> None:
    with proxy_for(loop_thread, upstream) as base, httpx.Client(base_url=base) as client:
        response = client.post("/upload", content=iter([b"hello ", b"chunked ", b"world"]))
        assert decode_echo(response.content)["body"] == b"hello chunked world"


def test_keep_alive_reuses_the_connection(loop_thread: LoopThread, upstream: str) -> None:
    with proxy_for(loop_thread, upstream) as base:
        request = b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port_of(base)), timeout=5) as sock:
            for _ in range(3):
                sock.sendall(request)
                head = _read_response(sock)
                assert head.startswith(b"HTTP/1.1 200")
            # pipelined: two requests in one write come back in order
            sock.sendall(b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\n")
            first, second = _read_response(sock), _read_response(sock)
            assert b'"/p1"' in first and b'"/p2"' in second


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_head_and_bodyless_statuses(loop_thread: LoopThread, upstream: str) -> None:
    with proxy_for(loop_thread, upstream) as base, httpx.Client(base_url=base) as client:
        head = client.head("/x")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) > 0
        assert client.get("/status/204").status_code == 204
        assert client.get("/status/304").status_code == 304
        assert client.get("/after").status_code == 200  # the upstream connection survived


# -- the engine -----------------------------------------------------------------------


def test_attack_is_blocked_with_problem_json(loop_thread: LoopThread, upstream: str) -> None:
    sink = CollectingSink()
    with proxy_for(loop_thread, upstream, sink) as base, httpx.Client(base_url=base) as client:
        blocked = client.get(ATTACK)
        assert blocked.status_code == 403
        assert blocked.headers["content-type"] == "application/problem+json"
        event_id = blocked.json()["event_id"]
        assert client.get("/fine").status_code == 200
    verdicts = [(e.event_id, e.verdict, e.status) for e in sink.events]
    assert verdicts[0] == (event_id, "block", 403)
    assert verdicts[1][1:] == ("allow", 200)
    assert sink.events[1].upstream_ms is not None


def test_only_findings_are_recorded_by_default(loop_thread: LoopThread, upstream: str) -> None:
    sink = CollectingSink()
    events = {"record": "findings"}
    with (
        proxy_for(loop_thread, upstream, sink, events=events) as base,
        httpx.Client(base_url=base) as client,
    ):
        client.get("/fine")
        client.get(ATTACK)
    assert [e.verdict for e in sink.events] == ["block"]


def test_oversized_body_gets_413(loop_thread: LoopThread, upstream: str) -> None:
    sink = CollectingSink()
    limits = {"max_body_bytes": 1000}
    with proxy_for(loop_thread, upstream, sink, limits=limits) as base:
        port = port_of(base)
        declared = raw_exchange(
            port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"a" * 5000
        )
        status, problem = problem_of(declared)
        assert status == 413 and problem["event_id"]
        chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunked += b"400\r\n" + b"a" * 1024 + b"\r\n" + b"0\r\n\r\n"
        assert problem_of(raw_exchange(port, chunked))[0] == 413
        with httpx.Client(base_url=base) as client:
            assert client.post("/", content=b"a" * 1000).status_code == 200
    assert [(e.verdict, e.status) for e in sink.events[:2]] == [("reject", 413)] * 2
    assert sink.events[0].findings[-1].check == "limits.body_size"


# -- malformed requests and smuggling -------------------------------------------------

SMUGGLING = {
    "cl-and-te": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two-cl": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    "te-not-chunked-last": b"POST / HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked, gzip\r\n\r\n",
    "te-gzip-chunked": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    b"0\r\n\r\n",
    "te-http10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n",
    "nul-in-value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\x00c\r\n\r\n",
    "cr-in-value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\rc\r\n\r\n",
    "bad-method": b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "space-in-te-name": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "absolute-form": b"GET http://evil/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad-chunk-size": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
}


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_smuggling_and_malformed_requests_get_400(
    loop_thread: LoopThread, upstream: str, name: str
) -> None:
    sink = CollectingSink()
    with proxy_for(loop_thread, upstream, sink) as base:
        response = raw_exchange(port_of(base), SMUGGLING[name])
    status, problem = problem_of(response)
    assert status == 400
    assert b"connection: close" in response.lower()
    assert [e.event_id for e in sink.events] == [problem["event_id"]]
    assert sink.events[0].verdict == "reject"


def test_connect_and_oversized_heads_are_refused(loop_thread: LoopThread, upstream: str) -> None:
    limits = {"max_headers": 10, "max_url_bytes": 100}
    with proxy_for(loop_thread, upstream, limits=limits) as base:
        port = port_of(base)
        connect = raw_exchange(port, b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n")
        assert problem_of(connect)[0] == 405
        long_url = b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert problem_of(raw_exchange(port, long_url))[0] == 414
        many = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 20 + b"\r\n"
        assert problem_of(raw_exchange(port, many))[0] == 431
        huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 100_000 + b"\r\n\r\n"
        assert problem_of(raw_exchange(port, huge))[0] == 431


# -- upstream failures and timeouts ---------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_upstream_down_gives_502(loop_thread: LoopThread) -> None:
    sink = CollectingSink()
    with proxy_for(loop_thread, f"http://127.0.0.1:{_closed_port()}", sink) as base:
        response = httpx.get(base + "/x")
    assert response.status_code == 502
    assert response.json()["event_id"] == sink.events[0].event_id
    assert sink.events[0].status == 502


@contextmanager
def silent_upstream() -> Iterator[str]:
    """Accepts connections (through the backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_slow_upstream_gives_504(loop_thread: LoopThread) -> None:
    sink = CollectingSink()
    with silent_upstream() as slow:
        upstreams = {"default": {"url": slow, "read_timeout": 0.2}}
        with proxy_for(loop_thread, slow, sink, upstreams=upstreams) as base:
            started = time.monotonic()
            response = httpx.get(base + "/x")
            assert time.monotonic() - started < 2
    assert response.status_code == 504
    assert response.json()["event_id"] == sink.events[0].event_id
    assert sink.events[0].status == 504


def test_client_header_timeout_gives_408(loop_thread: LoopThread, upstream: str) -> None:
    server = {"listen": "127.0.0.1:0", "timeouts": {"header_read": 0.2}}
    with proxy_for(loop_thread, upstream, server=server) as base:
        response = raw_exchange(port_of(base), b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert problem_of(response)[0] == 408


@contextmanager
def scripted_upstream(
    answer: bytes,
    release: threading.Event | None = None,
    received: threading.Event | None = None,
) -> Iterator[str]:
    """Answers one request with ``answer`` (once ``release`` is set, if given), then closes.

    ``received``, if given, is set when the request head has arrived.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                while b"\r\n\r\n" not in conn.recv(65536):
                    pass
                if received is not None:
                    received.set()
                if release is not None:
                    release.wait(5)
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    if release is not None:
        release.set()
    thread.join(5)


def test_graceful_stop_finishes_the_request_in_flight(loop_thread: LoopThread) -> None:
    release, received = threading.Event(), threading.Event()
    slow_answer = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow"
    with scripted_upstream(slow_answer, release, received) as slow:
        holder = PolicyHolder(None, policy=policy_from_dict(policy_data(slow)))
        server = ProxyServer(holder, poll_interval=None)
        loop_thread.run(server.start())
        results: list[httpx.Response] = []
        client = threading.Thread(
            target=lambda: results.append(httpx.get(f"http://127.0.0.1:{server.port}/"))
        )
        client.start()
        assert received.wait(5)  # the request is in flight, not just its connection open
        stopping = asyncio.run_coroutine_threadsafe(server.stop(), loop_thread.loop)
        _wait_until(lambda: _refused(server.port))
        release.set()
        stopping.result(5)
        client.join(5)
    assert results[0].status_code == 200 and results[0].content == b"slow"
    assert results[0].headers["connection"] == "close"


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def _wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- hot reload, TLS, workers ---------------------------------------------------------


def test_hot_reload_switches_the_mode(
    loop_thread: LoopThread, upstream: str, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy_data(upstream, mode="block")))
    holder = PolicyHolder(path)
    with running(loop_thread, holder) as server, httpx.Client() as client:
        url = f"http://127.0.0.1:{server.port}{ATTACK}"
        assert client.get(url).status_code == 403
        path.write_text(yaml.safe_dump(policy_data(upstream, mode="monitor")))
        assert holder.reload() is None
        assert client.get(url).status_code == 200
        path.write_text("mode: [not valid")
        assert holder.reload() is not None
        assert client.get(url).status_code == 200  # the last good policy stays


def test_reload_under_load_drops_nothing(
    loop_thread: LoopThread, upstream: str, tmp_path: Path
) -> None:
    """Clients hammer the proxy on keep-alive connections while the policy flips."""
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy_data(upstream, mode="block")))
    holder = PolicyHolder(path)
    statuses: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def client_loop(port: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while not stop.is_set():
                try:
                    statuses.append(client.post("/items?id=7", json={"a": "b"}).status_code)
                except httpx.HTTPError as exc:
                    failures.append(exc)

    with running(loop_thread, holder) as server:
        clients = [threading.Thread(target=client_loop, args=(server.port,)) for _ in range(4)]
        for thread in clients:
            thread.start()
        try:
            for round_ in range(4):
                seen = len(statuses)
                _wait_until(lambda seen=seen: len(statuses) > seen + 20)
                mode = "monitor" if round_ % 2 else "block"
                path.write_text(yaml.safe_dump(policy_data(upstream, mode=mode)))
                assert holder.reload() is None
        finally:
            stop.set()
            for thread in clients:
                thread.join()
    assert failures == []
    assert len(statuses) > 80
    assert set(statuses) == {200}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_termination(
    loop_thread: LoopThread, upstream: str, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server = {"listen": "127.0.0.1:0", "tls": {"cert": str(cert), "key": str(key)}}
    context = ssl.create_default_context(cafile=str(cert))
    with proxy_for(loop_thread, upstream, server=server) as base:
        url = base.replace("http://", "https://")
        with httpx.Client(verify=context) as client:
            response = client.get(url + "/secure?x=1")
            assert client.get(url + ATTACK).status_code == 403
    echoed = decode_echo(response.content)
    headers = {k.lower(): v for k, v in echoed["headers"]}
    assert echoed["target"] == "/secure?x=1" and headers["x-forwarded-proto"] == "https"


def test_upstream_over_tls(
    loop_thread: LoopThread, upstream: str, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    tls_front = {"listen": "127.0.0.1:0", "tls": {"cert": str(cert), "key": str(key)}}
    with proxy_for(loop_thread, upstream, server=tls_front) as front:
        os.environ["SSL_CERT_FILE"] = str(cert)
        try:
            tls_url = front.replace("http://", "https://")
            with proxy_for(loop_thread, tls_url) as base:
                response = httpx.get(base + "/through")
        finally:
            del os.environ["SSL_CERT_FILE"]
    assert decode_echo(response.content)["target"] == "/through"


def test_workers_serve_reload_and_stop(upstream: str, tmp_path: Path) -> None:
    port = _closed_port()
    path = tmp_path / "policy.yaml"
    events = tmp_path / "events.jsonl"
    data = policy_data(upstream, events={"record": "all", "sinks": [f"file://{events}"]})
    data["server"] = {"listen": f"127.0.0.1:{port}", "workers": 2}
    path.write_text(yaml.safe_dump(data))
    code = (
        "from apishield.adapters.proxy import serve;"
        "from apishield.reload import PolicyHolder;"
        f"serve(PolicyHolder({str(path)!r}))"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        # readiness waits, generous: a fresh process compiles every signature first
        _wait_until(lambda: not _refused(port), timeout=60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get(ATTACK).status_code == 403
            path.write_text(yaml.safe_dump({**data, "mode": "monitor"}))
            process.send_signal(signal.SIGHUP)
            _wait_until(
                lambda: all(
                    client.get(ATTACK, headers={"connection": "close"}).status_code == 200
                    for _ in range(4)
                ),
                timeout=60,
            )
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr.decode()
    assert events.read_text().count("event_id") >= 2


def inspecting_engine(policy: Policy) -> Engine:
    """An engine that asks for response bodies (no built-in check does yet)."""
    engine = Engine(policy)
    engine.wants_response_body = True
    return engine


@pytest.mark.parametrize("inspect_limit", [1_000_000, 100])
def test_response_bodies_buffered_for_inspection(
    loop_thread: LoopThread, upstream: str, inspect_limit: int
) -> None:
    limits = {"max_response_inspect_bytes": inspect_limit}
    policy = policy_from_dict(policy_data(upstream, limits=limits))
    holder = PolicyHolder(None, policy=policy, engine_factory=inspecting_engine)
    with running(loop_thread, holder) as server:
        base = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base) as client:
            response = client.post("/inspected", content=b"x" * 500)
            assert client.head("/inspected").status_code == 200
    assert decode_echo(response.content)["body"] == b"x" * 500
    assert int(response.headers["content-length"]) == len(response.content)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello world",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
    ],
    ids=["chunked", "close-delimited", "interim-100"],
)
def test_upstream_response_framings(loop_thread: LoopThread, answer: bytes) -> None:
    with scripted_upstream(answer) as scripted, proxy_for(loop_thread, scripted) as base:
        response = httpx.get(base + "/")
    assert (response.status_code, response.content) == (200, b"hello world")


def test_broken_upstream_response_gives_502(loop_thread: LoopThread) -> None:
    broken = b"HTTP/1.1 2OO OK\r\n\r\n"
    with scripted_upstream(broken) as scripted, proxy_for(loop_thread, scripted) as base:
        response = httpx.get(base + "/")
    assert response.status_code == 502


# -- connection lifecycles: reuse, retry, pipelining, clients that leave --------------

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _read_head(conn: socket.socket) -> bytes:
    """Read one request head (no body); b"" when the peer closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data


@contextmanager
def upstream_by_connection(*handlers: Callable[[socket.socket], None]) -> Iterator[str]:
    """The n-th connection accepted is served by the n-th handler, in its own thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    workers: list[threading.Thread] = []

    def run(handler: Callable[[socket.socket], None], conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            handler(conn)

    def accept() -> None:
        with listener:
            for handler in handlers:
                conn, _ = listener.accept()
                worker = threading.Thread(target=run, args=(handler, conn), daemon=True)
                worker.start()
                workers.append(worker)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    acceptor.join(5)
    for worker in workers:
        worker.join(5)


class ResponseReader:
    """Reads responses with a Content-Length off one socket, keeping what follows."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, "the proxy closed the connection"
        self.buffer += chunk

    def head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head

    def response(self) -> tuple[bytes, bytes]:
        head = self.head()
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return head, body


def _answer_then_close_unanswered(conn: socket.socket) -> None:
    _read_head(conn)
    conn.sendall(_OK)
    _read_head(conn)  # the next request arrives; the connection closes unanswered


def _answer(conn: socket.socket) -> None:
    _read_head(conn)
    conn.sendall(_OK)
    _read_head(conn)  # until the proxy closes it


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        ("GET", {}, 200),
        ("DELETE", {}, 200),
        ("POST", {"Idempotency-Key": "k-1"}, 200),
        ("POST", {}, 502),  # the upstream may have acted on it: not sent twice
    ],
)
def test_a_stale_keep_alive_connection_is_retried_when_the_request_may_repeat(
    loop_thread: LoopThread, method: str, headers: dict[str, str], status: int
) -> None:
    handlers = [_answer_then_close_unanswered] + ([_answer] if status == 200 else [])
    sink = CollectingSink()
    with (
        upstream_by_connection(*handlers) as url,
        proxy_for(loop_thread, url, sink) as base,
        httpx.Client(base_url=base) as client,
    ):
        assert client.get("/first").status_code == 200
        second = client.request(method, "/second", content=b"x", headers=headers)
    assert second.status_code == status
    assert [e.status for e in sink.events] == [200, status]


def test_idle_upstream_connections_expire(loop_thread: LoopThread) -> None:
    """Connections idle past ``idle_timeout`` are closed, not reused (clock injected)."""

    def until_closed(conn: socket.socket) -> None:
        _read_head(conn)

    now = [100.0]

    async def scenario(url: str) -> tuple[bool, bool, bool, bool]:
        upstream = Upstream(url=url, idle_timeout=4.0, pool_size=8)
        pool = UpstreamPool(upstream, clock=lambda: now[0])
        old, recent = await pool._connect(), await pool._connect()
        pool._release(old)
        now[0] = 103.0
        pool._release(recent)
        now[0] = 105.0  # old has been idle 5 s, recent 2 s
        taken = pool._take_idle()
        left = pool._take_idle()
        pool._release(recent)
        pool.close()
        return taken is recent, left is None, old.closed, recent.closed

    with upstream_by_connection(until_closed, until_closed) as url:
        took_recent, none_left, old_closed, recent_closed = loop_thread.run(scenario(url))
    assert took_recent and none_left and old_closed and recent_closed


def test_a_fresh_connection_that_fails_is_not_retried(loop_thread: LoopThread) -> None:
    def close_unanswered(conn: socket.socket) -> None:
        _read_head(conn)

    sink = CollectingSink()
    with (
        upstream_by_connection(close_unanswered) as url,
        proxy_for(loop_thread, url, sink) as base,
    ):
        response = httpx.get(base + "/x")
    assert response.status_code == 502
    assert "closed the connection" in response.json()["detail"]
    assert [e.status for e in sink.events] == [502]


def test_a_client_that_leaves_mid_exchange_drops_the_upstream_request(
    loop_thread: LoopThread,
) -> None:
    received, dropped = threading.Event(), threading.Event()

    def hold(conn: socket.socket) -> None:
        _read_head(conn)
        received.set()
        if conn.recv(1) == b"":  # the proxy closes this connection: nobody waits for it
            dropped.set()

    def answer(conn: socket.socket) -> None:
        _read_head(conn)
        conn.sendall(_OK)
        _read_head(conn)

    sink = CollectingSink()
    with (
        upstream_by_connection(hold, answer) as url,
        proxy_for(loop_thread, url, sink) as base,
    ):
        with socket.create_connection(("127.0.0.1", port_of(base)), timeout=5) as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            assert received.wait(5)
            # a reset, not a half-close (after which the client may still read an answer)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert dropped.wait(5)
        _wait_until(lambda: len(sink.events) == 1)
        assert sink.events[0].status == 499
        assert httpx.get(base + "/next").content == b"ok"  # the proxy goes on serving
    assert [e.status for e in sink.events] == [499, 200]


def test_pipelined_requests_around_a_block_are_answered_in_order(
    loop_thread: LoopThread, upstream: str
) -> None:
    sink = CollectingSink()
    with (
        proxy_for(loop_thread, upstream, sink) as base,
        socket.create_connection(("127.0.0.1", port_of(base)), timeout=5) as sock,
    ):
        reader = ResponseReader(sock)
        sock.sendall(
            b"GET /before HTTP/1.1\r\nHost: x\r\n\r\n"
            + f"GET {ATTACK} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            + b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        answers = [reader.response() for _ in range(3)]
    assert [head.split(b" ")[1] for head, _ in answers] == [b"200", b"403", b"200"]
    assert decode_echo(answers[0][1])["target"] == "/before"
    assert decode_echo(answers[2][1])["target"] == "/after"
    assert [e.verdict for e in sink.events] == ["allow", "block", "allow"]


def test_expect_continue_is_answered_before_the_body(
    loop_thread: LoopThread, upstream: str
) -> None:
    with (
        proxy_for(loop_thread, upstream) as base,
        socket.create_connection(("127.0.0.1", port_of(base)), timeout=5) as sock,
    ):
        reader = ResponseReader(sock)
        sock.sendall(
            b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert reader.head() == b"HTTP/1.1 100 Continue"
        sock.sendall(b"hello")
        head, body = reader.response()
    assert head.startswith(b"HTTP/1.1 200")
    echoed = decode_echo(body)
    assert echoed["body"] == b"hello"
    assert "expect" not in {name.lower() for name, _ in echoed["headers"]}


def test_a_large_response_streams_through_intact(loop_thread: LoopThread) -> None:
    payload = bytes(range(256)) * 16384  # 4 MiB: the client side pauses the upstream
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload
    with scripted_upstream(answer) as scripted, proxy_for(loop_thread, scripted) as base:
        got = raw_exchange(port_of(base), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", close=True)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == payload
