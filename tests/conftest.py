"""Every test runs in its own empty working directory, so default event stores
(``sqlite:///apishield-events.db``, relative to the working directory) stay out of
the checkout and out of each other's way."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
