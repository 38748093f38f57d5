"""``apishield events``: filters, table and JSON output, one event in full, bad input."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from apishield.cli_events import db_path, events_command, parse_time
from apishield.events import SecurityEvent, new_event_id
from apishield.eventstore import EventStore
from apishield.findings import Finding, Location, Mode, Source

NOW = time.time()


def make_event(
    age: float, *, client: str, verdict: str, check: str | None, path: str = "/api/search"
) -> SecurityEvent:
    findings = []
    if check:
        location = Location(Source.QUERY, "q")
        findings.append(
            Finding(check, "injection", location, f"{check} detected", "1' OR '1'='1", 95)
        )
    return SecurityEvent(
        event_id=new_event_id(NOW - age),
        time=NOW - age,
        client_ip=client,
        method="GET",
        path=path,
        route="/api/search",
        status=403 if verdict == "block" else 200,
        verdict=verdict,
        findings=findings,
        engine_ms=0.4,
        upstream_ms=None if verdict == "block" else 3.2,
    )


EVENTS = {
    "sqli": make_event(7200, client="10.0.0.1", verdict="block", check="sqli"),
    "xss": make_event(1800, client="10.0.0.2", verdict="monitor", check="xss"),
    "clean": make_event(60, client="10.0.0.1", verdict="allow", check=None, path="/api/users"),
}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "events.db"
    store = EventStore(path)
    store.write([e.to_json() for e in EVENTS.values()])
    store.close()
    yield path


def run(*args: str) -> Result:
    return CliRunner().invoke(events_command, list(args))


def listed_ids(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [e["event_id"] for e in json.loads(result.output)]


def ids(*names: str) -> list[str]:
    return [EVENTS[n].event_id for n in names]


def test_table_lists_newest_first(db: Path) -> None:
    result = run("--db", str(db))
    assert result.exit_code == 0, result.output
    out = result.output
    positions = [out.index(e.event_id) for e in (EVENTS["clean"], EVENTS["xss"], EVENTS["sqli"])]
    assert positions == sorted(positions)
    for text in ("10.0.0.2", "/api/search", "403", "block", "monitor", "sqli", "xss"):
        assert text in out


def test_json_output_is_the_event_schema(db: Path) -> None:
    result = run("--db", str(db), "--format", "json")
    assert listed_ids(result) == ids("clean", "xss", "sqli")
    assert json.loads(result.output)[2] == EVENTS["sqli"].to_json()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--client", "10.0.0.1"), ("clean", "sqli")),
        (("--check", "xss"), ("xss",)),
        (("--verdict", "block"), ("sqli",)),
        (("--since", "1h"), ("clean", "xss")),
        (("--until", "10m"), ("xss", "sqli")),
        (("--since", "1h", "--until", "10m"), ("xss",)),
        (("--limit", "1"), ("clean",)),
        (("--client", "10.0.0.9"), ()),
    ],
)
def test_filters(db: Path, args: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert listed_ids(run("--db", str(db), "--format", "json", *args)) == ids(*expected)


def test_since_accepts_iso_times(db: Path) -> None:
    since = datetime.fromtimestamp(NOW - 3600, UTC).isoformat()
    assert listed_ids(run("--db", str(db), "--format", "json", "--since", since)) == ids(
        "clean", "xss"
    )


def test_sqlite_uri_and_default_db(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert listed_ids(run("--db", f"sqlite:///{db}", "--format", "json")) == ids(
        "clean", "xss", "sqli"
    )
    db.rename(db.parent / "apishield-events.db")
    monkeypatch.chdir(db.parent)
    assert len(listed_ids(run("--format", "json"))) == 3


def test_one_event_in_full(db: Path) -> None:
    result = run("--db", str(db), "--id", EVENTS["sqli"].event_id)
    assert result.exit_code == 0, result.output
    for text in ("query:q", "1' OR '1'='1", "95", "block", "sqli detected", "10.0.0.1"):
        assert text in result.output


def test_one_event_as_json(db: Path) -> None:
    result = run("--db", str(db), "--id", EVENTS["xss"].event_id, "--format", "json")
    assert result.exit_code == 0, result.output
    event: dict[str, Any] = json.loads(result.output)
    assert event == EVENTS["xss"].to_json()
    assert event["findings"][0]["mode"] == Mode.BLOCK.value


def test_one_event_without_findings(db: Path) -> None:
    result = run("--db", str(db), "--id", EVENTS["clean"].event_id)
    assert result.exit_code == 0, result.output
    assert "no findings" in result.output


def test_attacker_text_is_not_rich_markup(tmp_path: Path) -> None:
    event = make_event(1, client="10.0.0.3", verdict="block", check="xss", path="/[red]x[/]")
    event.findings[0] = Finding("xss", "injection", Location(Source.QUERY, "[b]"), "m", "[/bold]")
    store = EventStore(tmp_path / "e.db")
    store.write([event.to_json()])
    store.close()
    listing = run("--db", str(tmp_path / "e.db"))
    assert listing.exit_code == 0, listing.output
    assert "/[red]x[/]" in listing.output
    detail = run("--db", str(tmp_path / "e.db"), "--id", event.event_id)
    assert detail.exit_code == 0, detail.output
    assert "query:[b]" in detail.output
    assert "[/bold]" in detail.output


def test_unknown_event_id_fails(db: Path) -> None:
    result = run("--db", str(db), "--id", "01NOTANEVENT")
    assert result.exit_code == 1
    assert "no event 01NOTANEVENT" in result.output


def test_no_matching_events(db: Path) -> None:
    result = run("--db", str(db), "--check", "nosuch")
    assert result.exit_code == 0
    assert "no matching events" in result.output


def test_missing_database_fails_without_creating_it(tmp_path: Path) -> None:
    result = run("--db", str(tmp_path / "none.db"))
    assert result.exit_code == 1
    assert "no event store" in result.output
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "neither a duration"),
        (("--verdict", "maybe"), "Invalid value for '--verdict'"),
        (("--limit", "0"), "Invalid value for '--limit'"),
    ],
)
def test_bad_options_are_usage_errors(db: Path, args: tuple[str, ...], message: str) -> None:
    result = run("--db", str(db), *args)
    assert result.exit_code == 2
    assert message in result.output


def test_parse_time() -> None:
    def now() -> float:
        return 1000.0

    assert parse_time("10m", now) == 400.0
    assert parse_time("1.5h", now) == 1000.0 - 5400.0
    assert parse_time("1970-01-01T00:01:00", now) == 60.0
    assert parse_time("1970-01-01T01:01:00+01:00", now) == 60.0
    with pytest.raises(ValueError):
        parse_time("10 minutes", now)


def test_db_path() -> None:
    assert db_path("sqlite:///e.db") == Path("e.db")
    assert db_path("sqlite:////var/e.db") == Path("/var/e.db")
    assert db_path("/var/e.db") == Path("/var/e.db")
