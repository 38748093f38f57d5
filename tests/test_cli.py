"""The command line: check and validate (other commands have their own tests)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import apishield
from apishield import engine
from apishield.cli import main

ATTACK = {"method": "GET", "path": "/search", "query": "q=1%27%20OR%20%271%27%3D%271"}


def test_version_names_the_build() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    compiled = not str(engine.__file__).endswith(".py")  # an extension module's path
    assert apishield.COMPILED is compiled
    build = "compiled" if compiled else "plain Python"
    assert result.output == f"apishield {apishield.__version__} ({build})\n"


def test_check_blocks_an_attack_and_exits_1() -> None:
    result = CliRunner().invoke(main, ["check", "--format", "json", "-"], input=json.dumps(ATTACK))
    assert result.exit_code == 1, result.output
    event = json.loads(result.output)
    assert event["verdict"] == "block"
    assert event["findings"][0]["check"] == "sqli"
    assert event["findings"][0]["location"] == {"source": "query", "name": "q"}


def test_check_allows_a_clean_raw_request_and_exits_0(tmp_path: Path) -> None:
    raw = tmp_path / "req.http"
    raw.write_bytes(b"GET /search?q=blue+shoes HTTP/1.1\r\nHost: shop\r\n\r\n")
    result = CliRunner().invoke(main, ["check", "--raw", str(raw)])
    assert result.exit_code == 0, result.output
    assert "ALLOW" in result.output


def test_check_in_text_format_shows_the_finding() -> None:
    result = CliRunner().invoke(main, ["check"], input=json.dumps(ATTACK))
    assert result.exit_code == 1
    assert "BLOCK" in result.output
    assert "query:q" in result.output


def test_check_with_a_monitor_policy(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("mode: monitor\n")
    result = CliRunner().invoke(
        main, ["check", "--policy", str(policy), "--format", "json"], input=json.dumps(ATTACK)
    )
    assert result.exit_code == 0
    assert json.loads(result.output)["verdict"] == "monitor"


def test_check_rejects_unreadable_input() -> None:
    result = CliRunner().invoke(main, ["check"], input="{not json")
    assert result.exit_code == 2


def test_validate_reports_errors_with_lines(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("mode: block\nlimits:\n  max_depth: 0\n")
    result = CliRunner().invoke(main, ["validate", str(policy)])
    assert result.exit_code == 2
    assert "line 3: limits.max_depth" in result.output


def test_validate_accepts_a_good_policy(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("mode: monitor\n")
    result = CliRunner().invoke(main, ["validate", str(policy)])
    assert result.exit_code == 0
    assert "valid" in result.output
