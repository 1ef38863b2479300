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

from smi.re2syntax import re2_source

re2.set_fallback_notification(re2.FALLBACK_EXCEPTION)


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
        re2.compile(re2_source(pattern))
    except Exception as exc:
        return _visible(str(exc) or type(exc).__name__)
    return None


def _visible(text: str) -> str:
    """`text` with every unprintable character as its escape (`\\n`, `\\x85`, `\\u2028`). RE2's
    reasons quote the pattern raw (`missing ): /a(<newline>...`), and a diagnostic is one line
    wherever it goes: a newline in it would forge a line of its own in an admission answer."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def end_anchored(path_regex: str) -> bool:
    """Whether a start-anchored pathRegex says where the path ends (SMI2206): it ends with
    `$`, `/` or `.*` as regex syntax. An escaped `$` is a literal dollar (`/api\\$` still
    matches `/api$-admin`) and `\\.*` any number of literal dots (`/v1\\.*` matches
    `/v1-admin`); an escaped `/` is a `/` all the same."""
    if path_regex.endswith("/"):
        return True
    if path_regex.endswith("$"):
        at = len(path_regex) - 1
    elif path_regex.endswith(".*"):
        at = len(path_regex) - 2
    else:
        return False
    # (Most anchors follow no backslash at all: one look, then the run is counted only then.)
    return at == 0 or path_regex[at - 1] != "\\" or not _escaped(path_regex, at)


def _escaped(pattern: str, index: int) -> bool:
    """Whether the character at `index` follows an odd run of backslashes (`\\\\$` is a
    backslash, then the end)."""
    run = len(pattern[:index]) - len(pattern[:index].rstrip("\\"))
    return run % 2 == 1


# --- an example of a longer path (SMI2206) -------------------------------------------------------

# What one character of a class, `.` or `\d`-style escape stands for in an example: the first
# of these it matches. Characters a path is written with, so that the example reads as one.
_PICKS = ("a", "0", "x", "A", "-", "_", ".", "~")
_REPEAT = re.compile(r"\{(\d{1,2})(?:,\d{0,3})?\}")
_MAX_EXAMPLE = 64
_MAX_DEPTH = 16


class _NoExample(Exception):
    """The regex uses syntax the walk does not follow; it then gives no example."""


def longer_path_example(path_regex: str) -> str | None:
    """A path `path_regex` matches that goes on past what it spells out (`/users/[0-9]+` ->
    `/users/0-admin`), or None: a sibling of the intended path, the danger of a regex that is
    not end-anchored (`/api` also lets `/api-admin` in; ending it with `/` would not). The walk
    follows literals, classes, `.`, `\\d`-style escapes, groups (the first alternative), `*`
    `?` (none), `+` (once) and `{n,m}` (n times); the example is shown only if RE2 matches it
    as the proxy does (anchored at the start)."""
    try:
        walked = _Walk(path_regex).whole()
    except _NoExample:
        return None
    if not walked.startswith("/"):
        return None  # no request path matches it at all: every path starts with "/"
    example = walked + "-admin"
    if len(example) > _MAX_EXAMPLE or not example.isprintable() or " " in example:
        return None
    try:
        return example if re2.compile(re2_source(path_regex)).match(example) is not None else None
    except Exception:
        return None


class _Walk:
    """One left-to-right pass over a regex, building the shortest text each part accepts."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0
        self.depth = 0

    def whole(self) -> str:
        if self.pattern.startswith("^"):
            self.pos = 1
        text = self.alternatives()
        if self.pos != len(self.pattern):
            raise _NoExample  # an unbalanced `)`
        return text

    def alternatives(self) -> str:
        first = self.sequence()
        while self._peek() == "|":
            self.pos += 1
            self.sequence()  # read past it; the example follows the first alternative
        return first

    def sequence(self) -> str:
        out: list[str] = []
        length = 0
        while self.pos < len(self.pattern) and self._peek() not in "|)":
            out.append(self.repeated(self.atom()))
            length += len(out[-1])
            if length > _MAX_EXAMPLE:
                raise _NoExample
        return "".join(out)

    def atom(self) -> str:
        char = self.pattern[self.pos]
        self.pos += 1
        if char == "(":
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise _NoExample  # RE2 nests up to 1,000 deep; Python's stack would not
            self._group_prefix()
            text = self.alternatives()
            if self._peek() != ")":
                raise _NoExample
            self.pos += 1
            self.depth -= 1
            return text
        if char == "[":
            return _pick(self._class_text())
        if char == ".":
            return _PICKS[0]
        if char == "\\":
            return self._escape()
        if char in "*+?{$^":
            raise _NoExample  # an anchor inside, or a repeat of nothing
        return char

    def repeated(self, atom: str) -> str:
        op = self._peek()
        if op in ("*", "?"):
            self.pos += 1
            times = 0
        elif op == "+":
            self.pos += 1
            times = 1
        elif op == "{":
            found = _REPEAT.match(self.pattern, self.pos)
            if found is None:
                raise _NoExample
            self.pos = found.end()
            times = int(found.group(1))
        else:
            return atom
        if self._peek() == "?":  # lazy: the same texts
            self.pos += 1
        if len(atom) * times > _MAX_EXAMPLE:
            raise _NoExample  # too long to show, and nested counts would multiply
        return atom * times

    def _group_prefix(self) -> None:
        rest = self.pattern[self.pos :]
        if rest.startswith("?:"):
            self.pos += 2
        elif rest.startswith(("?P<", "?<")):
            end = self.pattern.find(">", self.pos)
            if end < 0:
                raise _NoExample
            self.pos = end + 1
        elif rest.startswith("?"):
            raise _NoExample  # flags: the walk would have to follow them

    def _class_text(self) -> str:
        """The whole `[...]` (its `[` already read), for RE2 to judge a pick against."""
        start = self.pos - 1
        end = self.pos + (1 if self._peek() == "^" else 0)
        end += 1 if self.pattern[end : end + 1] == "]" else 0  # a leading `]` is literal
        while end < len(self.pattern) and self.pattern[end] != "]":
            if self.pattern.startswith("[:", end):
                close = self.pattern.find(":]", end + 2)
                end = close + 2 if close >= 0 else len(self.pattern)
                continue
            end += 2 if self.pattern[end] == "\\" else 1
        if end >= len(self.pattern):
            raise _NoExample
        self.pos = end + 1
        return self.pattern[start : end + 1]

    def _escape(self) -> str:
        char = self._peek()
        if not char:
            raise _NoExample
        self.pos += 1
        if char in "dDwWsS":
            return _pick("\\" + char)
        if char.isalnum():
            raise _NoExample  # \b, \A, \pL, \x41: not followed
        return char

    def _peek(self) -> str:
        return self.pattern[self.pos : self.pos + 1]


def _pick(one_char_regex: str) -> str:
    """The first of `_PICKS` that `one_char_regex` (a class or an escape) matches."""
    try:
        compiled = re2.compile(one_char_regex)
    except Exception as exc:
        raise _NoExample from exc
    for candidate in _PICKS:
        if compiled.fullmatch(candidate) is not None:
            return candidate
    raise _NoExample
