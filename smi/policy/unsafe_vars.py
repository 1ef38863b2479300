"""Refuse, at load, a variable that a rule only reads and nothing binds (OPA: "var x is unsafe").

OPA refuses such a policy when it compiles it. regopy 1.5.2 (rego-cpp) does not: the expression
that reads the variable is undefined, so its body never succeeds and the rule never applies.
For a `violation` that is a check which silently never denies (measured: with `input.xs` of one
`{"w": 9}`, `some b in input.xs; bb.w > 5` is undefined where `some b in input.xs; b.w > 5` is
true). A misspelt variable is the usual cause.

A conservative token scan, as `smi.policy.unused_calls` is (comments and strings blanked; the
rule's whole text, head, bodies and `else` branches together, since a rule's variables are its
own): a name is refused only when every mention of it in the rule reads it, as the head of a
reference (`bb.w`, `bb[0]`), as an operand of a comparison or arithmetic operator, or as a
call's argument that another argument follows (only a call's last argument may be its output),
and it names no rule of the package, no import, no keyword. Any other mention might bind it
(`:=`, `=`, `some`, `every`, `in`, a reference's key `xs[i]`, a call's last argument, a
function's parameter, a collection literal), and then the variable is left alone, whether or
not OPA would find it safe: a name read only where it could be bound (`count(x) > 0` with `x`
bound nowhere) is not seen here, and the policy docs keep that pitfall. A binding is never one
of the reading shapes; what else a name may be is told apart: a rule of the package (any name
that starts a line outside brackets, indented or not), an import (its alias, or its path's
last part, quoted or not), a keyword, a function called or replaced in a test (`with
time.now_ns as 200`). Read against 153 real policies of 78 repositories and 13,261 generated
valid ones, with regopy as the judge (a rule that holds reads no unbound variable): the
shapes that were misread on the way are tests (tests/unit/smi/policy/test_policy_unsafe_vars.py).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from typing import Final

from smi.errors import Diagnostic
from smi.policy.modules import RegoModule
from smi.policy.rego_errors import COMPILE
from smi.policy.unused_calls import IDENT, KEYWORDS, RULE_NAME, named_modules, rule_starts

# A call's function, maybe namespaced (`count(`, `time.now_ns(`, `lib.helper(`): no variable.
_CALLED: Final = re.compile(r"(?:\.[A-Za-z_]\w*)*\s*\(")
# A reference's head: a field or an index follows at once (a `[` after a space or on the next
# line starts a collection, which may bind).
_REF_HEAD: Final = re.compile(r"\.[A-Za-z_]|\[")
# An operator that reads both operands; `=` (unification) and `:=` bind, and are not here. An
# expression goes on over a line's end (`x` then `> 0`), but a line may start with `-1`: a `-`
# after the name counts on its own line only.
_READS_AFTER: Final = re.compile(r"\s*(?:==|!=|<=|>=|<(?!=)|>(?!=)|[+*/%](?!=))|[ \t]*-(?!=)")
_READS_BEFORE: Final = re.compile(r"(?:==|!=|<=|>=|(?<![:=!<>])[<>]|[-+*/%])\s*\Z")
_IMPORT_LINE: Final = re.compile(r"(?m)^[ \t]*import(?!\w)")
# What a line that goes on a rule's head or body starts with, or what the line before it ends
# with (`a := x +` then `y if {`; `a := x.w` then `if {`): no new rule there.
_GOES_ON: Final = re.compile(r"(?:if|else|contains|with|as|in|not|some|every)(?!\w)")
_WENT_ON: Final = re.compile(
    r"(?:[-+*/%&|,=:<>(\[{]|(?<![\w.])(?:if|else|contains|with|as|in|not|some|every|default))\s*\Z"
)
_AFTER_WITH: Final = re.compile(r"(?<![\w.])with\s+\Z")
# A call's argument that another follows: an input, whatever the function (only a call's last
# argument may be its output, `f(x, out)`).
_NEXT_ARGUMENT: Final = re.compile(r"\s*,(?!\s*\))")  # (`f(a, out,)`: a trailing comma)
_OPEN_PAREN: Final = re.compile(r"\s*\(")
_BRACKET_OR_NAME: Final = re.compile(r"[()\[\]{}]|" + IDENT.pattern)
# The function's name before a call's `(` (the last part of a dotted one), up to `(`.
_CALLEE: Final = re.compile(r"([A-Za-z_]\w*)\s*\Z")
# How far back a function's name before `(`, a `with`, or what a line going on follows is
# looked for.
_LOOK_BACK_WORDS: Final = 64
# How much of the text before a name `_READS_BEFORE` looks at.
_LOOK_BACK: Final = 8


def check(modules: Sequence[RegoModule]) -> list[Diagnostic]:
    """One SMI5002 line per variable a rule reads and binds nowhere (its first mention)."""
    out: list[Diagnostic] = []
    for module, code, named in named_modules(modules):
        names = named | _top_level_names(code) | KEYWORDS | {"_"}
        out.extend(_check_module(module, code, names))
    return out


def _top_level_names(code: str) -> set[str]:
    """The names that start a line outside any bracket: rules' (an indented one too, which
    `rule_starts` alone does not take for a rule) and the first name of a head that goes on."""
    return {m.group() for at in rule_starts(code, indented=True) if (m := IDENT.match(code, at))}


def _check_module(module: RegoModule, code: str, named: set[str]) -> Iterator[Diagnostic]:
    starts = [at for at in rule_starts(code) if not _goes_on(code, at)]
    # A rule ends where the next begins, or at a line of `import` (OPA takes one after a rule).
    stops = sorted({*starts[1:], *(m.start() for m in _IMPORT_LINE.finditer(code)), len(code)})
    for start in starts:
        end = stops[bisect.bisect_right(stops, start)]
        rule = RULE_NAME.match(code, start)
        name = rule.group(1) if rule is not None else "?"
        for var, at in _unbound(code, start, end, named):
            line = module.source.count("\n", 0, at) + 1
            yield Diagnostic(code=COMPILE, message=_message(name, var), file=module.name, line=line)


def _goes_on(code: str, at: int) -> bool:
    """Whether the line at `at`, which `rule_starts` takes for a rule's, goes on the rule
    above: an `else` branch (a function's arguments are its branches' too), an `if` or
    `contains` on a line of its own, or a head whose line before ended with an operator."""
    return bool(
        _GOES_ON.match(code, at) or _WENT_ON.search(code, max(0, at - _LOOK_BACK_WORDS), at)
    )


def _unbound(code: str, start: int, end: int, named: set[str]) -> Iterator[tuple[str, int]]:
    """The names of code[start:end] (one rule) that every mention reads, with the first's
    offset."""
    first: dict[str, int] = {}
    maybe_bound: set[str] = set()
    arguments = _call_arguments(code, start, end)
    for found in IDENT.finditer(code, start, end):
        var = found.group()
        if var in named or _CALLED.match(code, found.end(), end):
            continue
        if _AFTER_WITH.search(code, max(start, found.start() - _LOOK_BACK_WORDS), found.start()):
            continue  # (`with time.now_ns as 200`: a function replaced in a test, no variable)
        if _reads(code, found.start(), found.end(), end) or (
            found.start() in arguments and _NEXT_ARGUMENT.match(code, found.end(), end)
        ):
            first.setdefault(var, found.start())
        else:
            maybe_bound.add(var)
    for var, at in first.items():
        if var not in maybe_bound:
            yield var, at


def _call_arguments(code: str, start: int, end: int) -> set[int]:
    """Where the names that are a call's arguments start, in code[start:end] (one rule): those
    whose innermost bracket is a `(` that follows a function's name, but for the rule's own
    head (a function's parameters bind)."""
    head = RULE_NAME.match(code, start)
    own = _OPEN_PAREN.match(code, head.end()) if head is not None else None
    own_at = own.end() - 1 if own is not None else -1
    calls: list[bool] = []  # per open bracket: whether it is a call's `(`
    out: set[int] = set()
    for found in _BRACKET_OR_NAME.finditer(code, start, end):
        text = found.group()
        if text in "([{":
            callee = _CALLEE.search(
                code, max(start, found.start() - _LOOK_BACK_WORDS), found.start()
            )
            calls.append(
                text == "("
                and found.start() != own_at
                and callee is not None
                and callee.group(1) not in KEYWORDS
            )
        elif text in ")]}":
            if calls:
                calls.pop()
        elif calls and calls[-1]:
            out.add(found.start())
    return out


def _reads(code: str, begin: int, stop: int, end: int) -> bool:
    """Whether the name at code[begin:stop] is read there: a reference's head, or an operand
    of an operator that reads both sides."""
    if _REF_HEAD.match(code, stop, end) or _READS_AFTER.match(code, stop, end):
        return True
    return _READS_BEFORE.search(code, max(0, begin - _LOOK_BACK), begin) is not None


def _message(rule: str, var: str) -> str:
    return (
        f"rule `{rule}`: `{var}` is read but bound nowhere in the rule (OPA refuses it: "
        f'"var {var} is unsafe"); the embedded engine (regopy) makes the expression undefined, '
        f"so the rule never applies: bind it (`some {var} in ...`, `{var} := ...`) or correct "
        "its spelling"
    )
