"""Refuse, at load, the Rego shape on which the embedded engine fails open: a call's result
assigned to a local that nothing checks.

OPA (without `--strict-builtin-errors`) makes an expression whose built-in call fails
*undefined*, so the whole body is undefined. regopy 1.5.2 (rego-cpp) instead binds the failure
to the variable and goes on; only a later expression that compares or passes the variable
becomes undefined. So where nothing does, the body *succeeds*:

    numeric if { n := to_number(input.v) }        # OPA: undefined for "twenty"; regopy: true
    violation contains "..." if { not numeric }   # so this never fires, the object is admitted

Measured: `n := f(x)`, `n = f(x)`, `[n] := [f(x)]`, `x := 1 / 0`, `x := f(y); z := x` (the
failure passes down the chain) and `n := f(x); not n == 3` (the comparison is undefined, its
negation true) all succeed, while `n := f(x); n > 1` and a bare `f(x)` are undefined, as in
OPA. OPA's own `opa check --strict` refuses unused local assignments ("assigned var x unused"),
so the refusal costs correct policies nothing; the fix is to make the call its own statement
(`to_number(x)`) or test the input first (`is_number`, `regex.match`).

This is a conservative token scan (comments and strings blanked, braces matched, statements
split at newlines and `;`), not a Rego parser: a variable counts as used when its name appears
in the rule's head, in another of its bodies, or in a statement of the same body that is not
`not ...` or `print(...)` (an assignment passes the use on to its own variables). What it cannot
see, and what the policy docs list as a pitfall: a failing call put into an object literal
(`y := {"a": to_number(x)}; y.a == 1` is true in regopy).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from smi.errors import Diagnostic
from smi.policy.coverage import blank_comments, find_bodies
from smi.policy.modules import RegoModule
from smi.policy.rego_errors import COMPILE

_IDENT = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?!\w)")
_CALL = re.compile(r"(?<![\w.])[A-Za-z_][\w.]*\s*\(")
# A binary arithmetic or set operator: after an operand, not part of `:=`, `==`, `!=`, ...
_OPERATOR = re.compile(r"(?<=[\w)\]}\"`])\s*[-+*/%&]")
_KEYWORDS = frozenset(
    {"not", "some", "every", "in", "if", "contains", "else", "with", "as", "true", "false"}
    | {"null", "default", "package", "import", "input", "data"}
)
_OPEN, _CLOSE = "([{", ")]}"


@dataclass(frozen=True, slots=True)
class _Statement:
    text: str  # blanked (no comments, no string contents)
    start: int  # offset in the module

    @property
    def negated(self) -> bool:
        return re.match(r"\s*(not\b|print\s*\()", self.text) is not None


def check(modules: Sequence[RegoModule]) -> list[Diagnostic]:
    """One SMI5002 line per variable assigned from a call (or arithmetic) and never used."""
    out: list[Diagnostic] = []
    for module in modules:
        out.extend(_check_module(module))
    return out


def _check_module(module: RegoModule) -> Iterator[Diagnostic]:
    code = _blank(module.source)
    rules = _rule_starts(code)
    for body in find_bodies(module.name, module.source):
        start = max((r for r in rules if r <= body.insert_at), default=0)
        end = body.inline_end if body.inline_end is not None else _closing(code, body.insert_at)
        rule_end = min((r for r in rules if r > body.insert_at), default=len(code))
        outside = code[start : body.insert_at] + " " + code[end:rule_end]
        for statement, var in _unused(_statements(code, body.insert_at, end), outside):
            line = module.source.count("\n", 0, statement.start) + 1
            yield Diagnostic(
                code=COMPILE, message=_message(body.rule, var), file=module.name, line=line
            )


def _message(rule: str, var: str) -> str:
    return (
        f"rule `{rule}`: `{var}` is assigned from a call that nothing after it uses; the "
        "embedded engine (regopy) takes a failing call there as success, where OPA makes the "
        "body undefined: write the call as its own statement (`to_number(x)`) or check the "
        "input first (`is_number(x)`, `regex.match(...)`)"
    )


def _unused(statements: list[_Statement], outside: str) -> Iterator[tuple[_Statement, str]]:
    assigned = [(s, _assignment(s.text)) for s in statements]
    for index, (statement, parts) in enumerate(assigned):
        if parts is None:
            continue
        names, rhs = parts
        if not (_CALL.search(rhs) or _OPERATOR.search(rhs)):
            continue
        for name in names:
            if not _used(name, index, assigned, outside, seen=frozenset()):
                yield statement, name


def _used(
    name: str,
    index: int,
    assigned: list[tuple[_Statement, tuple[list[str], str] | None]],
    outside: str,
    *,
    seen: frozenset[str],
) -> bool:
    if name in seen or _mentions(outside, name):
        return True  # a cycle of assignments: be conservative
    for other, (statement, parts) in enumerate(assigned):
        if other == index or statement.negated or not _mentions(statement.text, name):
            continue
        if parts is None or name not in _idents(parts[1]):
            return True  # compared, passed to a function, iterated, ...
        if any(_used(n, other, assigned, outside, seen=seen | {name}) for n in parts[0]):
            return True
    return False


def _assignment(text: str) -> tuple[list[str], str] | None:
    """(variables bound, right-hand side) of `vars := rhs` / `var = rhs`; None otherwise."""
    at = _top_level_assign(text)
    if at is None:
        return None
    pos, op = at
    lhs, rhs = text[:pos].strip(), text[pos + len(op) :]
    if lhs.startswith(("not ", "some ", "every ")):
        return None
    if op == "=" and not re.fullmatch(r"[A-Za-z_]\w*|\[[\w\s,]*\]", lhs):
        return None  # `input.x = f(y)`, `f(y) = n`: a comparison as far as this scan goes
    if re.search(r"[A-Za-z_]\w*\s*[.\[(]", lhs) and not lhs.startswith(("[", "{")):
        return None
    names = [n for n in _idents(lhs) if n != "_"]
    return (names, rhs) if names else None


def _top_level_assign(text: str) -> tuple[int, str] | None:
    depth = 0
    for i, c in enumerate(text):
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif depth == 0 and text.startswith(":=", i):
            return i, ":="
        elif (
            depth == 0
            and c == "="
            and text[i - 1 : i] not in "=!<>:"
            and text[i + 1 : i + 2] != "="
        ):
            return i, "="
    return None


def _idents(text: str) -> set[str]:
    return {m.group() for m in _IDENT.finditer(text)} - _KEYWORDS


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text) is not None


def _statements(code: str, start: int, end: int) -> list[_Statement]:
    """The expressions of a body: split at newlines and `;` outside brackets."""
    out: list[_Statement] = []
    depth, begin = 0, start
    for i in range(start, end):
        c = code[i]
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif depth == 0 and c in "\n;":
            out.append(_Statement(code[begin:i], begin))
            begin = i + 1
    out.append(_Statement(code[begin:end], begin))
    return [s for s in out if s.text.strip()]


def _closing(code: str, start: int) -> int:
    """The offset of the `}` that closes the body opened just before `start`."""
    depth = 1
    for i in range(start, len(code)):
        if code[i] in _OPEN:
            depth += 1
        elif code[i] in _CLOSE:
            depth -= 1
            if depth == 0:
                return i
    return len(code)


def _rule_starts(code: str) -> list[int]:
    """Offsets where a top-level rule begins: an identifier at the start of a line, depth 0."""
    starts: list[int] = []
    depth = 0
    for i, c in enumerate(code):
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif depth == 0 and (i == 0 or code[i - 1] == "\n") and (c.isalpha() or c == "_"):
            word = _IDENT.match(code, i)
            if word is not None and word.group() not in ("package", "import"):
                starts.append(i)
    return starts


def _blank(source: str) -> str:
    """Comments and the contents of string literals as spaces (offsets and lines kept)."""
    code = blank_comments(source)
    return re.sub(
        r'"(?:[^"\\\n]|\\.)*"|`[^`]*`',
        lambda m: m.group()[0] + re.sub(r"[^\n]", " ", m.group()[1:-1]) + m.group()[-1],
        code,
    )
