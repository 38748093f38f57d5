"""Replay a labelled corpus through the engine in-process and measure detection and speed.

A corpus is JSON lines, one request per line (``/work/shared/corpora/README.md``)::

    {"id", "label": "attack" | "benign", "class", "method", "path", "query",
     "headers": {name: value}, "body", "body_encoding"?: "base64"}

A request counts as detected when the verdict is ``BLOCK`` or ``REJECT``; rejections
are also reported on their own. Latency is measured around the engine call only.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from apishield.engine import Engine
from apishield.findings import Action, Verdict
from apishield.ingest import request_from_record
from apishield.policy import Policy

CLIENT = "127.0.0.1"
PROGRESS_EVERY = 1000


@dataclass(slots=True)
class ClassStats:
    """Requests of one class and how many of them were blocked or rejected."""

    total: int = 0
    detected: int = 0

    @property
    def rate(self) -> float:
        return self.detected / self.total if self.total else 0.0


@dataclass(frozen=True, slots=True)
class Miss:
    """An attack that went through."""

    id: str
    cls: str


@dataclass(frozen=True, slots=True)
class FalsePositive:
    """A benign request that was blocked or rejected, with the findings that did it."""

    id: str
    cls: str
    findings: tuple[dict[str, Any], ...]


@dataclass(slots=True)
class EvalReport:
    """What :func:`evaluate_corpus` measured."""

    corpus: str
    attacks: int = 0
    benign: int = 0
    detected: int = 0
    rejected_attacks: int = 0
    false_positives: int = 0
    rejected_benign: int = 0
    per_class: dict[str, ClassStats] = field(default_factory=dict)
    per_location: dict[str, dict[str, int]] = field(default_factory=dict)
    latencies_us: list[float] = field(default_factory=list, repr=False)
    misses: list[Miss] = field(default_factory=list)
    false_positive_list: list[FalsePositive] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.attacks + self.benign

    @property
    def detection_rate(self) -> float:
        """Share of attacks blocked or rejected."""
        return self.detected / self.attacks if self.attacks else 0.0

    @property
    def false_positive_rate(self) -> float:
        """Share of benign requests blocked or rejected."""
        return self.false_positives / self.benign if self.benign else 0.0

    @property
    def throughput_rps(self) -> float:
        """Requests per second of pure engine time, on one core."""
        seconds = sum(self.latencies_us) / 1e6
        return len(self.latencies_us) / seconds if seconds else 0.0

    @property
    def median_us(self) -> float:
        return statistics.median(self.latencies_us) if self.latencies_us else 0.0

    @property
    def p99_us(self) -> float:
        return _percentile(self.latencies_us, 0.99)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready report."""
        return {
            "corpus": self.corpus,
            "total": self.total,
            "attacks": self.attacks,
            "benign": self.benign,
            "detected": self.detected,
            "rejected_attacks": self.rejected_attacks,
            "detection_rate": self.detection_rate,
            "false_positives": self.false_positives,
            "rejected_benign": self.rejected_benign,
            "false_positive_rate": self.false_positive_rate,
            "engine": {
                "throughput_rps": self.throughput_rps,
                "median_us": self.median_us,
                "p99_us": self.p99_us,
            },
            "per_class": {
                name: {"total": s.total, "detected": s.detected, "rate": s.rate}
                for name, s in sorted(self.per_class.items())
            },
            "per_location": dict(sorted(self.per_location.items())),
            "misses": [{"id": m.id, "class": m.cls} for m in self.misses],
            "false_positives_list": [
                {"id": f.id, "class": f.cls, "findings": list(f.findings)}
                for f in self.false_positive_list
            ],
        }

    def render_text(self) -> str:
        """A human-readable summary table."""
        lines = [
            f"corpus {self.corpus}: {self.total} requests "
            f"({self.attacks} attacks, {self.benign} benign)",
            f"  detection   {_pct(self.detection_rate)}  ({self.detected}/{self.attacks}, "
            f"{self.rejected_attacks} rejected)",
            f"  false pos.  {_pct(self.false_positive_rate)}  ({self.false_positives}/"
            f"{self.benign}, {self.rejected_benign} rejected)",
            f"  engine      median {self.median_us:.1f} µs, p99 {self.p99_us:.1f} µs, "
            f"{self.throughput_rps:,.0f} req/s",
            "",
            f"  {'class':<24} {'total':>8} {'blocked':>8} {'rate':>8}",
        ]
        for name, stats in sorted(self.per_class.items()):
            lines.append(f"  {name:<24} {stats.total:>8} {stats.detected:>8} {_pct(stats.rate):>8}")
        lines += ["", f"  {'finding source':<24} {'attack':>8} {'benign':>8}"]
        for source, counts in sorted(self.per_location.items()):
            lines.append(
                f"  {source:<24} {counts.get('attack', 0):>8} {counts.get('benign', 0):>8}"
            )
        return "\n".join(lines)


def evaluate_corpus(
    path: Path,
    policy: Policy,
    *,
    progress: Callable[[int], None] | None = None,
    limit: int | None = None,
) -> EvalReport:
    """Replay the corpus at ``path`` through an engine built from ``policy``."""
    engine = Engine(policy)
    report = EvalReport(corpus=path.name)
    clock = time.perf_counter
    count = 0
    for record in _records(path, limit):
        request = request_from_record(record, client=CLIENT)
        start = clock()
        tx = engine.inspect(request)
        report.latencies_us.append((clock() - start) * 1e6)
        _tally(report, record, tx.verdict)
        count += 1
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(count)
    if progress is not None:
        progress(count)
    return report


def _records(path: Path, limit: int | None) -> Iterator[dict[str, Any]]:
    with path.open("rb") as lines:
        for number, line in enumerate(lines):
            if limit is not None and number >= limit:
                return
            if line.strip():
                yield orjson.loads(line)


def _tally(report: EvalReport, record: dict[str, Any], verdict: Verdict | None) -> None:
    label = record["label"]
    cls = record.get("class") or label
    caught = verdict is not None and verdict.action in (Action.BLOCK, Action.REJECT)
    rejected = verdict is not None and verdict.action is Action.REJECT
    stats = report.per_class.setdefault(cls, ClassStats())
    stats.total += 1
    stats.detected += caught
    if verdict is not None and caught:
        for source in {f.location.source.value for f in verdict.findings}:
            counts = report.per_location.setdefault(source, {})
            counts[label] = counts.get(label, 0) + 1
    if label == "attack":
        report.attacks += 1
        report.detected += caught
        report.rejected_attacks += rejected
        if not caught:
            report.misses.append(Miss(record["id"], cls))
    else:
        report.benign += 1
        report.false_positives += caught
        report.rejected_benign += rejected
        if verdict is not None and caught:
            findings = tuple(f.to_json() for f in verdict.findings)
            report.false_positive_list.append(FalsePositive(record["id"], cls, findings))


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _pct(rate: float) -> str:
    return f"{rate * 100:6.2f} %"
