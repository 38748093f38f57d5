"""``apishield demo``: a demo API behind the proxy, scripted traffic, and what happened."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from apishield.adapters.proxy import ProxyServer
from apishield.demo_api import start_demo_api
from apishield.events import EventSink
from apishield.eventstore import EventStore
from apishield.reload import PolicyHolder
from apishield.sinks import open_policy_sinks

DEMO_POLICY = """\
# The demo policy: block mode, the default checks, events in a local SQLite store.
mode: block
upstreams:
  default:
    url: {upstream}
server:
  listen: 127.0.0.1:{port}
  workers: 1
events:
  sinks: ["sqlite:///{db}"]
  record: all
"""


@dataclass(frozen=True)
class DemoCall:
    """One scripted request."""

    label: str
    method: str
    target: str
    body: bytes = b""
    content_type: str = "application/json"


TRAFFIC = (
    DemoCall("list users", "GET", "/api/users"),
    DemoCall("search", "GET", "/api/search?q=blue+running+shoes"),
    DemoCall("prose with SQL words", "GET", "/api/search?q=select+a+specialty+hospital"),
    DemoCall("create order", "POST", "/api/orders", b'{"item": "book", "quantity": 2}'),
    DemoCall("SQL injection", "GET", "/api/search?q=%27%20OR%20%271%27%3D%271"),
    DemoCall("union select", "GET", "/api/users?id=1%20UNION%20SELECT%20password%20FROM%20users"),
    DemoCall("XSS in JSON", "POST", "/api/orders", b'{"item": "<script>alert(1)</script>"}'),
    DemoCall("command injection", "GET", "/api/search?q=shoes%3Bcat%20/etc/passwd"),
    DemoCall("path traversal", "GET", "/api/files?name=../../../../etc/passwd"),
    DemoCall("oversized body", "POST", "/api/orders", b'{"x": "' + b"a" * 2_000_000 + b'"}'),
)


def run_demo(console: Console, *, port: int, workdir: Path, keep_running: bool) -> None:
    """Run the whole demo and print what was blocked and why."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = (workdir / "events.db").resolve()
    api = start_demo_api()
    policy_path = workdir / "policy.yaml"
    policy_path.write_text(DEMO_POLICY.format(upstream=api.url, port=port, db=db))
    holder = PolicyHolder(policy_path)
    sinks = open_policy_sinks(holder.engine.policy.events)
    try:
        with running_proxy(holder, sinks) as proxy_port:
            base = f"http://127.0.0.1:{proxy_port}"
            console.print(f"demo API at {api.url}, apishield proxy at [bold]{base}[/bold]\n")
            last_event = _send_traffic(console, base)
            sinks.flush()
            _show_events(console, db)
            console.print(
                f"\npolicy: {policy_path}\nall events:  apishield events --db {db}"
                f"\none event:   apishield events --db {db} --id {last_event}"
            )
            if keep_running:
                _wait_for_interrupt(console, base)
    finally:
        sinks.close()
        api.stop()


@contextmanager
def running_proxy(holder: PolicyHolder, sinks: EventSink) -> Iterator[int]:
    """Run a :class:`ProxyServer` on its own event loop in a thread; yield its port."""
    loop = asyncio.new_event_loop()
    server = ProxyServer(holder, sinks=sinks)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, name="apishield-proxy", daemon=True)
    thread.start()
    try:
        yield server.port
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def _send_traffic(console: Console, base: str) -> str:
    """Send the scripted calls; print what happened; return the last event id seen."""
    table = Table("request", "status", "outcome", "event id")
    table.columns[3].no_wrap = True
    last_event = ""
    for call in TRAFFIC:
        status, body = _call(base, call)
        event_id = ""
        if status >= 400:
            try:
                event_id = str(orjson.loads(body).get("event_id", ""))
            except orjson.JSONDecodeError:
                event_id = ""
            last_event = event_id or last_event
        outcome = "[green]passed[/]" if status < 400 else "[red]blocked[/]"
        if status in (400, 413, 414, 431):
            outcome = "[red]rejected[/]"
        table.add_row(
            f"{call.label}: {call.method} {call.target[:40]}", str(status), outcome, event_id
        )
    console.print(table)
    return last_event


def _call(base: str, call: DemoCall) -> tuple[int, bytes]:
    request = urllib.request.Request(base + call.target, method=call.method)
    if call.body:
        request.data = call.body
        request.add_header("content-type", call.content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _show_events(console: Console, db: Path) -> None:
    events = [e for e in EventStore(db).query(limit=50) if e["findings"]]
    table = Table("event id", "verdict", "check", "where", "evidence")
    table.columns[0].no_wrap = True
    for event in reversed(events):
        for finding in event["findings"][:1]:
            where = finding["location"]["source"]
            if finding["location"]["name"]:
                where += ":" + finding["location"]["name"]
            table.add_row(
                event["event_id"],
                f"{event['verdict']} {event['status']}",
                finding["check"],
                where,
                Text(finding["evidence"][:40]),
            )
    console.print("\nsecurity events recorded (newest last):")
    console.print(table)


def _wait_for_interrupt(console: Console, base: str) -> None:
    console.print(
        f"\nthe proxy keeps running; try:\n  curl -i '{base}/api/search?q=1%27%20OR%20%271%27=%271'"
        "\npress Ctrl-C to stop"
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        console.print("stopping")
