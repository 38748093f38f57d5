"""The engine without sockets: phases, modes, exclusions, failures, events."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import orjson
import pytest

from apishield.checks import Check, TransactionView, register, registered_checks
from apishield.engine import ERROR_CHECK_ID, Engine, head_first, judge_head_first
from apishield.errors import PolicyError
from apishield.findings import Action, Finding, Location, Phase, Source
from apishield.http import Headers, Request, Response
from apishield.policy import policy_from_dict

ATTACK_QUERY = "id=1%27%20OR%20%271%27%3D%271"


def engine(**policy: Any) -> Engine:
    return Engine(policy_from_dict(policy), checks=TEST_CHECKS)


def get(query: str = "", path: str = "/items", **kw: Any) -> Request:
    return Request("GET", path, query, client="203.0.113.7", **kw)


class FakeClock:
    """A monotonic clock that advances by a fixed step each read."""

    def __init__(self, step: float = 0.001) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_clean_request_is_allowed_and_logged() -> None:
    tx = engine().inspect(get("id=42&sort=name"))
    assert tx.verdict is None
    event = tx.finish(status=200)
    assert (event.verdict, event.status, event.findings) == ("allow", 200, [])
    assert event.client_ip == "203.0.113.7"


def test_attack_blocks_with_problem_json_carrying_the_event_id() -> None:
    tx = engine().inspect(get(ATTACK_QUERY))
    verdict = tx.verdict
    assert verdict is not None
    assert verdict.action is Action.BLOCK
    assert verdict.status == 403
    body = orjson.loads(verdict.body)
    assert body["event_id"] == tx.event_id == verdict.event_id
    assert body["status"] == 403
    assert "sqli" not in verdict.body.decode()  # no internals in the answer
    finding = verdict.findings[0]
    assert finding.check == "sqli"
    assert finding.location == Location(Source.QUERY, "id")
    event = tx.finish()
    assert event.verdict == "block"
    assert event.status == 403
    assert event.findings[0].check == "sqli"


def test_block_status_and_headers_come_from_the_policy() -> None:
    tx = engine(block_response={"status": 406, "headers": {"x-blocked": "1"}}).inspect(
        get(ATTACK_QUERY)
    )
    assert tx.verdict is not None
    assert tx.verdict.status == 406
    assert ("x-blocked", "1") in tx.verdict.headers


def test_monitor_mode_records_without_blocking() -> None:
    tx = engine(mode="monitor").inspect(get(ATTACK_QUERY))
    assert tx.verdict is None
    event = tx.finish(status=200)
    assert event.verdict == "monitor"
    assert event.findings[0].mode.value == "monitor"


def test_off_mode_runs_nothing() -> None:
    tx = engine(mode="off").inspect(get(ATTACK_QUERY))
    assert tx.verdict is None
    assert tx.finish().findings == []


def test_request_direction_mode_overrides_engine_mode() -> None:
    tx = engine(mode="block", directions={"request": "monitor"}).inspect(get(ATTACK_QUERY))
    assert tx.verdict is None
    assert tx.findings


def test_one_endpoint_can_block_while_the_engine_monitors() -> None:
    eng = engine(
        mode="monitor",
        routes=[{"path": "/admin/{section}", "methods": ["GET"], "mode": "block"}],
    )
    blocked = eng.inspect(get(ATTACK_QUERY, path="/admin/users"))
    assert blocked.verdict is not None
    assert blocked.route == "/admin/{section}"
    monitored = eng.inspect(get(ATTACK_QUERY, path="/items"))
    assert monitored.verdict is None


def test_a_check_mode_can_only_lower_the_mode_in_force() -> None:
    tx = engine(checks={"sqli": {"mode": "monitor"}}).inspect(get(ATTACK_QUERY))
    assert tx.verdict is None
    assert tx.findings[0].mode.value == "monitor"
    tx = engine(mode="monitor", checks={"sqli": {"mode": "block"}}).inspect(get(ATTACK_QUERY))
    assert tx.verdict is None


def test_disabled_check_does_not_run() -> None:
    tx = engine(checks={"sqli": {"enabled": False}}).inspect(get(ATTACK_QUERY))
    assert tx.findings == []


def test_threshold_above_the_score_records_but_does_not_block() -> None:
    tx = engine(checks={"sqli": {"threshold": 100}}).inspect(get(ATTACK_QUERY))
    assert tx.verdict is None
    assert tx.findings


@pytest.mark.parametrize(
    ("exclusion", "blocked"),
    [
        ({"check": "sqli", "path": "/items", "location": "query:id"}, False),
        ({"check": "sqli", "path": "/items", "location": "query"}, False),
        ({"check": "*", "path": "/items*"}, False),
        ({"check": "sqli", "path": "/items", "methods": ["POST"]}, True),
        ({"check": "sqli", "path": "/other"}, True),
        ({"check": "sqli", "location": "query:other"}, True),
        ({"check": "sqli", "location": "query:i*"}, False),
    ],
)
def test_scoped_exclusions(exclusion: dict[str, Any], blocked: bool) -> None:
    tx = engine(exclusions=[exclusion]).inspect(get(ATTACK_QUERY))
    assert (tx.verdict is not None) is blocked


def test_exclusion_with_an_unknown_location_source_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="unknown location source 'nowhere'"):
        engine(exclusions=[{"check": "sqli", "location": "nowhere:x"}])


def test_oversized_body_is_rejected_with_the_configured_status() -> None:
    eng = engine(limits={"max_body_bytes": 10})
    tx = eng.transaction(Request("POST", "/items", client="10.0.0.1"))
    assert tx.request_headers() is None
    verdict = tx.request_body(b"x" * 11)
    assert verdict is not None
    assert verdict.action is Action.REJECT
    assert verdict.status == 413
    assert orjson.loads(verdict.body)["event_id"] == tx.event_id
    assert tx.finish().verdict == "reject"


def test_phases_after_an_interruption_return_the_same_verdict() -> None:
    tx = engine().transaction(get(ATTACK_QUERY))
    first = tx.request_headers()
    assert first is not None
    assert tx.request_body(b"anything") is first
    assert tx.response_headers(Response(200)) is first


def test_request_body_runs_the_head_phase_if_the_adapter_skipped_it() -> None:
    tx = engine().transaction(get(ATTACK_QUERY))
    assert tx.request_body(b"") is not None


def test_finish_is_idempotent_and_uses_the_response_status() -> None:
    tx = engine().inspect(get("a=1"))
    tx.response_headers(Response(201, Headers([("content-type", "text/plain")])))
    first = tx.finish(upstream_ms=3.5)
    assert first.status == 201
    assert first.upstream_ms == 3.5
    assert tx.finish() is first


def test_engine_latency_uses_the_injected_clock() -> None:
    eng = Engine(policy_from_dict({}), clock=FakeClock(0.001), checks=TEST_CHECKS)
    tx = eng.inspect(get("a=1"))
    # inspect runs both request phases as one pass, which reads the clock twice
    assert tx.finish().engine_ms == pytest.approx(1.0)
    tx = eng.transaction(get("a=1"))
    tx.request_headers()
    tx.request_body(b"")
    # phase by phase: 1 ms each
    assert tx.finish().engine_ms == pytest.approx(2.0)


XSS_QUERY = "q=%3Cscript%3Ealert(1)%3C/script%3E"


def test_one_pass_inspects_head_and_body_together() -> None:
    request = Request(
        "POST",
        "/items",
        ATTACK_QUERY,
        headers=Headers([("content-type", "application/json")]),
        body=b'{"note": "<script>alert(1)</script>"}',
    )
    tx = engine(mode="monitor").inspect(request)
    assert {(f.check, f.location.source) for f in tx.findings} == {
        ("sqli", Source.QUERY),
        ("xss", Source.JSON),
    }


def test_blocking_stops_at_the_first_blocking_finding_monitor_sees_all() -> None:
    query = f"{ATTACK_QUERY}&{XSS_QUERY}"
    blocked = engine().inspect(get(query))
    assert blocked.verdict is not None and blocked.verdict.action is Action.BLOCK
    assert len(blocked.findings) == 1
    monitored = engine(mode="monitor").inspect(get(query))
    assert {f.check for f in monitored.findings} == {"sqli", "xss"}


def test_event_time_uses_the_injected_wall_clock() -> None:
    eng = Engine(policy_from_dict({}), wall_clock=lambda: 1_700_000_000.0)
    tx = eng.inspect(get())
    event = tx.finish()
    assert event.time == 1_700_000_000.0
    later = Engine(policy_from_dict({}), wall_clock=lambda: 1_700_000_001.0).inspect(get())
    assert event.event_id < later.event_id  # ids sort by time


def test_trusted_proxy_forwarded_for_is_believed_only_from_trusted_peers() -> None:
    headers = Headers([("x-forwarded-for", "198.51.100.9, 10.0.0.5")])
    trusting = engine(trusted_proxies=["10.0.0.0/8"])
    tx = trusting.inspect(Request("GET", "/", headers=headers, client="10.0.0.2"))
    assert tx.client_ip == "198.51.100.9"
    untrusted_peer = trusting.inspect(Request("GET", "/", headers=headers, client="192.0.2.1"))
    assert untrusted_peer.client_ip == "192.0.2.1"
    default = engine().inspect(Request("GET", "/", headers=headers, client="10.0.0.2"))
    assert default.client_ip == "10.0.0.2"


# -- a failing check: fail-open and fail-closed ---------------------------------------


class ExplodingCheck(Check):
    """A test check that raises when the query contains 'explode'."""

    id: ClassVar[str] = "test.exploding"
    category: ClassVar[str] = "test"

    def run(self, view: TransactionView, phase: Phase) -> Iterable[Finding]:
        if "explode" in view.request.query:
            raise RuntimeError("boom")
        return ()


class ResponseCheck(Check):
    """A test check that flags response bodies containing 'secret'."""

    id: ClassVar[str] = "test.response"
    category: ClassVar[str] = "test"
    phases: ClassVar[frozenset[Phase]] = frozenset({Phase.RESPONSE_BODY})

    def run(self, view: TransactionView, phase: Phase) -> Iterator[Finding]:
        response = view.response
        if response is not None and b"secret" in response.body:
            yield self.finding(Location(Source.RESPONSE_BODY), "secret", "secret", 90)


TEST_CHECKS = {
    **registered_checks(),
    ExplodingCheck.id: ExplodingCheck,
    ResponseCheck.id: ResponseCheck,
}


def test_failing_check_fails_open_by_default_and_is_recorded() -> None:
    tx = engine().inspect(get("explode=1"))
    assert tx.verdict is None
    finding = tx.findings[0]
    assert finding.check == ERROR_CHECK_ID
    assert "test.exploding failed: RuntimeError: boom" in finding.message


def test_failing_check_fails_closed_when_configured() -> None:
    tx = engine(on_error="closed").inspect(get("explode=1"))
    assert tx.verdict is not None
    assert tx.verdict.action is Action.BLOCK


def test_response_phase_checks_follow_the_response_direction_mode() -> None:
    monitored = engine()  # responses default to monitor
    assert monitored.wants_response_body
    tx = monitored.inspect(get())
    tx.response_headers(Response(200))
    assert tx.response_body(b"the secret") is None
    assert tx.finish().verdict == "monitor"

    blocking = engine(directions={"response": "block"})
    tx = blocking.inspect(get())
    tx.response_headers(Response(200))
    verdict = tx.response_body(b"the secret")
    assert verdict is not None
    assert verdict.action is Action.BLOCK


def test_registering_a_second_class_under_an_existing_id_is_refused() -> None:
    class Impostor(ExplodingCheck):
        id: ClassVar[str] = "sqli"

    with pytest.raises(ValueError, match="already registered"):
        register(Impostor)


def test_adapters_record_their_own_refusals_through_the_transaction() -> None:
    tx = engine(mode="off").transaction(Request("POST", "/upload", client="192.0.2.1"))
    where = Location(Source.HEADER, "transfer-encoding")
    verdict = tx.reject("protocol.malformed", 400, "conflicting framing", where)
    assert verdict.action is Action.REJECT
    assert orjson.loads(verdict.body)["detail"] == "conflicting framing"
    assert tx.reject("limits.body_size", 413, "too big", Location(Source.BODY)) is verdict
    event = tx.finish()
    assert (event.verdict, event.status, event.reason) == ("reject", 400, "conflicting framing")
    assert [f.check for f in event.findings] == ["protocol.malformed"]


@pytest.mark.parametrize(
    ("headers", "head_first"),
    [
        ([], False),
        ([("content-length", "500")], False),
        ([("content-length", "65536")], False),
        ([("content-length", "65537")], True),
        ([("content-length", "12x")], True),
        ([("transfer-encoding", "chunked")], True),
        ([("content-length", "10"), ("expect", "100-Continue")], True),
    ],
)
def test_adapters_judge_the_head_first_only_for_large_unknown_or_awaited_bodies(
    headers: list[tuple[str, str]], head_first: bool
) -> None:
    assert judge_head_first(Request("POST", "/", headers=Headers(headers))) is head_first


def test_the_scan_memo_changes_no_verdict_and_forgets_the_oldest_texts() -> None:
    queries = [ATTACK_QUERY, XSS_QUERY, "q=blue%20shoes", "a=1&b=2", "c=3", ATTACK_QUERY, "q=x"]
    remembered = engine(mode="monitor")
    remembered.value_scanner.memo_entries = 4
    fresh = Engine(policy_from_dict({"mode": "monitor"}), checks=TEST_CHECKS, scan_memo=False)
    for query in queries * 3:  # repeats are served from the memo, some after eviction
        seen = [(f.check, f.location, f.evidence) for f in remembered.inspect(get(query)).findings]
        assert seen == [
            (f.check, f.location, f.evidence) for f in fresh.inspect(get(query)).findings
        ]
    remembered.inspect(get("k1=v1&k2=v2&k3=v3&k4=v4"))  # more new texts than the memo holds
    memo = remembered.value_scanner._memo or {}
    assert len(memo) == 4
    # the clean texts are exactly the remembered texts that no check must inspect
    assert remembered.value_scanner._clean == {text for text, found in memo.items() if not found}


class BothPhasesCheck(Check):
    """A test check of both request phases that flags every request once per call."""

    id: ClassVar[str] = "test.both"
    category: ClassVar[str] = "test"

    def run(self, view: TransactionView, phase: Phase) -> Iterator[Finding]:
        yield self.finding(Location(Source.PATH), f"seen in {phase.value}", "x", 10)


def test_a_check_of_both_request_phases_runs_once_in_one_pass_and_per_phase_otherwise() -> None:
    eng = Engine(policy_from_dict({}), checks={BothPhasesCheck.id: BothPhasesCheck})
    assert len(eng.inspect(get()).findings) == 1
    tx = eng.transaction(get())
    tx.request_headers()
    tx.request_body(b"")
    assert len(tx.findings) == 2


@pytest.mark.parametrize(
    ("length", "expects_continue", "expected"),
    [
        (500, False, False),
        (65536, False, False),
        (65537, False, True),
        (None, False, True),
        (10, True, True),
    ],
)
def test_head_first_from_what_an_adapter_read_itself(
    length: int | None, expects_continue: bool, expected: bool
) -> None:
    assert head_first(length, expects_continue) is expected


@pytest.mark.parametrize(("record", "allowed_wanted"), [("findings", False), ("all", True)])
def test_events_are_wanted_as_the_policy_records_them(record: str, allowed_wanted: bool) -> None:
    engine = Engine(policy_from_dict({"events": {"record": record}}))
    allowed = engine.inspect(Request("GET", "/items", query="id=1")).finish()
    blocked = engine.inspect(Request("GET", "/items", query="id=1' OR '1'='1")).finish()
    assert (allowed.verdict, blocked.verdict) == ("allow", "block")
    assert engine.wants_event(allowed) is allowed_wanted
    assert engine.wants_event(blocked)
