"""Detection: declarative cases through each detector, the signature set, the engine."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hyperscan
import pytest
import yaml

from apishield.checks import ValueCheck, registered_checks
from apishield.engine import Engine
from apishield.findings import Action, Location, Source
from apishield.http import Request
from apishield.inputs import InputValue
from apishield.policy import CheckSettings, policy_from_dict
from apishield.signatures import Signature, SignatureSet, is_plain, signatures_for

INJECTION_CHECKS = tuple(
    sorted(cid for cid, cls in registered_checks().items() if issubclass(cls, ValueCheck))
)
CASE_FILES = sorted((Path(__file__).parent / "detection_cases").glob("*.yaml"))
CASES: list[dict[str, Any]] = [
    case for path in CASE_FILES for case in yaml.safe_load(path.read_text(encoding="utf-8"))
]


def _build_detectors(sensitivity: str) -> dict[str, ValueCheck]:
    policy = policy_from_dict({"sensitivity": sensitivity})
    checks = registered_checks()
    built = {}
    for check_id in INJECTION_CHECKS:
        check = checks[check_id](CheckSettings(), policy)
        assert isinstance(check, ValueCheck)
        built[check_id] = check
    return built


@pytest.fixture(scope="module")
def detectors() -> dict[str, ValueCheck]:
    return _build_detectors("balanced")


@pytest.fixture(scope="module")
def strict_detectors() -> dict[str, ValueCheck]:
    return _build_detectors("strict")


@pytest.mark.parametrize("case", CASES, ids=[c["value"][:40] for c in CASES])
def test_detection_case(
    case: dict[str, Any],
    detectors: dict[str, ValueCheck],
    strict_detectors: dict[str, ValueCheck],
) -> None:
    """A case holds at its ``sensitivity`` (default ``balanced``, which ``strict`` must keep).

    Attacks found at ``balanced`` are found at ``strict`` too; benign cases marked
    ``strict`` must stay clean even there.
    """
    sensitivity = case.get("sensitivity", "balanced")
    value = InputValue(Location(Source(case["source"]), "p"), case["value"], case["value"])
    if case["expect"] is not None or sensitivity == "strict":
        _assert_case(case, value, strict_detectors)
    if sensitivity == "balanced":
        _assert_case(case, value, detectors)


def _assert_case(case: dict[str, Any], value: InputValue, detectors: dict[str, ValueCheck]) -> None:
    fired = {cid: f for cid, d in detectors.items() if (f := d.check_value(value)) is not None}
    if case["expect"] is None:
        assert not fired, {cid: f.message for cid, f in fired.items()}
        return
    finding = fired.get(case["expect"])
    assert finding is not None, f"{case['expect']} missed; fired: {sorted(fired)}"
    assert finding.location.source is Source(case["source"])
    assert 50 <= finding.score <= 100
    assert finding.evidence
    if not case.get("decoded", case["expect"] in ("cmdi", "traversal")):
        assert finding.evidence in case["value"]


def test_messages_name_what_was_recognised(detectors: dict[str, ValueCheck]) -> None:
    value = InputValue(Location(Source.QUERY, "id"), "", "1' OR '1'='1")
    finding = detectors["sqli"].check_value(value)
    assert finding is not None
    assert finding.message.startswith("SQL injection: tautology `")
    assert "OR '1'='1" in finding.evidence
    assert finding.category == "injection"
    traversal = detectors["traversal"].check_value(
        InputValue(Location(Source.QUERY, "f"), "", "../../etc/passwd")
    )
    assert traversal is not None and traversal.category == "path_traversal"


def test_engine_blocks_query_injection() -> None:
    engine = Engine(policy_from_dict({}))
    blocked = engine.inspect(Request("GET", "/", query="id=1%27%20OR%20%271%27%3D%271"))
    assert blocked.verdict is not None and blocked.verdict.action is Action.BLOCK
    assert {f.check for f in blocked.verdict.findings} == {"sqli"}
    allowed = engine.inspect(Request("GET", "/", query="q=O%27Brien"))
    assert allowed.verdict is None or allowed.verdict.action is Action.ALLOW


def test_every_detector_has_signatures() -> None:
    for check_id in INJECTION_CHECKS:
        assert signatures_for(check_id), check_id
    names = [s.name for s in signatures_for()]
    assert len(names) == len(set(names))


def test_signature_set_reports_leftmost_longest_match_per_signature() -> None:
    union = Signature("t.union", "t", r"union(\s|/\*.*?\*/)+select", "UNION", 90)
    sleep = Signature("t.sleep", "t", r"sleep\s*\(", "sleep", 80)
    signatures = SignatureSet([union, sleep])
    hits = signatures.scan("1 UNION/**/SELECT sleep(1) union select")
    assert [(h.signature.name, h.evidence) for h in hits] == [
        ("t.union", "UNION/**/SELECT"),
        ("t.sleep", "sleep("),
    ]
    assert signatures.scan("nothing here") == []


def test_signature_set_best_and_gates() -> None:
    gate = Signature("t.gate", "t", r"'", "quote", 0)
    strong = Signature("t.strong", "t", r"drop\s+table", "drop", 95)
    signatures = SignatureSet([gate, strong])
    assert signatures.best("O'Brien") == (None, True)
    hit, gated = signatures.best("x; drop table t")
    assert hit is not None and hit.signature.name == "t.strong" and not gated
    assert signatures.best("plain") == (None, False)


def test_signature_set_handles_non_ascii_offsets() -> None:
    signatures = SignatureSet([Signature("t.s", "t", r"<script", "script", 95)])
    (hit,) = signatures.scan("héllo wörld <script>")
    assert hit.evidence == "<script"


def test_signature_set_rejects_bad_patterns() -> None:
    with pytest.raises(ValueError, match="does not compile"):
        SignatureSet([Signature("t.bad", "t", r"(unclosed", "bad", 50)])
    with pytest.raises(ValueError, match="at least one"):
        SignatureSet([])


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("abc123", True),
        ("user_42@example.com", True),
        ("1.2.3-rc", True),
        ("a b", False),
        ("O'Brien", False),
        ("ünïcode", False),
        ("", True),
    ],
)
def test_is_plain(text: str, plain: bool) -> None:
    assert is_plain(text) is plain


BATCH_TEXTS = [
    "id",
    "; id",
    "items",
    "",
    "cat /etc/passwd",
    "etc",
    "passwd",
    "../../x",
    "a/..",
    "/.env",
    "/bin/sh",
    "blue shoes",
    "1' OR '1'='1",
    "<script>alert(1)</script>",
    "x\x00y",
    "x\x00; cat /etc/passwd",
    "' or 1=1 --",
    "héllo ../",
    "sleep(5)",
    "union",
    "select 1",
    "ls -l /home/*",  # a pattern's trailing negated class must not eat the separator
    "/*",
    # long values with hits of one, two or many checks: rescans by check or of all
    "please find the attached report for the second quarter; " * 3 + "' or 1=1 --",
    "the quick brown fox jumps over the lazy dog, " * 2 + "; cat /etc/passwd",
    "the quick brown fox jumps over the lazy dog, " * 2 + "1 union select 1; cat /etc/passwd",
    "1' union select pass from users -- <script>alert(1)</script>; cat /etc/passwd ../../x",
]


class OneDatabase:
    """What a set finds in a text, by the simplest means: one database of every
    signature with start offsets (gates without: their hit is their first end)."""

    def __init__(self, signatures: Sequence[Signature]) -> None:
        self.signatures = signatures
        self.database = hyperscan.Database()
        self.database.compile(
            expressions=[s.pattern.encode() for s in signatures],
            ids=list(range(len(signatures))),
            flags=[
                s.flags & ~hyperscan.HS_FLAG_SOM_LEFTMOST if s.score == 0 else s.flags
                for s in signatures
            ],
        )

    def scan(self, data: bytes) -> list[tuple[str, int, int]]:
        spans: dict[int, tuple[int, int]] = {}

        def keep_leftmost_longest(index: int, start: int, end: int, *_: object) -> None:
            if self.signatures[index].score == 0:
                start = end
            previous = spans.get(index)
            if previous is None or (start, -end) < (previous[0], -previous[1]):
                spans[index] = (start, end)

        self.database.scan(data, match_event_handler=keep_leftmost_longest)
        return [
            (self.signatures[i].name, start, end)
            for i, (start, end) in sorted(spans.items(), key=lambda item: (item[1], item[0]))
        ]


@pytest.fixture(scope="module")
def all_signatures() -> SignatureSet:
    return SignatureSet(signatures_for(*registered_checks()))


@pytest.fixture(scope="module")
def one_database(all_signatures: SignatureSet) -> OneDatabase:
    return OneDatabase(all_signatures.signatures)


@pytest.mark.parametrize(
    "tail", ["", "' or 1=1 --", "; cat /etc/passwd", "1' union select 1 -- <script>"]
)
def test_a_long_value_alone_is_scanned_like_any_other(
    tail: str, all_signatures: SignatureSet, one_database: OneDatabase
) -> None:
    """A long value alone takes the pass for ends first (and rescans): same hits."""
    text = "the quick brown fox jumps over the lazy dog, " * 6 + tail
    assert len(text) >= 256
    found = all_signatures.scan_many([text]).get(0, [])
    assert [(h.signature.name, h.start, h.end) for h in found] == one_database.scan(text.encode())
    assert found == all_signatures.scan(text)


@pytest.mark.parametrize("seed", range(40))
def test_batched_scan_equals_one_database_scan_of_each_value(
    seed: int, all_signatures: SignatureSet, one_database: OneDatabase
) -> None:
    """One pass over joined values, then rescans of a few checks' signatures, finds
    exactly what one database of every signature with start offsets finds per value."""
    rng = random.Random(seed)
    texts = [rng.choice(BATCH_TEXTS) for _ in range(rng.randint(1, 12))]
    batched = all_signatures.scan_many(texts)
    for index, text in enumerate(texts):
        data = text.replace("\x00", " ").encode()
        got = batched.get(index, [])
        assert [(h.signature.name, h.start, h.end) for h in got] == one_database.scan(data)
        for hit in got:
            assert hit.evidence == data[hit.start : hit.end].decode(), (texts, index)
