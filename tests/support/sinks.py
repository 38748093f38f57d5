"""An in-memory event sink for adapter tests."""

from __future__ import annotations

import threading
from collections.abc import Callable

from apishield.events import SecurityEvent


class CollectingSink:
    """Keeps events in memory; tests wait on it because servers record after answering."""

    def __init__(self) -> None:
        self.events: list[SecurityEvent] = []
        self._changed = threading.Condition()

    def emit(self, event: SecurityEvent) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        pass

    def clear(self) -> None:
        with self._changed:
            self.events.clear()

    def wait_for(self, predicate: Callable[[SecurityEvent], bool]) -> SecurityEvent:
        """The first event matching ``predicate``, waiting up to a few seconds for it."""
        with self._changed:
            found: list[SecurityEvent] = []

            def match() -> bool:
                found[:] = [e for e in self.events if predicate(e)]
                return bool(found)

            if not self._changed.wait_for(match, timeout=5.0):
                raise AssertionError(f"no matching event among {self.events!r}")
            return found[0]
