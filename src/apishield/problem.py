"""RFC 9457 problem details: the body of every answer apishield gives itself."""

from __future__ import annotations

import orjson

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_json(
    *, status: int, title: str, detail: str, event_id: str = "", type_: str = "about:blank"
) -> bytes:
    """A problem+json body. It names the event id and nothing of the engine's internals."""
    document: dict[str, object] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if event_id:
        document["event_id"] = event_id
    return orjson.dumps(document)
