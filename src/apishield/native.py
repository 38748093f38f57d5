"""The build's optional C module, ``apishield._speedups``, or ``None`` without it.

Every function there has a Python form beside its caller, with the same results
(tested against each other); builds without a C compiler, and the plain development
install (``APISHIELD_PURE=1``), use those.
"""

from __future__ import annotations

from types import ModuleType
from typing import Final


def _load() -> ModuleType | None:
    try:
        from apishield import _speedups  # noqa: PLC0415 - optional C module
    except ImportError:
        return None
    return _speedups


SPEEDUPS: Final = _load()
