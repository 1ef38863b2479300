"""Rule-body coverage for `smictl policy test --coverage`, measured by disabling bodies.

regopy (rego-cpp 1.5.2) has no coverage API (OPA's `opa test --coverage` counts evaluated
lines; rego-cpp's trace shows compiled plan statements that do not map back to source lines),
and marking bodies with `print()` is not reliable either: rego-cpp hoists a `print` that uses
none of the body's variables out of `some ... in` loops, so it fires even when no iteration
succeeds. So coverage is measured by mutation: every rule body of the policy modules is
disabled in turn (`false` becomes its first expression) and the tests run again.

    a rule body is *covered* when at least one test fails with that body disabled

This is stricter than "was evaluated": a body that runs but whose result no test checks counts
as not covered. Rules without a body (constants, `default` rules) have nothing to disable and
are not counted. One-line bodies (`allowed(x) if x in xs`) are counted and disabled as
`if { false; x in xs }`. Line numbers do not change, so a mutant's errors point at real lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT = _IDENT_START | frozenset("0123456789")
_OPEN, _CLOSE = "([{", ")]}"
_NOT_RULES = frozenset({"package", "import", "default", "else"})


@dataclass(frozen=True, slots=True)
class Body:
    """One rule body: where it is and how to disable it."""

    module: str
    rule: str
    line: int
    insert_at: int  # braced: just after `{`; inline: the start of the expression
    inline_end: int | None = None  # inline only: the end of the expression

    def disable(self, source: str) -> str:
        """The module source with this body made to never succeed (same line numbers)."""
        if self.inline_end is None:
            return f"{source[: self.insert_at]} false;{source[self.insert_at :]}"
        head, expr, tail = (
            source[: self.insert_at],
            source[self.insert_at : self.inline_end],
            source[self.inline_end :],
        )
        return f"{head}{{ false; {expr} }}{tail}"

    @property
    def where(self) -> str:
        return f"{self.module}:{self.line}"


class _Scanner:
    """Walks Rego source skipping strings, raw strings and comments."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.i = 0
        self.depth = 0
        self.line = 1
        self.at_line_start = True

    def skip_string(self, quote: str) -> None:
        """self.i is at the opening quote; leave it after the closing one."""
        self.i += 1
        while self.i < len(self.src):
            c = self.src[self.i]
            if c == "\\" and quote == '"':
                self.i += 2
                continue
            if c == "\n":
                self.line += 1
            self.i += 1
            if c == quote:
                return

    def skip_comment(self) -> None:
        end = self.src.find("\n", self.i)
        self.i = len(self.src) if end < 0 else end

    def ident(self) -> str:
        start = self.i
        while self.i < len(self.src) and self.src[self.i] in _IDENT:
            self.i += 1
        return self.src[start : self.i]

    def skip_blanks(self) -> None:
        while self.i < len(self.src) and self.src[self.i] in " \t\r\n":
            if self.src[self.i] == "\n":
                self.line += 1
            self.i += 1

    def expression_end(self) -> int:
        """From self.i, the end of a one-line body: a newline or comment at this depth."""
        base, end = self.depth, self.i
        while self.i < len(self.src):
            c = self.src[self.i]
            if c in '"`':
                self.skip_string(c)
                end = self.i
                continue
            if c == "#" and self.depth == base:
                return end
            if c == "\n" and self.depth == base:
                return end
            if c in _OPEN:
                self.depth += 1
            elif c in _CLOSE:
                self.depth -= 1
            elif c == "\n":
                self.line += 1
            self.i += 1
            if not c.isspace():
                end = self.i
        return end


def blank_comments(source: str) -> str:
    """The source with every comment replaced by spaces (offsets and lines unchanged)."""
    s = _Scanner(source)
    out = list(source)
    while s.i < len(s.src):
        c = s.src[s.i]
        if c in '"`':
            s.skip_string(c)
            continue
        if c == "#":
            start = s.i
            s.skip_comment()
            out[start : s.i] = " " * (s.i - start)
            continue
        s.i += 1
    return "".join(out)


def find_bodies(module: str, source: str) -> list[Body]:
    """Every rule body (`if { ... }` or one-line `if expr`) at the top level of a module."""
    s = _Scanner(source)
    bodies: list[Body] = []
    rule = ""
    while s.i < len(s.src):
        c = s.src[s.i]
        if c == "\n":
            s.line += 1
            s.i += 1
            s.at_line_start = True
            continue
        if c in '"`':
            s.skip_string(c)
            s.at_line_start = False
            continue
        if c == "#":
            s.skip_comment()
            continue
        if c in _IDENT_START:
            start_of_line = s.at_line_start and s.depth == 0
            word = s.ident()
            if start_of_line and word not in _NOT_RULES:
                rule = word
            if word == "if" and s.depth == 0 and rule:
                bodies.append(_body_after_if(s, module=module, rule=rule))
            s.at_line_start = False
            continue
        if c in _OPEN:
            s.depth += 1
        elif c in _CLOSE:
            s.depth -= 1
        s.i += 1
        if not c.isspace():
            s.at_line_start = False
    return bodies


def _body_after_if(s: _Scanner, *, module: str, rule: str) -> Body:
    line = s.line
    s.skip_blanks()
    if s.i < len(s.src) and s.src[s.i] == "{":
        s.i += 1
        s.depth += 1
        return Body(module=module, rule=rule, line=line, insert_at=s.i)
    start = s.i
    end = s.expression_end()
    return Body(module=module, rule=rule, line=line, insert_at=start, inline_end=end)


def blanked(source: str) -> str:
    """Comments and the contents of string literals as spaces (offsets and lines kept). A
    template string's expressions (`$"{n} backends"`, OPA 1.12; regopy evaluates them) stay:
    they read variables, and `n := count(xs)` read only there is used."""
    code = blank_comments(source)

    def blank(m: re.Match[str]) -> str:
        text = m.group()
        inner = text[1:-1]
        if m.start() > 0 and code[m.start() - 1] == "$":
            inner = _TEMPLATE_PART.sub(_blank_text, inner)
        else:
            inner = re.sub(r"[^\n]", " ", inner)
        return text[0] + inner + text[-1]

    return re.sub(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`', blank, code)


# A template string's parts: an expression `{...}`, or literal text (`\{` a literal brace).
_TEMPLATE_PART = re.compile(r"\{[^{}]*\}|(?:\\.|[^{\\])+|.")


def _blank_text(part: re.Match[str]) -> str:
    text = part.group()
    return text if text.startswith("{") and text.endswith("}") else re.sub(r"[^\n]", " ", text)
