"""An on-disk cache of compiled hyperscan databases.

Compiling every signature takes seconds (about 3.5 s for the engine's largest
database on this project's machine); loading the compiled form takes milliseconds.
Databases are stored under a key made of the patterns, their flags, the hyperscan
binding's version and the CPU architecture, so a changed signature or an upgraded
library never loads a stale database.

The cache lives in ``$APISHIELD_CACHE_DIR`` (an empty value turns it off), else
``$XDG_CACHE_HOME/apishield/hyperscan``, else ``~/.cache/apishield/hyperscan``. A
loaded database decides what is detected, so the directory is used only when it
belongs to the current user and no one else may write to it, and each file carries
a SHA-256 digest of its contents, checked before the database is loaded. Any problem
(no such directory, a full disk, a corrupt file) falls back to compiling; the cache
never makes a start fail. At most :data:`MAX_FILES` databases are kept, the least
recently used are removed first.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import hyperscan

log = logging.getLogger("apishield.dbcache")

MAX_FILES = 64
_SUFFIX = ".hsdb"
_DIGEST_BYTES = 32

Patterns = tuple[tuple[str, int], ...]


def cache_dir() -> Path | None:
    """The cache directory from the environment, or ``None`` when caching is off."""
    configured = os.environ.get("APISHIELD_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "apishield" / "hyperscan"


def cached_compile(
    patterns: Patterns, compile_database: Callable[[Patterns], hyperscan.Database]
) -> hyperscan.Database:
    """The database of ``patterns``: loaded from the cache, else compiled and stored."""
    directory = _usable(cache_dir())
    if directory is None:
        return compile_database(patterns)
    path = directory / f"{_key(patterns)}{_SUFFIX}"
    database = _load(path)
    if database is None:
        database = compile_database(patterns)
        _store(path, database)
    return database


def _key(patterns: Patterns) -> str:
    digest = hashlib.sha256()
    version = getattr(hyperscan, "__version__", "")
    digest.update(f"{version}\0{platform.machine()}\0".encode())
    for pattern, flags in patterns:
        digest.update(f"{flags}\0{pattern}\0".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _usable(directory: Path | None) -> Path | None:
    """``directory``, created if missing, when only the current user can write to it."""
    if directory is None:
        return None
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError as exc:
        log.debug("hyperscan cache off: %s", exc)
        return None
    owner_only = info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if not owner_only:
        log.warning("hyperscan cache %s is writable by others: not used", directory)
        return None
    return directory


def _load(path: Path) -> hyperscan.Database | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    digest, payload = data[:_DIGEST_BYTES], data[_DIGEST_BYTES:]
    if hashlib.sha256(payload).digest() != digest:
        log.warning("hyperscan cache file %s is corrupt: compiling instead", path)
        return None
    try:
        database = hyperscan.loadb(payload, hyperscan.HS_MODE_BLOCK)
    except hyperscan.error as exc:
        log.warning("hyperscan cache file %s cannot be loaded (%s): compiling instead", path, exc)
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: pruned last
    return database


def _store(path: Path, database: hyperscan.Database) -> None:
    """Write ``database`` to ``path`` atomically (a reader sees all of it or nothing)."""
    payload = hyperscan.dumpb(database)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError as exc:
        log.debug("hyperscan cache not written: %s", exc)
        return
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(hashlib.sha256(payload).digest())
            out.write(payload)
        os.replace(temporary, path)
    except OSError as exc:
        log.debug("hyperscan cache not written: %s", exc)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return
    _prune(path.parent)


def _prune(directory: Path) -> None:
    """Remove the least recently used databases beyond :data:`MAX_FILES`."""
    used: list[tuple[float, Path]] = []
    for path in directory.glob(f"*{_SUFFIX}"):
        with contextlib.suppress(OSError):  # another process may remove it meanwhile
            used.append((path.stat().st_mtime, path))
    used.sort()
    for _, old in used[:-MAX_FILES]:
        with contextlib.suppress(OSError):
            old.unlink()
