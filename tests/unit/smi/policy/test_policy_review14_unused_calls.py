"""The load-time scan for unused call results (SMI5002), review 14: it recursed once per bracket
level, so a valid policy nesting 500 brackets (`x := [[[...1...]]]`) stopped `smictl admit`
with "internal error: RecursionError"; and it let through shapes regopy 1.5.2 takes as *true*
when the call fails (OPA: undefined): `to_number(x) = n`, `some n` before `n = to_number(x)`,
and a nested body's local hidden by a same-named local of a sibling or a later statement."""

from __future__ import annotations

import pytest
from policy_types import RunCli, WritePolicy

from smi.errors import PolicyError
from smi.policy.modules import RegoModule
from smi.policy.policyset import PolicySet
from smi.policy.unused_calls import check

HEAD = "package p\n\nimport rego.v1\n\n"


def _flags(body: str) -> list[tuple[int, str]]:
    module = RegoModule("p.rego", HEAD + body, "p", False)
    return [(d.line or 0, d.message.split("`")[3]) for d in check([module])]


def _regopy_answers(body: str) -> str:
    """What regopy answers for `a` when input.v = "twenty" (a failing `to_number`)."""
    from regopy import Interpreter

    rego = Interpreter()
    rego.add_module("p", HEAD + body)
    rego.set_input({"v": "twenty"})
    return str(rego.query("data.p.a"))


def _brackets(depth: int, inner: str) -> str:
    return "[" * depth + inner + "]" * depth


def _comprehensions(depth: int, inner: str) -> str:
    return "[1 | " * depth + inner + "]" * depth


@pytest.mark.parametrize("depth", [500, 5000])
def test_deeply_nested_brackets_are_read_without_recursion(depth: int) -> None:
    assert _flags(f"a if {{\n\tx := {_brackets(depth, '1')}\n\tcount(x) > 0\n}}\n") == []


@pytest.mark.parametrize("depth", [500, 5000])
def test_a_call_deep_inside_brackets_is_still_seen(depth: int) -> None:
    body = f"a if {{\n\tx := {_brackets(depth, 'to_number(input.v)')}\n}}\n"
    assert _flags(body) == [(6, "x")]


@pytest.mark.parametrize("depth", [500, 1000])
def test_deeply_nested_bodies_are_read_to_the_innermost(depth: int) -> None:
    fine = f"a if {{\n\tx := {_comprehensions(depth, 'true')}\n\tcount(x) > 0\n}}\n"
    assert _flags(fine) == []
    inner = _comprehensions(depth, "v := to_number(input.v)")
    unused = f"a if {{\n\tx := {inner}\n\tcount(x) > 0\n}}\n"
    assert _flags(unused) == [(6, "v")]
    every = "a if {\n" + "every c in input.xs {\n" * depth + "c > 1\n" + "}\n" * depth + "}\n"
    assert _flags(every) == []


def test_a_long_chain_of_assignments_is_followed_without_recursion() -> None:
    chain = "".join(f"\tv{i + 1} := v{i}\n" for i in range(2000))
    start = "a if {\n\tv0 := to_number(input.v)\n" + chain
    assert _flags(start + "}\n") == [(6, "v0")]
    assert _flags(start + "\tv2000 > 1\n}\n") == []


def test_bodies_nested_past_the_bound_are_refused_in_one_line(write_policy: WritePolicy) -> None:
    body = (
        f"violation contains 1 if {{\n\tx := {_comprehensions(5000, 'true')}\n\tcount(x) > 0\n}}\n"
    )
    root = write_policy("deep", body)
    with pytest.raises(PolicyError) as info:
        PolicySet.load([root], include_shipped=False)
    [diag] = info.value.diagnostics
    assert diag.format() == (
        f"{root}/org/deep/policy.rego:11: rule `violation`: `every` and comprehension bodies "
        "nested more than 1000 deep, too deep to check for unused calls (and past what the "
        "embedded engine, regopy, evaluates: about 500): move the inner ones into rules or "
        "functions of their own (SMI5002)"
    )


@pytest.mark.parametrize(
    "inner",
    [_brackets(500, "1"), _brackets(5000, "1"), _comprehensions(5000, "true")],
    ids=["brackets-500", "brackets-5000", "bodies-5000"],
)
def test_policy_list_loads_or_refuses_deep_nesting_in_one_line(
    write_policy: WritePolicy, run_cli: RunCli, inner: str
) -> None:
    root = write_policy(
        "deep", f'violation contains "m" if {{\n\tx := {inner}\n\tcount(x) > 5\n}}\n'
    )
    code, out, err = run_cli("policy", "list", "--no-shipped-policies", "--policies", str(root))
    assert "internal error" not in err and "Traceback" not in err
    if inner == _brackets(500, "1"):
        assert (code, err) == (0, "") and "deep" in out
    else:  # loaded, or refused with one line (the child compiling it may run out of memory)
        assert code == 0 or (code == 1 and err.count("\n") == 1 and "(SMI5002)" in err)


FAIL_OPEN = [
    # A call on the left of `=`, a new variable on the right: unification binds it.
    ("a if { to_number(input.v) = n }\n", [(5, "n")]),
    ("a if { to_number(input.v) = _ }\n", [(5, "_")]),
    ("a if { to_number(input.v) = n with input.w as 1 }\n", [(5, "n")]),
    # `some n` declares, it reads nothing.
    ("a if { some n; n = to_number(input.v) }\n", [(5, "n")]),
    ("a if {\n\tsome n\n\tn = to_number(input.v)\n}\n", [(7, "n")]),
    ("a if { some n; to_number(input.v, n) }\n", [(5, "n")]),
    # `some n in` after `n := ...` declares another `n`.
    ("a if { n := to_number(input.v); some n in [input.v] }\n", [(5, "n")]),
    # A nested body's own local, and a same-named local elsewhere in the rule.
    ("a if { every c in [input.v] { v := to_number(c) }; some v in [1] }\n", [(5, "v")]),
    ("a if { every c in [input.v] { v := to_number(c) }; v := 3 }\n", [(5, "v")]),
    ("a if { every c in [input.v] { n := to_number(c) }; every n in [1] { n > 0 } }\n", [(5, "n")]),
    (
        "a if {\n\txs := [1 | some c in [input.v]; v := to_number(c)]\n\tcount(xs) > 0\n"
        "\tys := [v | some v in [1]]\n\tcount(ys) > 0\n}\n",
        [(6, "v")],
    ),
    ("a if { xs := [1 | v = to_number(input.v)]; count(xs) > 0; v := 3 }\n", [(5, "v")]),
    ("a if { xs := [1 | v := to_number(input.v)]; count(xs) > 0; v := 2; v > 1 }\n", [(5, "v")]),
    ("a if { some v; xs := [1 | v = to_number(input.v)]; count(xs) > 0 }\n", [(5, "v")]),
]


@pytest.mark.parametrize(("body", "flagged"), FAIL_OPEN)
def test_each_fail_open_shape_is_flagged(body: str, flagged: list[tuple[int, str]]) -> None:
    assert _flags(body) == flagged


@pytest.mark.parametrize("body", [body for body, _ in FAIL_OPEN])
def test_each_flagged_shape_really_holds_for_a_failing_call_in_regopy(body: str) -> None:
    assert _regopy_answers(body) == '{"expressions":[true]}'


SAFE = [
    # `=` against a rule, an argument or a bound local compares: undefined for "twenty".
    "lim := 3\n\na if { to_number(input.v) = lim }\n",
    "lim := 3\n\na if { lim = to_number(input.v) }\n",
    "a if { n := 3; to_number(input.v) = n }\n",
    "f(x, y) if { to_number(x) = y }\n\na if { f(input.v, 3) }\n",
    "a if { some n; n = to_number(input.v); n > 1 }\n",
    "a if { some n in [input.v]; n = to_number(input.v) }\n",
    # An enclosing body's local, bound before the nested body, is the nested body's too.
    "a if { v := 3; xs := [1 | v = to_number(input.v)]; count(xs) > 0 }\n",
    "a if { xs := [v | some c in [input.v]; v := to_number(c)]; count(xs) > 0 }\n",
    "a if { n := to_number(input.v); every x in [1] { x < n } }\n",
]


@pytest.mark.parametrize("body", SAFE)
def test_correct_uses_are_not_flagged(body: str) -> None:
    assert _flags(body) == []


@pytest.mark.parametrize("body", SAFE)
def test_each_correct_use_is_undefined_for_a_failing_call_in_regopy(body: str) -> None:
    assert _regopy_answers(body) == "undefined"


def test_the_audited_unification_is_refused_at_load(write_policy: WritePolicy) -> None:
    body = (
        'violation contains "replicas label not numeric" if {\n'
        "\tnot numeric(input.hub.metadata.labels.replicas)\n}\n\n"
        "numeric(x) if { to_number(x) = n }\n"
    )
    root = write_policy("numeric", body)
    with pytest.raises(PolicyError) as info:
        PolicySet.load([root], include_shipped=False)
    [diag] = info.value.diagnostics
    assert diag.format().startswith(f"{root}/org/numeric/policy.rego:14: rule `numeric`: `n` is")
    assert diag.format().endswith("(SMI5002)")


@pytest.mark.parametrize(
    "body",
    [
        'a if { y := {"k": to_number(input.v)}; y.k == 1 }\n',
        "f(_) := true\n\na if { f(to_number(input.v)) }\n",
        "a if { n := to_number(input.v); is_null(n) == false }\n",
        "a if { ys := [[w | w := v] | some c in [input.v]; v := to_number(c)]; count(ys) > 0 }\n",
    ],
)
def test_the_blind_spots_the_docs_list_as_pitfalls_are_real(body: str) -> None:
    """docs/policy-input.md lists these as shapes the scan cannot see: each holds in regopy for
    a failing call and loads. One the scan learns to refuse leaves the pitfalls table."""
    assert _regopy_answers(body) == '{"expressions":[true]}'
    assert _flags(body) == []
