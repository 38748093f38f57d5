"""Bounded memos: dictionaries of results that start over when full.

Traffic repeats itself (the same header names, parameter names, content types,
paths), so remembering a result per text pays; hostile traffic invents texts, so
each memo has a bound, and past it forgets everything at once: O(1), unlike
evicting entry by entry, and it learns the texts of the traffic that follows.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(memo: dict[K, V], key: K, value: V, bound: int) -> V:
    """Store ``value`` under ``key`` (emptying ``memo`` first when it holds ``bound``
    entries) and return it."""
    if len(memo) >= bound:
        memo.clear()
    memo[key] = value
    return value
