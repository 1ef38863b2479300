"""Every SMIxxxx code the product can emit is one `smictl explain-code` knows: a code in an
error line that explain-code calls unknown sends the user nowhere (SMI7000, the control
plane's internal-error answer, was missing)."""

from __future__ import annotations

import re
from pathlib import Path

from smi import codes

REPO = Path(__file__).resolve().parents[3]
CODE = re.compile(r"\bSMI\d{4}\b")


def test_every_code_in_the_sources_is_registered() -> None:
    known = set(codes.CODES)
    used: dict[str, str] = {}
    for package in ("smi", "webhook", "proxy", "conformance"):
        for path in sorted((REPO / package).rglob("*.py")):
            for found in CODE.findall(path.read_text(encoding="utf-8")):
                used.setdefault(found, str(path.relative_to(REPO)))
    missing = {code: where for code, where in used.items() if code not in known}
    assert missing == {}
