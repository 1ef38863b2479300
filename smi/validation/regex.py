"""RE2 syntax checks for pathRegex and header value regexes.

smictl matches requests with RE2 so that matching stays linear in the input (DESIGN.md §3);
admission must therefore refuse what RE2 cannot run. pyre2 silently falls back to Python's
`re` for such patterns (back-references, look-arounds) unless told otherwise, so this module
switches the fallback to an exception once, at import (NOTES.md).

Compiling costs about 12 µs per pattern, and route sets are mostly distinct patterns (one
`/api/v3/items$` per app), so compiling was a tenth of validating a set. Most patterns are
literals, classes, groups and `*`/`+`/`?`: `_PLAIN_RE2` recognises that part of RE2's
syntax (every pattern it matches compiles, a property test holds it to that) in about 2 µs;
anything else is compiled.
"""

from __future__ import annotations

import re
from functools import lru_cache

import re2

re2.set_fallback_notification(re2.FALLBACK_EXCEPTION)

_END_ANCHORS = ("$", "/", ".*")


def _plain_re2_syntax() -> re.Pattern[str]:
    """Literals, `.`, escaped punctuation, `\\d\\w\\s` (and negations), classes of those with
    the ranges 0-9 a-z A-Z, groups (plain or `(?:`) nested up to three deep, `*` `+` `?`
    (greedy or lazy) after an atom, `^` `$` `|` anywhere. No counted repetition, no flags,
    no look-arounds, no back-references: those go to the compiler."""
    literal = r"[^\\^$.|?*+()\[\]{}\x00-\x1f\x7f\ud800-\udfff]"
    escape = r"\\[.^$|?*+()\[\]{}\\/-]|\\[dDwWsS]"
    item = rf"(?:0-9|a-z|A-Z|{escape}|[^\\\[\]^\x00-\x1f\x7f\ud800-\udfff-])"
    char_class = rf"\[\^?(?:-?{item}+-?|-)\]"
    atom = rf"(?:{literal}|{escape}|\.|{char_class})"
    repeat = r"(?:[*+?]\??)?"
    sequence = rf"(?:{atom}{repeat}|[$^|])*"
    for _ in range(3):
        group = rf"\((?:\?:)?{sequence}\)"
        sequence = rf"(?:(?:{atom}|{group}){repeat}|[$^|])*"
    return re.compile(sequence)


_PLAIN_RE2 = _plain_re2_syntax()
_PLAIN_MAX_LENGTH = 1000  # far below RE2's program-size limit for this syntax


def plainly_re2(pattern: str) -> bool:
    """Whether `pattern` is in the plain part of RE2's syntax (and so compiles)."""
    return len(pattern) <= _PLAIN_MAX_LENGTH and _PLAIN_RE2.fullmatch(pattern) is not None


@lru_cache(maxsize=16384)  # route sets repeat regexes (`/metrics$`, `.*`)
def re2_problem(pattern: str) -> str | None:
    """Why `pattern` is not an RE2 regex, or None when it compiles."""
    if plainly_re2(pattern):
        return None
    try:
        re2.compile(pattern)
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return None


def end_anchored(path_regex: str) -> bool:
    """Whether a start-anchored pathRegex says where the path ends (SMI2206)."""
    return path_regex.endswith(_END_ANCHORS)
