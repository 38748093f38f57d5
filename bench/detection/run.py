#!/usr/bin/env python3
"""Detection benchmark: apishield against nginx + ModSecurity v3 + OWASP CRS on labelled corpora.

One command, one run::

    .venv/bin/python bench/detection/run.py [--corpus PATH ...] [--limit N] \
        [--paranoia 1 2] [--in-process balanced strict learning] [--out bench/detection/RESULTS.md]
    .venv/bin/python bench/detection/run.py --only apishield   # in-process only, ~1 min

1. apishield in-process: ``evaluate_corpus`` with the default policy (and, with
   ``--in-process strict``, with ``sensitivity: strict`` too; with ``learning``, with
   parameter learning set to learn from one client: see ``IN_PROCESS_POLICIES``),
   findings counted per location;
2. apishield black-box: every record replayed through a running ``apishield proxy``;
3. nginx + ModSecurity v3 + OWASP CRS (Debian packages) at each paranoia level, black-box.

The CRS regression tests judged not to be attacks by themselves are listed, each with its
reason, in ``bench/detection/crs-not-attacks/*.yaml`` (``{test: "crs:944130-77", reason}``
or ``{rule: 944300, reason}``). They are validated before anything runs (unknown keys,
tests or rules not in the corpus, duplicates are errors; ``--validate`` does only that);
the report gives every target's rate over all CRS tests and over the rest, the tests
judged to be attacks, and ``CRS-NOT-ATTACKS.md`` lists the judged tests by class.

Black-box replay sends each record as the exact raw HTTP/1.1 request it describes (method,
raw path, raw query, headers in order, body; base64 bodies decoded) over a raw socket,
adding only ``Host`` and ``Content-Length`` when the record has none. Blocked = HTTP 403;
400/413/414/431 are rejections, reported on their own; anything else is "passed".

Targets are started with the helpers of ``bench/proxy_bench.py`` on 127.0.0.1. Run files
(configs, logs, ``detection.json`` with every miss, false positive, rejection and error per
target) go to ``bench/runs/detection-<timestamp>/``, which git ignores.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime as dt
import http.client
import json
import re
import shlex
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

DETECTION_DIR = Path(__file__).resolve().parent
BENCH_DIR = DETECTION_DIR.parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import proxy_bench as pb  # noqa: E402

CORPORA_DIR = Path("/work/shared/corpora")
DEFAULT_CORPORA = (
    "attacks-openappsec.jsonl",
    "attacks-crs-regression.jsonl",
    "api-atrdf.jsonl",
    "benign-browsing.jsonl",
)
DEFAULT_HOST = pb.CLIENT_HEADERS["Host"]  # name-based: a numeric Host trips CRS 920350
REJECT_STATUSES = (400, 413, 414, 431)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
ERROR = -1  # outcome of a request that got no HTTP answer
IN_PROCESS = "apishield-inprocess"
IN_PROCESS_STRICT = "apishield-inprocess-strict"
PROXY = "apishield-proxy"
IN_PROCESS_LEARNING = "apishield-inprocess-learning"
IN_PROCESS_TARGETS = {
    "balanced": IN_PROCESS,
    "strict": IN_PROCESS_STRICT,
    "learning": IN_PROCESS_LEARNING,
}
# A corpus comes from one client, so default learning (3 clients) never acts on it; the
# learning variant learns from one client, from every request, after 10 values: the
# most a corpus can show of what learned kinds catch and what they wrongly block.
IN_PROCESS_POLICIES: dict[str, dict[str, Any]] = {
    "balanced": {},
    "strict": {"sensitivity": "strict"},
    "learning": {"learning": {"min_clients": 1, "min_samples": 10, "sample_every": 1}},
}
CRS_CORPUS = "attacks-crs-regression"
NOT_ATTACKS_DIR = DETECTION_DIR / "crs-not-attacks"
NOT_ATTACKS_REPORT = "CRS-NOT-ATTACKS.md"


# -- corpus records --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    id: str
    label: str
    cls: str
    method: str
    raw: bytes
    close: bool  # the record asks for Connection: close


@dataclasses.dataclass(slots=True)
class Corpus:
    path: Path
    records: list[Record]
    host_added: int = 0
    length_added: int = 0
    length_fixed: list[str] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".jsonl")


def raw_request(record: dict[str, Any]) -> tuple[bytes, bool, bool, str]:
    """The request bytes, whether Host / Content-Length were added, and any CL fix note.

    A ``Content-Length`` that disagrees with the body (a few records) is set to the body
    length: sent as-is it would either leave bytes behind as a second request or stall
    until the server's body timeout. The in-process engine sees the full body too.
    """
    method = record.get("method") or "GET"
    target = record.get("path") or "/"
    if record.get("query"):
        target += "?" + record["query"]
    text = record.get("body") or ""
    body = (
        base64.b64decode(text)
        if record.get("body_encoding") == "base64"
        else text.encode("utf-8", "surrogateescape")
    )
    headers = [(str(k), str(v)) for k, v in (record.get("headers") or {}).items()]
    names = {k.lower() for k, _ in headers}
    host_added = "host" not in names
    if host_added:
        headers.insert(0, ("Host", DEFAULT_HOST))
    fixed = ""
    for i, (name, value) in enumerate(headers):
        if name.lower() == "content-length" and value.strip() != str(len(body)):
            fixed = f"Content-Length {value!r} → {len(body)}"
            headers[i] = (name, str(len(body)))
    length_added = (
        "content-length" not in names
        and "transfer-encoding" not in names
        and (bool(body) or method.upper() in BODY_METHODS)
    )
    if length_added:
        headers.append(("Content-Length", str(len(body))))
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers), "", ""]
    head = "\r\n".join(lines).encode("utf-8", "surrogateescape")
    return head + body, host_added, length_added, fixed


def load_corpus(path: Path, limit: int | None) -> Corpus:
    corpus = Corpus(path, [])
    with path.open("rb") as lines:
        for number, line in enumerate(lines):
            if limit is not None and number >= limit:
                break
            if not line.strip():
                continue
            record = json.loads(line)
            raw, host_added, length_added, fixed = raw_request(record)
            corpus.host_added += host_added
            corpus.length_added += length_added
            if fixed:
                corpus.length_fixed.append(f"{record['id']}: {fixed}")
            connection = next(
                (v for k, v in (record.get("headers") or {}).items() if k.lower() == "connection"),
                "",
            )
            corpus.records.append(
                Record(
                    id=record["id"],
                    label=record["label"],
                    cls=record.get("class") or record["label"],
                    method=(record.get("method") or "GET").upper(),
                    raw=raw,
                    close="close" in str(connection).lower(),
                )
            )
    return corpus


# -- CRS tests judged not to be attacks ------------------------------------------------

_TEST_ID = re.compile(r"crs:(\d{6})-\d+")
_ENTRY_KEYS = frozenset({"test", "rule", "reason"})


class JudgementError(ValueError):
    """A ``crs-not-attacks`` file that does not validate; the message lists every problem."""


@dataclasses.dataclass(frozen=True, slots=True)
class Judgement:
    """One CRS test judged not to be an attack, why, and which file entry says so."""

    test: str
    reason: str
    where: str  # "xss.yaml entry 3"

    @property
    def rule(self) -> str:
        return self.test.removeprefix("crs:").partition("-")[0]


def corpus_ids(path: Path) -> list[str]:
    """The record ids of the corpus at ``path``, in file order."""
    with path.open("rb") as lines:
        return [json.loads(line)["id"] for line in lines if line.strip()]


def load_judgements(directory: Path, ids: Iterable[str]) -> dict[str, Judgement]:
    """Every test of ``directory/*.yaml`` judged not to be an attack, by test id.

    Each file is a YAML list of ``{test: "crs:NNNNNN-N", reason: ...}`` or
    ``{rule: NNNNNN, reason: ...}`` (every test of that rule). Raises
    :class:`JudgementError` listing every problem: not a list, unknown or missing keys,
    an empty reason, a test or rule with no test in the corpus (``ids``), a test listed
    twice (also through its rule).
    """
    import yaml  # noqa: PLC0415 - the project's dependency; run.py needs the venv anyway

    known = set(ids)
    by_rule: dict[str, list[str]] = {}
    for test in known:
        found = _TEST_ID.fullmatch(test)
        if found is not None:
            by_rule.setdefault(found.group(1), []).append(test)
    judged: dict[str, Judgement] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            entries = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            problems.append(f"{path.name}: not valid YAML: {exc}")
            continue
        if entries is None:
            continue
        if not isinstance(entries, list):
            problems.append(f"{path.name}: must be a YAML list of entries")
            continue
        for number, entry in enumerate(entries, 1):
            where = f"{path.name} entry {number}"
            problems += _add_entry(entry, where, known, by_rule, judged)
    if problems:
        raise JudgementError("\n".join(problems))
    return judged


def _add_entry(
    entry: object,
    where: str,
    known: Collection[str],
    by_rule: dict[str, list[str]],
    judged: dict[str, Judgement],
) -> list[str]:
    """Validate one entry and add the tests it covers to ``judged``; its problems."""
    if not isinstance(entry, dict):
        return [f"{where}: must be a mapping with `test` or `rule`, and `reason`"]
    problems = [f"{where}: unknown key {key!r}" for key in entry if key not in _ENTRY_KEYS]
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        problems.append(f"{where}: `reason` must be a non-empty string")
    if ("test" in entry) == ("rule" in entry):
        return [*problems, f"{where}: needs exactly one of `test` and `rule`"]
    tests: list[str]
    if "test" in entry:
        test = entry["test"]
        if not isinstance(test, str) or _TEST_ID.fullmatch(test) is None:
            return [*problems, f'{where}: `test` must look like "crs:944130-77", got {test!r}']
        if test not in known:
            return [*problems, f"{where}: test {test!r} is not in the corpus"]
        tests = [test]
    else:
        rule = str(entry["rule"])
        if rule not in by_rule:
            return [*problems, f"{where}: rule {entry['rule']!r} has no test in the corpus"]
        tests = sorted(by_rule[rule], key=_test_order)
    for test in tests:
        previous = judged.get(test)
        if previous is not None:
            problems.append(f"{where}: duplicate: {test} is already listed in {previous.where}")
    if problems:
        return problems
    for test in tests:
        judged[test] = Judgement(test, str(reason).strip(), where)
    return []


def _test_order(test: str) -> tuple[str, int]:
    rule, _, number = test.removeprefix("crs:").partition("-")
    return rule, int(number) if number.isdigit() else 0


# -- black-box replay ------------------------------------------------------------------


class Client:
    """One keep-alive connection per worker thread, reopened when either side closes."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None

    def _drain_and_close(self) -> None:
        """Wait for the server's FIN first, so TIME_WAIT stays on its side, not ours."""
        assert self.sock is not None
        with contextlib.suppress(OSError):
            self.sock.settimeout(2)
            while self.sock.recv(65536):
                pass
        self.close()

    def send(self, record: Record) -> tuple[int, str]:
        """HTTP status (or ERROR) and an error description."""
        for attempt in (0, 1):
            reused = self.sock is not None
            try:
                if self.sock is None:
                    self.sock = self._connect()
                self.sock.settimeout(self.timeout)
                self.sock.sendall(record.raw)
                response = http.client.HTTPResponse(self.sock, method=record.method)
                response.begin()
                response.read()
                status = response.status
                if response.will_close or record.close:
                    self._drain_and_close()
                return status, ""
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle keep-alive connection: retry fresh
                return ERROR, f"{type(exc).__name__}: {exc}"[:200]
        return ERROR, "unreachable"


def replay(
    corpus: Corpus, port: int, *, workers: int, timeout: float, label: str
) -> tuple[list[int], dict[int, str], float]:
    """Send every record to ``port`` with ``workers`` threads: statuses, errors, seconds."""
    records = corpus.records
    statuses = [0] * len(records)
    errors: dict[int, str] = {}
    lock = threading.Lock()
    next_index = iter(range(len(records)))
    done = [0]

    finished: list[float] = []

    def work() -> None:
        client = Client(port, timeout)
        try:
            while True:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                status, error = client.send(records[index])
                statuses[index] = status
                with lock:
                    done[0] += 1
                    if error:
                        errors[index] = error
        finally:
            client.close()
            finished.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    last = started
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        now = time.monotonic()
        if now - last >= 10:
            last = now
            rate = done[0] / (now - started)
            print(f"    {label}: {done[0]:,}/{len(records):,} ({rate:,.0f} req/s)", flush=True)
    for thread in threads:
        thread.join()
    return statuses, errors, max(finished, default=started) - started


# -- tallies ---------------------------------------------------------------------------


@dataclasses.dataclass
class Tally:
    """What one target did with one corpus."""

    target: str
    corpus: str
    attacks: int = 0
    benign: int = 0
    blocked_attacks: int = 0
    blocked_benign: int = 0
    rejected_attacks: Counter[str] = dataclasses.field(default_factory=Counter)
    rejected_benign: Counter[str] = dataclasses.field(default_factory=Counter)
    other_attacks: Counter[str] = dataclasses.field(default_factory=Counter)  # non-200 passes
    other_benign: Counter[str] = dataclasses.field(default_factory=Counter)
    errors_attacks: int = 0
    errors_benign: int = 0
    per_class: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # total, stopped
    # in-process only: source of the findings that stopped a request -> {label: requests}
    per_location: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    stopped: list[bool] = dataclasses.field(default_factory=list, repr=False)
    statuses: list[int] = dataclasses.field(default_factory=list, repr=False)  # black-box only
    seconds: float = 0.0
    misses: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    false_positives: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    rejections: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    errors: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def rejected_attack_count(self) -> int:
        return sum(self.rejected_attacks.values())

    @property
    def rejected_benign_count(self) -> int:
        return sum(self.rejected_benign.values())

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("stopped")
        data.pop("statuses")
        for key in ("rejected_attacks", "rejected_benign", "other_attacks", "other_benign"):
            data[key] = dict(sorted(getattr(self, key).items()))
        return data


def tally_statuses(
    target: str, corpus: Corpus, statuses: list[int], errors: dict[int, str], seconds: float
) -> Tally:
    tally = Tally(target, corpus.name, seconds=seconds, statuses=statuses)
    for index, (record, status) in enumerate(zip(corpus.records, statuses, strict=True)):
        attack = record.label == "attack"
        blocked = status == 403
        rejected = status in REJECT_STATUSES
        stopped = blocked or rejected
        tally.stopped.append(stopped)
        stats = tally.per_class.setdefault(record.cls, [0, 0])
        stats[0] += 1
        stats[1] += stopped
        entry = {"id": record.id, "class": record.cls, "status": status}
        if attack:
            tally.attacks += 1
            tally.blocked_attacks += blocked
        else:
            tally.benign += 1
            tally.blocked_benign += blocked
        if status == ERROR:
            tally.errors.append({**entry, "error": errors.get(index, "")})
            if attack:
                tally.errors_attacks += 1
            else:
                tally.errors_benign += 1
        elif rejected:
            (tally.rejected_attacks if attack else tally.rejected_benign)[str(status)] += 1
            tally.rejections.append({**entry, "label": record.label})
        elif not blocked and status != 200:
            (tally.other_attacks if attack else tally.other_benign)[str(status)] += 1
        if attack and not stopped:
            tally.misses.append(entry)
        if not attack and stopped:
            tally.false_positives.append(entry)
    return tally


def tally_in_process(corpus: Corpus, limit: int | None, variant: str = "balanced") -> Tally:
    """``evaluate_corpus`` with the policy of ``variant``, shaped as a replay."""
    from apishield.evaluate import evaluate_corpus  # noqa: PLC0415 - needs the venv
    from apishield.policy import policy_from_dict  # noqa: PLC0415

    policy = policy_from_dict(IN_PROCESS_POLICIES[variant])
    started = time.monotonic()
    report = evaluate_corpus(corpus.path, policy, limit=limit)
    missed = {m.id for m in report.misses}
    flagged = {f.id for f in report.false_positive_list}
    target = IN_PROCESS_TARGETS[variant]
    tally = Tally(target, corpus.name, seconds=time.monotonic() - started)
    tally.per_location = {source: dict(counts) for source, counts in report.per_location.items()}
    tally.attacks, tally.benign = report.attacks, report.benign
    tally.blocked_attacks = report.detected - report.rejected_attacks
    tally.blocked_benign = report.false_positives - report.rejected_benign
    if report.rejected_attacks:
        tally.rejected_attacks["REJECT"] = report.rejected_attacks
    if report.rejected_benign:
        tally.rejected_benign["REJECT"] = report.rejected_benign
    tally.per_class = {name: [s.total, s.detected] for name, s in report.per_class.items()}
    for record in corpus.records:
        attack = record.label == "attack"
        stopped = (record.id not in missed) if attack else (record.id in flagged)
        tally.stopped.append(stopped)
    tally.misses = [{"id": m.id, "class": m.cls} for m in report.misses]
    tally.false_positives = [
        {"id": f.id, "class": f.cls, "checks": sorted({str(x.get("check")) for x in f.findings})}
        for f in report.false_positive_list
    ]
    return tally


# -- targets ---------------------------------------------------------------------------


@dataclasses.dataclass
class Targets:
    ports: dict[str, int]
    verification: dict[str, list[str]]
    skipped: dict[str, str]


def modsec_name(level: int) -> str:
    return f"modsec-pl{level}"


def start_targets(
    procs: pb.Processes, run_dir: Path, paranoia: Sequence[int], args: argparse.Namespace
) -> Targets:
    """Upstream, apishield proxy and one nginx + ModSecurity + CRS per paranoia level."""
    body = (pb.CONF_DIR / "post-body.json").read_bytes()
    names = ["upstream", PROXY, *(modsec_name(level) for level in paranoia)]
    ports = dict(zip(names, pb.choose_ports(args.base_port, len(names)), strict=True))
    found = Targets(ports, {}, {})
    base: dict[str, object] = {"workers": args.workers, "upstream_port": ports["upstream"]}

    print(f"starting upstream on 127.0.0.1:{ports['upstream']}")
    conf = pb.render(
        pb.CONF_DIR / "nginx-upstream.conf.tmpl",
        {**base, "run_dir": run_dir, "name": "upstream", "port": ports["upstream"]},
    )
    pb.start_nginx(procs, "upstream", conf, run_dir, ports["upstream"])

    exe = pb.find_apishield(args.apishield)
    ok, why = (False, "--no-proxy") if args.no_proxy else pb.apishield_proxy_available(exe)
    if ok and exe is not None:
        print(f"starting apishield proxy on 127.0.0.1:{ports[PROXY]}")
        values = {**base, "run_dir": run_dir, "name": PROXY, "port": ports[PROXY]}
        try:
            target = pb.start_apishield(
                procs, exe, PROXY, mode="block", run_dir=run_dir, values=values
            )
            found.verification[PROXY] = pb.verify_target(target, body, True)
        except (pb.BenchError, OSError) as exc:
            found.skipped[PROXY] = str(exc)
    else:
        found.skipped[PROXY] = why
    if PROXY in found.skipped:
        print(f"  skipped: {found.skipped[PROXY]}", file=sys.stderr)

    for level in paranoia:
        name = modsec_name(level)
        print(f"starting nginx + ModSecurity + CRS PL{level} on 127.0.0.1:{ports[name]}")
        sub = run_dir / name  # write_modsec_rules and start_nginx use <run_dir>/modsec/
        rules = pb.write_modsec_rules(sub, level)
        values = {
            **base,
            "run_dir": sub,
            "name": "modsec",
            "port": ports[name],
            "load_module": f"load_module {pb.MODSEC_MODULE};",
            "modsecurity": f"        modsecurity on;\n        modsecurity_rules_file {rules};",
        }
        conf = pb.render(pb.CONF_DIR / "nginx-proxy.conf.tmpl", values)
        target = pb.start_nginx(procs, "modsec", conf, sub, ports[name])
        target.name = name
        notes = pb.verify_target(target, body, True)
        try:
            notes.append(pb.check_modsec_logs(sub, target, body))
        except pb.BenchError as exc:
            notes.append(f"note: {exc}")
        found.verification[name] = notes
        print("  " + "; ".join(notes))
    return found


# -- report ----------------------------------------------------------------------------


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "—"


def _counts(counter: Counter[Any]) -> str:
    if not counter:
        return "0"
    total = sum(counter.values())
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=str))
    return f"{total} ({detail})"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else ("—" if not a else "∞")


TARGET_TITLES = {
    IN_PROCESS: "apishield in-process",
    IN_PROCESS_STRICT: "apishield in-process (strict)",
    IN_PROCESS_LEARNING: "apishield in-process (learning)",
    PROXY: "apishield via proxy",
}


def title(target: str) -> str:
    if target.startswith("modsec-pl"):
        return f"ModSecurity+CRS PL{target.removeprefix('modsec-pl')}"
    return TARGET_TITLES.get(target, target)


def judged_attack_flags(corpus: Corpus, judged: dict[str, Judgement]) -> list[bool]:
    """Per record: an attack record not judged to be something else."""
    return [r.label == "attack" and r.id not in judged for r in corpus.records]


def judged_section(
    corpus: Corpus, tallies: dict[str, Tally], shown: list[str], judged: dict[str, Judgement]
) -> list[str]:
    """Every target's rate over all attack records and over those judged to be attacks."""
    attack = judged_attack_flags(corpus, judged)
    listed = sum(1 for r in corpus.records if r.id in judged)
    n = sum(attack)
    out = [
        f"{listed:,} tests are judged not to be attacks by themselves (each with its reason in "
        f"[{NOT_ATTACKS_REPORT}]({NOT_ATTACKS_REPORT}), from `bench/detection/crs-not-attacks/`"
        f"); {n:,} are judged to be attacks. Share stopped (blocked or rejected):",
        "",
        "| | " + " | ".join(title(t) for t in shown) + " |",
        "|---|" + "---:|" * len(shown),
    ]
    raw = [
        _pct(
            sum(
                s
                for s, r in zip(tallies[t].stopped, corpus.records, strict=True)
                if r.label == "attack"
            ),
            sum(r.label == "attack" for r in corpus.records),
        )
        for t in shown
    ]
    out.append("| all tests (raw) | " + " | ".join(raw) + " |")
    cells = [
        f"**{_pct(sum(s for s, a in zip(tallies[t].stopped, attack, strict=True) if a), n)}**"
        for t in shown
    ]
    out += ["| **tests judged to be attacks** | " + " | ".join(cells) + " |", ""]
    return out


def class_table(
    corpus: Corpus, tallies: dict[str, Tally], shown: list[str], judged: dict[str, Judgement]
) -> list[str]:
    """Per class: share stopped; with judgements, over all tests / over judged attacks."""
    attack = judged_attack_flags(corpus, judged)
    classes = sorted({c for t in shown for c in tallies[t].per_class})
    if judged:
        head = "| class | n | judged attacks | " + " | ".join(
            f"{title(t)} all / judged" for t in shown
        )
        out = [
            "Per class: share blocked or rejected (403 or 400/413/414/431; in-process BLOCK or "
            "REJECT), over all tests of the class / over its tests judged to be attacks.",
            "",
            head + " |",
            "|---|---:|---:|" + "---:|" * len(shown),
        ]
    else:
        out = [
            "Per class: share blocked or rejected (403 or 400/413/414/431; in-process BLOCK or "
            "REJECT).",
            "",
            "| class | n | " + " | ".join(title(t) for t in shown) + " |",
            "|---|---:|" + "---:|" * len(shown),
        ]
    for cls in classes:
        members = [i for i, r in enumerate(corpus.records) if r.cls == cls]
        cells = []
        for t in shown:
            total, stopped = tallies[t].per_class.get(cls, [0, 0])
            cell = _pct(stopped, total)
            if judged:
                kept = [i for i in members if attack[i]]
                caught = sum(tallies[t].stopped[i] for i in kept)
                cell += f" / {_pct(caught, len(kept))}" if kept else " / —"
            cells.append(cell)
        n = max(tallies[t].per_class.get(cls, [0, 0])[0] for t in shown)
        extra = f" {sum(attack[i] for i in members):,} |" if judged else ""
        out.append(f"| {cls} | {n:,} |{extra} " + " | ".join(cells) + " |")
    out.append("")
    return out


def location_table(tallies: dict[str, Tally], shown: list[str]) -> list[str]:
    """In-process only: how many stopped requests had a finding in each location."""
    ours = [t for t in shown if tallies[t].per_location]
    if not ours:
        return []
    sources = sorted({s for t in ours for s in tallies[t].per_location})
    out = [
        "Where apishield's findings were (in-process): requests stopped with a finding in "
        "each location (a request with findings in two locations counts in both).",
        "",
        "| location | " + " | ".join(f"{title(t)} attack | benign" for t in ours) + " |",
        "|---|" + "---:|---:|" * len(ours),
    ]
    for source in sources:
        cells = []
        for t in ours:
            counts = tallies[t].per_location.get(source, {})
            cells += [f"{counts.get('attack', 0):,}", f"{counts.get('benign', 0):,}"]
        out.append(f"| {source} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def not_attacks_report(
    corpus: Corpus, tallies: dict[str, Tally], order: list[str], judged: dict[str, Judgement]
) -> str:
    """``CRS-NOT-ATTACKS.md``: every judged test by class, its reason, who stopped it anyway."""
    shown = [t for t in order if t in tallies]
    index = {r.id: i for i, r in enumerate(corpus.records)}
    by_class: dict[str, list[Judgement]] = {}
    for judgement in sorted(judged.values(), key=lambda j: _test_order(j.test)):
        record = corpus.records[index[judgement.test]] if judgement.test in index else None
        by_class.setdefault(record.cls if record else "(not in this run)", []).append(judgement)
    out = [
        "# CRS regression tests judged not to be attacks",
        "",
        "Generated by `bench/detection/run.py` from `bench/detection/crs-not-attacks/*.yaml`. "
        f'These {len(judged):,} tests of `{corpus.name}` are left out of the "judged '
        'attacks" rates in [RESULTS.md](RESULTS.md), each for the reason given. The last '
        "columns say whether each target stopped the request anyway (✔).",
        "",
    ]
    for cls, items in sorted(by_class.items()):
        out += [
            f"## {cls} ({len(items):,})",
            "",
            "| test | reason | " + " | ".join(title(t) for t in shown) + " |",
            "|---|---|" + "---|" * len(shown),
        ]
        for j in items:
            i = index.get(j.test)
            marks = ["✔" if i is not None and tallies[t].stopped[i] else "" for t in shown]
            reason = j.reason.replace("|", "\\|").replace("\n", " ")
            out.append(f"| `{j.test}` | {reason} | " + " | ".join(marks) + " |")
        out.append("")
    return "\n".join(out)


def corpus_section(
    corpus: Corpus, tallies: dict[str, Tally], order: list[str], judged: dict[str, Judgement]
) -> list[str]:
    shown = [t for t in order if t in tallies]
    head = "| | " + " | ".join(title(t) for t in shown) + " |"
    rule = "|---|" + "---:|" * len(shown)
    first = tallies[shown[0]]
    out = [
        f"## {corpus.name}",
        "",
        f"`{corpus.path}`: {len(corpus.records):,} requests ({first.attacks:,} attacks, "
        f"{first.benign:,} benign). Host added to {corpus.host_added:,}, Content-Length "
        f"added to {corpus.length_added:,}, Content-Length corrected on "
        f"{len(corpus.length_fixed)}.",
        "",
        head,
        rule,
    ]

    def row(label: str, cell: Callable[[Tally], str]) -> None:
        out.append(f"| {label} | " + " | ".join(cell(tallies[t]) for t in shown) + " |")

    if first.attacks:
        row(
            "**attacks blocked** (403 / BLOCK)",
            lambda t: f"**{_pct(t.blocked_attacks, t.attacks)}** ({t.blocked_attacks:,})",
        )
        row("attacks rejected (400/413/414/431 / REJECT)", lambda t: _counts(t.rejected_attacks))
        row(
            "attacks blocked or rejected",
            lambda t: _pct(t.blocked_attacks + t.rejected_attack_count, t.attacks),
        )
        row(
            "attacks missed",
            lambda t: f"{t.attacks - t.blocked_attacks - t.rejected_attack_count:,}",
        )
        row(
            "attacks: other status / errors",
            lambda t: f"{_counts(t.other_attacks)} / {t.errors_attacks}",
        )
    if first.benign:
        row(
            "**benign blocked** (403 / BLOCK)",
            lambda t: f"**{_pct(t.blocked_benign, t.benign)}** ({t.blocked_benign:,})",
        )
        row("benign rejected (400/413/414/431 / REJECT)", lambda t: _counts(t.rejected_benign))
        row(
            "benign blocked or rejected",
            lambda t: _pct(t.blocked_benign + t.rejected_benign_count, t.benign),
        )
        row(
            "benign: other status / errors",
            lambda t: f"{_counts(t.other_benign)} / {t.errors_benign}",
        )
    row(
        "time",
        lambda t: (
            f"{t.seconds:.0f} s ({len(corpus.records) / t.seconds:,.0f} req/s)"
            if t.seconds
            else "—"
        ),
    )
    out.append("")

    out += judged_section(corpus, tallies, shown, judged) if judged else []
    out += class_table(corpus, tallies, shown, judged)
    out += location_table(tallies, shown)

    if IN_PROCESS in tallies and PROXY in tallies:
        a, b = tallies[IN_PROCESS].stopped, tallies[PROXY].stopped
        proxy_statuses = tallies[PROXY].statuses
        differ = [
            f"`{r.id}` (in-process {'stopped' if x else 'passed'}, proxy {proxy_statuses[i]})"
            for i, (r, x, y) in enumerate(zip(corpus.records, a, b, strict=True))
            if x != y
        ]
        examples = "; ".join(differ[:10]) + ("; ..." if len(differ) > 10 else "")
        out += [
            f"In-process and proxy verdicts (stopped or not) agree on "
            f"{len(corpus.records) - len(differ):,} of {len(corpus.records):,} requests"
            + (f"; they differ on {len(differ)}: {examples}." if differ else "."),
            "",
        ]
    return out


def ratio_section(
    tallies: dict[tuple[str, str], Tally], corpora: list[Corpus], order: list[str]
) -> list[str]:
    levels = [t for t in order if t.startswith("modsec-pl")]
    if not levels:
        return []
    ours = PROXY if any(k[0] == PROXY for k in tallies) else IN_PROCESS
    out = [
        "## Ratios",
        "",
        f"{title(ours)} against each ModSecurity level. Detection ratio = share of attacks "
        "blocked (403) ÷ the peer's; misses ratio = attacks not blocked ÷ the peer's; "
        "false-positive ratio = benign blocked ÷ the peer's (lower is better for both).",
        "",
        "| corpus | peer | detection ratio | misses ratio | false-positive ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for corpus in corpora:
        mine = tallies.get((ours, corpus.name))
        if mine is None:
            continue
        for level in levels:
            peer = tallies.get((level, corpus.name))
            if peer is None:
                continue
            det = (
                _ratio(mine.blocked_attacks / mine.attacks, peer.blocked_attacks / peer.attacks)
                if mine.attacks
                else "—"
            )
            miss = (
                _ratio(mine.attacks - mine.blocked_attacks, peer.attacks - peer.blocked_attacks)
                if mine.attacks
                else "—"
            )
            fp = _ratio(mine.blocked_benign, peer.blocked_benign) if mine.benign else "—"
            out.append(f"| {corpus.name} | {title(level)} | {det} | {miss} | {fp} |")
    out.append("")
    return out


def summary_section(
    tallies: dict[tuple[str, str], Tally],
    corpora: list[Corpus],
    order: list[str],
    judged: dict[str, Judgement],
) -> list[str]:
    out = [
        "## Summary (blocked = 403 / BLOCK)",
        "",
        "| corpus | metric | " + " | ".join(title(t) for t in order) + " |",
        "|---|---|" + "---:|" * len(order),
    ]
    for corpus in corpora:
        cells = [tallies.get((t, corpus.name)) for t in order]
        first = next((c for c in cells if c is not None), None)
        if first is None:
            continue
        if first.attacks:
            out.append(
                f"| {corpus.name} | attacks blocked | "
                + " | ".join(_pct(c.blocked_attacks, c.attacks) if c else "—" for c in cells)
                + " |"
            )
        if first.attacks and corpus.name == CRS_CORPUS and judged:
            attack = judged_attack_flags(corpus, judged)
            n = sum(attack)
            out.append(
                f"| {corpus.name} | judged attacks stopped ({n:,}; blocked or rejected) | "
                + " | ".join(
                    _pct(sum(s for s, a in zip(c.stopped, attack, strict=True) if a), n)
                    if c
                    else "—"
                    for c in cells
                )
                + " |"
            )
        if first.benign:
            out.append(
                f"| {corpus.name} | benign blocked | "
                + " | ".join(
                    f"{_pct(c.blocked_benign, c.benign)} ({c.blocked_benign:,})" if c else "—"
                    for c in cells
                )
                + " |"
            )
    out.append("")
    return out


def build_report(
    *,
    command: str,
    machine: dict[str, str],
    corpora: list[Corpus],
    tallies: dict[tuple[str, str], Tally],
    order: list[str],
    targets: Targets,
    args: argparse.Namespace,
    run_dir: Path,
    elapsed_s: float,
    judged: dict[str, Judgement],
) -> str:
    shown_dir = run_dir.relative_to(REPO_DIR) if run_dir.is_relative_to(REPO_DIR) else run_dir
    levels = ", ".join(str(level) for level in args.paranoia)
    out = [
        "# Detection: apishield against nginx + ModSecurity v3 + OWASP CRS",
        "",
        "Generated by `bench/detection/run.py` (see its docstring for the method). Run files, "
        f"with every miss, false positive, rejection and error per target in "
        f"`detection.json`: `{shown_dir}` (not committed).",
        "",
        "```",
        command,
        "```",
        "",
        f"Whole run: {elapsed_s / 60:.1f} min"
        + (f"; first {args.limit:,} records of each corpus only." if args.limit else "."),
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in machine.items() if k != "wrk"),
        "",
        "## Method",
        "",
        "- **apishield in-process**: `apishield.evaluate.evaluate_corpus(path, "
        "policy_from_dict({}))`, the default policy (`sensitivity: balanced`); BLOCK counts "
        "as blocked, REJECT (malformed or oversized input) as rejected. "
        "**apishield in-process (strict)**, when run: the same with `sensitivity: strict`. "
        "**apishield in-process (learning)**, when run: the default policy with parameter "
        "learning set to learn from one client (`min_clients: 1`), from every request "
        "(`sample_every: 1`), after 10 values (`min_samples: 10`); a corpus comes from one "
        "client, so the default learning (3 clients, 50 values, one request in 64) never "
        "acts on it.",
        f"- **apishield via proxy**: `apishield proxy` with `bench/conf/apishield-policy.yaml"
        f".tmpl` (`mode: block`, defaults otherwise), {args.workers} workers, in front of "
        "an nginx upstream answering 200 to everything.",
        f"- **ModSecurity+CRS PL{{{levels}}}**: nginx + ModSecurity v3 + OWASP CRS from Debian's "
        "packages, set up by `bench/proxy_bench.py` as `/work/shared/notes/peer-modsecurity.md` "
        "says (Debian's `modsecurity.conf` with SecRuleEngine On, SecStatusEngine Off, request "
        "body access and the JSON body processor on, audit log in the run folder; "
        "`tx.paranoia_level`, crs-setup.conf, exclusions, rules), in front of the same "
        f"upstream, {args.workers} workers each.",
        "- Black-box replay: each record becomes the exact raw HTTP/1.1 request it describes "
        "(method, raw path and query, headers in record order, body; base64 bodies decoded), "
        "sent over a raw socket; only a missing `Host` "
        f"(`{DEFAULT_HOST}`: a numeric Host would trip CRS 920350) and a missing "
        "`Content-Length` are added. A `Content-Length` that disagrees with the body is set to "
        "the body length (listed per corpus; sent as-is it would leave bytes for a second "
        "request or stall until the body timeout). "
        f"{args.threads} client threads, keep-alive unless the record says `Connection: close`"
        " or the server closes.",
        "- **Blocked = HTTP 403.** 400/413/414/431 are rejections, counted separately; any "
        "other status (200, 404, 405, 5xx, ...) means the request went through. Errors = no "
        "HTTP answer. The per-class tables count blocked or rejected.",
        "- The same records (the first `--limit` of each corpus when given) go to every target.",
        "",
        "| target | port | verified before replay |",
        "|---|---|---|",
    ]
    for name in [PROXY, *(modsec_name(level) for level in args.paranoia)]:
        if name in targets.skipped:
            reason = targets.skipped[name].replace("|", "\\|")
            out.append(f"| {title(name)} | — | **skipped**: {reason} |")
        else:
            notes = "; ".join(targets.verification.get(name, []))
            out.append(f"| {title(name)} | {targets.ports[name]} | {notes} |")
    out.append("")
    out += summary_section(tallies, corpora, order, judged)
    out += ratio_section(tallies, corpora, order)
    for corpus in corpora:
        per = {t: tallies[(t, corpus.name)] for t in order if (t, corpus.name) in tallies}
        if per:
            out += corpus_section(corpus, per, order, judged if corpus.name == CRS_CORPUS else {})
        if corpus.length_fixed:
            out += [
                "Content-Length corrected: " + "; ".join(f"`{x}`" for x in corpus.length_fixed),
                "",
            ]
    out += [
        "## Caveats",
        "",
        "- apishield's detectors are being tuned while this runs; its figures move with the "
        "commit shown above. ModSecurity's do not.",
        "- The corpora's labels are taken as given. `attacks-crs-regression` is CRS's own test "
        "suite (some tests target paranoia levels 2-4), so it favours CRS; "
        "`attacks-openappsec` benign rows are the collection's false-positive lists.",
        "- In-process evaluation gets each record already split into fields; the proxy parses "
        "the raw bytes first, so it can also reject a request as malformed (400), e.g. raw "
        "non-ASCII bytes in the request target. That is where in-process and proxy can differ; "
        "the events of the proxy (`apishield-proxy/events.db` in the run folder) give the "
        "reason.",
        "- Rejections by nginx itself (e.g. 414 or 400 for an oversized or malformed request "
        "line) happen before ModSecurity runs; they are shown, not counted as blocks.",
        "",
    ]
    return "\n".join(out)


# -- main ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--corpus",
        action="append",
        type=Path,
        help="corpus JSON lines (repeatable); default: the four in /work/shared/corpora",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N records per corpus")
    parser.add_argument(
        "--paranoia",
        type=int,
        nargs="+",
        default=[1, 2],
        choices=(1, 2, 3, 4),
        help="CRS paranoia levels to run (default: 1 2)",
    )
    parser.add_argument(
        "--only",
        choices=("apishield",),
        default=None,
        help="apishield: in-process only (no proxy, no ModSecurity; about a minute); the "
        "report goes to the run folder unless --out is given",
    )
    parser.add_argument(
        "--in-process",
        "--sensitivity",
        dest="sensitivity",
        nargs="+",
        default=["balanced"],
        choices=tuple(IN_PROCESS_TARGETS),
        help="in-process apishield variants: balanced (the default policy), strict, "
        "learning (see IN_PROCESS_POLICIES); default: balanced",
    )
    parser.add_argument(
        "--validate",
        action="store_true",
        help="only validate bench/detection/crs-not-attacks/*.yaml and print what they list",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report path (default: bench/detection/RESULTS.md; none with --only); "
        f"{NOT_ATTACKS_REPORT} is written beside it",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes per target")
    parser.add_argument("--threads", type=int, default=16, help="client threads for replay")
    parser.add_argument("--timeout", type=float, default=30, help="socket timeout, seconds")
    parser.add_argument("--base-port", type=int, default=18180, help="first port to try")
    parser.add_argument("--apishield", default=None, help="apishield executable")
    parser.add_argument(
        "--no-proxy", action="store_true", help="skip the apishield proxy (in-process only)"
    )
    args = parser.parse_args(argv)
    args.corpus = args.corpus or [CORPORA_DIR / name for name in DEFAULT_CORPORA]
    for path in args.corpus:
        if not path.is_file():
            parser.error(f"no corpus file {path}")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    args.paranoia = sorted(set(args.paranoia))
    args.sensitivity = [s for s in IN_PROCESS_TARGETS if s in args.sensitivity]
    if args.out is None and args.only is None:
        args.out = DETECTION_DIR / "RESULTS.md"
    return args


def crs_corpus_path(corpora: Sequence[Path]) -> Path:
    """The CRS regression corpus: the one given, else the shared one."""
    return next(
        (p for p in corpora if p.name == f"{CRS_CORPUS}.jsonl"), CORPORA_DIR / f"{CRS_CORPUS}.jsonl"
    )


def judgements_for(corpora: Sequence[Path]) -> dict[str, Judgement]:
    """The validated judgements, checked against every test of the CRS corpus."""
    path = crs_corpus_path(corpora)
    if not path.is_file():
        return {}
    return load_judgements(NOT_ATTACKS_DIR, corpus_ids(path))


def print_judgements(judged: dict[str, Judgement], corpora: Sequence[Path]) -> None:
    """A count per class and file of the judged tests (``--validate``)."""
    path = crs_corpus_path(corpora)
    classes: dict[str, str] = {}
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                record = json.loads(line)
                classes[record["id"]] = record.get("class") or record["label"]
    per_class = Counter(classes[test] for test in judged)
    per_file = Counter(j.where.partition(" ")[0] for j in judged.values())
    print(f"{len(judged):,} tests judged not to be attacks, valid against {path}")
    for name, count in sorted(per_class.items()):
        total = sum(1 for c in classes.values() if c == name)
        print(f"  class {name:<20} {count:>5} of {total:>5}")
    for name, count in sorted(per_file.items()):
        print(f"  file  {name:<20} {count:>5}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        judged = judgements_for(args.corpus)
    except JudgementError as exc:
        print(f"error: {NOT_ATTACKS_DIR.relative_to(REPO_DIR)}:\n{exc}", file=sys.stderr)
        return 2
    if args.validate:
        print_judgements(judged, args.corpus)
        return 0
    given = list(sys.argv[1:] if argv is None else argv)
    command = "python " + shlex.join([str(Path(sys.argv[0])), *given])
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, pb._raise_interrupt)
    procs = pb.Processes()
    try:
        return _run(args, command, procs, judged)
    except pb.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; stopping every process started", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()


def _run(
    args: argparse.Namespace, command: str, procs: pb.Processes, judged: dict[str, Judgement]
) -> int:
    started = time.monotonic()
    if args.only is None:
        pb.check_prerequisites(["modsec"])
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = BENCH_DIR / "runs" / f"detection-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=False)
    print(f"run folder {run_dir}")
    machine = pb.machine_info(pb.find_apishield(args.apishield))

    corpora = [load_corpus(path, args.limit) for path in args.corpus]
    tallies: dict[tuple[str, str], Tally] = {}
    for corpus in corpora:
        for sensitivity in args.sensitivity:
            print(
                f"in-process ({sensitivity}): {corpus.name} ({len(corpus.records):,} records)",
                flush=True,
            )
            tally = tally_in_process(corpus, args.limit, sensitivity)
            tallies[(tally.target, corpus.name)] = tally
            print(f"    {tally.seconds:.0f} s", flush=True)

    black_box = [PROXY, *(modsec_name(level) for level in args.paranoia)]
    if args.only is None:
        targets = start_targets(procs, run_dir, args.paranoia, args)
    else:
        reason = f"not run (--only {args.only})"
        targets = Targets({}, {}, dict.fromkeys(black_box, reason))
    order = [IN_PROCESS_TARGETS[s] for s in args.sensitivity] + black_box
    for corpus in corpora:
        for name in black_box:
            if name in targets.skipped:
                continue
            print(f"replay {corpus.name} → {title(name)}", flush=True)
            statuses, errors, seconds = replay(
                corpus,
                targets.ports[name],
                workers=args.threads,
                timeout=args.timeout,
                label=name,
            )
            tally = tally_statuses(name, corpus, statuses, errors, seconds)
            tallies[(name, corpus.name)] = tally
            print(
                f"    {seconds:.0f} s, {len(corpus.records) / seconds:,.0f} req/s; attacks "
                f"blocked {_pct(tally.blocked_attacks, tally.attacks)}, benign blocked "
                f"{_pct(tally.blocked_benign, tally.benign)}, errors {len(tally.errors)}",
                flush=True,
            )
    order = [t for t in order if t not in targets.skipped]

    machine["load average at end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    write_details(run_dir / "detection.json", command, corpora, tallies, judged)
    report = build_report(
        command=command,
        machine=machine,
        corpora=corpora,
        tallies=tallies,
        order=order,
        targets=targets,
        args=args,
        run_dir=run_dir,
        elapsed_s=time.monotonic() - started,
        judged=judged,
    )
    crs = next((c for c in corpora if c.name == CRS_CORPUS), None)
    outputs = [run_dir / "RESULTS.md"] + ([args.out] if args.out is not None else [])
    for out in outputs:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report, encoding="utf-8")
        if crs is not None and judged:
            per = {t: tallies[(t, crs.name)] for t in order if (t, crs.name) in tallies}
            listing = not_attacks_report(crs, per, order, judged)
            (out.parent / NOT_ATTACKS_REPORT).write_text(listing, encoding="utf-8")
    print()
    print(report)
    print(f"wrote {', '.join(str(o) for o in outputs)} and {run_dir / 'detection.json'}")
    return 0


def write_details(
    path: Path,
    command: str,
    corpora: list[Corpus],
    tallies: dict[tuple[str, str], Tally],
    judged: dict[str, Judgement],
) -> None:
    """``detection.json``: every miss, false positive, rejection and error per target."""
    details = {
        "command": command,
        "corpora": {
            c.name: {
                "path": str(c.path),
                "records": len(c.records),
                "content_length_fixed": c.length_fixed,
            }
            for c in corpora
        },
        "judged_not_attacks": {
            test: {"reason": j.reason, "where": j.where} for test, j in sorted(judged.items())
        },
        "targets": {
            f"{target}/{corpus}": tally.to_json() for (target, corpus), tally in tallies.items()
        },
        "disagreements_inprocess_vs_proxy": {
            c.name: [
                r.id
                for r, x, y in zip(
                    c.records,
                    tallies[(IN_PROCESS, c.name)].stopped,
                    tallies[(PROXY, c.name)].stopped,
                    strict=True,
                )
                if x != y
            ]
            for c in corpora
            if (PROXY, c.name) in tallies and (IN_PROCESS, c.name) in tallies
        },
    }
    path.write_text(json.dumps(details, indent=1), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
