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
`not ...` or `print(...)` (an assignment passes the use on to its own variables). `every` and
comprehension bodies are bodies of their own; `_` is a variable nothing uses; `f(x, n)` binds
`n` as `n := f(x)` does (measured: each fails open the same way). regopy gives no parse tree
to Python (its debug mode writes one per compiler pass to files, with offsets: a parser-based
check could read `18_structure.trieste` instead of scanning tokens). What it cannot
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
# A line that ends with an infix operator, or a next line that starts with one, goes on.
_ENDS_OPERATOR = re.compile(r"(?:[-:=!<>+*/%&|,]|(?<![\w.])(?:in|with|as))\s*\Z")
_STARTS_OPERATOR = re.compile(r"\s*(?::=|[=!<>+*/%&|]|(?:in|with|as)(?!\w))")
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
    # A bare identifier passed last to a call that names a rule of the package (or an import)
    # is no output: OPA compares the result with it, regopy binds over it.
    rules: dict[str, set[str]] = {}
    for module in modules:
        rules.setdefault(module.package, set()).update(_rule_names(_blank(module.source)))
    out: list[Diagnostic] = []
    for module in modules:
        named = rules[module.package] | set(_import_names(_blank(module.source)))
        out.extend(_check_module(module, named))
    return out


def _check_module(module: RegoModule, named: set[str]) -> Iterator[Diagnostic]:
    code = _blank(module.source)
    rules = _rule_starts(code)
    for body in find_bodies(module.name, module.source):
        start = max((r for r in rules if r <= body.insert_at), default=0)
        end = body.inline_end if body.inline_end is not None else _closing(code, body.insert_at)
        rule_end = min((r for r in rules if r > body.insert_at), default=len(code))
        # `every` and comprehension bodies are bodies too: regopy lets `every c in xs { n :=
        # to_number(c) }` and `[1 | _ := to_number(x)]` succeed for "twenty" just the same.
        for first, last in [(body.insert_at, end), *_nested_bodies(code, body.insert_at, end)]:
            outside = code[start:first] + " " + code[last:rule_end]
            statements = _statements(code, first, last)
            for statement, var in _unused(statements, outside):
                line = module.source.count("\n", 0, statement.start) + 1
                ignored = var in named and _assignment(statement.text) is None
                message = (_ignored if ignored else _message)(body.rule, var)
                yield Diagnostic(code=COMPILE, message=message, file=module.name, line=line)


def _message(rule: str, var: str) -> str:
    return (
        f"rule `{rule}`: `{var}` is assigned from a call that nothing after it uses; the "
        "embedded engine (regopy) takes a failing call there as success, where OPA makes the "
        "body undefined: write the call as its own statement (`to_number(x)`) or check the "
        "input first (`is_number(x)`, `regex.match(...)`)"
    )


# What a statement binds: each variable with the part of the right-hand side that flows into
# it (`[a, _] := [f(x), g(y)]` pairs element-wise), and the whole right-hand side.
_Binding = tuple[list[tuple[str, str]], str]


def _ignored(rule: str, name: str) -> str:
    return (
        f"rule `{rule}`: `{name}` names a rule, passed as a call's last argument; the embedded "
        "engine (regopy) binds the call's result to it instead of comparing, so the expression "
        f"holds whatever the result (even a failing call): compare it, `f(x) == {name}`"
    )


def _unused(statements: list[_Statement], outside: str) -> Iterator[tuple[_Statement, str]]:
    assigned = [
        (s, None if s.negated else _assignment(s.text) or _output_argument(s.text))
        for s in statements
    ]
    for index, (statement, parts) in enumerate(assigned):
        if parts is None:
            continue
        for name, rhs in parts[0]:
            if not (_CALL.search(rhs) or _OPERATOR.search(rhs)):
                continue
            if not _used(name, index, assigned, outside, seen=frozenset()):
                yield statement, name


def _used(
    name: str,
    index: int,
    assigned: list[tuple[_Statement, _Binding | None]],
    outside: str,
    *,
    seen: frozenset[str],
) -> bool:
    if name == "_":
        return False  # a wildcard: nothing can read what it holds
    if name in seen or _mentions(outside, name):
        return True  # a cycle of assignments: be conservative
    for other, (statement, parts) in enumerate(assigned):
        if other == index or statement.negated or not _mentions(statement.text, name):
            continue
        if parts is None or name not in _idents(parts[1]):
            return True  # compared, passed to a function, iterated, ...
        if any(_used(n, other, assigned, outside, seen=seen | {name}) for n, _ in parts[0]):
            return True
    return False


def _assignment(text: str) -> _Binding | None:
    """What `vars := rhs` / `var = rhs` binds; None for anything else.

    `_` counts where a call's result lands in it alone (`_ := to_number(x)`, or its element of
    `[_, n] := [to_number(x), 1]`): regopy takes a failing call there as success too. In
    `[_, n] := split(s, "/")` it only drops a part of a result `n` is checked through."""
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
    if lhs == "_":
        return [("_", rhs)], rhs
    pairs = _elementwise(lhs, rhs)
    if pairs is None:
        pairs = [(n, rhs) for n in sorted(_idents(lhs)) if n != "_"]
    return (pairs, rhs) if pairs else None


def _elementwise(lhs: str, rhs: str) -> list[tuple[str, str]] | None:
    """`[a, _] := [x, y]`: each variable with its own element; None for other shapes."""
    if not (lhs.startswith("[") and rhs.strip().startswith("[")):
        return None
    left, right = _elements(lhs), _elements(rhs.strip())
    if left is None or right is None or len(left) != len(right):
        return None
    if not all(re.fullmatch(r"[A-Za-z_]\w*", n) for n in left):
        return None
    return [(n, r) for n, r in zip(left, right, strict=True) if n not in _KEYWORDS]


def _elements(text: str) -> list[str] | None:
    """The top-level elements of an array literal that is all of `text`; None otherwise."""
    if not text.startswith("[") or _closing(text, 1) != len(text) - 1:
        return None
    return [e.strip() for e in _split_top(text[1:-1], ",")]


def _output_argument(text: str) -> _Binding | None:
    """`to_number(x, n)` binds `n` like `n := to_number(x)` (and fails open the same way).

    A bare identifier passed last is taken as the output: one bound before (a head argument, a
    local) is a compared input, and then also counts as used. One that names a rule is no
    local either (`_unused` tells them apart)."""
    call = re.match(r"\s*[A-Za-z_][\w.]*\s*\(", text)
    if call is None:
        return None
    close = _closing(text, call.end())
    rest = text[close + 1 :].strip()
    if rest and not re.match(r"with\b", rest):
        return None
    args = _split_top(text[call.end() : close], ",")
    last = args[-1].strip()
    if len(args) < 2 or not re.fullmatch(r"[A-Za-z_]\w*", last):
        return None
    if last == "_" or last in _KEYWORDS:
        return None
    rhs = text[: call.end()] + ",".join(args[:-1]) + ")"
    return [(last, rhs)], rhs


def _split_top(text: str, sep: str) -> list[str]:
    """`text` split at `sep` outside brackets."""
    parts, depth, begin = [], 0, 0
    for i, c in enumerate(text):
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif depth == 0 and c == sep:
            parts.append(text[begin:i])
            begin = i + 1
    parts.append(text[begin:])
    return parts


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
    """The expressions of a body: split at newlines and `;` outside brackets.

    A newline after an operator or before one (`n :=` on one line, `to_number(x)` on the next)
    continues the expression, as Rego parses it."""
    out: list[_Statement] = []
    depth, begin = 0, start
    for i in range(start, end):
        c = code[i]
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif depth == 0 and c in "\n;":
            if c == "\n" and (
                _ENDS_OPERATOR.search(code[begin:i]) or _STARTS_OPERATOR.match(code, i + 1, end)
            ):
                continue
            out.append(_Statement(code[begin:i], begin))
            begin = i + 1
    out.append(_Statement(code[begin:end], begin))
    return [s for s in out if s.text.strip()]


def _nested_bodies(code: str, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) of every `every` body and comprehension body within `code[start:end]`,
    at any depth: each is a body of its own, with its own statements."""
    out: list[tuple[int, int]] = []
    for statement in _statements(code, start, end):
        groups = list(_groups(code, statement.start, statement.start + len(statement.text)))
        if re.match(r"\s*every\b", statement.text) and groups and code[groups[-1][0]] == "{":
            opened, closed = groups.pop()
            out += [(opened + 1, closed), *_nested_bodies(code, opened + 1, closed)]
        for opened, closed in groups:
            out += _comprehensions(code, opened, closed)
    return out


def _comprehensions(code: str, opened: int, closed: int) -> list[tuple[int, int]]:
    """The comprehension bodies within the bracket group `code[opened:closed + 1]`."""
    inner = code[opened + 1 : closed]
    term = _split_top(inner, "|")
    if code[opened] in "[{" and len(term) > 1:
        pipe = opened + 1 + len(term[0])
        return [
            *(c for g in _groups(code, opened + 1, pipe) for c in _comprehensions(code, *g)),
            (pipe + 1, closed),
            *_nested_bodies(code, pipe + 1, closed),
        ]
    return [c for g in _groups(code, opened + 1, closed) for c in _comprehensions(code, *g)]


def _groups(code: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(opening, closing) offsets of the outermost bracket groups in `code[start:end]`."""
    depth, opened = 0, start
    for i in range(start, end):
        if code[i] in _OPEN:
            if depth == 0:
                opened = i
            depth += 1
        elif code[i] in _CLOSE:
            depth -= 1
            if depth == 0:
                yield opened, i


def _rule_names(code: str) -> Iterator[str]:
    for start in _rule_starts(code):
        word = re.compile(r"(?:default\s+)?([A-Za-z_]\w*)").match(code, start)
        if word is not None:
            yield word.group(1)


def _import_names(code: str) -> Iterator[str]:
    for found in re.finditer(r"(?m)^import\s+[\w.\[\]\"]*?(?:\.(\w+))?\s*(?:as\s+(\w+))?$", code):
        yield from (n for n in found.groups() if n)


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
