"""Refuse, at load, a call to a built-in that the embedded engine does not implement.

OPA runs `net.cidr_contains`, `http.send`, `json.match_schema`, `rego.metadata.rule` and the
rest of the families below; regopy 1.5.2 (rego-cpp) knows their names and arities, so the
module compiles, but every call ends in a built-in error ("Networking builtins are not
supported") that leaves the expression undefined. A `violation` that needs one never holds
(`net.cidr_contains(blocked, ip)`: measured, an address inside the range is admitted), and
one that negates it (`not net.cidr_contains(...)`) holds for every object: either way the
policy does not mean what it says. Such a policy is refused with the call's line, as OPA would
refuse an unknown function; a remote OPA (`--opa-url`) runs it as written.

What regopy does implement is not listed: `tests/unit/smi/policy/test_policy_unsupported_calls.py`
checks each name below against regopy itself with valid arguments (undefined), so a regopy that
learns one fails that test rather than refusing a policy it could run.

A Rego v0 partial set, `blocked[name] { ... }` (a bracketed head, then a body with no `if`),
is refused here too, for any rule: OPA v0 reads it as a set, OPA v1 refuses it, and regopy
reads it as an object mapping each element to `true`, so `x in blocked` is never true (it
tests the values) and a policy that denies through it never denies. (`blocked[name]`, with no
body or with `if`, is a partial object in OPA v1 as in regopy, and is left alone.)

So is a constant pattern, given to a `regex.*` built-in as a string literal, that holds an
RE2 flag group (`(?i)`, `(?s:a.b)`, `(?-m)`) or a named group (`(?P<n>...)`, `(?<n>...)`):
OPA's RE2 takes them, regopy's regex engine supports neither, and the call is undefined
(`regex.is_valid` false), so `regex.match("(?i)^admin$", name)` never matches. A pattern the
policy builds or reads (a variable, `data.parameters`) is not seen here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Final

from smi.errors import Diagnostic
from smi.policy.coverage import blanked
from smi.policy.modules import RegoModule
from smi.policy.rego_errors import COMPILE
from smi.policy.unused_calls import IDENT, rule_starts

# Each family rego-cpp answers "... not supported" for, with the names OPA documents in it.
UNSUPPORTED: Final[dict[str, tuple[str, ...]]] = {
    "networking": (
        "net.cidr_contains",
        "net.cidr_contains_matches",
        "net.cidr_expand",
        "net.cidr_intersects",
        "net.cidr_is_valid",
        "net.cidr_merge",
        "net.lookup_ip_addr",
    ),
    "HTTP": ("http.send",),
    "JSON Schema": ("json.match_schema", "json.verify_schema"),
    "Rego metadata": ("rego.metadata.chain", "rego.metadata.rule"),
    "Rego module parsing": ("rego.parse_module",),
    "template rendering": ("strings.render_template",),
    "GraphQL": (
        "graphql.is_valid",
        "graphql.parse",
        "graphql.parse_and_verify",
        "graphql.parse_query",
        "graphql.parse_schema",
        "graphql.schema_is_valid",
    ),
    "AWS signing": ("providers.aws.sign_req",),
}
_FAMILY: Final = {name: family for family, names in UNSUPPORTED.items() for name in names}
# A call of one (not `data.net.cidr_contains(`, a rule of a package named so, nor a longer name).
_CALL: Final = re.compile(
    r"(?<![\w.])("
    + "|".join(re.escape(n) for n in sorted(_FAMILY, key=len, reverse=True))
    + r")\s*\("
)


def check(modules: Sequence[RegoModule]) -> list[Diagnostic]:
    """One SMI5002 line per module and built-in it calls that regopy does not implement, per
    Rego v0 partial set (`blocked[name] { ... }`), and per constant pattern with a group
    regopy does not support."""
    out: list[Diagnostic] = []
    for module in modules:
        code = blanked(module.source)
        out.extend(_v0_partial_sets(module, code))
        out.extend(_unsupported_patterns(module, code))
        seen: set[str] = set()
        for m in _CALL.finditer(code):
            name = m.group(1)
            if name in seen:
                continue
            seen.add(name)
            line = code.count("\n", 0, m.start()) + 1
            out.append(
                Diagnostic(code=COMPILE, message=_message(name), file=module.name, line=line)
            )
    return out


def _message(name: str) -> str:
    return (
        f"{name}: the embedded Rego engine (regopy) does not implement {_FAMILY[name]} "
        "built-ins, so every call is undefined and the rule would not mean what it says "
        "(OPA runs it: evaluate with --opa-url, or do without it)"
    )


# A rule's head ref up to its first bracket (`blocked[`, `a.b[`).
_HEAD_REF: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\[")


def _v0_partial_sets(module: RegoModule, code: str) -> list[Diagnostic]:
    """Each rule written `name[key] { ... }`: a bracketed head whose body follows at once."""
    out: list[Diagnostic] = []
    for at in rule_starts(code, indented=True):
        head = _HEAD_REF.match(code, at)
        word = IDENT.match(code, at)
        if head is None or word is None or word.group() == "default":
            continue
        close = _closing_bracket(code, head.end() - 1)
        if close is None or not code[close + 1 :].lstrip().startswith("{"):
            continue
        name = code[at : head.end() - 1]
        key = " ".join(module.source[head.end() : close].split())
        message = (
            f"`{name}` is an object, not a set, to the embedded engine (regopy): "
            f"`{name}[{key}] {{ ... }}` is a Rego v0 partial set, which regopy reads as an "
            f"object mapping each element to true, so `x in {name}` is never true (OPA v1 "
            f"refuses it): write `{name} contains {key} if {{ ... }}`"
        )
        line = code.count("\n", 0, at) + 1
        out.append(Diagnostic(code=COMPILE, message=message, file=module.name, line=line))
    return out


def _closing_bracket(code: str, start: int) -> int | None:
    """The offset of the bracket that closes the one at `start` (strings already blanked)."""
    depth = 0
    for i in range(start, len(code)):
        if code[i] in "([{":
            depth += 1
        elif code[i] in ")]}":
            depth -= 1
            if depth == 0:
                return i
    return None


# The built-ins that take an RE2 pattern, each with the index of the argument that is one.
_PATTERN_ARGUMENT: Final = {
    "regex.match": 0,
    "re_match": 0,
    "regex.is_valid": 0,
    "regex.split": 0,
    "regex.find_n": 0,
    "regex.find_all_string_submatch_n": 0,
    "regex.replace": 1,
}
_PATTERN_CALL: Final = re.compile(
    r"(?<![\w.])("
    + "|".join(re.escape(n) for n in sorted(_PATTERN_ARGUMENT, key=len, reverse=True))
    + r")\s*\("
)
_STRING: Final = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`')
_ARGUMENT_END: Final = re.compile(r"\s*[,)]")
# An RE2 flag group, `(?i)`, `(?s:`, `(?i-m)` (not `(?:`), or a named group, `(?P<n>`, `(?<n>`.
_GROUP: Final = re.compile(r"\(\?(?:[imsU]+(?:-[imsU]*)?|-[imsU]+)[:)]|\(\?P?<\w+>")


def _unsupported_patterns(module: RegoModule, code: str) -> list[Diagnostic]:
    """Each call whose pattern argument is a string literal holding a group regopy does not
    support (`code` is the module blanked)."""
    out: list[Diagnostic] = []
    for m in _PATTERN_CALL.finditer(code):
        name = m.group(1)
        pattern = _literal_argument(module.source, code, m.end(), _PATTERN_ARGUMENT[name])
        group = _unsupported_group(pattern) if pattern is not None else None
        if group is None:
            continue
        what, hint = _group_hint(group)
        message = (
            f"{name}: the pattern's {what} `{group}` is not supported by the embedded Rego "
            "engine (regopy): the call is undefined (OPA's RE2 runs it), so the rule would not "
            f"mean what it says; write the pattern without it ({hint}), or evaluate with "
            "--opa-url"
        )
        line = code.count("\n", 0, m.start()) + 1
        out.append(Diagnostic(code=COMPILE, message=message, file=module.name, line=line))
    return out


# How to write what each flag does without it.
_FLAG_HINTS: Final = {
    "i": "both cases, `[Aa]dmin`, for `i`",
    "s": "`[\\s\\S]` for a `.` that matches a newline, for `s`",
    "m": 'a pattern per line (`split(value, "\\n")`) for `m`',
    "U": "`*?` for `*` (and so on) for `U`",
}


def _group_hint(group: str) -> tuple[str, str]:
    """What the group is, and how to write the pattern without it."""
    if "<" in group:
        return "named group", "a plain group, `(...)`"
    on = group[2:].partition("-")[0]
    hints = [hint for flag, hint in _FLAG_HINTS.items() if flag in on]
    return "flag group", "; ".join(hints) or "drop it: the flags it turns off are off already"


def _literal_argument(source: str, code: str, start: int, index: int) -> str | None:
    """The value of argument `index` of the call whose arguments begin at `start`, when that
    argument is one string literal; else None."""
    depth = 0
    at = start
    for _ in range(index):
        while at < len(code) and not (code[at] == "," and depth == 0):
            depth += code[at] in "([{"
            depth -= code[at] in ")]}"
            if depth < 0:
                return None
            at += 1
        at += 1
    while at < len(code) and code[at].isspace():
        at += 1
    literal = _STRING.match(source, at)
    if literal is None or _ARGUMENT_END.match(code, literal.end()) is None:
        return None
    text = literal.group()
    if text.startswith("`"):
        return text[1:-1]
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _unsupported_group(pattern: str) -> str | None:
    """The first flag or named group of `pattern` outside a character class and not escaped
    (`\\(?i)` is a literal parenthesis made optional), as written; None if there is none."""
    at = 0
    in_class = False
    while at < len(pattern):
        c = pattern[at]
        if c == "\\":
            at += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            at += 1
            # A `]` first in a class (after a `^`) is a literal, not its end.
            at += pattern.startswith("^", at)
            at += pattern.startswith("]", at)
            continue
        elif c == "(" and (group := _GROUP.match(pattern, at)) is not None:
            return group.group()
        at += 1
    return None
