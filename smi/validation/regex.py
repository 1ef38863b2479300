"""RE2 syntax checks for pathRegex and header value regexes.

smictl matches requests with RE2 so that matching stays linear in the input (DESIGN.md §3);
admission must therefore refuse what RE2 cannot run. pyre2 silently falls back to Python's
`re` for such patterns (back-references, look-arounds) unless told otherwise, so this module
switches the fallback to an exception once, at import (NOTES.md).
"""

from __future__ import annotations

from functools import lru_cache

import re2

re2.set_fallback_notification(re2.FALLBACK_EXCEPTION)

_END_ANCHORS = ("$", "/", ".*")


@lru_cache(maxsize=16384)  # route sets repeat regexes (`/metrics$`, `.*`)
def re2_problem(pattern: str) -> str | None:
    """Why `pattern` is not an RE2 regex, or None when it compiles."""
    try:
        re2.compile(pattern)
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return None


def end_anchored(path_regex: str) -> bool:
    """Whether a start-anchored pathRegex says where the path ends (SMI2206)."""
    return path_regex.endswith(_END_ANCHORS)
