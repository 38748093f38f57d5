"""The SQLite event store: schema, batched writes, retention, queries, several writers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apishield.errors import StorageError
from apishield.events import SecurityEvent, new_event_id
from apishield.eventstore import PRUNE_INTERVAL, EventStore
from apishield.findings import Finding, Location, Source

DAY = 86400.0
T0 = 1_700_000_000.0


def make_event(
    when: float = T0,
    *,
    client: str = "203.0.113.7",
    verdict: str = "block",
    checks: tuple[str, ...] = ("sqli",),
) -> dict[str, Any]:
    findings = [
        Finding(c, "injection", Location(Source.QUERY, "q"), f"{c} found", "' or 1=1", 90)
        for c in checks
    ]
    event = SecurityEvent(
        event_id=new_event_id(when),
        time=when,
        client_ip=client,
        method="GET",
        path="/search",
        route="/search",
        status=403,
        verdict=verdict,
        findings=findings,
        engine_ms=0.25,
    )
    return event.to_json()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    store = EventStore(tmp_path / "events.db")
    yield store
    store.close()


def test_round_trip_keeps_the_event_json(store: EventStore) -> None:
    event = make_event(checks=("sqli", "xss"))
    store.write([event])
    assert store.get(event["event_id"]) == event
    assert store.get("missing") is None


def test_database_uses_wal(store: EventStore) -> None:
    db = sqlite3.connect(store.path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_rewriting_an_event_is_idempotent(store: EventStore) -> None:
    event = make_event()
    store.write([event])
    store.write([event, event])
    assert len(store.query()) == 1
    assert len(store.query(check="sqli")) == 1


def test_query_is_newest_first_and_limited(store: EventStore) -> None:
    events = [make_event(T0 + i) for i in range(5)]
    store.write(events)
    found = store.query(limit=3)
    assert [e["event_id"] for e in found] == [e["event_id"] for e in reversed(events)][:3]


def test_query_by_time_range(store: EventStore) -> None:
    store.write([make_event(T0 + i) for i in range(10)])
    found = store.query(since=T0 + 3, until=T0 + 6)
    assert [e["time"] for e in found] == [T0 + 5, T0 + 4, T0 + 3]


def test_query_by_client_verdict_check_and_id(store: EventStore) -> None:
    a = make_event(T0, client="10.0.0.1", verdict="block", checks=("sqli",))
    b = make_event(T0 + 1, client="10.0.0.2", verdict="monitor", checks=("xss", "sqli"))
    c = make_event(T0 + 2, client="10.0.0.1", verdict="reject", checks=())
    store.write([a, b, c])

    def ids(**filters: Any) -> list[str]:
        return [e["event_id"] for e in store.query(**filters)]

    assert ids(client="10.0.0.1") == [c["event_id"], a["event_id"]]
    assert ids(verdict="monitor") == [b["event_id"]]
    assert ids(check="sqli") == [b["event_id"], a["event_id"]]
    assert ids(check="xss") == [b["event_id"]]
    assert ids(check="nosuch") == []
    assert ids(event_id=a["event_id"]) == [a["event_id"]]
    assert ids(client="10.0.0.1", check="sqli") == [a["event_id"]]


def test_retention_prunes_old_events_at_most_once_a_minute(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = EventStore(tmp_path / "e.db", retention_days=1, clock=clock)
    try:
        old = make_event(T0 - 2 * DAY)
        store.write([old])  # the first write prunes: the old event goes at once
        assert store.query() == []

        clock.now = T0 + 10
        store.write([make_event(T0 - 2 * DAY)])  # within the interval: no prune
        assert len(store.query()) == 1

        clock.now = T0 + PRUNE_INTERVAL + 1
        fresh = make_event(clock.now)
        store.write([fresh])
        assert [e["event_id"] for e in store.query()] == [fresh["event_id"]]
        assert store.query(check="sqli") == [fresh]  # findings went with their events
    finally:
        store.close()


def test_no_retention_keeps_everything(store: EventStore) -> None:
    store.write([make_event(1.0)])
    assert store.prune(T0) == 0
    assert len(store.query()) == 1


def test_two_writers_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    writers = [EventStore(path), EventStore(path)]
    batches = [[make_event(T0 + i) for i in range(50)] for _ in range(40)]

    def run(store: EventStore, mine: list[list[dict[str, Any]]]) -> None:
        for batch in mine:
            store.write(batch)

    threads = [
        threading.Thread(target=run, args=(store, batches[n::2])) for n, store in enumerate(writers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader = EventStore(path)
    try:
        assert len(reader.query(limit=10_000)) == 2000
        assert len(reader.query(check="sqli", limit=10_000)) == 2000
    finally:
        for store in [*writers, reader]:
            store.close()


_WRITER_SCRIPT = """
import sys
from apishield.eventstore import EventStore
from tests.test_eventstore import make_event
store = EventStore(sys.argv[1])
for n in range(20):
    store.write([make_event(1_700_000_000.0 + n) for _ in range(50)])
store.close()
"""


def test_two_writer_processes_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    root = Path(__file__).parent.parent
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER_SCRIPT, str(path)], cwd=root)
        for _ in range(2)
    ]
    assert [p.wait(timeout=30) for p in procs] == [0, 0]
    reader = EventStore(path)
    try:
        assert len(reader.query(limit=10_000)) == 2000
    finally:
        reader.close()


def test_unopenable_path_raises_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot open event store"):
        EventStore(tmp_path / "missing-dir" / "e.db")
