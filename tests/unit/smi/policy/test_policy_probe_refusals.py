"""What OPA refuses when it compiles a policy, and rego-cpp only reports once a body runs past
its first `input.hub` reference, is refused at load with a file and line (SMI5002): the policy
set is probed with a representative object of each kind a policy applies to. Before, such a
policy loaded and then failed every admission without saying where."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_types import WritePolicy

from smi.errors import PolicyError
from smi.policy.policyset import PolicySet


def _refusal(root: Path) -> str:
    with pytest.raises(PolicyError) as info:
        PolicySet.load([root], include_shipped=False)
    [diag] = info.value.diagnostics
    return diag.format()


def test_an_unknown_function_is_refused_at_its_call(write_policy: WritePolicy) -> None:
    body = "violation contains msg if {\n\tinput.hub\n\tmsg := no_such_fn(input.hub)\n}\n"
    root = write_policy("undef", body, extra="kinds: [TrafficSplit]")
    assert _refusal(root) == (
        f"{root}/org/undef/policy.rego:13: test.undef.violation: Function not found: no_such_fn "
        "(probed with a representative TrafficSplit) (SMI5002)"
    )


def test_a_runaway_recursion_is_refused_at_the_recursive_function(
    write_policy: WritePolicy,
) -> None:
    body = (
        "f(n) := f(n + 1)\n\n"
        'violation contains msg if {\n\tinput.hub\n\tx := f(1)\n\tmsg := sprintf("%v", [x])\n}\n'
    )
    root = write_policy("recur", body)
    line = _refusal(root)
    assert line.startswith(f"{root}/org/recur/policy.rego:10: test.recur.violation: Recursion")
    assert line.endswith("(probed with a representative TrafficTarget) (SMI5002)")


def test_a_wrong_built_in_call_points_at_its_rule_body(write_policy: WritePolicy) -> None:
    body = 'violation contains msg if {\n\tmsg := concat("x")\n}\n'
    root = write_policy("arity", body)
    assert _refusal(root) == (
        f"{root}/org/arity/policy.rego:10: test.arity.violation: evaluation failed (a rule "
        "conflict or a wrong built-in call), in this body of rule `violation` (SMI5002)"
    )


def test_a_policy_for_one_kind_is_probed_with_that_kind_only(write_policy: WritePolicy) -> None:
    # Only a TrafficTarget reaches the unknown function; the policy applies to splits only.
    body = 'violation contains "x" if {\n\tinput.hub.sources\n\tno_such_fn(1)\n}\n'
    root = write_policy("splits", body, extra="kinds: [TrafficSplit]")
    [policy] = PolicySet.load([root], include_shipped=False).policies
    assert policy.kinds == ("TrafficSplit",)


def test_a_conflict_only_some_objects_reach_is_left_to_run_time(
    write_policy: WritePolicy,
) -> None:
    body = 'x := 1 if input.hub\nx := 2 if input.hub\nviolation contains "x" if x\n'
    assert PolicySet.load([write_policy("flaky", body)], include_shipped=False).policies
