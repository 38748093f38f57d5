"""The embedded event store: security events in one SQLite file, safe for many writers.

Several proxy worker processes append to the same file, so the database runs in WAL
mode with a busy timeout, and each batch is one ``BEGIN IMMEDIATE`` transaction (a
writer takes the write lock up front instead of failing on an upgrade). Events are
:meth:`~apishield.events.SecurityEvent.to_json` dicts; their findings are also
indexed one row each, so events can be found by check id.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from apishield.errors import StorageError

PRUNE_INTERVAL = 60.0
BUSY_TIMEOUT = 10.0
_LOCKED_RETRY_SECONDS = 0.01

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id    TEXT PRIMARY KEY,
    time        REAL NOT NULL,
    client_ip   TEXT NOT NULL,
    identity    TEXT,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    route       TEXT NOT NULL,
    status      INTEGER NOT NULL,
    verdict     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    engine_ms   REAL NOT NULL,
    upstream_ms REAL,
    findings    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
CREATE INDEX IF NOT EXISTS events_client ON events (client_ip, time);
CREATE INDEX IF NOT EXISTS events_verdict ON events (verdict, time);
CREATE TABLE IF NOT EXISTS findings (
    event_id TEXT NOT NULL REFERENCES events (event_id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    check_id TEXT NOT NULL,
    mode     TEXT NOT NULL,
    score    INTEGER NOT NULL,
    PRIMARY KEY (event_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS findings_check ON findings (check_id, event_id)
"""

_COLUMNS = (
    "event_id",
    "time",
    "client_ip",
    "identity",
    "method",
    "path",
    "route",
    "status",
    "verdict",
    "reason",
    "engine_ms",
    "upstream_ms",
    "findings",
)
_INSERT_EVENT = (
    f"INSERT OR IGNORE INTO events ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
_INSERT_FINDING = (
    "INSERT OR IGNORE INTO findings (event_id, seq, check_id, mode, score) VALUES (?, ?, ?, ?, ?)"
)


class EventStore:
    """One connection to an event database; thread-safe, one operation at a time.

    ``retention_days`` (``None`` keeps everything) is enforced by :meth:`write` at
    most once per ``PRUNE_INTERVAL`` seconds of ``clock`` (wall-clock seconds).
    ``busy_timeout`` is how long a write waits for another writer's lock, in seconds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention_days: float | None = None,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> None:
        self.path = os.fspath(path)
        self.retention_days = retention_days
        self._clock = clock
        self._lock = threading.Lock()
        self._last_prune: float | None = None
        try:
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._set_up(time.monotonic() + busy_timeout)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open event store {self.path}: {exc}") from exc

    def _set_up(self, deadline: float) -> None:
        """WAL mode and the schema, retried until ``deadline`` while the file is locked.

        Switching a new file to WAL takes an exclusive lock and SQLite reports a
        conflict at once instead of waiting: workers that start together and open
        the same new file would otherwise fail (seen once in eight starts).
        """
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                with self._transaction() as db:
                    for statement in _SCHEMA.split(";"):
                        db.execute(statement)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(_LOCKED_RETRY_SECONDS)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and a write transaction; commit on success, roll back otherwise."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def write(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``events`` in one transaction (already stored ids are skipped), then prune."""
        rows = [_event_row(e) for e in events]
        findings = [
            _finding_row(e["event_id"], seq, f)
            for e in events
            for seq, f in enumerate(e["findings"])
        ]
        try:
            with self._transaction() as db:
                db.executemany(_INSERT_EVENT, rows)
                db.executemany(_INSERT_FINDING, findings)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot write to event store {self.path}: {exc}") from exc
        self._maybe_prune()

    def _maybe_prune(self) -> None:
        now = self._clock()
        if self._last_prune is not None and now - self._last_prune < PRUNE_INTERVAL:
            return
        self._last_prune = now
        self.prune(now)

    def prune(self, now: float | None = None) -> int:
        """Delete events older than the retention period; return how many went."""
        if self.retention_days is None:
            return 0
        cutoff = (self._clock() if now is None else now) - self.retention_days * 86400.0
        try:
            with self._transaction() as db:
                return db.execute("DELETE FROM events WHERE time < ?", (cutoff,)).rowcount
        except sqlite3.Error as exc:
            raise StorageError(f"cannot prune event store {self.path}: {exc}") from exc

    def query(
        self,
        *,
        event_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        client: str | None = None,
        check: str | None = None,
        verdict: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Events matching every given filter, newest first; times are epoch seconds."""
        clauses: list[str] = []
        params: list[Any] = []
        for sql, value in (
            ("event_id = ?", event_id),
            ("time >= ?", since),
            ("time < ?", until),
            ("client_ip = ?", client),
            ("verdict = ?", verdict),
            (
                "EXISTS (SELECT 1 FROM findings f "
                "WHERE f.check_id = ? AND f.event_id = events.event_id)",
                check,
            ),
        ):
            if value is not None:
                clauses.append(sql)
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = (
            f"SELECT {', '.join(_COLUMNS)} FROM events {where} "
            "ORDER BY time DESC, event_id DESC LIMIT ?"
        )
        try:
            with self._lock:
                rows = self._db.execute(sql, [*params, limit]).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot query event store {self.path}: {exc}") from exc
        return [_row_event(row) for row in rows]

    def get(self, event_id: str) -> dict[str, Any] | None:
        """The event with ``event_id``, or ``None``."""
        found = self.query(event_id=event_id, limit=1)
        return found[0] if found else None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()


def _event_row(event: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(
        orjson.dumps(event["findings"]).decode() if name == "findings" else event.get(name)
        for name in _COLUMNS
    )


def _finding_row(
    event_id: str, seq: int, finding: Mapping[str, Any]
) -> tuple[str, int, str, str, int]:
    return (event_id, seq, finding["check"], finding.get("mode", ""), int(finding.get("score", 0)))


def _row_event(row: Sequence[Any]) -> dict[str, Any]:
    event = dict(zip(_COLUMNS, row, strict=True))
    event["findings"] = orjson.loads(event["findings"])
    return event
