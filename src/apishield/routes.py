"""Path-template matching: which endpoint a request belongs to."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final, Generic, TypeVar

T = TypeVar("T")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


def compile_template(template: str) -> re.Pattern[str]:
    """'/users/{id}' → a regex matching one segment per parameter; a '*' suffix is a prefix."""
    if template == "*":
        return re.compile(r".*", re.DOTALL)
    prefix = template.endswith("*")
    body = template.removesuffix("*")
    parts = _PARAM.split(body)
    pattern = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{_group(part)}>[^/]+)"
        for i, part in enumerate(parts)
    )
    return re.compile(f"^{pattern}{'.*' if prefix else ''}$", re.DOTALL)


def _group(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


class _Entry(Generic[T]):
    """One route template, its methods and its value."""

    def __init__(self, template: str, methods: frozenset[str], value: T) -> None:
        self.template: Final = template
        self.methods: Final = methods
        self.pattern: Final = compile_template(template)
        self.literal: Final = "{" not in template and not template.endswith("*")
        self.value: Final = value


class RouteTable(Generic[T]):
    """Matches (method, path) to the most specific template; literal templates win.

    Among templates that match, a template with no parameters beats one with
    parameters, and otherwise the first declared wins.
    """

    def __init__(self, entries: Iterable[tuple[str, Sequence[str], T]]) -> None:
        compiled = [
            _Entry(template, frozenset(methods), value) for template, methods, value in entries
        ]
        self._exact: dict[str, list[_Entry[T]]] = {}
        for entry in compiled:
            if entry.literal:
                self._exact.setdefault(entry.template, []).append(entry)
        self._patterns = [e for e in compiled if not e.literal]

    def __bool__(self) -> bool:
        return bool(self._exact or self._patterns)

    def match(self, method: str, path: str) -> tuple[str, T] | None:
        """The template and value for ``method`` and decoded ``path``, or ``None``."""
        for entry in self._exact.get(path, ()):
            if _allows(entry.methods, method):
                return entry.template, entry.value
        for entry in self._patterns:
            if _allows(entry.methods, method) and entry.pattern.match(path):
                return entry.template, entry.value
        return None


def _allows(methods: frozenset[str], method: str) -> bool:
    return "*" in methods or method in methods
