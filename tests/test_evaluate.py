"""evaluate_corpus on a tiny corpus written to a temporary file."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from apishield.evaluate import evaluate_corpus
from apishield.policy import policy_from_dict


def _record(rid: str, label: str, cls: str | None, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": rid,
        "label": label,
        "class": cls,
        "method": "GET",
        "path": "/",
        "query": "",
        "headers": {"User-Agent": "test"},
        "body": "",
    }
    return base | fields


def _write(tmp_path: Path, records: list[dict[str, object]]) -> Path:
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_evaluate_tiny_corpus(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            _record("a1", "attack", "sqli", query="id=1%27%20OR%20%271%27%3D%271"),
            _record("a2", "attack", "xss", query="q=%3Cscript%3Ealert(1)%3C/script%3E"),
            _record("a3", "attack", "sqli", query="id=42"),
            _record("b1", "benign", None, query="q=hello"),
            _record(
                "b2",
                "benign",
                None,
                method="POST",
                body=base64.b64encode(b"\xff\xfe binary").decode(),
                body_encoding="base64",
                headers={"Content-Type": "application/octet-stream"},
            ),
            _record("b3", "benign", None, query="file=../../etc/passwd"),
        ],
    )
    seen: list[int] = []
    report = evaluate_corpus(path, policy_from_dict({}), progress=seen.append)
    assert (report.attacks, report.benign, report.total) == (3, 3, 6)
    assert report.detected == 2 and report.detection_rate == 2 / 3
    assert report.false_positives == 1 and report.false_positive_rate == 1 / 3
    assert [m.id for m in report.misses] == ["a3"]
    (fp,) = report.false_positive_list
    assert fp.id == "b3" and fp.findings[0]["check"] == "traversal"
    assert report.per_class["sqli"].total == 2 and report.per_class["sqli"].detected == 1
    assert report.per_location["query"] == {"attack": 2, "benign": 1}
    assert len(report.latencies_us) == 6 and report.median_us > 0 and report.p99_us > 0
    assert report.throughput_rps > 0
    assert seen == [6]

    data = report.to_json()
    json.dumps(data)
    assert data["detection_rate"] == 2 / 3 and data["misses"] == [{"id": "a3", "class": "sqli"}]
    text = report.render_text()
    assert "detection" in text and "sqli" in text and "p99" in text


def test_evaluate_limit(tmp_path: Path) -> None:
    path = _write(tmp_path, [_record(f"b{i}", "benign", None) for i in range(5)])
    report = evaluate_corpus(path, policy_from_dict({}), limit=2)
    assert report.total == 2 and report.false_positives == 0 and report.detection_rate == 0.0
