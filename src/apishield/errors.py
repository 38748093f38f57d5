"""The exception tree. Verdicts are values; these are for real failures.

ApishieldError
├── PolicyError        a policy file or value is invalid (lists every problem)
├── StorageError       a state backend failed (wraps the driver's error)
└── UpstreamError      the proxy could not reach or read an upstream
    └── UpstreamTimeout
"""

from __future__ import annotations


class ApishieldError(Exception):
    """Base of every error apishield raises on purpose."""


class PolicyError(ApishieldError):
    """A policy is invalid; ``problems`` lists each one with its field and line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid policy {source}:\n{listing}")


class StorageError(ApishieldError):
    """A storage backend failed; the driver's exception is the cause."""


class UpstreamError(ApishieldError):
    """The upstream could not be reached or answered with broken HTTP."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not connect or answer in time."""
