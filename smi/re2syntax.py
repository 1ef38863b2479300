"""RE2 syntax that the pyre2 binding does not take as RE2 does.

pyre2 0.3 reads `\\x{41}` (RE2's braced hex escape, any code point) outside a character class
as Python's incomplete `\\x` and refuses it ("Backreferences not supported", or "incomplete
escape"), though RE2 itself, and pyre2 inside a class (`[\\x{41}]`), take it. Admission then
refused a valid pathRegex and the proxy could not match it. `re2_source` writes each such
escape in a form both read alike: `\\xHH` up to U+00FF, else the character itself (which is
never a metacharacter). Validation and matching compile the same text.
"""

from __future__ import annotations

import re
from typing import Final

# An escaped backslash first, so that `\\\\x{41}` (a literal backslash, then `x{41}`) stays.
_BRACED_HEX: Final = re.compile(r"\\\\|\\x\{([0-9A-Fa-f]{1,8})\}")


def re2_source(pattern: str) -> str:
    """`pattern` with every `\\x{H...}` escape written as pyre2 reads it (see the module)."""
    if "\\x{" not in pattern:
        return pattern
    return _BRACED_HEX.sub(_escape, pattern)


def _escape(m: re.Match[str]) -> str:
    digits = m.group(1)
    if digits is None:
        return m.group(0)
    code = int(digits, 16)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return m.group(0)  # (no character: RE2's own refusal is the one to give)
    return chr(code)
