#!/usr/bin/env python3
"""What each signature costs the engine's hyperscan pass, in instructions.

::

    PYTHONPATH=src .venv/bin/python bench/signature_cost.py \
        --corpus /work/shared/corpora/attacks-openappsec.jsonl \
        --corpus /work/shared/corpora/benign-browsing.jsonl [--limit 5000] \
        [--by signature|check] [--only CHECK ...] [--top 30] [--out FILE]

Timing on a shared machine drifts by tens of percent between identical runs, far more
than one signature costs; ``valgrind --tool=callgrind`` counts instructions, which do
not drift. The script

1. runs the default engine over the corpora (``--limit`` records of each, spread
   evenly) and keeps every buffer its value scanner scans in one batch: the NUL-joined
   texts of a request that the scan memo has not seen, the real input of the pass;
2. compiles the database of that pass (match ends only, every signature), and one
   more without each signature (``--by signature``) or each check's signatures
   (``--by check``);
3. counts, under callgrind, the instructions of scanning all the buffers with each
   database, each in a child process that loads it serialised (a few seconds each).

A signature's cost is how many fewer instructions the pass takes without it. Hyperscan
compiles patterns together, so costs do not add up: a signature can cost little
alone and still tip the database over one of its compiler's thresholds, which is why
each is measured by leaving it out. Needs valgrind (Debian package ``valgrind``), and
the plain sources (``PYTHONPATH=src``): step 1 watches a module function that a
compiled build calls natively.
"""

from __future__ import annotations

import argparse
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import hyperscan

from apishield import signatures
from apishield.engine import Engine
from apishield.policy import policy_from_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_bench import load_corpus

_SCAN_CHILD = """
import pickle, sys, hyperscan
buffers = pickle.load(open(sys.argv[1], "rb"))
database = hyperscan.loadb(open(sys.argv[2], "rb").read(), hyperscan.HS_MODE_BLOCK)
scratch = hyperscan.Scratch(database)
def on_match(*_): return 0
def scan_all(_):
    for data in buffers:
        database.scan(data, match_event_handler=on_match, scratch=scratch)
list(map(scan_all, [None]))
"""
_REFS = re.compile(rb"Collected : (\d+)")


def scanned_buffers(corpora: Sequence[Path], limit: int) -> list[bytes]:
    """The buffers the default engine's value scanner scans in batches over the corpora."""
    if not signatures.__file__ or not signatures.__file__.endswith(".py"):
        raise SystemExit("run with the plain sources (PYTHONPATH=src), not a compiled build")
    buffers: list[bytes] = []
    join = signatures._join

    def keeping(texts: Sequence[str]) -> tuple[bytes, list[int], list[int]]:
        joined = join(texts)
        buffers.append(joined[0])
        return joined

    engine = Engine(policy_from_dict({}))
    signatures._join = keeping  # type: ignore[assignment]
    try:
        for corpus in corpora:
            for record in load_corpus(corpus, limit):
                engine.inspect(record.request)
    finally:
        signatures._join = join  # type: ignore[assignment]
    return buffers


def ends_patterns(engine: Engine) -> list[tuple[str, str, str, int]]:
    """(name, check, pattern, flags) of the engine's batch pass, without start offsets."""
    value_set = engine.value_scanner._set
    assert value_set is not None
    return [
        (s.name, s.check, s.pattern, s.flags & ~hyperscan.HS_FLAG_SOM_LEFTMOST)
        for s in value_set.signatures
    ]


def dump(patterns: Sequence[tuple[str, str, str, int]], path: Path) -> None:
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=[p[2].encode() for p in patterns],
        ids=list(range(len(patterns))),
        flags=[p[3] for p in patterns],
    )
    path.write_bytes(hyperscan.dumpb(database))


def instructions(buffers_file: Path, database_file: Path, work: Path) -> int:
    """Instructions of scanning every buffer with the database, counted by callgrind."""
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--toggle-collect=map_next",
            f"--callgrind-out-file={work / 'callgrind.out'}",
            sys.executable,
            "-c",
            _SCAN_CHILD,
            str(buffers_file),
            str(database_file),
        ],
        capture_output=True,
        check=True,
    )
    found = _REFS.search(out.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from valgrind:\n{out.stderr.decode()[-2000:]}")
    return int(found.group(1))


def leave_one_out(
    patterns: Sequence[tuple[str, str, str, int]], by: str, only: set[str]
) -> list[tuple[str, Callable[[tuple[str, str, str, int]], bool]]]:
    """(what is left out, which patterns it covers), per signature or per check."""
    if by == "check":
        checks = sorted({p[1] for p in patterns if not only or p[1] in only})
        return [(c, lambda p, c=c: p[1] == c) for c in checks]  # type: ignore[misc]
    names = [p[0] for p in patterns if not only or p[1] in only]
    return [(n, lambda p, n=n: p[0] == n) for n in names]  # type: ignore[misc]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, action="append", required=True)
    parser.add_argument("--limit", type=int, default=5000, help="records per corpus")
    parser.add_argument("--by", choices=("signature", "check"), default="signature")
    parser.add_argument("--only", action="append", default=[], help="checks to cost")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed (apt-get install valgrind)")
    buffers = scanned_buffers(args.corpus, args.limit)
    patterns = ends_patterns(Engine(policy_from_dict({})))
    size = sum(map(len, buffers))
    print(f"{len(buffers):,} buffers, {size:,} bytes; {len(patterns)} signatures", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        buffers_file = work / "buffers.pickle"
        buffers_file.write_bytes(pickle.dumps(buffers))
        dump(patterns, work / "all.db")
        base = instructions(buffers_file, work / "all.db", work)
        print(f"all signatures: {base:,} instructions ({base / size:.1f} a byte)", flush=True)
        rows = []
        for left_out, covers in leave_one_out(patterns, args.by, set(args.only)):
            dump([p for p in patterns if not covers(p)], work / "rest.db")
            cost = base - instructions(buffers_file, work / "rest.db", work)
            rows.append((cost, left_out))
            print(f"  {left_out:<32} {cost * 100 / base:+6.1f} %", flush=True)
    rows.sort(reverse=True)
    lines = [
        f"Hyperscan batch pass over {len(buffers):,} buffers ({size:,} bytes): "
        f"{base:,} instructions with all {len(patterns)} signatures.",
        "",
        f"| left out ({args.by}) | instructions saved | share |",
        "|---|---:|---:|",
        *(
            f"| `{name}` | {cost:,} | {cost * 100 / base:.1f} % |"
            for cost, name in rows[: args.top]
        ),
    ]
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
