"""Policy loading: eager validation with errors that name the field and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from apishield.errors import PolicyError
from apishield.findings import Mode
from apishield.policy import load_policy, parse_policy, policy_from_dict, resolve_mode
from apishield.reload import PolicyHolder

GOOD = """\
mode: block
upstreams:
  default: {url: "http://127.0.0.1:8080/"}
routes:
  - path: /users/{id}
    methods: [get, PUT]
    mode: monitor
checks:
  sqli: {threshold: 70}
exclusions:
  - {check: sqli, path: /search, location: "query:q"}
trusted_proxies: [10.0.0.0/8, "2001:db8::/32"]
"""


def test_a_good_policy_loads_and_normalises_values() -> None:
    policy = parse_policy(GOOD)
    assert policy.upstreams["default"].url == "http://127.0.0.1:8080"
    assert policy.routes[0].methods == ("GET", "PUT")
    assert policy.checks["sqli"].threshold == 70
    assert policy.limits.max_body_bytes == 1_048_576
    assert policy.block_response.status == 403
    assert policy.trusted_proxies == ("10.0.0.0/8", "2001:db8::/32")


def test_a_bare_yaml_off_means_the_mode_off() -> None:
    policy = parse_policy(
        "mode: off\ndirections: {response: off}\nroutes: [{path: /a, mode: off}]\n"
    )
    assert policy.mode == "off"
    assert policy.directions.response == "off"
    assert policy.routes[0].mode == "off"


def test_the_empty_policy_is_the_default_policy() -> None:
    assert parse_policy("") == policy_from_dict({})


def test_policy_is_immutable() -> None:
    policy = parse_policy(GOOD)
    with pytest.raises(ValueError, match="frozen"):
        policy.mode = "off"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mode: blok\n", "line 1: mode: Input should be 'off', 'monitor' or 'block'"),
        ("limits:\n  max_body_bytes: -1\n", "line 2: limits.max_body_bytes"),
        ("checks:\n  sqly: {}\n", "line 2: checks.sqly: unknown check; known checks:"),
        ("exclusions:\n  - {check: nope}\n", "line 2: exclusions.0.check: unknown check 'nope'"),
        ("routes:\n  - path: users\n", "line 2: routes.0.path: path template 'users' must start"),
        ("routes:\n  - path: /a/{id\n", "malformed '{name}' parameter"),
        ("routes:\n  - {path: /a, methods: [FETCH]}\n", "unknown HTTP method(s): FETCH"),
        ("trusted_proxies: [nonsense]\n", "trusted proxy 'nonsense' is not an IP network"),
        ("upstreams:\n  default: {url: ftp://x}\n", "must be http:// or https://"),
        ("server:\n  listen: nowhere\n", "listen 'nowhere' must be host:port"),
        ("surprise: 1\n", "line 1: surprise: Extra inputs are not permitted"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("mode: [unclosed\n", "not valid YAML"),
        (
            "upstreams:\n  main: {url: 'http://a'}\nroutes:\n  - {path: /x, upstream: other}\n",
            "line 4: routes.0.upstream: unknown upstream 'other'",
        ),
    ],
)
def test_invalid_policies_are_explained(text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.yaml")
    assert expected in str(info.value)
    assert "p.yaml" in str(info.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy("mode: x\nlimits:\n  max_depth: 0\n")
    assert len(info.value.problems) == 2


def test_a_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the file"):
        load_policy(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("setting", "parent", "expected"),
    [
        ("inherit", Mode.MONITOR, Mode.MONITOR),
        ("block", Mode.MONITOR, Mode.BLOCK),
        ("monitor", Mode.BLOCK, Mode.MONITOR),
        ("block", Mode.OFF, Mode.OFF),
    ],
)
def test_mode_resolution(setting: str, parent: Mode, expected: Mode) -> None:
    assert resolve_mode(setting, parent) is expected  # type: ignore[arg-type]


def test_reload_swaps_atomically_and_keeps_the_last_good_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("mode: block\n")
    holder = PolicyHolder(path)
    first = holder.engine
    assert holder.reload_if_changed() is None
    assert holder.engine is first  # unchanged file: no rebuild

    path.write_text("mode: monitor\n")
    assert holder.reload() is None
    assert holder.engine.policy.mode == "monitor"

    good = holder.engine
    path.write_text("mode: broken-on-purpose\n")
    error = holder.reload_if_changed()
    assert isinstance(error, PolicyError)
    assert holder.engine is good


def test_holder_needs_a_source() -> None:
    with pytest.raises(ValueError, match="needs a policy"):
        PolicyHolder(None)
