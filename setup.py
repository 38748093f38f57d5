"""Build apishield, compiling the per-request modules to C with mypyc.

The modules in :data:`COMPILED` (the engine, normalisation, parsers, every built-in
check, and the proxy's client and upstream connections) run for every request;
compiled, the same typed Python runs faster (``docs/RATIONALE.md`` has the
measurements). One small C module, ``apishield._speedups``, does in one pass what
is slow in Python on every request (the texts of a plain JSON body, a query's pairs,
the proxy's header lists); without it, the same Python forms give the same results.
Everything else stays plain Python, and so does everything when:

- ``APISHIELD_PURE=1`` is set (the development install does this: an editable install
  would otherwise leave compiled modules beside the sources, shadowing later edits);
- mypyc is not importable (build requirements not installed, e.g. with
  ``--no-build-isolation`` in an environment without mypy);
- a module fails to compile (no C compiler or Python headers): the build warns and
  installs the plain module instead.

``python -c "import apishield; print(apishield.COMPILED)"`` tells which one is installed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup

SOURCES = Path(__file__).resolve().parent / "src"
COMPILED = sorted(
    [
        "apishield/adapters/proxy.py",
        "apishield/adapters/upstream.py",
        "apishield/clientip.py",
        "apishield/context.py",
        "apishield/engine.py",
        "apishield/events.py",
        "apishield/findings.py",
        "apishield/http.py",
        "apishield/inputs.py",
        "apishield/normalize.py",
        "apishield/parsers.py",
        "apishield/routes.py",
        "apishield/signatures.py",
        *(p.relative_to(SOURCES).as_posix() for p in (SOURCES / "apishield/checks").glob("*.py")),
    ]
)


_METADATA_COMMANDS = {"egg_info", "dist_info"}


def compiled_extensions() -> list[Extension]:
    """The mypyc extensions of :data:`COMPILED`, or none for a plain-Python build."""
    if os.environ.get("APISHIELD_PURE", "") not in ("", "0"):
        return []
    if len(sys.argv) > 1 and sys.argv[1] in _METADATA_COMMANDS:
        return []  # reading the metadata builds nothing: skip the translation to C
    try:
        from mypyc.build import mypycify  # noqa: PLC0415 - only when compiling
    except ImportError:
        return []
    # pyproject.toml's mypy settings (its pydantic plugin is a build requirement); the
    # build environment need not hold the other runtime dependencies: their types are Any.
    options = ["--ignore-missing-imports"]
    extensions = mypycify(
        [*options, *(f"src/{path}" for path in COMPILED)], opt_level="3", group_name="apishield"
    )
    extensions.append(Extension("apishield._speedups", ["src/apishield/_speedups.c"]))
    for extension in extensions:
        extension.optional = True  # a failed compile falls back to the plain module
    return extensions


setup(ext_modules=compiled_extensions())
