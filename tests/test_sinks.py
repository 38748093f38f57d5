"""Event sinks: every URI scheme, fan-out, the bounded queue, failure isolation, retention."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from apishield import sinks
from apishield.events import SecurityEvent, new_event_id
from apishield.eventstore import EventStore
from apishield.findings import Finding, Location, Source
from apishield.sinks import QueuedSink, SinkOptions, SinkStats, open_sinks, register_sink

T0 = 1_700_000_000.0


def make_event(when: float = T0, check: str = "sqli") -> SecurityEvent:
    finding = Finding(check, "injection", Location(Source.QUERY, "q"), "found", "' or 1=1", 90)
    return SecurityEvent(
        event_id=new_event_id(when),
        time=when,
        client_ip="198.51.100.4",
        method="GET",
        path="/search",
        route="/search",
        status=403,
        verdict="block",
        findings=[finding],
    )


class ListWriter:
    """Collects batches in memory."""

    def __init__(self) -> None:
        self.batches: list[list[Mapping[str, Any]]] = []
        self.closed = False

    def write(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.batches.append(list(events))

    def close(self) -> None:
        self.closed = True

    @property
    def events(self) -> list[Mapping[str, Any]]:
        return [e for batch in self.batches for e in batch]


class GatedWriter(ListWriter):
    """Blocks inside ``write`` until ``release`` is set, signalling ``started``."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def write(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.started.set()
        assert self.release.wait(10)
        super().write(events)


class FailingWriter(ListWriter):
    """Raises while ``failing`` is true, like a full disk."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = True

    def write(self, events: Sequence[Mapping[str, Any]]) -> None:
        if self.failing:
            raise OSError(28, "No space left on device")
        super().write(events)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_stdout_sink_writes_one_json_line_per_event(capsys: pytest.CaptureFixture[str]) -> None:
    events = [make_event(T0 + i) for i in range(3)]
    sink = open_sinks(["stdout://"])
    for event in events:
        sink.emit(event)
    sink.close()
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [e.to_json() for e in events]


@pytest.mark.parametrize("form", ["file://{abs}", "file://./{rel}", "file:{rel}"])
def test_file_sink_appends_json_lines(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "events.jsonl"
    target.write_text('{"earlier": true}\n')
    event = make_event()
    sink = open_sinks([form.format(abs=target, rel="events.jsonl")])
    sink.emit(event)
    sink.close()
    assert read_lines(target) == [{"earlier": True}, event.to_json()]


@pytest.mark.parametrize("absolute", [True, False])
def test_sqlite_sink_stores_events(
    absolute: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'e.db'}" if absolute else "sqlite:///e.db"
    assert uri.startswith("sqlite:////") is absolute
    events = [make_event(T0 + i) for i in range(20)]
    sink = open_sinks([uri], clock=lambda: T0)
    for event in events:
        sink.emit(event)
    sink.close()
    store = EventStore(tmp_path / "e.db")
    try:
        assert store.query() == [e.to_json() for e in reversed(events)]
    finally:
        store.close()


@pytest.mark.parametrize(
    "uri", ["redis://localhost", "e.db", "kafka:topic", "stdout://x", "file:", "sqlite://"]
)
def test_bad_uris_raise_value_error(uri: str) -> None:
    with pytest.raises(ValueError, match="event sink"):
        open_sinks([uri])


def test_unknown_scheme_lists_the_supported_ones() -> None:
    with pytest.raises(ValueError, match=r"supported schemes: file://, sqlite://, stdout://"):
        open_sinks(["redis://localhost"])


def test_a_bad_uri_opens_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        open_sinks([f"file://{tmp_path / 'a.jsonl'}", "nope://"])
    assert not (tmp_path / "a.jsonl").exists()


def test_registered_scheme_is_opened_with_options(monkeypatch: pytest.MonkeyPatch) -> None:
    writer = ListWriter()
    seen: list[tuple[str, SinkOptions]] = []

    def factory(uri: str, options: SinkOptions) -> ListWriter:
        seen.append((uri, options))
        return writer

    monkeypatch.setitem(sinks._FACTORIES, "memory", factory)
    sink = open_sinks(["memory://x"], retention_days=2.0)
    sink.emit(make_event())
    sink.close()
    assert seen[0][0] == "memory://x"
    assert seen[0][1].retention_days == 2.0
    assert len(writer.events) == 1
    assert writer.closed


def test_register_sink_adds_a_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sinks, "_FACTORIES", dict(sinks._FACTORIES))
    register_sink("Memory", lambda uri, options: ListWriter())
    assert "memory" in sinks.supported_schemes()


def test_fan_out_reaches_every_sink(tmp_path: Path) -> None:
    jsonl = tmp_path / "e.jsonl"
    sink = open_sinks([f"file://{jsonl}", f"sqlite:///{tmp_path / 'e.db'}"], clock=lambda: T0)
    event = make_event()
    sink.emit(event)
    assert sink.flush()
    assert read_lines(jsonl) == [event.to_json()]
    store = EventStore(tmp_path / "e.db")
    try:
        assert store.get(event.event_id) == event.to_json()
    finally:
        store.close()
        sink.close()
    assert sink.stats() == SinkStats(written=2)


def test_full_queue_drops_and_counts_without_blocking(caplog: pytest.LogCaptureFixture) -> None:
    writer = GatedWriter()
    sink = QueuedSink(writer, queue_size=4, batch_size=100)
    sink.emit(make_event())
    assert writer.started.wait(10)  # the writer holds the first event, the queue is empty
    for i in range(7):
        sink.emit(make_event(T0 + i))  # 4 fit, 3 are dropped
    assert sink.stats() == SinkStats(written=0, dropped=3)
    writer.release.set()
    with caplog.at_level(logging.WARNING, logger="apishield.sinks"):
        assert sink.flush(timeout=10)
    sink.close()
    assert sink.stats() == SinkStats(written=5, dropped=3)
    assert [len(b) for b in writer.batches] == [1, 4]  # the backlog went as one batch
    assert "dropped 3 events" in caplog.text


def test_flush_waits_for_queued_events() -> None:
    writer = GatedWriter()
    sink = QueuedSink(writer)
    sink.emit(make_event())
    assert not sink.flush(timeout=0)
    writer.release.set()
    assert sink.flush(timeout=10)
    assert len(writer.events) == 1
    sink.close()


def test_failing_writer_never_raises_into_emit(caplog: pytest.LogCaptureFixture) -> None:
    writer = FailingWriter()
    sink = QueuedSink(writer, name="disk")
    with caplog.at_level(logging.WARNING, logger="apishield.sinks"):
        sink.emit(make_event())
        sink.emit(make_event())
        assert sink.flush(timeout=10)
        writer.failing = False
        sink.emit(make_event())
        assert sink.flush(timeout=10)
    sink.close()
    stats = sink.stats()
    assert (stats.failed, stats.written) == (2, 1)
    assert "event sink disk failed" in caplog.text
    assert "No space left on device" in caplog.text
    assert "event sink disk recovered" in caplog.text


def test_one_failing_sink_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sinks._FACTORIES, "broken", lambda uri, options: FailingWriter())
    jsonl = tmp_path / "e.jsonl"
    sink = open_sinks(["broken://", f"file://{jsonl}"])
    event = make_event()
    sink.emit(event)
    sink.close()
    assert read_lines(jsonl) == [event.to_json()]
    assert sink.stats() == SinkStats(written=1, failed=1)


def test_locked_database_counts_failures_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    store = EventStore(path, busy_timeout=0.05, clock=lambda: T0)
    sink = QueuedSink(sinks.EventStoreWriter(store))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another worker holds the write lock
    sink.emit(make_event())
    assert sink.flush(timeout=10)
    assert sink.stats() == SinkStats(failed=1)
    other.execute("ROLLBACK")
    other.close()
    sink.emit(make_event())
    sink.close()
    assert sink.stats() == SinkStats(written=1, failed=1)


def test_events_after_close_are_dropped() -> None:
    writer = ListWriter()
    sink = QueuedSink(writer)
    sink.close()
    sink.close()
    sink.emit(make_event())
    assert sink.flush(timeout=0)
    assert sink.stats() == SinkStats(dropped=1)
    assert writer.closed


def test_sqlite_sink_applies_retention_with_the_injected_clock(tmp_path: Path) -> None:
    now = T0 + 30 * 86400
    sink = open_sinks([f"sqlite:///{tmp_path / 'e.db'}"], retention_days=7, clock=lambda: now)
    old, recent = make_event(now - 8 * 86400), make_event(now - 6 * 86400)
    sink.emit(old)
    sink.emit(recent)
    sink.close()
    store = EventStore(tmp_path / "e.db")
    try:
        assert [e["event_id"] for e in store.query()] == [recent.event_id]
    finally:
        store.close()
