"""A bound on what one regex may cost the proxy per byte of a hostile request.

RE2 matches in time linear in the input, but the factor is the size of the compiled program:
when its DFA runs out of states (`.*a.{200}$`, `.{0,1000}a` repeated) RE2 falls back to a
simulation that steps every live instruction for every input byte. Measured here (pyre2, one
core), that costs about 2 ns per instruction per byte: a 319-character pathRegex of thirty
`.{0,1000}a` stalled a proxy 11 s on one 4 KB path, while RE2 itself took the pattern. So a
regex is refused, as Envoy refuses one past `re2.max_program_size`, when its program would be
larger than `MAX_REGEX_COST` instructions: at most about 64 ms for a request head of the
proxy's 32 KB limit, and 0.2 ms for a 100-byte path.

pyre2 does not expose RE2's program size, so `regex_cost` estimates it from Python's parse of
the pattern (RE2's syntax is close enough for sizing): one instruction per literal byte and per
ASCII range of a class, 8 for `.` and other classes that span multi-byte UTF-8, and counted
repetition `x{m,n}` as n copies of x, which is how RE2 compiles it. What Python cannot parse
(`a**`, RE2-only escapes it does not take) is sized pessimistically: every repetition count
multiplies the whole pattern.
"""

from __future__ import annotations

import importlib
import math
import re
import warnings
from functools import lru_cache
from typing import Any, Final

from smi.re2syntax import re2_source

# CPython's own regex parser (no stubs; `sre_parse` is its deprecated alias).
sre: Any = importlib.import_module("re._constants")
sre_parse: Any = importlib.import_module("re._parser")

MAX_REGEX_COST: Final = 1000

_UTF8_ANY: Final = 8  # `.`, `[^/]`, `\pL`: RE2 compiles them to runs of UTF-8 byte ranges
# RE2 syntax Python's parser does not read, written as something of about the same size.
_RE2_ONLY: Final = re.compile(r"\\[pP](\{[^}]*\}|.)|\\[Cz]|\[:\^?[a-z]+:\]")
_COUNTS: Final = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def regex_cost(pattern: str) -> int:
    """About how many instructions RE2's program for `pattern` has (see the module)."""
    pattern = re2_source(pattern)  # `\x{41}` is no repetition
    sizable = _RE2_ONLY.sub(_stand_in, pattern)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _size(sre_parse.parse(sizable)) + 2
    except (re.error, RecursionError, OverflowError, ValueError):
        counts = [int(hi or lo) for lo, hi in _COUNTS.findall(pattern)]
        return _UTF8_ANY * len(pattern) * math.prod(max(c, 1) for c in counts)


@lru_cache(maxsize=16384)  # validation, the compiler and the proxy ask of the same patterns
def cost_problem(pattern: str) -> str | None:
    """Why `pattern` would cost the proxy too much per request byte, or None."""
    if len(pattern) * _UTF8_ANY <= MAX_REGEX_COST and "{" not in pattern:
        return None  # no counted repetition: at most _UTF8_ANY per character
    cost = regex_cost(pattern)
    if cost <= MAX_REGEX_COST:
        return None
    return f"about {cost} RE2 instructions, over the limit of {MAX_REGEX_COST}"


def _stand_in(m: re.Match[str]) -> str:
    text = m.group(0)
    if text.startswith("[:"):
        return "a-z"  # a POSIX class inside brackets: a range or so
    return "$" if text == "\\z" else "."


def _size(nodes: Any) -> int:
    total = 0
    for op, av in nodes:
        if op is sre.LITERAL:
            total += len(chr(av).encode("utf-8", "surrogatepass"))
        elif op in (sre.NOT_LITERAL, sre.ANY):
            total += _UTF8_ANY
        elif op is sre.IN:
            total += _class_size(av)
        elif op is sre.BRANCH:
            total += sum(_size(branch) + 1 for branch in av[1])
        elif op is sre.SUBPATTERN:
            total += _size(av[-1]) + 2
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            low, high, sub = av
            size = _size(sub)
            if high is sre.MAXREPEAT:
                total += max(low, 1) * size + 1
            else:
                total += max(high, 1) * size + (high - low)
        elif op is sre.ATOMIC_GROUP:
            total += _size(av)
        else:
            total += 1  # anchors, `\b`
    return total


def _class_size(items: Any) -> int:
    size = 0
    for op, av in items:
        if op is sre.NEGATE:
            return _UTF8_ANY
        if op is sre.CATEGORY:  # `\d` `\w` `\s`: ASCII in RE2
            size += 1
            continue
        if op is sre.RANGE:
            size += 1 if av[1] < 0x80 else _UTF8_ANY
        else:
            size += 1 if op is not sre.LITERAL or av < 0x80 else 2
    return max(size, 1)
