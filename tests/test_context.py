"""Parameter kinds: declared in the policy or learned from traffic, and judged by kind."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
import pytest

from apishield.context import guess_template, is_identifier, parameter_name
from apishield.engine import Engine
from apishield.errors import PolicyError
from apishield.findings import Action, Source
from apishield.http import Headers, Request
from apishield.policy import policy_from_dict
from apishield.reload import PolicyHolder
from tests.test_detection import CASES

COMMAND_LINE = "ls+-l+/etc/"  # a command line with no injection context: strict evidence
SQL_FRAGMENT = "select+char(65)"  # a SELECT of a function, no break-out: strict evidence


def engine(**policy: Any) -> Engine:
    return Engine(policy_from_dict(policy))


def get(query: str, path: str = "/api/items", client: str = "203.0.113.7") -> Request:
    return Request("GET", path, query, headers=Headers([("host", "api.test")]), client=client)


def action(eng: Engine, request: Request) -> Action | None:
    verdict = eng.inspect(request).verdict
    return verdict.action if verdict is not None else None


@pytest.mark.parametrize(
    "text",
    [
        "42",
        "-1.5e3",
        "0b9c5a3e-8f1d-4c2a-9b7e-1d2c3b4a5f6e",
        "order-2024_07",
        "2024-07-01T10:00:00Z",
        "alice@example.com",
        "a2V5OnZhbHVl==",
        "en-US",
        "urn:isbn:0451450523",
        "x" * 256,
    ],
)
def test_identifiers(text: str) -> None:
    assert is_identifier(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "two words",
        "1'",
        "a;b",
        "/etc/passwd",
        "https://example.com/x",
        "${x}",
        "(1)",
        "<b>",
        "a|b",
        "x" * 257,
    ],
)
def test_not_identifiers(text: str) -> None:
    assert not is_identifier(text)


def test_json_array_elements_share_one_parameter() -> None:
    assert parameter_name(Source.JSON, "/items/12/sku") == "/items/*/sku"
    assert parameter_name(Source.JSON, "/items/3") == "/items/*"
    assert parameter_name(Source.JSON, "/v2x/name") == "/v2x/name"
    assert parameter_name(Source.QUERY, "page2") == "page2"


def test_guessed_templates_hide_object_ids() -> None:
    assert guess_template("/users/42/orders") == "/users/{}/orders"
    assert guess_template("/u/0b9c5a3e-8f1d-4c2a-9b7e-1d2c3b4a5f6e") == "/u/{}"
    assert guess_template("/blobs/9f86d081884c7d65") == "/blobs/{}"
    assert guess_template("/v2/users/me") == "/v2/users/me"


# -- declared kinds ---------------------------------------------------------------------


def test_declared_id_judges_its_parameter_strictly_and_no_other() -> None:
    eng = engine(parameters=[{"kind": "id", "location": "query:user_id"}])
    assert action(eng, get(f"user_id={COMMAND_LINE}")) is Action.BLOCK
    assert action(eng, get(f"user_id={SQL_FRAGMENT}")) is Action.BLOCK
    assert action(eng, get(f"q={COMMAND_LINE}")) is None
    assert action(eng, get(f"q={SQL_FRAGMENT}")) is None
    assert action(eng, get("user_id=42")) is None


def test_a_finding_says_what_kind_its_value_was_judged_as() -> None:
    eng = engine(parameters=[{"kind": "id", "location": "query:user_id"}])
    tx = eng.inspect(get(f"user_id={COMMAND_LINE}"))
    assert tx.verdict is not None
    (finding,) = tx.verdict.findings
    assert finding.context == "id (declared)"
    assert finding.to_json()["context"] == "id (declared)"
    event = orjson.loads(orjson.dumps(tx.finish().to_json()))
    assert event["findings"][0]["context"] == "id (declared)"
    plain = eng.inspect(get("q=1%27+OR+%271%27%3D%271")).verdict
    assert plain is not None and "context" not in plain.findings[0].to_json()


def test_declared_text_is_judged_at_balanced_under_a_strict_policy() -> None:
    eng = engine(sensitivity="strict", parameters=[{"kind": "text", "location": "query:q"}])
    assert action(eng, get(f"q={COMMAND_LINE}")) is None
    assert action(eng, get(f"other={COMMAND_LINE}")) is Action.BLOCK
    assert action(eng, get("q=1%27+OR+%271%27%3D%271")) is Action.BLOCK  # real attacks still


def test_declarations_are_scoped_by_path_method_and_source() -> None:
    eng = engine(
        parameters=[
            {"kind": "id", "location": "query:id", "path": "/orders/{n}", "methods": ["GET"]},
            {"kind": "id", "location": "cookie"},
        ]
    )
    assert action(eng, get(f"id={COMMAND_LINE}", path="/orders/7")) is Action.BLOCK
    assert action(eng, get(f"id={COMMAND_LINE}", path="/users/7")) is None
    post = Request("POST", "/orders/7", f"id={COMMAND_LINE}", client="203.0.113.7")
    assert action(eng, post) is None
    cookie = Request(
        "GET", "/x", headers=Headers([("cookie", "session=ls -l /etc/")]), client="203.0.113.7"
    )
    assert action(eng, cookie) is Action.BLOCK


def test_a_declared_json_field_is_judged_even_in_a_body_no_signature_hit() -> None:
    body = orjson.dumps({"items": [{"sku": "ls -l /etc/"}], "note": "ls -l /etc/"})
    eng = engine(parameters=[{"kind": "id", "location": "json:/items/*/sku"}])
    post = Request(
        "POST",
        "/cart",
        headers=Headers([("content-type", "application/json")]),
        body=body,
        client="203.0.113.7",
    )
    tx = eng.inspect(post)
    assert tx.verdict is not None and tx.verdict.action is Action.BLOCK
    assert [f.location.name for f in tx.verdict.findings] == ["/items/0/sku"]
    assert action(engine(), post) is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "number", "location": "query:a"}, "parameters.0.kind"),
        ({"kind": "id", "location": "body"}, "must start with one of"),
        ({"kind": "id", "location": "query:a", "path": "users"}, "must start with '/'"),
        ({"kind": "id", "location": "query:a", "methods": ["FETCH"]}, "unknown HTTP method"),
    ],
)
def test_bad_declarations_are_refused_with_the_field(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        policy_from_dict({"parameters": [entry]})


# -- learned kinds ----------------------------------------------------------------------


def learning(**settings: Any) -> Engine:
    return engine(learning={"min_samples": 4, "min_clients": 2, "sample_every": 1, **settings})


def teach(
    eng: Engine,
    count: int,
    clients: tuple[str, ...] = ("198.51.100.1", "198.51.100.2"),
    extra: str = "",
) -> None:
    """Send ``count`` clean requests with identifiers in ``item``, clients taking turns."""
    for i in range(count):
        query = f"item=sku-{i}{extra}"
        assert action(eng, get(query, client=clients[i % len(clients)])) is None


def test_a_parameter_of_identifiers_is_learned_and_then_judged_strictly() -> None:
    eng = learning()
    teach(eng, 4)
    assert eng.learner is not None
    assert eng.learner.learned() == {("api.test", "GET", "/api/items"): {"query:item": "id"}}
    tx = eng.inspect(get(f"item={COMMAND_LINE}"))
    assert tx.verdict is not None and tx.verdict.action is Action.BLOCK
    assert tx.verdict.findings[0].context == "id (learned)"
    assert action(eng, get(f"item={COMMAND_LINE}", path="/api/other")) is None


def test_the_first_value_that_is_not_an_identifier_keeps_the_kind_unlearned() -> None:
    eng = learning()
    assert action(eng, get("item=two+words", client="198.51.100.1")) is None
    teach(eng, 4)
    assert action(eng, get(f"item={COMMAND_LINE}")) is None


def test_values_of_another_shape_unlearn_a_parameter() -> None:
    eng = learning()
    teach(eng, 4)
    assert action(eng, get("item=a+phrase", client="198.51.100.1")) is None
    assert eng.learner is not None and eng.learner.learned() == {}
    assert action(eng, get(f"item={COMMAND_LINE}")) is None


def test_one_client_teaches_nothing() -> None:
    eng = learning()
    teach(eng, 20, clients=("198.51.100.1",))
    assert eng.learner is not None and eng.learner.learned() == {}


def test_requests_with_findings_teach_nothing() -> None:
    eng = learning(min_samples=2)
    attack = "item=x&q=1%27+OR+%271%27%3D%271"
    for client in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        assert action(eng, get(attack, client=client)) is Action.BLOCK
    assert eng.learner is not None and eng.learner.learned() == {}


def test_only_one_request_in_sample_every_is_observed() -> None:
    eng = learning(sample_every=3)
    teach(eng, 9)  # 3 observed: below min_samples
    assert eng.learner is not None and eng.learner.learned() == {}
    teach(eng, 3)
    assert eng.learner.learned() != {}


def test_learning_is_bounded_in_parameters() -> None:
    eng = learning(max_parameters=1)
    teach(eng, 4, extra="&q=hello")  # "item" is tracked, "q" is not
    assert eng.learner is not None
    assert eng.learner.learned() == {("api.test", "GET", "/api/items"): {"query:item": "id"}}


@pytest.mark.parametrize(("padding", "learned"), [(10, True), (9000, False)])
def test_clean_json_bodies_teach_up_to_a_size(padding: int, learned: bool) -> None:
    eng = learning()
    for i in range(4):
        body = orjson.dumps({"sku": f"sku-{i}", "pad": "x" * padding})
        post = Request(
            "POST",
            "/cart",
            headers=Headers([("host", "api.test"), ("content-type", "application/json")]),
            body=body,
            client=("198.51.100.1", "198.51.100.2")[i % 2],
        )
        assert action(eng, post) is None
    assert eng.learner is not None
    kinds = eng.learner.learned().get(("api.test", "POST", "/cart"), {})
    assert ("json:/sku" in kinds) is learned


def test_learning_is_bounded_in_endpoints() -> None:
    eng = learning(max_parameters=1)
    teach(eng, 4)
    for i in range(4):
        client = ("198.51.100.1", "198.51.100.2")[i % 2]
        assert action(eng, get(f"item=sku-{i}", path="/api/other", client=client)) is None
    assert eng.learner is not None
    assert list(eng.learner.learned()) == [("api.test", "GET", "/api/items")]


def test_unrouted_paths_learn_under_a_guessed_template() -> None:
    eng = learning()
    for i in range(4):
        client = ("198.51.100.1", "198.51.100.2")[i % 2]
        assert action(eng, get(f"field=v{i}", path=f"/users/{i}/orders", client=client)) is None
    assert eng.learner is not None
    assert eng.learner.learned() == {("api.test", "GET", "/users/{}/orders"): {"query:field": "id"}}
    assert action(eng, get(f"field={COMMAND_LINE}", path="/users/99/orders")) is Action.BLOCK


def test_learning_off_learns_nothing() -> None:
    eng = engine(learning={"enabled": False})
    assert eng.learner is None and eng.shift is None
    teach(eng, 8)
    assert action(eng, get(f"item={COMMAND_LINE}")) is None


def test_a_reload_keeps_what_was_learned(tmp_path: Any) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("learning: {min_samples: 4, min_clients: 2, sample_every: 1}\n")
    holder = PolicyHolder(path)
    teach(holder.engine, 4)
    path.write_text("learning: {min_samples: 50, min_clients: 2, sample_every: 1}\nmode: block\n")
    assert holder.reload() is None
    learner = holder.engine.learner
    assert learner is not None and learner.settings.min_samples == 50
    assert learner.learned() != {}


# -- the team's strict-only detection cases, by parameter kind ---------------------------

STRICT_CASES = [
    case
    for case in CASES
    if case.get("sensitivity") == "strict"
    and case["expect"] is not None
    and case["source"] in ("query", "form", "json")
]


def carrying(source: str, value: str) -> Request:
    """A request with ``value`` in parameter ``p`` of ``source``."""
    headers = [("host", "api.test")]
    if source == "query":
        return Request("GET", "/api/items", f"p={quote(value)}", Headers(headers))
    if source == "form":
        headers.append(("content-type", "application/x-www-form-urlencoded"))
        return Request("POST", "/api/items", "", Headers(headers), f"p={quote(value)}".encode())
    headers.append(("content-type", "application/json"))
    return Request("POST", "/api/items", "", Headers(headers), orjson.dumps({"p": value}))


@pytest.fixture(scope="module")
def id_engines() -> dict[str, Engine]:
    return {
        source: engine(parameters=[{"kind": "id", "location": f"{source}:{name}"}])
        for source, name in (("query", "p"), ("form", "p"), ("json", "/p"))
    }


@pytest.fixture(scope="module")
def text_engines() -> dict[str, Engine]:
    return {
        source: engine(
            sensitivity="strict", parameters=[{"kind": "text", "location": f"{source}:{name}"}]
        )
        for source, name in (("query", "p"), ("form", "p"), ("json", "/p"))
    }


@pytest.fixture(scope="module")
def balanced_engine() -> Engine:
    return engine(learning={"enabled": False})


@pytest.mark.parametrize("case", STRICT_CASES, ids=[c["value"][:40] for c in STRICT_CASES])
def test_strict_only_evidence_counts_in_identifiers_and_not_in_free_text(
    case: dict[str, Any],
    id_engines: dict[str, Engine],
    text_engines: dict[str, Engine],
    balanced_engine: Engine,
) -> None:
    """Judged as an identifier, strict evidence blocks even under a balanced policy; judged
    as free text under a strict policy, a value gets exactly the balanced verdict."""
    request = carrying(case["source"], case["value"])
    verdict = id_engines[case["source"]].inspect(request).verdict
    assert verdict is not None and verdict.action is Action.BLOCK, case
    assert {f.check for f in verdict.findings} == {case["expect"]}
    assert {f.context for f in verdict.findings} == {"id (declared)"}
    as_text = text_engines[case["source"]].inspect(request).findings
    at_balanced = balanced_engine.inspect(request).findings
    assert [(f.check, f.message) for f in as_text] == [(f.check, f.message) for f in at_balanced]
