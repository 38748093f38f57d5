"""``apishield events``: query the embedded event store from the command line."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from apishield.errors import StorageError
from apishield.eventstore import EventStore

DEFAULT_DB = "apishield-events.db"
PIPE_WIDTH = 200
VERDICTS = ("block", "reject", "monitor", "allow")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_VERDICT_STYLE = {"block": "red", "reject": "yellow", "monitor": "cyan", "allow": "green"}


def parse_time(text: str, now: Callable[[], float] = time.time) -> float:
    """Epoch seconds from ``10m`` / ``2h`` / ``7d`` (that long ago) or an ISO 8601 time.

    An ISO time without an offset is taken as UTC, the zone the table shows.
    """
    match = _DURATION.fullmatch(text.strip())
    if match:
        return now() - float(match[1]) * _UNITS[match[2]]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration such as 10m, 2h, 7d nor an ISO 8601 time"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def db_path(value: str) -> Path:
    """The file of ``--db``: a ``sqlite:///`` URI, as in the policy's sinks, or a path."""
    return Path(value.removeprefix("sqlite:///") if value.startswith("sqlite:///") else value)


def _time_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _format_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _checks(event: dict[str, Any]) -> str:
    return ", ".join(dict.fromkeys(f["check"] for f in event["findings"]))


def _verdict(verdict: str) -> Text:
    return Text(verdict, style=_VERDICT_STYLE.get(verdict, "white"))


def events_table(events: list[dict[str, Any]]) -> Table:
    """One row per event, newest first."""
    table = Table("time (UTC)", "event id", "client", "method", "path", "status", "verdict")
    table.add_column("checks", overflow="fold")
    for column in table.columns[:2]:
        column.no_wrap = True
    table.columns[4].overflow = "fold"
    for event in events:
        cells = (
            _format_time(event["time"]),
            event["event_id"],
            event["client_ip"],
            event["method"],
            event["path"],
            str(event["status"]),
        )
        # Events hold attacker-controlled text: cells are Text, never parsed as markup.
        table.add_row(*map(Text, cells), _verdict(event["verdict"]), Text(_checks(event)))
    return table


def event_detail(event: dict[str, Any]) -> tuple[Table, Table]:
    """One event in full: its fields, then one row per finding."""
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column(overflow="fold")
    rows = {
        "event id": event["event_id"],
        "time (UTC)": _format_time(event["time"]),
        "client": event["client_ip"],
        "identity": event.get("identity") or "-",
        "request": f"{event['method']} {event['path']}",
        "route": event["route"] or "-",
        "status": str(event["status"]),
        "verdict": _verdict(event["verdict"]),
        "reason": event["reason"] or "-",
        "engine ms": str(event["engine_ms"]),
        "upstream ms": "-" if event["upstream_ms"] is None else str(event["upstream_ms"]),
    }
    for name, value in rows.items():
        fields.add_row(name, value if isinstance(value, Text) else Text(value))
    findings = Table("check", "location", "evidence", "score", "severity", "mode", "message")
    for column in findings.columns:
        column.overflow = "fold"
    for finding in event["findings"]:
        location = finding["location"]
        where = (
            f"{location['source']}:{location['name']}" if location["name"] else location["source"]
        )
        cells = (
            finding["check"],
            where,
            finding["evidence"],
            str(finding["score"]),
            finding["severity"],
            finding["mode"],
            finding["message"],
        )
        findings.add_row(*map(Text, cells))
    return fields, findings


def _fail(message: str) -> NoReturn:
    Console(stderr=True).print(message, style="red", markup=False, highlight=False)
    sys.exit(1)


def _open_store(db: str) -> EventStore:
    path = db_path(db)
    if not path.is_file():
        _fail(f"no event store at {path} (give --db, e.g. the path of a sqlite:/// sink)")
    try:
        return EventStore(path)
    except StorageError as exc:
        _fail(str(exc))


def _console() -> Console:
    """A console for stdout; piped output is wide, so rows stay whole for grep."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPE_WIDTH)


def _print_json(data: object) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


@click.command(name="events")
@click.option(
    "--db",
    default=DEFAULT_DB,
    show_default=True,
    help="Event store: a path or a sqlite:///path URI, as in the policy's events.sinks.",
)
@click.option("--id", "event_id", help="Show this one event in full.")
@click.option("--since", callback=_time_option, help="Newer than: 10m, 2h, 7d or an ISO time.")
@click.option("--until", callback=_time_option, help="Older than: 10m, 2h, 7d or an ISO time.")
@click.option("--client", help="Only events from this client IP.")
@click.option("--check", help="Only events with a finding of this check id.")
@click.option("--verdict", type=click.Choice(VERDICTS), help="Only events with this verdict.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option(
    "--format", "output", type=click.Choice(("table", "json")), default="table", show_default=True
)
def events_command(
    *,
    db: str,
    event_id: str | None,
    since: float | None,
    until: float | None,
    client: str | None,
    check: str | None,
    verdict: str | None,
    limit: int,
    output: str,
) -> None:
    """List recorded security events, newest first, or show one with --id."""
    store = _open_store(db)
    try:
        if event_id is not None:
            _show_one(store, event_id, output)
            return
        found = store.query(
            since=since, until=until, client=client, check=check, verdict=verdict, limit=limit
        )
    finally:
        store.close()
    if output == "json":
        _print_json(found)
    elif not found:
        click.echo("no matching events")
    else:
        _console().print(events_table(found))


def _show_one(store: EventStore, event_id: str, output: str) -> None:
    event = store.get(event_id)
    if event is None:
        _fail(f"no event {event_id} in {store.path}")
    elif output == "json":
        _print_json(event)
    else:
        fields, findings = event_detail(event)
        console = _console()
        console.print(fields)
        console.print(findings if event["findings"] else "no findings")
