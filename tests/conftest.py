"""Every test runs in its own empty working directory, so default event stores
(``sqlite:///apishield-events.db``, relative to the working directory) stay out of
the checkout and out of each other's way; compiled signature databases are cached
for the session only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True, scope="session")
def _own_database_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Compiled hyperscan databases go to a cache of the test session's own (which the
    proxies the tests start inherit), not to the user's."""
    directory = tmp_path_factory.mktemp("hyperscan-cache")
    directory.chmod(0o700)
    os.environ["APISHIELD_CACHE_DIR"] = str(directory)
