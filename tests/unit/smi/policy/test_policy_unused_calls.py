"""A call's result assigned to a local that nothing uses is refused at load (SMI5002): regopy
1.5.2 binds a failing call's error to the variable and lets the body succeed, where OPA makes it
undefined, so `numeric if { n := to_number(x) }` held for "twenty" and a deny policy built on
`not numeric` admitted the object."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_types import RunCli, WritePolicy

from smi.errors import PolicyError
from smi.policy.modules import RegoModule
from smi.policy.policyset import PolicySet
from smi.policy.unused_calls import check

NUMERIC = """
numeric if {
	n := to_number(input.hub.metadata.annotations["acme.io/max-step"])
}

violation contains "acme.io/max-step must be a number" if {
	not numeric
}
"""


def _refusal(root: Path) -> str:
    with pytest.raises(PolicyError) as info:
        PolicySet.load([root], include_shipped=False)
    [diag] = info.value.diagnostics
    return diag.format()


def _flags(body: str) -> list[tuple[int, str]]:
    module = RegoModule("p.rego", "package p\n\nimport rego.v1\n\n" + body, "p", False)
    return [(d.line or 0, d.message.split("`")[3]) for d in check([module])]


def test_the_fail_open_policy_is_refused_naming_the_variable_and_line(
    write_policy: WritePolicy,
) -> None:
    root = write_policy("numeric", NUMERIC)
    line = _refusal(root)
    assert line.startswith(f"{root}/org/numeric/policy.rego:12: rule `numeric`: `n` is assigned")
    assert "own statement (`to_number(x)`)" in line and line.endswith("(SMI5002)")


def test_admit_and_list_refuse_it_with_exit_1(write_policy: WritePolicy, run_cli: RunCli) -> None:
    root = str(write_policy("numeric", NUMERIC))
    code, out, err = run_cli("policy", "list", "--no-shipped-policies", "--policies", root)
    assert (code, out) == (1, "") and "`n` is assigned from a call" in err


def test_the_written_out_form_loads_and_denies_text(write_policy: WritePolicy) -> None:
    fixed = NUMERIC.replace("n := to_number(", "to_number(")
    policies = PolicySet.load([write_policy("numeric", fixed)], include_shipped=False)
    doc = {"hub": {"metadata": {"annotations": {"acme.io/max-step": "twenty"}}}}
    [decision] = policies.evaluate(kind="TrafficSplit", input_for=lambda _: doc)
    assert [v.msg for v in decision.violations] == ["acme.io/max-step must be a number"]


@pytest.mark.parametrize(
    ("body", "flagged"),
    [
        ("a if { n := to_number(input.v) }\n", [(5, "n")]),
        ("a if { n = to_number(input.v) }\n", [(5, "n")]),
        ("a if { [n] := [to_number(input.v)] }\n", [(5, "n")]),
        ("a if { x := 1 / input.v }\n", [(5, "x")]),
        ("a if {\n\tx := to_number(input.v)\n\ty := x\n}\n", [(6, "x")]),
        ("a if { n := to_number(input.v); not n == 3 }\n", [(5, "n")]),
        ("a if { n := to_number(input.v); print(n) }\n", [(5, "n")]),
        ("a if n := to_number(input.v)\n", [(5, "n")]),
    ],
)
def test_every_measured_fail_open_shape_is_flagged(body: str, flagged: list[object]) -> None:
    assert _flags(body) == flagged


@pytest.mark.parametrize(
    "body",
    [
        "a if { n := to_number(input.v); n > 1 }\n",
        "a if { to_number(input.v) }\n",
        "a if { x := to_number(input.v); y := x; y > 1 }\n",
        'v contains msg if { msg := concat("", ["a", input.v]) }\n',
        "f(x) := n if { n := to_number(x) }\n",
        'a if { n := input.v; s := "x := f(y)" }  # x := to_number(z)\n',
        "a if { x := [y | some y in input.xs] }\n",
        "a if {\n\tx := to_number(input.v)\n\tevery y in input.ys { y < x }\n}\n",
    ],
)
def test_correct_uses_are_not_flagged(body: str) -> None:
    assert _flags(body) == []


def test_no_shipped_policy_or_test_is_flagged(repo_root: Path) -> None:
    from smi.policy.modules import read_modules

    assert check(read_modules([repo_root / "policies"])) == []


def test_policy_test_refuses_it_too(write_policy: WritePolicy, run_cli: RunCli) -> None:
    root = write_policy("numeric", NUMERIC, test="test_x if { numeric with input.hub as {} }\n")
    code, _, err = run_cli("policy", "test", str(root))
    assert code == 1 and "rule `numeric`: `n` is assigned" in err


@pytest.mark.parametrize(
    "body",
    [
        'msg := m if {\n\tn := count(input.hub.backends)\n\tm := $"{n} backends"\n}\n',
        "msg := m if {\n\tn := count(input.hub.backends)\n\tm := $`{n} backends`\n}\n",
        'msg := m if {\n\tn := count(input.hub.backends) * 2\n\tm := $"\\\\{x\\\\} {n}"\n}\n',
    ],
)
def test_a_local_read_in_a_template_string_is_used(body: str) -> None:
    """`$"{n} backends"` (OPA 1.12 template strings, which regopy evaluates) reads `n`: the
    string's contents were blanked whole, so `n` was refused as assigned and never used."""
    assert _flags(body) == []


def test_a_local_in_a_plain_string_is_still_unused() -> None:
    body = 'msg := m if {\n\tn := count(input.hub.backends)\n\tm := "{n} backends"\n}\n'
    assert _flags(body) == [(6, "n")]
