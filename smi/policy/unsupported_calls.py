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
"""

from __future__ import annotations

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
    """One SMI5002 line per module and built-in it calls that regopy does not implement, and
    per Rego v0 partial set (`blocked[name] { ... }`)."""
    out: list[Diagnostic] = []
    for module in modules:
        code = blanked(module.source)
        out.extend(_v0_partial_sets(module, code))
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
