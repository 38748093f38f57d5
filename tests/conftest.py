"""Every test runs in its own empty working directory, so default event stores
(``sqlite:///apishield-events.db``, relative to the working directory) stay out of
the checkout and out of each other's way; compiled signature databases are cached
for the session only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import apishield

_CHECKOUT = Path(__file__).resolve().parent.parent


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test an apishield that is not this checkout's.

    ``scripts/demo.sh`` installs apishield (compiled, not editable) into ``.venv``, and a
    bare ``pytest`` afterwards would quietly test that copy instead of ``src/``. The
    tests run against ``src/`` (the editable install) or a build under ``build/`` put
    first on ``PYTHONPATH``, as ``scripts/test.sh`` does.
    """
    location = Path(apishield.__file__).resolve().parent
    if not location.is_relative_to(_CHECKOUT):
        pytest.exit(
            f"apishield is imported from {location}, not from this checkout ({_CHECKOUT}): "
            "run `bash scripts/test.sh`, or `pip install -e .` first",
            returncode=4,
        )


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
