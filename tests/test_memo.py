"""Bounded memos."""

from __future__ import annotations

from apishield.memo import remember


def test_a_memo_starts_over_when_full() -> None:
    memo: dict[str, int] = {}
    assert remember(memo, "a", 1, 2) == 1
    remember(memo, "b", 2, 2)
    assert memo == {"a": 1, "b": 2}
    assert remember(memo, "c", 3, 2) == 3
    assert memo == {"c": 3}
