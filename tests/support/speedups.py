"""The C module of the build under test, if it has one, and a mark for its tests."""

from __future__ import annotations

import pytest

from apishield.native import SPEEDUPS

speedups = SPEEDUPS  # tests call its functions as speedups.name(...)
needs_c = pytest.mark.skipif(speedups is None, reason="built without the C module")
