"""The on-disk cache of compiled hyperscan databases."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import hyperscan
import pytest

from apishield import dbcache

PATTERNS = ((r"union\s+select", hyperscan.HS_FLAG_CASELESS), (r"<script", 0))


class Compiler:
    """Compiles for real and counts how often it was asked to."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, patterns: dbcache.Patterns) -> hyperscan.Database:
        self.calls += 1
        database = hyperscan.Database()
        database.compile(
            expressions=[p.encode() for p, _ in patterns],
            ids=list(range(len(patterns))),
            flags=[f for _, f in patterns],
        )
        return database


def matches(database: hyperscan.Database, data: bytes) -> list[int]:
    found: list[int] = []
    scratch = hyperscan.Scratch(database)
    database.scan(data, match_event_handler=lambda i, *_: found.append(i), scratch=scratch)
    return found


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("APISHIELD_CACHE_DIR", str(directory))
    return directory


def test_a_compiled_database_is_stored_and_loaded_next_time(cache: Path) -> None:
    compiler = Compiler()
    first = dbcache.cached_compile(PATTERNS, compiler)
    second = dbcache.cached_compile(PATTERNS, compiler)
    assert compiler.calls == 1
    assert matches(second, b"1 UNION  select <script>") == matches(
        first, b"1 UNION  select <script>"
    )
    assert matches(second, b"1 UNION  select <script>") == [0, 1]
    assert cache.stat().st_mode & 0o777 == 0o700
    assert len(list(cache.glob("*.hsdb"))) == 1


def test_other_patterns_have_another_key(cache: Path) -> None:
    compiler = Compiler()
    dbcache.cached_compile(PATTERNS, compiler)
    dbcache.cached_compile(PATTERNS[:1], compiler)
    dbcache.cached_compile(((PATTERNS[0][0], 0),), compiler)  # other flags
    assert compiler.calls == 3


def test_a_corrupt_file_is_compiled_again_and_replaced(cache: Path) -> None:
    compiler = Compiler()
    dbcache.cached_compile(PATTERNS, compiler)
    (stored,) = cache.glob("*.hsdb")
    data = bytearray(stored.read_bytes())
    data[-10] ^= 0xFF
    stored.write_bytes(bytes(data))
    database = dbcache.cached_compile(PATTERNS, compiler)
    assert compiler.calls == 2 and matches(database, b"<script") == [1]
    dbcache.cached_compile(PATTERNS, compiler)
    assert compiler.calls == 2  # the rewritten file loads


def test_a_valid_digest_over_garbage_is_refused(cache: Path) -> None:
    compiler = Compiler()
    dbcache.cached_compile(PATTERNS, compiler)
    (stored,) = cache.glob("*.hsdb")
    garbage = b"not a database" * 10
    stored.write_bytes(hashlib.sha256(garbage).digest() + garbage)
    assert matches(dbcache.cached_compile(PATTERNS, compiler), b"<script") == [1]
    assert compiler.calls == 2


def test_a_directory_others_may_write_to_is_not_used(cache: Path) -> None:
    cache.mkdir()
    cache.chmod(0o777)
    compiler = Compiler()
    dbcache.cached_compile(PATTERNS, compiler)
    dbcache.cached_compile(PATTERNS, compiler)
    assert compiler.calls == 2 and not list(cache.iterdir())


def test_an_empty_setting_turns_the_cache_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APISHIELD_CACHE_DIR", "")
    assert dbcache.cache_dir() is None
    compiler = Compiler()
    dbcache.cached_compile(PATTERNS, compiler)
    dbcache.cached_compile(PATTERNS, compiler)
    assert compiler.calls == 2


def test_the_default_place_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("APISHIELD_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert dbcache.cache_dir() == tmp_path / "apishield" / "hyperscan"


def test_an_unwritable_place_falls_back_to_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("APISHIELD_CACHE_DIR", str(blocker / "cache"))
    compiler = Compiler()
    assert matches(dbcache.cached_compile(PATTERNS, compiler), b"<script") == [1]


def test_only_the_most_recently_used_files_are_kept(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dbcache, "MAX_FILES", 2)
    compiler = Compiler()
    sets = [((f"word{i}", 0),) for i in range(3)]
    for index, patterns in enumerate(sets):
        dbcache.cached_compile(patterns, compiler)
        for stored in cache.glob("*.hsdb"):  # used at time `index`: the order is unambiguous
            if stored.stat().st_mtime > 1_000_000:
                os.utime(stored, (index, index))
    assert len(list(cache.glob("*.hsdb"))) == 2
    compiler.calls = 0
    dbcache.cached_compile(sets[2], compiler)
    dbcache.cached_compile(sets[1], compiler)
    assert compiler.calls == 0


def test_signature_patterns_are_the_same_in_every_process() -> None:
    """Patterns built from sets must not follow the per-process string hash order: the
    cache key (and hyperscan's speed, which depends on pattern order) would change."""
    script = (
        "from apishield.checks import registered_checks\n"
        "from apishield.signatures import signatures_for\n"
        "registered_checks()\n"
        "print(repr([(s.name, s.pattern, s.flags) for s in signatures_for()]))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1
