"""`apishield demo` end to end: demo API, proxy, scripted traffic, event store."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from apishield.demo import TRAFFIC, run_demo
from apishield.eventstore import EventStore


def test_demo_blocks_the_attacks_and_records_why(tmp_path: Path) -> None:
    out = io.StringIO()
    run_demo(Console(file=out, width=200), port=0, workdir=tmp_path, keep_running=False)
    text = out.getvalue()
    assert "blocked" in text
    assert "passed" in text

    events = EventStore(tmp_path / "events.db").query(limit=100)
    assert len(events) == len(TRAFFIC)
    by_verdict: dict[str, int] = {}
    for event in events:
        by_verdict[event["verdict"]] = by_verdict.get(event["verdict"], 0) + 1
    assert by_verdict.get("allow") == 4
    assert by_verdict.get("block") == 5
    assert by_verdict.get("reject") == 1
    checks = {f["check"] for e in events for f in e["findings"]}
    assert {"sqli", "xss", "cmdi", "traversal", "limits.body_size"} <= checks
