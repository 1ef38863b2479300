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
from dataclasses import dataclass
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


# --- where a pathRegex ends (SMI2206, SMI2210) --------------------------------------------------

# No escape, class, group or alternation, and `$` only last: the ending is the last characters
# (most pathRegexes: `/api/v1/items$`, `/static/.*`), and nothing follows an anchor.
_SIMPLE_ENDING = re.compile(r"[^\\\[\]()|$]*(?:\$|/|\.\*\??)")
# `.*` and its lazy `.*?` (or `.*` under `(?U)`): a path is matched at the start only, so both
# take every longer path, and say so; laziness changes what the match spans, not which paths
# match. (`.*?` was warned to be written `.*`, which matches the same paths.)
_ANY_REST = frozenset({"*", "*?"})
_REPEAT_OP = re.compile(r"(?:[*+?]|\{[0-9]+(?:,[0-9]*)?\})\??")
# After `(`: a name (`?P<x>`, `?<x>`), or flags then `:` (a group) or `)` (flags from here on).
_GROUP_PREFIX = re.compile(r"\?P?<[^>]*>|\?([a-zA-Z-]*)([:)])")
_PARSE_DEPTH = 64  # RE2 nests up to 1,000 deep; past this, the suffix is read as text


@dataclass(frozen=True, slots=True)
class _Part:
    """One atom of a regex as its ending needs it: `end` ($, \\z), `slash` (a literal /),
    `dot`, `group` (with its alternatives), `flags` (`(?i)`), `assert` (^, \\b: no text) or
    `text` (anything else that reads a character), and the repetition after it."""

    kind: str
    alternatives: tuple[tuple[_Part, ...], ...] = ()
    repeat: str = ""


class _TooDeep(Exception):
    """Groups nested past `_PARSE_DEPTH`."""


class _Parts:
    """A pathRegex RE2 has accepted, as alternatives of `_Part` sequences."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0
        self.multiline = False  # (?m): `$` also ends a line, so text may follow it

    def alternatives(self, depth: int = 0) -> tuple[tuple[_Part, ...], ...]:
        if depth > _PARSE_DEPTH:
            raise _TooDeep
        found = [self.sequence(depth)]
        while self.pattern.startswith("|", self.pos):
            self.pos += 1
            found.append(self.sequence(depth))
        return tuple(found)

    def sequence(self, depth: int) -> tuple[_Part, ...]:
        parts: list[_Part] = []
        while self.pos < len(self.pattern) and self.pattern[self.pos] not in "|)":
            op = _REPEAT_OP.match(self.pattern, self.pos) if parts else None
            if op is not None:
                parts[-1] = _Part(parts[-1].kind, parts[-1].alternatives, op.group())
                self.pos = op.end()
            else:
                parts.extend(self.atoms(depth))
        return tuple(parts)

    def atoms(self, depth: int) -> list[_Part]:
        char = self.pattern[self.pos]
        self.pos += 1
        if char == "(":
            return [self.group(depth)]
        if char == "[":
            self.pos = _class_end(self.pattern, self.pos)
            return [_Part("text")]
        if char == "\\":
            return self.escape()
        kinds = {"$": "end", "^": "assert", "/": "slash", ".": "dot"}
        return [_Part(kinds.get(char, "text"))]

    def group(self, depth: int) -> _Part:
        if self.pattern.startswith("?", self.pos):
            named = _GROUP_PREFIX.match(self.pattern, self.pos)
            if named is None:  # pragma: no cover - RE2 accepted the pattern
                raise _TooDeep
            self.pos = named.end()
            self.multiline = self.multiline or "m" in (named.group(1) or "")
            if named.group(2) == ")":
                return _Part("flags")
        body = self.alternatives(depth + 1)
        self.pos += 1  # the `)`
        return _Part("group", body)

    def escape(self) -> list[_Part]:
        char = self.pattern[self.pos : self.pos + 1]
        self.pos += 1
        if char in ("z", "Z"):  # (pyre2 reads \\Z as \\z: the end of the text)
            return [_Part("end")]
        if char in ("A", "b", "B"):
            return [_Part("assert")]
        if char == "Q":  # literal text up to \\E
            stop = self.pattern.find("\\E", self.pos)
            quoted = self.pattern[self.pos : stop if stop >= 0 else len(self.pattern)]
            self.pos = stop + 2 if stop >= 0 else len(self.pattern)
            return [_Part("slash" if c == "/" else "text") for c in quoted]
        if char in ("x", "p", "P") and self.pattern.startswith("{", self.pos):
            self.pos = self.pattern.index("}", self.pos) + 1
        elif char in ("p", "P"):
            self.pos += 1  # `\\pL`
        elif char == "x":
            self.pos += 2  # `\\x41`
        return [_Part("slash" if char == "/" else "text")]


def _class_end(pattern: str, pos: int) -> int:
    """The index past the `]` closing the class whose `[` is just before `pos`."""
    if pattern.startswith("^", pos):
        pos += 1
    if pattern.startswith("]", pos):  # a `]` first is a literal
        pos += 1
    while pos < len(pattern) and pattern[pos] != "]":
        if pattern.startswith("[:", pos) and ":]" in pattern[pos + 2 :]:
            pos = pattern.index(":]", pos + 2) + 2
        else:
            pos += 2 if pattern[pos] == "\\" else 1
    return pos + 1


@lru_cache(maxsize=16384)
def _parsed(path_regex: str) -> tuple[tuple[tuple[_Part, ...], ...], bool] | None:
    """(alternatives, multiline), or None when groups nest too deep to follow."""
    parts = _Parts(path_regex)
    try:
        found = parts.alternatives()
    except (_TooDeep, ValueError, RecursionError):
        return None
    return found, parts.multiline


def end_anchored(path_regex: str) -> bool:
    """Whether a start-anchored pathRegex says where the path ends (SMI2206): each of its
    alternatives ends, as regex syntax, with an end anchor (`$` outside a class, `\\z`), a `/`
    or `.*` (or `.*?`: the same paths), or with a group (not repeated) whose alternatives all
    do. An escaped `$` is a literal dollar (`/api\\$` still matches `/api$-admin`), `[$]` too,
    and `\\.*` any number of literal dots (`/v1\\.*` matches `/v1-admin`); an escaped `/` is a
    `/` all the same. For a pattern RE2 has accepted."""
    if _SIMPLE_ENDING.fullmatch(path_regex):
        return True
    parsed = _parsed(path_regex)
    if parsed is None:
        return _ends_as_text(path_regex)
    return _all_end(parsed[0])


def matches_no_path(path_regex: str) -> bool:
    """Whether every alternative of a pathRegex RE2 has accepted asks for text after the end
    of the path (`/a$x`, `/a\\z/b`), so that no path matches it (SMI2210). Not said under (?m),
    where `$` also ends a line."""
    if "$" not in path_regex and "\\z" not in path_regex and "\\Z" not in path_regex:
        return False
    parsed = _parsed(path_regex)
    return parsed is not None and not parsed[1] and _none_match(parsed[0])


def _all_end(alternatives: tuple[tuple[_Part, ...], ...]) -> bool:
    return all(_ends(sequence) for sequence in alternatives)


def _ends(sequence: tuple[_Part, ...]) -> bool:
    if _stops(sequence):
        return True
    parts = [p for p in sequence if p.kind != "flags"]
    if not parts:
        return False  # an empty alternative matches the start of every path
    last = parts[-1]
    if last.repeat:
        return last.kind == "dot" and last.repeat in _ANY_REST
    if last.kind == "group":
        return _all_end(last.alternatives)
    return last.kind == "slash"


def _stops(sequence: tuple[_Part, ...]) -> bool:
    """Whether every match of `sequence` passes an end anchor (not repeated, or in a group not
    repeated whose alternatives all pass one): the path ends there, whatever follows (`/a$`,
    `/a(?:$)`, `/a$(x)?`)."""
    return any(
        not p.repeat
        and (p.kind == "end" or (p.kind == "group" and all(map(_stops, p.alternatives))))
        for p in sequence
    )


def _none_match(alternatives: tuple[tuple[_Part, ...], ...]) -> bool:
    return all(_past_the_end(sequence) for sequence in alternatives)


def _past_the_end(sequence: tuple[_Part, ...]) -> bool:
    ended = False
    for part in sequence:
        if ended and _reads_text(part):
            return True
        if not part.repeat and part.kind == "group" and _none_match(part.alternatives):
            return True
        ended = ended or (part.kind == "end" and not part.repeat)
    return False


def _reads_text(part: _Part) -> bool:
    """Whether `part` reads at least one character wherever it matches."""
    if part.repeat[:1] in ("*", "?") or part.repeat.startswith("{0"):
        return False
    if part.kind == "group":
        return all(any(_reads_text(p) for p in s) for s in part.alternatives)
    return part.kind in ("text", "slash", "dot")


def _ends_as_text(path_regex: str) -> bool:
    """The ending read from the last characters, for a regex too deep to parse."""
    if path_regex.endswith("/"):
        return True
    if path_regex.endswith("$"):
        at = len(path_regex) - 1
    elif path_regex.endswith((".*", ".*?")):
        at = path_regex.rindex(".*")
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
