#!/usr/bin/env python3
"""Engine micro-benchmark: time ``Engine.inspect`` per request over labelled corpora.

::

    .venv/bin/python bench/engine_bench.py \
        --corpus /work/shared/corpora/attacks-openappsec.jsonl \
        --corpus /work/shared/corpora/benign-browsing.jsonl [--limit N] [--out bench/ENGINE.md]

Builds ``Engine(policy_from_dict({}))`` (the default policy), turns every corpus record
into an :class:`apishield.http.Request`, warms up, then times each ``engine.inspect`` with
``time.perf_counter_ns`` on one pinned core. Reports median, p90, p99 and max in µs,
requests/s of engine time, and how many requests were blocked, per corpus and combined.
Runs twice: with the engine's memo of signature scans (the default; repeated texts are
not scanned again) and without it (every value scanned as if never seen before).
Corpora are read where they are; nothing is copied.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import apishield
from apishield.engine import Engine
from apishield.findings import Action
from apishield.http import Request
from apishield.ingest import request_from_record
from apishield.policy import policy_from_dict

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
SLOWEST = 10


@dataclass
class Record:
    request: Request
    label: str
    id: str


@dataclass
class Result:
    name: str
    times_ns: list[int] = field(default_factory=list)
    slowest: list[tuple[int, str, int, str]] = field(default_factory=list)  # ns, id, body, verdict
    rows: int = 0
    attacks: int = 0
    blocked_attacks: int = 0
    blocked_benign: int = 0
    rejected: int = 0

    def add(self, other: Result) -> None:
        self.times_ns.extend(other.times_ns)
        self.slowest = sorted([*self.slowest, *other.slowest], reverse=True)[:SLOWEST]
        self.rows += other.rows
        self.attacks += other.attacks
        self.blocked_attacks += other.blocked_attacks
        self.blocked_benign += other.blocked_benign
        self.rejected += other.rejected


def load_corpus(path: Path, limit: int | None) -> list[Record]:
    """Every record, or ``limit`` records spread evenly over the file (deterministic)."""
    with path.open(encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip()]
    if limit is not None and limit < len(lines):
        step = len(lines) / limit
        lines = [lines[int(i * step)] for i in range(limit)]
    records = []
    for line in lines:
        data = json.loads(line)
        records.append(
            Record(
                request_from_record(data), str(data.get("label") or ""), str(data.get("id") or "")
            )
        )
    return records


def run(engine: Engine, name: str, records: Sequence[Record]) -> Result:
    result = Result(name)
    clock = time.perf_counter_ns
    inspect = engine.inspect
    times = result.times_ns
    for record in records:
        start = clock()
        tx = inspect(record.request)
        times.append(clock() - start)
        result.rows += 1
        attack = record.label == "attack"
        result.attacks += attack
        verdict = tx.verdict
        if verdict is not None and verdict.action is Action.BLOCK:
            if attack:
                result.blocked_attacks += 1
            else:
                result.blocked_benign += 1
        elif verdict is not None and verdict.action is Action.REJECT:
            result.rejected += 1
    order = sorted(range(len(times)), key=times.__getitem__, reverse=True)[:SLOWEST]
    for i in order:
        # Rerun once to learn the verdict of the slow ones (untimed).
        tx = inspect(records[i].request)
        label = tx.verdict.action.value if tx.verdict is not None else "allow"
        result.slowest.append((times[i], records[i].id, len(records[i].request.body), label))
    return result


def percentile(sorted_ns: Sequence[int], q: float) -> float:
    """Nearest-rank percentile, in µs."""
    if not sorted_ns:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_ns)))
    return sorted_ns[rank - 1] / 1000


def run_quiet(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def machine_info(cpu: int | None) -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    commit = run_quiet(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"])
    dirty = run_quiet(["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "src"])
    versions = []
    for dist in ("hyperscan", "libinjection-python", "pydantic"):
        with contextlib.suppress(PackageNotFoundError):
            versions.append(f"{dist} {version(dist)}")
    return {
        "CPU": model.group(1).strip() if model else platform.processor() or "unknown",
        "cores": str(os.cpu_count()),
        "pinned to": f"CPU {cpu}" if cpu is not None else "not pinned",
        "RAM": f"{int(mem.group(1)) / 1048576:.1f} GiB" if mem else "unknown",
        "kernel": platform.release(),
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "apishield": (
            f"git {commit}" + (" (src/ has uncommitted changes)" if dirty else "")
            if commit
            else "unknown"
        ),
        "apishield build": "compiled (mypyc)" if apishield.COMPILED else "plain Python",
        "libraries": ", ".join(versions) or "unknown",
        "load average at start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def row(result: Result) -> str:
    ordered = sorted(result.times_ns)
    total_s = sum(ordered) / 1e9
    rps = result.rows / total_s if total_s else math.nan
    benign = result.rows - result.attacks
    return (
        f"| {result.name} | {result.rows:,} | {percentile(ordered, 50):,.1f} | "
        f"{percentile(ordered, 90):,.1f} | {percentile(ordered, 99):,.1f} | "
        f"{(ordered[-1] / 1000 if ordered else math.nan):,.1f} | {rps:,.0f} | "
        f"{result.blocked_attacks + result.blocked_benign:,} | "
        f"{result.blocked_attacks:,} / {result.attacks:,} | "
        f"{result.blocked_benign:,} / {benign:,} | {result.rejected:,} |"
    )


Variant = tuple[str, list[Result], Result]  # title, per-corpus results, combined


def results_table(title: str, results: list[Result], combined: Result) -> list[str]:
    return [
        f"### {title}",
        "",
        "| corpus | requests | median | p90 | p99 | max | req/s (1 core) | blocked "
        "| attacks blocked | benign blocked | rejected |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[row(r) for r in results],
        row(combined),
        "",
    ]


def report(command: str, machine: dict[str, str], variants: list[Variant], notes: list[str]) -> str:
    combined = variants[0][2]
    out = [
        "# apishield engine micro-benchmark",
        "",
        "Generated by `bench/engine_bench.py`: `Engine(policy_from_dict({}))` (default policy), "
        "one `engine.inspect(request)` per corpus record (both request phases), timed with "
        "`time.perf_counter_ns` in one process pinned to one core. Figures are engine time "
        "only: no sockets, no HTTP parsing, no event sinks.",
        "",
        "```",
        command,
        "```",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine.items()],
        "",
        "## Results",
        "",
        "Latencies in µs (nearest-rank percentiles); req/s = requests ÷ summed engine time on "
        "one core; blocked = verdict `block` (HTTP 403), rejected = verdict `reject` "
        "(malformed or oversized input, 4xx).",
        "",
        *[line for variant in variants for line in results_table(*variant)],
        f"## The {SLOWEST} slowest requests (scan memo on)",
        "",
        "| µs | corpus record id | body bytes | verdict |",
        "|---:|---|---:|---|",
        *[
            f"| {ns / 1000:,.1f} | `{rid}` | {size:,} | {verdict} |"
            for ns, rid, size, verdict in combined.slowest
        ],
        "",
        "## Notes",
        "",
        *[f"- {n}" for n in notes],
        "",
    ]
    return "\n".join(out)


def measure(
    engine: Engine, title: str, corpora: list[tuple[str, list[Record]]], warmup: int
) -> Variant:
    """Warm ``engine`` up on every corpus, then time every record of each."""
    for name, records in corpora:
        run(engine, f"warm-up {name}", records[:warmup])
    gc.collect()
    gc.freeze()  # the loaded corpora are the bench's, not the engine's: no collection walks them
    results: list[Result] = []
    combined = Result("**combined**")
    for name, records in corpora:
        result = run(engine, name, records)
        results.append(result)
        combined.add(result)
        print(row(result))
    print(row(combined))
    return title, results, combined


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, action="append", required=True, help="JSONL file")
    parser.add_argument("--limit", type=int, default=None, help="records per corpus, evenly spread")
    parser.add_argument("--warmup", type=int, default=2000, help="untimed requests per corpus")
    parser.add_argument("--cpu", type=int, default=0, help="core to pin to (-1: do not pin)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "ENGINE.md")
    args = parser.parse_args(argv)
    given = list(sys.argv[1:] if argv is None else argv)
    command = "python " + shlex.join([sys.argv[0], *given])

    cpu: int | None = None
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
        cpu = args.cpu
    machine = machine_info(cpu)

    started = time.perf_counter()
    engine = Engine(policy_from_dict({}))
    build_ms = (time.perf_counter() - started) * 1000
    engines = {
        "Scan memo on (the default)": engine,
        "Scan memo off (every value scanned as if never seen)": Engine(
            policy_from_dict({}), scan_memo=False
        ),
    }
    checks = ", ".join(c.check.id for c in engine.checks)
    print(f"engine built in {build_ms:.0f} ms; checks: {checks}")

    corpora: list[tuple[str, list[Record]]] = []
    for path in args.corpus:
        load_start = time.perf_counter()
        records = load_corpus(path, args.limit)
        corpora.append((path.name.removesuffix(".jsonl"), records))
        print(
            f"{path}: {len(records):,} records loaded in {time.perf_counter() - load_start:.1f} s"
        )

    variants: list[Variant] = []
    for title, variant_engine in engines.items():
        print(title)
        variants.append(measure(variant_engine, title, corpora, args.warmup))

    notes = [
        f"Checks enabled by the default policy: {checks}. Engine compiled in {build_ms:.0f} ms.",
        f"Warm-up: the first {args.warmup:,} requests of each corpus, untimed.",
        (
            f"`--limit {args.limit}`: that many records per corpus, evenly spaced through the file."
            if args.limit
            else "Every record of each corpus."
        ),
        "The garbage collector stays enabled, as in the proxy; the loaded corpora are frozen"
        " out of its reach after the warm-up (`gc.freeze()`), as the proxy freezes what it"
        " built before forking its workers. Its pauses show in the max.",
        "The machine may be shared with other work; the pinned core is not isolated.",
    ]
    machine["load average at end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    text = report(command, machine, variants, notes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
