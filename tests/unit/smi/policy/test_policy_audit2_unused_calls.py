"""Shapes of "a call's result that nothing checks" the load-time scan (SMI5002) missed: `_ :=`,
statements inside `every` and comprehension bodies, an assignment split over lines, and the
output-argument form `to_number(x, n)`. regopy 1.5.2 takes each as *true* when the call fails
(OPA: undefined), so a deny policy built on `not numeric` admitted "twenty"."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_types import WritePolicy

from smi.errors import PolicyError
from smi.policy.modules import RegoModule
from smi.policy.policyset import PolicySet
from smi.policy.unused_calls import check

HEAD = "package p\n\nimport rego.v1\n\n"


def _flags(body: str) -> list[tuple[int, str]]:
    module = RegoModule("p.rego", HEAD + body, "p", False)
    return [(d.line or 0, d.message.split("`")[3]) for d in check([module])]


def _regopy_holds(body: str) -> bool:
    """Whether regopy takes `a` as true for input.v = "twenty" (what makes the shape unsafe)."""
    from regopy import Interpreter

    rego = Interpreter()
    rego.add_module("p", HEAD + body)
    rego.set_input({"v": "twenty"})
    return str(rego.query("data.p.a")) == '{"expressions":[true]}'


FAIL_OPEN = [
    ("a if { _ = to_number(input.v) }\n", [(5, "_")]),
    ("a if { _ := to_number(input.v) }\n", [(5, "_")]),
    ("a if { [_, n] := [to_number(input.v), 1]; n > 0 }\n", [(5, "_")]),
    ("a if { every c in [input.v] { n := to_number(c) } }\n", [(5, "n")]),
    ("a if { every k, c in [input.v] { n := to_number(c) } }\n", [(5, "n")]),
    ("a if { every c in [1] { every d in [input.v] { n := to_number(d) } } }\n", [(5, "n")]),
    ("a if {\n\tn :=\n\t\tto_number(input.v)\n}\n", [(6, "n")]),
    ("a if {\n\tn\n\t\t:= to_number(input.v)\n}\n", [(6, "n")]),
    ("a if { to_number(input.v, n) }\n", [(5, "n")]),
    ("a if { plus(1, input.v, n) }\n", [(5, "n")]),
    ("a if { to_number(input.v, n) with input.w as 1 }\n", [(5, "n")]),
    ("a if { every c in [input.v] { to_number(c, n) } }\n", [(5, "n")]),
    ("a if { count([1 | _ := to_number(input.v)]) > 0 }\n", [(5, "_")]),
    ("a if { xs := [1 | n := to_number(input.v)]; count(xs) > 0 }\n", [(5, "n")]),
    ("a if { xs := {1 | n := to_number(input.v)}; count(xs) > 0 }\n", [(5, "n")]),
    ('a if { xs := {"k": 1 | n := to_number(input.v)}; count(xs) > 0 }\n', [(5, "n")]),
    ("a if { count([1 | to_number(input.v, n)]) > 0 }\n", [(5, "n")]),
    ("a if { false } else := true if {\n\tn := to_number(input.v)\n}\n", [(6, "n")]),
    # A rule passed last: OPA compares with it, regopy binds over it (true for any result).
    ("lim := 3\n\na if { to_number(input.v, lim) }\n", [(7, "lim")]),
]


@pytest.mark.parametrize(("body", "flagged"), FAIL_OPEN)
def test_each_fail_open_shape_is_flagged(body: str, flagged: list[tuple[int, str]]) -> None:
    assert _flags(body) == flagged


@pytest.mark.parametrize("body", [body for body, _ in FAIL_OPEN])
def test_each_flagged_shape_really_holds_for_a_failing_call_in_regopy(body: str) -> None:
    assert _regopy_holds(body)


@pytest.mark.parametrize(
    "body",
    [
        'a if { [_, n] := split(input.v, "/"); n == "b" }\n',
        "a if { to_number(input.v, n); n > 1 }\n",
        "a if { to_number(input.v, _) }\n",
        "a if { n := 3; to_number(input.v, n) }\n",
        "f(x, y) if { to_number(x, y) }\n",
        'a if { some x in input.xs; startswith("ab", x) }\n',
        "a if { every c in [input.v] { to_number(c) } }\n",
        "a if { every c in [input.v] { n := to_number(c); n > 0 } }\n",
        "a if { count([n | n := to_number(input.v)]) > 0 }\n",
        "a if {\n\tx := input.n\n\t-1 < x\n}\n",
        "a if {\n\txs := [x |\n\t\tsome x in input.xs\n\t\tx > 0\n\t]\n\tcount(xs) > 0\n}\n",
        "a if {\n\tsum := 1 +\n\t\tto_number(input.v)\n\tsum > 2\n}\n",
    ],
)
def test_correct_uses_are_not_flagged(body: str) -> None:
    assert _flags(body) == []


@pytest.mark.parametrize(
    ("numeric", "line"),
    [
        ("numeric(x) if { _ = to_number(x) }\n", 14),
        ("numeric(x) if { every c in [x] { n := to_number(c) } }\n", 14),
        ("numeric(x) if {\n\tn :=\n\t\tto_number(x)\n}\n", 15),
        ("numeric(x) if { to_number(x, n) }\n", 14),
    ],
)
def test_the_audited_policies_are_refused_at_load(
    write_policy: WritePolicy, numeric: str, line: int
) -> None:
    body = (
        'violation contains "replicas label not numeric" if {\n'
        "\tnot numeric(input.hub.metadata.labels.replicas)\n}\n\n" + numeric
    )
    root = write_policy("numeric", body)
    with pytest.raises(PolicyError) as info:
        PolicySet.load([root], include_shipped=False)
    [diag] = info.value.diagnostics
    assert diag.format().startswith(f"{root}/org/numeric/policy.rego:{line}: rule `numeric`")
    assert diag.format().endswith("(SMI5002)")


def test_the_rule_argument_message_says_to_compare(write_policy: WritePolicy) -> None:
    root = write_policy("lim", "lim := 3\n\nviolation contains 1 if to_number(input.v, lim)\n")
    with pytest.raises(PolicyError) as info:
        PolicySet.load([root], include_shipped=False)
    [diag] = info.value.diagnostics
    assert "`lim` names a rule" in diag.message and "`f(x) == lim`" in diag.message


def test_shipped_policies_still_pass_the_scan(repo_root: Path) -> None:
    from smi.policy.modules import read_modules

    assert check(read_modules([repo_root / "policies"])) == []
