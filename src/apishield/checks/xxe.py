"""XML external entities: DTDs with entity declarations or external subsets."""

from __future__ import annotations

from collections.abc import Sequence

from apishield.checks import ValueCheck, register
from apishield.findings import Finding
from apishield.inputs import InputValue
from apishield.signatures import Hit, best_of, register_check_signatures

register_check_signatures(
    "xxe",
    (
        ("entity", r"<!ENTITY\s+(?:%\s*)?[\w.:-]+\s", "entity declaration", 90),
        (
            "external_dtd",
            r"<!DOCTYPE\s+[\w.:-]+\s+(?:SYSTEM|PUBLIC)\s|<!DOCTYPE\s+[\w.:-]+\s*\[",
            "document type declaration",
            85,
        ),
        ("utf7_markup", r"\+ADw(?:AIQ|-)", "UTF-7 encoded markup", 80),
    ),
)


class XmlExternalEntity(ValueCheck):
    """XXE: entity declarations and DTDs in request values."""

    id = "xxe"
    category = "injection"
    title = "XML external entity"
    description = "XML entity and DTD declarations in any request value"

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        hit, _ = best_of(hits)
        if hit is None:
            return None
        return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)


register(XmlExternalEntity)
