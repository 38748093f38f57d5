"""Policies and engines shared by the middleware tests."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

from apishield.checks import Check, TransactionView, registered_checks
from apishield.engine import Engine
from apishield.findings import Finding, Location, Phase, Source
from apishield.policy import Policy, policy_from_dict
from apishield.reload import PolicyHolder

SQLI_QUERY = "q=1%27%20OR%201%3D1--"


class LeakCheck(Check):
    """Flags response bodies that contain SECRET."""

    id = "test.leak"
    category = "data-exposure"
    phases = frozenset({Phase.RESPONSE_BODY})

    def run(self, view: TransactionView, phase: Phase) -> Iterable[Finding]:
        if view.response is not None and b"SECRET" in view.response.body:
            yield self.finding(Location(Source.RESPONSE_BODY), "secret leaked", "SECRET", 90)


def leak_holder(**limits: int) -> PolicyHolder:
    """A policy blocking in both directions whose engine also runs :class:`LeakCheck`."""
    checks: dict[str, type[Check]] = {**registered_checks(), LeakCheck.id: LeakCheck}
    policy = make_policy(directions={"response": "block"}, limits=limits)
    return PolicyHolder(None, policy=policy, engine_factory=lambda p: Engine(p, checks=checks))


def make_policy(**overrides: Any) -> Policy:
    return policy_from_dict({"events": {"record": "all"}, **overrides})


@functools.cache
def _cached_holder(key: str) -> PolicyHolder:
    return PolicyHolder(None, policy=make_policy(**json.loads(key)))


def holder(**overrides: Any) -> PolicyHolder:
    """A holder per distinct policy, shared across tests: compiling an engine is slow."""
    return _cached_holder(json.dumps(overrides, sort_keys=True))
