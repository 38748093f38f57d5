"""Classic ASP / VBScript code injection: what a VBScript ``Execute`` or ``Eval`` would run.

An injection into ASP code (or a one-line ASP webshell planted by an upload) runs
VBScript: ``Execute(Request("c"))``, ``Execute("On Error Resume Next: ...")``,
``CreateObject("WScript.Shell")``. Payloads hide the telling words from filters by
building them from string pieces: ``Eval("Ex"&"e"&"cute(...)")``.

Gates select values with a VBScript string concatenation (``"&"``) or one of the
telling calls; the check then joins concatenated literals (``"Ex"&"e"`` reads
``Ex``+``e``) and looks for:

* ``Execute``/``ExecuteGlobal``/``Eval`` of a request value (a webshell);
* ``Execute``/``ExecuteGlobal`` of a string that holds VBScript statements
  (``On Error Resume Next``, ``Server.``, ``Response.Write``, ``CreateObject``,
  ``Chr(``), not of words (``Execute "npm install"`` is an instruction in prose);
* ``CreateObject`` of the COM objects that run commands or touch files;
* a call keyword that only the joining spells (``"Ex"&"ecute(``): honest text does
  not cut ``Execute`` into string pieces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from apishield.checks import ValueCheck, register
from apishield.findings import Finding
from apishield.inputs import InputValue
from apishield.signatures import BEGIN, Hit, register_check_signatures

_CALLS: Final = r"execute(?:global)?|eval|createobject|getobject"
_NOT_MEMBER: Final = rf"(?:{BEGIN}|[^\w.\x00])"  # a call, not a method of another object

register_check_signatures(
    "asp",
    (
        ("concatenation", r"\"\s*&\s*\"", "VBScript string concatenation", 0),
        (
            "call",
            rf"{_NOT_MEMBER}(?:execute(?:global)?|eval)(?:\s*[(\"]|\s+request\b)"
            r"|\bcreateobject\s*\(",
            "VBScript call",
            0,
        ),
    ),
)

_CONCATENATION: Final = re.compile(r"\"\s*&\s*\"")
_SPELLED: Final = re.compile(rf"\b(?:{_CALLS})\s*\(|\bwscript\s*\.\s*shell\b", re.IGNORECASE)
_REQUEST_EXECUTION: Final = re.compile(
    r"(?<![\w.])(?:execute(?:global)?|eval)\s*\(?\s*request\s*(?:\.\s*\w+\s*)?\(",
    re.IGNORECASE,
)
# Execute of a string that holds, within 200 characters, what only VBScript code writes
# (the string may open with escaped quotes: ``Execute(""Server...`` inside another one).
_CODE_EXECUTION: Final = re.compile(
    r"(?<![\w.])execute(?:global)?\s*\(?\s*\"+(?:[^\"\n]|\"\"){0,200}?(?:on\s+error\s+resume\s+next"
    r"|\bserver\s*\.\s*(?:scripttimeout|createobject|mappath|execute)\b|\bresponse\s*\.\s*write\b"
    r"|\bcreateobject\s*\(|\bchr[bw]?\s*\(|\brequest\s*[.(])",
    re.IGNORECASE,
)
_COM_OBJECT: Final = re.compile(
    r"\b(?:create|get)object\s*\(\s*\"+\s*(?:wscript\.shell|shell\.application"
    r"|scripting\.filesystemobject|wscript\.network)\b",
    re.IGNORECASE,
)
_MAX_TEXT: Final = 65536  # characters read: ASP payloads are far shorter


class AspInjection(ValueCheck):
    """Classic ASP / VBScript code injection."""

    id = "asp"
    category = "injection"
    title = "ASP code injection"
    description = "Classic ASP / VBScript code in any request value"

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        text = value.text[:_MAX_TEXT]
        joined = _CONCATENATION.sub("", text) if "&" in text else text
        for pattern, kind, score in (
            (_REQUEST_EXECUTION, "execution of a request value", 95),
            (_CODE_EXECUTION, "execution of VBScript code", 90),
            (_COM_OBJECT, "COM object that runs commands or touches files", 85),
        ):
            found = pattern.search(joined)
            if found is not None:
                return self.found(value, kind, found.group(0), score)
        if joined != text:
            spelled = _SPELLED.findall(joined)
            written = _SPELLED.findall(text)
            if len(spelled) > len(written):
                evidence = next((s for s in spelled if s not in written), spelled[-1])
                return self.found(value, "call spelled from string pieces", evidence, 90)
        return None


register(AspInjection)
