"""Event sinks chosen by URI, each written from its own background thread.

:func:`open_sinks` turns the policy's ``events.sinks`` URIs into one
:class:`~apishield.events.EventSink` that fans out to every destination:

``stdout://``
    One JSON line per event on standard output.
``file:///abs/path.jsonl``
    JSON lines appended to a file. Whatever follows ``file:`` (minus a leading
    ``//``) is the path, so ``file://./x.jsonl`` and ``file:x.jsonl`` are relative
    to the working directory.
``sqlite:///relative.db``, ``sqlite:////abs/path.db``
    The embedded :class:`~apishield.eventstore.EventStore`, with retention.

New schemes plug in with :func:`register_sink` (a factory from URI to
:class:`BatchWriter`), e.g. ``redis://`` or ``postgresql://``.

``emit`` never blocks and never raises: it appends to a bounded in-memory queue.
When the queue is full (the writer cannot keep up, or is stuck on a locked
database) the event is dropped and counted in :attr:`SinkStats.dropped`: a stalled
disk must not stall the proxy's event loop, and an attacker flooding the proxy must
not grow memory without bound. A writer that fails counts the batch in
:attr:`SinkStats.failed` and logs; the proxy keeps serving.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

import orjson

from apishield.events import SecurityEvent
from apishield.eventstore import EventStore
from apishield.policy import Events

log = logging.getLogger("apishield.sinks")

QUEUE_SIZE = 10_000
BATCH_SIZE = 500


class BatchWriter(Protocol):
    """The I/O side of a sink: writes batches of event dicts, from one thread only."""

    def write(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Write ``events``; raise on failure (the sink counts and logs it)."""

    def close(self) -> None:
        """Release resources."""


@dataclass(frozen=True, slots=True)
class SinkOptions:
    """Settings every sink factory receives."""

    retention_days: float = 7.0
    clock: Callable[[], float] = time.time


SinkFactory = Callable[[str, SinkOptions], BatchWriter]
_FACTORIES: dict[str, SinkFactory] = {}


def register_sink(scheme: str, factory: SinkFactory) -> None:
    """Make ``scheme://...`` URIs open ``factory(uri, options)``."""
    _FACTORIES[scheme.lower()] = factory


def supported_schemes() -> list[str]:
    """The URI schemes :func:`open_sinks` understands."""
    return sorted(_FACTORIES)


@dataclass(frozen=True, slots=True)
class SinkStats:
    """Event counts of one sink (or the sum over a fan-out)."""

    written: int = 0
    dropped: int = 0
    failed: int = 0

    def __add__(self, other: SinkStats) -> SinkStats:
        return SinkStats(
            self.written + other.written, self.dropped + other.dropped, self.failed + other.failed
        )


class QueuedSink:
    """An :class:`~apishield.events.EventSink` feeding one :class:`BatchWriter` from a thread."""

    def __init__(
        self,
        writer: BatchWriter,
        *,
        name: str = "sink",
        queue_size: int = QUEUE_SIZE,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.name = name
        self._writer = writer
        self._batch_size = batch_size
        self._queue: queue.Queue[SecurityEvent | None] = queue.Queue(queue_size)
        self._done = threading.Condition()
        self._queued = 0  # events accepted by emit (under _done)
        self._handled = 0  # events written or failed (under _done)
        self._written = 0
        self._failed = 0
        self._dropped = 0
        self._reported_drops = 0
        self._failing = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"apishield-{name}", daemon=True)
        self._thread.start()

    def emit(self, event: SecurityEvent) -> None:
        """Queue ``event``; drop and count it when the queue is full or the sink closed."""
        with self._done:
            if self._closed:
                self._dropped += 1
                return
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                self._dropped += 1
                return
            self._queued += 1

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued before this call is handled; False on timeout."""
        with self._done:
            target = self._queued
            return self._done.wait_for(lambda: self._handled >= target, timeout)

    def close(self) -> None:
        """Flush, stop the thread and close the writer. Later events are dropped."""
        with self._done:
            if self._closed:
                return
            self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._writer.close()

    def stats(self) -> SinkStats:
        """Counts so far."""
        with self._done:
            return SinkStats(self._written, self._dropped, self._failed)

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            events = [e for e in batch if e is not None]
            if events:
                self._write(events)
            if len(events) < len(batch):
                return

    def _next_batch(self) -> list[SecurityEvent | None]:
        """Block for one item, then take whatever else is queued, up to the batch size."""
        batch = [self._queue.get()]
        while len(batch) < self._batch_size and batch[-1] is not None:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, events: list[SecurityEvent]) -> None:
        try:
            self._writer.write([e.to_json() for e in events])
        except Exception:
            self._record(failed=len(events))
            if not self._failing:
                log.exception("event sink %s failed; counting failed events", self.name)
            self._failing = True
        else:
            self._record(written=len(events))
            if self._failing:
                log.warning("event sink %s recovered", self.name)
            self._failing = False
        self._report_drops()

    def _record(self, *, written: int = 0, failed: int = 0) -> None:
        with self._done:
            self._written += written
            self._failed += failed
            self._handled += written + failed
            self._done.notify_all()

    def _report_drops(self) -> None:
        """Log drops from the writer thread, so that ``emit`` does no I/O."""
        with self._done:
            new = self._dropped - self._reported_drops
            self._reported_drops = self._dropped
        if new:
            log.warning("event sink %s queue full: dropped %d events", self.name, new)


class FanoutSink:
    """Sends every event to each of several sinks; each sink has its own queue and thread."""

    def __init__(self, sinks: Sequence[QueuedSink]) -> None:
        self.sinks = tuple(sinks)

    def emit(self, event: SecurityEvent) -> None:
        """Queue ``event`` on every sink."""
        for sink in self.sinks:
            sink.emit(event)

    def flush(self, timeout: float | None = None) -> bool:
        """Flush every sink; False if any timed out."""
        return all([sink.flush(timeout) for sink in self.sinks])

    def close(self) -> None:
        """Close every sink."""
        for sink in self.sinks:
            sink.close()

    def stats(self) -> SinkStats:
        """Counts summed over every sink."""
        return sum((sink.stats() for sink in self.sinks), SinkStats())


def open_policy_sinks(events: Events) -> FanoutSink:
    """The sinks a policy's ``events`` section names, with its retention."""
    return open_sinks(events.sinks, retention_days=events.retention_days)


def open_sinks(
    uris: Sequence[str],
    *,
    retention_days: float = 7.0,
    clock: Callable[[], float] = time.time,
    queue_size: int = QUEUE_SIZE,
) -> FanoutSink:
    """Open one sink per URI; invalid URIs raise ``ValueError`` before anything starts."""
    options = SinkOptions(retention_days=retention_days, clock=clock)
    factories = [(uri, _factory_for(uri)) for uri in uris]
    sinks: list[QueuedSink] = []
    try:
        for uri, factory in factories:
            sinks.append(QueuedSink(factory(uri, options), name=uri, queue_size=queue_size))
    except BaseException:
        FanoutSink(sinks).close()
        raise
    return FanoutSink(sinks)


def _factory_for(uri: str) -> SinkFactory:
    scheme, sep, _ = uri.partition(":")
    factory = _FACTORIES.get(scheme.lower()) if sep else None
    if factory is None:
        raise ValueError(
            f"unsupported event sink {uri!r}; supported schemes: "
            + ", ".join(f"{s}://" for s in supported_schemes())
        )
    return factory


def _lines(events: Sequence[Mapping[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(e, option=orjson.OPT_APPEND_NEWLINE) for e in events)


class StdoutWriter:
    """JSON lines on a text stream (standard output by default, looked up at write time)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def write(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Write one line per event and flush the stream."""
        stream = self._stream or sys.stdout
        stream.write(_lines(events).decode())
        stream.flush()

    def close(self) -> None:
        """Flush the stream (it is not ours to close)."""
        (self._stream or sys.stdout).flush()


class JsonlFileWriter:
    """JSON lines appended to a file; each batch is one ``write`` on an ``O_APPEND`` file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = self.path.open("ab", buffering=0)

    def write(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Append one line per event."""
        data = memoryview(_lines(events))
        while data:
            written = self._file.write(data) or 0
            data = data[written:]

    def close(self) -> None:
        """Close the file."""
        self._file.close()


class EventStoreWriter:
    """Batches into an :class:`~apishield.eventstore.EventStore`."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def write(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Insert the batch in one transaction."""
        self.store.write(events)

    def close(self) -> None:
        """Close the database."""
        self.store.close()


def _uri_path(uri: str, prefix: str, *, strip: str = "") -> str:
    """What follows ``prefix`` in ``uri``, without a leading ``strip``; never empty."""
    rest = uri[len(prefix) :].removeprefix(strip) if uri.lower().startswith(prefix) else ""
    if not rest:
        raise ValueError(f"event sink {uri!r} must look like {prefix}<path>")
    return rest


def _open_stdout(uri: str, options: SinkOptions) -> BatchWriter:
    if uri.lower().rstrip("/") != "stdout:":
        raise ValueError(f"event sink {uri!r} takes no path; use stdout://")
    return StdoutWriter()


def _open_file(uri: str, options: SinkOptions) -> BatchWriter:
    return JsonlFileWriter(_uri_path(uri, "file:", strip="//"))


def _open_sqlite(uri: str, options: SinkOptions) -> BatchWriter:
    path = _uri_path(uri, "sqlite:///")
    return EventStoreWriter(
        EventStore(path, retention_days=options.retention_days, clock=options.clock)
    )


register_sink("stdout", _open_stdout)
register_sink("file", _open_file)
register_sink("sqlite", _open_sqlite)
