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
`not ...`, `print(...)` or a bare `some n` (an assignment passes the use on to its own
variables). `every` and comprehension bodies are bodies of their own: what they assign counts
as read where an enclosing body reads the name, up to a statement there that declares it anew
(`some v in xs`, `v := 1`), but not where a sibling body has a local of that name. `_` is a
variable nothing uses; `f(x, n)` and `f(x) = n` bind `n` as `n := f(x)` does (measured: each
fails open the same way), unless `n` names a rule or an import, which `=` compares with. The
walk keeps its own stack (a valid policy may nest thousands of brackets) and refuses bodies
nested more than `_MAX_NESTING` deep, each of which it reads once per enclosing body. regopy
gives no parse tree to Python (its debug mode writes one per compiler pass to files, with
offsets: a parser-based check could read `18_structure.trieste` instead of scanning tokens).
What it cannot see, and what the policy docs list as pitfalls (each true in regopy for
"twenty"): a failing call put into an object literal (`y := {"a": to_number(x)}; y.a == 1`),
passed to a function of the policy that ignores that argument (`f(_) := true`), a result only
a type built-in reads (`is_null(n) == false`), or only a nested body's unused local
(`[[w | w := v] | v := to_number(c)]`).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from smi.errors import Diagnostic
from smi.policy.coverage import blanked, find_bodies
from smi.policy.modules import RegoModule, import_names
from smi.policy.rego_errors import COMPILE

IDENT = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?!\w)")
_CALL = re.compile(r"(?<![\w.])[A-Za-z_][\w.]*\s*\(")
# A binary arithmetic or set operator: after an operand, not part of `:=`, `==`, `!=`, ...
_OPERATOR = re.compile(r"(?<=[\w)\]}\"`])\s*[-+*/%&]")
# A line that ends with an infix operator, or a next line that starts with one, goes on.
_ENDS_OPERATOR = re.compile(r"(?:[-:=!<>+*/%&|,]|(?<![\w.])(?:in|with|as))\Z")
_STARTS_OPERATOR = re.compile(r"\s*(?::=|[=!<>+*/%&|]|(?:in|with|as)(?!\w))")
# What a walk over one level of brackets stops at; a group it meets is skipped whole.
_BRACKET = re.compile(r"[()\[\]{}]")
_SPLIT = re.compile(r"[\n;(\[{]")
_PIPE = re.compile(r"[|(\[{]")
_VARIABLES = r"[A-Za-z_]\w*|\[[\w\s,]*\]"  # what `=` binds: `n`, `[a, b]`
_LAST_ARGUMENT = re.compile(r",\s*([A-Za-z_]\w*)\s*\Z")
_BARE_VARIABLE = re.compile(r"\s*([A-Za-z_]\w*)\s*((?:with\b.*)?)", re.DOTALL)
_PLAIN_SOME = re.compile(r"\s*some\b(?!.*(?<![\w.])in(?!\w))", re.DOTALL)
_DECLARATION = re.compile(r"\s*(?:some|every)\b")
_MAX_NESTING = 1000  # `every` and comprehension bodies, one inside the other
KEYWORDS = frozenset(
    {"not", "some", "every", "in", "if", "contains", "else", "with", "as", "true", "false"}
    | {"null", "default", "package", "import", "input", "data"}
)
_OPEN, _CLOSE = "([{", ")]}"


@dataclass(frozen=True, slots=True)
class _Statement:
    text: str  # blanked (no comments, no string contents)
    start: int  # offset in the module
    flat: str  # `text` with the inside of its bracket groups blanked: its top level only
    groups: tuple[tuple[int, int], ...]  # (opening, closing) offsets of those groups

    @property
    def negated(self) -> bool:
        return re.match(r"\s*(not\b|print\s*\()", self.text) is not None

    @property
    def declares(self) -> set[str]:
        """What `some ...` / `every ... in` make new locals of (of the statement's own scope)."""
        if _DECLARATION.match(self.text) is None:
            return set()
        inside = re.search(r"(?<![\w.])in(?!\w)", self.flat)
        return _idents(self.text[: inside.start()] if inside else self.text)

    @property
    def uses(self) -> set[str]:
        """The names it reads: all it mentions but a bare `some n` (a declaration, no use)."""
        return set() if _PLAIN_SOME.match(self.flat) else _idents(self.text)


@dataclass(frozen=True, slots=True)
class _Scope:
    """A body of its own: a rule's, an `every` body, a comprehension's (`[t | body]`)."""

    first: int  # the body is code[first:last]
    last: int
    parent: int  # index of the enclosing scope, -1 for the rule body
    span: tuple[int, int]  # what it takes of the parent's text: term and body
    term: tuple[int, int]  # a comprehension's term, evaluated in its own scope


def check(modules: Sequence[RegoModule]) -> list[Diagnostic]:
    """One SMI5002 line per variable assigned from a call (or arithmetic) and never used."""
    # A bare identifier passed last to a call that names a rule of the package (or an import)
    # is no output: OPA compares the result with it, regopy binds over it.
    out: list[Diagnostic] = []
    for module, code, named in named_modules(modules):
        out.extend(_check_module(module, code, named))
    return out


def named_modules(modules: Sequence[RegoModule]) -> list[tuple[RegoModule, str, set[str]]]:
    """Each module with its source blanked (`blanked`) and the names that are no variables in
    it: the rules of its package, in any of `modules`, and its imports."""
    codes = [blanked(module.source) for module in modules]
    rules: dict[str, set[str]] = {}
    for module, code in zip(modules, codes, strict=True):
        rules.setdefault(module.package, set()).update(_rule_names(code))
    return [
        (
            module,
            code,
            rules[module.package] | {name for name, _ in import_names(code, module.source)},
        )
        for module, code in zip(modules, codes, strict=True)
    ]


def _check_module(module: RegoModule, code: str, named: set[str]) -> Iterator[Diagnostic]:
    """`check` for one module, whose source blanked (`blanked`) is `code`."""
    pairs = _pairs(code)
    rules = rule_starts(code)
    for body in find_bodies(module.name, module.source):
        at = bisect.bisect_right(rules, body.insert_at)  # (`rules` is in order: no scan per body)
        start = rules[at - 1] if at else 0
        end = body.inline_end if body.inline_end is not None else _closing(code, body.insert_at)
        rule_end = rules[at] if at < len(rules) else len(code)
        head = _idents(code[start : body.insert_at] + " " + code[end:rule_end])
        # `every` and comprehension bodies are bodies too: regopy lets `every c in xs { n :=
        # to_number(c) }` and `[1 | _ := to_number(x)]` succeed for "twenty" just the same.
        scopes, too_deep = _scopes(code, pairs, body.insert_at, end)
        if too_deep is not None:
            line = module.source.count("\n", 0, too_deep) + 1
            message = _too_deep(body.rule)
            yield Diagnostic(code=COMPILE, message=message, file=module.name, line=line)
        for statements, outside in _outsides(code, scopes, head):
            for statement, var in _unused(statements, outside, named):
                line = module.source.count("\n", 0, statement.start) + 1
                ignored = var in named and _assignment(statement, named) is None
                message = (_ignored if ignored else _message)(body.rule, var)
                yield Diagnostic(code=COMPILE, message=message, file=module.name, line=line)


def _message(rule: str, var: str) -> str:
    return (
        f"rule `{rule}`: `{var}` is assigned from a call that nothing after it uses; the "
        "embedded engine (regopy) takes a failing call there as success, where OPA makes the "
        "body undefined: write the call as its own statement (`to_number(x)`) or check the "
        "input first (`is_number(x)`, `regex.match(...)`)"
    )


def _too_deep(rule: str) -> str:
    return (
        f"rule `{rule}`: `every` and comprehension bodies nested more than {_MAX_NESTING} "
        "deep, too deep to check for unused calls (and past what the embedded engine, regopy, "
        "evaluates: about 500): move the inner ones into rules or functions of their own"
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


def _unused(
    statements: list[_Statement], outside: set[str], named: set[str]
) -> Iterator[tuple[_Statement, str]]:
    flow = _Flow(statements, outside=outside, named=named)
    for index, statement in enumerate(statements):
        parts = flow.binds[index]
        if parts is None:
            continue
        for name, rhs in parts[0]:
            if not (_CALL.search(rhs) or _OPERATOR.search(rhs)):
                continue
            if not _used((name, index), flow):
                yield statement, name


_Node = tuple[str, int]  # a variable and the statement that binds it


class _Flow:
    """How values move between the statements of one body: what each binds from what, and
    which statements read a name (built on first use: most bodies bind no call at all)."""

    def __init__(self, statements: list[_Statement], *, outside: set[str], named: set[str]):
        self.statements = statements
        self.outside = outside  # read where this body cannot see: the head, enclosing bodies
        self.binds = [
            None if s.negated else _assignment(s, named) or _output_argument(s) for s in statements
        ]
        self.known: dict[_Node, bool] = {}  # followed already: whether something reads it
        self._readers: dict[str, list[int]] | None = None

    def readers(self, name: str) -> list[int]:
        if self._readers is None:
            self._readers = {}
            for index, statement in enumerate(self.statements):
                if not statement.negated:
                    for used in statement.uses:
                        self._readers.setdefault(used, []).append(index)
        return self._readers.get(name, [])

    def onward(self, node: _Node, on_path: dict[str, int]) -> list[_Node] | None:
        """The variables the one bound at `node` flows into; None once something reads it."""
        name, at = node
        if name == "_":
            return []  # a wildcard: nothing can read what it holds
        if on_path.get(name) or name in self.outside:
            return None  # read outside this body, or a cycle of assignments (conservative)
        if node in self.known:
            return None if self.known[node] else []
        out: list[_Node] = []
        for other in self.readers(name):
            # `some n in xs` after `n := f(x)` declares another `n` (OPA refuses the pair).
            if other == at or (other > at and name in self.statements[other].declares):
                continue
            parts = self.binds[other]
            if parts is None or name not in _idents(parts[1]):
                return None  # compared, passed to a function, iterated, ...
            out += [(n, other) for n, _ in parts[0]]
        return out


def _used(start: _Node, flow: _Flow) -> bool:
    """Whether anything reads the variable bound at `start`, or one its value flows into.

    A walk with a stack of its own, not recursion: a chain of a few thousand assignments is a
    valid policy and must not exhaust Python's."""
    on_path: dict[str, int] = {}
    stack: list[tuple[_Node, Iterator[_Node]]] = []
    following: _Node | None = start
    while following is not None or stack:
        if following is None:
            node, _ = stack.pop()
            flow.known[node] = False
            on_path[node[0]] -= 1
        else:
            onward = flow.onward(following, on_path)
            if onward is None:
                flow.known.update((n, True) for n in [following, *(n for n, _ in stack)])
                return True
            stack.append((following, iter(onward)))
            on_path[following[0]] = on_path.get(following[0], 0) + 1
        following = next(stack[-1][1], None) if stack else None
    return False


def _assignment(statement: _Statement, named: Collection[str] = ()) -> _Binding | None:
    """What `vars := rhs` / `var = rhs` / `rhs = var` binds; None for anything else.

    `=` binds a bare variable on either side: `to_number(x) = n` fails open as `n =
    to_number(x)` does. Against a rule or an import (`named`) it compares, in regopy as in OPA
    (`limit = to_number(x)` is undefined for "twenty"): no binding.

    `_` counts where a call's result lands in it alone (`_ := to_number(x)`, or its element of
    `[_, n] := [to_number(x), 1]`): regopy takes a failing call there as success too. In
    `[_, n] := split(s, "/")` it only drops a part of a result `n` is checked through."""
    at = _assign_at(statement.flat)
    if at is None:
        return None
    text, (pos, op) = statement.text, at
    lhs, rhs = text[:pos].strip(), text[pos + len(op) :]
    if lhs.startswith(("not ", "some ", "every ")):
        return None
    if op == "=":
        var = _BARE_VARIABLE.fullmatch(rhs)
        if var and var.group(1) not in KEYWORDS and not re.fullmatch(_VARIABLES, lhs):
            lhs, rhs = var.group(1), f"{lhs} {var.group(2)}"
        if not re.fullmatch(_VARIABLES, lhs):
            return None  # `input.x = f(y)`: a comparison as far as this scan goes
    if re.search(r"[A-Za-z_]\w*\s*[.\[(]", lhs) and not lhs.startswith(("[", "{")):
        return None
    if lhs == "_":
        return [("_", rhs)], rhs
    pairs = _elementwise(lhs, rhs)
    if pairs is None:
        pairs = [(n, rhs) for n in sorted(_idents(lhs)) if n != "_"]
    if op == "=":
        pairs = [(n, r) for n, r in pairs if n not in named]
    return (pairs, rhs) if pairs else None


def _assign_at(flat: str) -> tuple[int, str] | None:
    """Where the first `:=`, or `=` that is not part of `==`, `!=`, `<=`, `>=`, is in a
    statement's top level (`flat`: its groups blanked, so every `=` found is at the top)."""
    at = flat.find("=", 1)  # one at the very start has no left-hand side
    while at >= 0:
        if flat[at - 1] == ":":
            return at - 1, ":="
        if flat[at - 1] not in "=!<>" and flat[at + 1 : at + 2] != "=":
            return at, "="
        at = flat.find("=", at + 1)
    return None


def _elementwise(lhs: str, rhs: str) -> list[tuple[str, str]] | None:
    """`[a, _] := [x, y]`: each variable with its own element; None for other shapes."""
    if not (lhs.startswith("[") and rhs.strip().startswith("[")):
        return None
    left, right = _elements(lhs), _elements(rhs.strip())
    if left is None or right is None or len(left) != len(right):
        return None
    if not all(re.fullmatch(r"[A-Za-z_]\w*", n) for n in left):
        return None
    return [(n, r) for n, r in zip(left, right, strict=True) if n not in KEYWORDS]


def _elements(text: str) -> list[str] | None:
    """The top-level elements of an array literal that is all of `text`; None otherwise."""
    if not text.startswith("[") or _closing(text, 1) != len(text) - 1:
        return None
    return [e.strip() for e in _split_top(text[1:-1], ",")]


def _output_argument(statement: _Statement) -> _Binding | None:
    """`to_number(x, n)` binds `n` like `n := to_number(x)` (and fails open the same way).

    A bare identifier passed last is taken as the output: one bound before (a head argument, a
    local) is a compared input, and then also counts as used. One that names a rule is no
    local either (`_unused` tells them apart)."""
    text = statement.text
    call = re.match(r"\s*[A-Za-z_][\w.]*\s*\(", text)
    if call is None:
        return None
    close = statement.flat.find(")", call.end())  # its inside is blanked there
    if close < 0:
        return None
    rest = text[close + 1 :].strip()
    if rest and not re.match(r"with\b", rest):
        return None
    # A comma right before the last identifier is the call's own: nothing closes in between.
    last = _LAST_ARGUMENT.search(text, call.end(), close)
    if last is None or last.group(1) == "_" or last.group(1) in KEYWORDS:
        return None
    rhs = text[: last.start()] + ")"
    return [(last.group(1), rhs)], rhs


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


def _idents(text: str) -> set[str]:
    return {m.group() for m in IDENT.finditer(text)} - KEYWORDS


def _pairs(code: str) -> dict[int, int]:
    """The closing offset of each opening bracket (the end of `code` for one never closed), so
    that a walk over one level of a body skips a group without reading it."""
    pairs: dict[int, int] = {}
    opened: list[int] = []
    for found in _BRACKET.finditer(code):
        if found.group() in _OPEN:
            opened.append(found.start())
        elif opened:
            pairs[opened.pop()] = found.start()
    pairs.update((i, len(code)) for i in opened)
    return pairs


def _statements(code: str, start: int, end: int, pairs: dict[int, int]) -> list[_Statement]:
    """The expressions of a body: split at newlines and `;` outside brackets.

    A newline after an operator or before one (`n :=` on one line, `to_number(x)` on the next)
    continues the expression, as Rego parses it."""
    out: list[_Statement] = []
    groups: list[tuple[int, int]] = []
    begin = at = tail = start  # tail: just past the statement's last non-blank so far
    while (found := _SPLIT.search(code, at, end)) is not None:
        i = found.start()
        if stripped := code[at:i].rstrip():
            tail = at + len(stripped)
        if code[i] in _OPEN:
            groups.append((i, pairs[i]))
            at = tail = pairs[i] + 1
            continue
        at = i + 1
        if code[i] == "\n" and (
            _ENDS_OPERATOR.search(code, max(begin, tail - 4), tail)
            or _STARTS_OPERATOR.match(code, i + 1, end)
        ):
            continue
        out.append(_statement(code, begin, i, groups))
        groups, begin, tail = [], at, at
    out.append(_statement(code, begin, end, groups))
    return [s for s in out if s.text.strip()]


def _statement(code: str, begin: int, end: int, groups: list[tuple[int, int]]) -> _Statement:
    pieces, at = [], begin
    for opened, closed in groups:
        pieces += [code[at : opened + 1], " " * (min(closed, end) - opened - 1)]
        at = min(closed, end)
    flat = "".join([*pieces, code[at:end]])
    return _Statement(code[begin:end], begin, flat, tuple(g for g in groups if g[1] < end))


def _scopes(
    code: str, pairs: dict[int, int], first: int, last: int
) -> tuple[list[tuple[_Scope, list[_Statement]]], int | None]:
    """The rule body `code[first:last]` and each `every` and comprehension body in it, at any
    depth, every one after the one enclosing it, with its statements; or where bodies nest
    more than `_MAX_NESTING` deep.

    A worklist, not recursion, and each bracket group read at its own level only: a policy
    nesting thousands of brackets (`x := [[[...]]]`) is valid Rego, and must load. Each body
    is read again by each one enclosing it, hence the bound: regopy fails past about 500
    levels anyway (10 s for 500 nested `every`, an error for 550 comprehensions)."""
    scopes = [_Scope(first, last, -1, (first, last), (first, first))]
    depth = [0]
    bodies: dict[int, list[_Statement]] = {}
    todo = [(0, first, last, True)]  # (scope, from, to, whether a body or a bracket group)
    while todo:
        owner, start, end, body = todo.pop()
        if body:
            bodies[owner] = _statements(code, start, end, pairs)
            for statement in bodies[owner]:
                groups = list(statement.groups)
                every = re.match(r"\s*every\b", statement.text) is not None
                if every and groups and code[groups[-1][0]] == "{":
                    opened, closed = groups.pop()
                    if depth[owner] == _MAX_NESTING:
                        return [], opened
                    inner = (opened + 1, closed)
                    scopes.append(_Scope(*inner, owner, inner, (opened + 1, opened + 1)))
                    depth.append(depth[owner] + 1)
                    todo.append((len(scopes) - 1, *inner, True))
                todo += [(owner, o, c, False) for o, c in groups]
            continue
        groups, pipe = _inside(code, pairs, start, end)
        if pipe is not None:
            if depth[owner] == _MAX_NESTING:
                return [], start
            scopes.append(_Scope(pipe + 1, end, owner, (start + 1, end), (start + 1, pipe)))
            depth.append(depth[owner] + 1)
            owner = len(scopes) - 1
            todo.append((owner, pipe + 1, end, True))
        todo += [(owner, o, c, False) for o, c in groups]
    return [(scope, bodies[i]) for i, scope in enumerate(scopes)], None


def _inside(
    code: str, pairs: dict[int, int], opened: int, closed: int
) -> tuple[list[tuple[int, int]], int | None]:
    """The groups right inside the bracket group `code[opened:closed + 1]`, and for `[...]` or
    `{...}` the `|` that makes it a comprehension (the groups are then its term's)."""
    groups: list[tuple[int, int]] = []
    at = opened + 1
    while (found := _PIPE.search(code, at, closed)) is not None:
        at = found.start()
        if code[at] != "|":
            groups.append((at, pairs[at]))
            at = pairs[at] + 1
        elif code[opened] in "[{":
            return groups, at
        else:
            at += 1  # `(a | b)`: a set union
    return groups, None


def _outsides(
    code: str, scopes: list[tuple[_Scope, list[_Statement]]], head: set[str]
) -> list[tuple[list[_Statement], set[str]]]:
    """Each body's statements, in order, with the names read outside it that may be its own
    variables: the rule's head and other bodies, and each enclosing body up to the statement
    that holds it.

    A nested body's `v := f(x)` makes a `v` of its own: a sibling body's `v` is another local,
    and so is an enclosing body's `some v in xs` or `v := 1` after it, with every `v` read
    after that (regopy lets `every c in xs { v := to_number(c) }; some v in ys` succeed for
    "twenty"). A `v` read between the two still counts: OPA refuses it, regopy may read it."""
    spans: dict[int, list[tuple[int, int]]] = {}
    for scope, _ in scopes[1:]:
        spans.setdefault(scope.parent, []).append(scope.span)
    own: dict[int, list[tuple[int, set[str], set[str]]]] = {}
    outsides: list[set[str]] = []
    for scope, _ in scopes:
        outside = set(head)
        if scope.parent >= 0:
            parent = scope.parent
            if parent not in own:
                own[parent] = _own(code, scopes[parent][1], sorted(spans[parent]))
            outside = outsides[parent] | _idents(code[scope.term[0] : scope.term[1]])
            made_after: set[str] = set()
            for start, names, made in own[parent]:
                if start < scope.span[0]:
                    outside |= names
                else:
                    outside |= names - made - made_after
                    made_after |= made
        outsides.append(outside)
    order = sorted(range(len(scopes)), key=lambda i: scopes[i][0].first)
    return [(scopes[i][1], outsides[i]) for i in order]


def _own(
    code: str, statements: list[_Statement], spans: list[tuple[int, int]]
) -> list[tuple[int, set[str], set[str]]]:
    """Per statement of a body: where it starts, the names it reads outside the bodies nested
    in it (`spans`, in order), and those it makes new locals of (`some`, `every`, `:=`)."""
    out: list[tuple[int, set[str], set[str]]] = []
    k = 0
    for statement in statements:
        at, end = statement.start, statement.start + len(statement.text)
        pieces = []
        while k < len(spans) and spans[k][0] < end:
            if spans[k][0] >= at:
                pieces.append(code[at : spans[k][0]])
                at = spans[k][1]
            k += 1
        pieces.append(code[at:end])
        names = set() if _PLAIN_SOME.match(statement.flat) else _idents(" ".join(pieces))
        made = statement.declares
        assigned = _assign_at(statement.flat)
        if assigned is not None and assigned[1] == ":=":
            made = made | _idents(statement.text[: assigned[0]])
        out.append((statement.start, names, made))
    return out


# A rule's head: its name, the first part of a dotted one (`util.between(x) if ...`).
RULE_NAME: Final = re.compile(r"(?:default\s+)?([A-Za-z_]\w*)(?:\.[A-Za-z_]\w*)*")


def _rule_names(code: str) -> Iterator[str]:
    for start in rule_starts(code):
        word = RULE_NAME.match(code, start)
        if word is not None:
            yield word.group(1)


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


def rule_starts(code: str, *, indented: bool = False) -> list[int]:
    """Offsets where a top-level rule begins: an identifier at the start of a line, depth 0
    (after blanks too, if `indented`: what an indented rule, or a head going on, starts with)."""
    starts: list[int] = []
    depth = 0
    fresh = True  # nothing yet on this line (but blanks, if `indented`)
    for i, c in enumerate(code):
        if c == "\n":
            fresh = True
            continue
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif depth == 0 and fresh and (c.isalpha() or c == "_"):
            word = IDENT.match(code, i)
            if word is not None and word.group() not in ("package", "import"):
                starts.append(i)
        fresh = fresh and indented and c in " \t"
    return starts
