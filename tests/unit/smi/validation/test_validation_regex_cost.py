"""A regex RE2 takes but whose program is too large to step through for every byte of a
hostile request is refused (SMI2209): thirty `.{0,1000}a` in one pathRegex, admitted, held a
proxy 11 s on one 4 KB path and every other request of that proxy with it."""

from __future__ import annotations

import pytest
from validation_helpers import run_checks

from smi.compiler.ir.matching import HttpMatcher, RegexCache, RegexError, compile_regex
from smi.compiler.ir.model import HttpMatch
from smi.regexcost import MAX_REGEX_COST, cost_problem, regex_cost

HOSTILE = "/" + ".{0,1000}a" * 30 + "b$"

# What route authors write: none of these may be refused.
EVERYDAY = [
    "/api/v1/.*",
    "/api/(v1|v2)/users/[0-9]+$",
    "/[a-z0-9-]{1,63}/[a-z0-9-]{1,63}/orders$",
    "/orders/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    "/.{0,100}",
    "(?i)/API/.*(foo|bar|baz){1,5}$",
    "/\\pL{1,63}$",
    "/items/\\d{1,19}(/.*)?$",
    "[[:alpha:]]{1,32}",
    "/\\x{41}{1,3}[\\x{100}-\\x{200}]$",
    "/" + "x" * 900,
]


@pytest.mark.parametrize("pattern", EVERYDAY)
def test_everyday_regexes_are_within_the_bound(pattern: str) -> None:
    assert cost_problem(pattern) is None
    compile_regex(pattern)


@pytest.mark.parametrize(
    "pattern", [HOSTILE, "/.{0,1000}a", "/.*a.{200}$", "\\d{1,1000}", "(?U)a{1,500}b{1,500}"]
)
def test_costly_regexes_are_refused_everywhere_they_compile(pattern: str) -> None:
    assert regex_cost(pattern) > MAX_REGEX_COST
    assert cost_problem(pattern) == (
        f"about {regex_cost(pattern)} RE2 instructions, over the limit of {MAX_REGEX_COST}"
    )
    with pytest.raises(RegexError, match="too costly to match"):
        compile_regex(pattern)


def test_a_hand_written_policy_with_a_costly_regex_never_matches() -> None:
    """The proxy compiles MeshPolicy regexes itself: one admission never saw fails closed."""
    matcher = HttpMatcher(HttpMatch(origin="o", path_regex=HOSTILE), RegexCache())
    assert matcher.broken
    assert not matcher.matches("GET", "/" + "a" * 4000, {})


def test_costs_grow_with_counted_repetition_as_re2_compiles_it() -> None:
    assert regex_cost("/.{0,100}a") < regex_cost("/.{0,1000}a") < regex_cost(HOSTILE)
    assert regex_cost("a{3}") == regex_cost("aaa")


@pytest.mark.parametrize(
    ("field", "path", "shown"),
    [
        (f'pathRegex: "{HOSTILE}"', "spec.matches[0].pathRegex", "pathRegex"),
        ('headers: {x-a: "/.*a.{200}$"}', "spec.matches[0].headers.x-a", "header 'x-a'"),
    ],
)
def test_validate_names_the_field_and_the_cost(field: str, path: str, shown: str) -> None:
    text = (
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g}\n"
        f"spec:\n  matches:\n  - name: a\n    {field}\n"
    )
    [diag] = [d for d in run_checks(text) if d.code == "SMI2209"]
    assert diag.path == path and diag.severity == "error"
    assert diag.message.startswith(shown) and "RE2 instructions, over the limit of 1000" in (
        diag.message
    )
