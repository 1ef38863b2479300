"""The embedded engine: compiled once, undefined = no violation, errors never crash the caller."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_types import WritePolicy

from smi.errors import PolicyError
from smi.policy.engine import EvalOutcome, Violation, outcome_of_output
from smi.policy.policyset import PolicySet

OWNER = """
violation contains {"msg": msg, "path": "metadata.labels"} if {
	not input.hub.metadata.labels.owner
	msg := sprintf("%s has no owner", [input.hub.metadata.name])
}
"""


def hub(labels: dict[str, str]) -> dict[str, object]:
    return {"hub": {"kind": "TrafficSplit", "metadata": {"name": "s", "labels": labels}}}


def load(root: Path) -> PolicySet:
    return PolicySet.load([root], include_shipped=False)


def load_error(root: Path) -> str:
    with pytest.raises(PolicyError) as info:
        load(root)
    assert len(info.value.diagnostics) == 1
    return info.value.diagnostics[0].format()


def test_a_good_policy_reports_violations_with_message_and_path(write_policy: WritePolicy) -> None:
    policies = load(write_policy("owner", OWNER))
    [decision] = policies.evaluate(kind="TrafficSplit", input_for=lambda _: hub({}))
    assert decision.violations == (Violation(msg="s has no owner", path="metadata.labels"),)
    [clean] = policies.evaluate(kind="TrafficSplit", input_for=lambda _: hub({"owner": "me"}))
    assert clean.violations == () and clean.error is None


def test_metadata_gives_name_code_enforcement_and_kinds(write_policy: WritePolicy) -> None:
    root = write_policy(
        "owner", OWNER, code="ACME42", enforcement="warn", extra="kinds: [TrafficSplit]"
    )
    [info] = load(root).policies
    assert (info.name, info.code, info.enforcement, info.kinds) == (
        "owner",
        "ACME42",
        "warn",
        ("TrafficSplit",),
    )
    assert info.entrypoint == "test/owner/violation"


def test_kinds_filter_skips_other_kinds(write_policy: WritePolicy) -> None:
    policies = load(write_policy("owner", OWNER, extra="kinds: [TrafficTarget]"))
    assert policies.evaluate(kind="TrafficSplit", input_for=lambda _: hub({})) == []


def test_undefined_is_no_violation() -> None:
    assert outcome_of_output(True, "undefined") == EvalOutcome()
    assert outcome_of_output(True, '{"expressions":[[]]}') == EvalOutcome()
    assert outcome_of_output(True, '{"expressions":[false]}') == EvalOutcome()


def test_a_violation_set_of_strings_or_objects_is_read() -> None:
    out = outcome_of_output(True, '{"expressions":[["b", {"msg": "a", "path": "spec"}]]}')
    assert out.violations == (Violation("b"), Violation("a", "spec"))


def test_results_that_are_not_violation_sets_are_errors() -> None:
    assert outcome_of_output(False, "<error>").error is not None
    assert "Function not found" in str(
        outcome_of_output(True, "(error\n  (errormsg 23:Function not found: foo))").error
    )
    assert "no string" in str(outcome_of_output(True, '{"expressions":[[{"m": 1}]]}').error)
    assert "malformed JSON" in str(outcome_of_output(True, '{"expressions":[["a"b"]]}').error)


def test_a_rule_conflict_at_run_time_is_an_error_not_a_crash(write_policy: WritePolicy) -> None:
    body = """
    level := "low" if input.hub.low
    level := "high" if input.hub.high
    violation contains {"msg": level} if level
    """
    policies = load(write_policy("conflict", body))
    [ok] = policies.evaluate(kind="X", input_for=lambda _: {"hub": {"low": True}})
    assert ok.violations == (Violation("low"),)
    [bad] = policies.evaluate(kind="X", input_for=lambda _: {"hub": {"low": True, "high": True}})
    assert bad.error is not None and bad.violations == ()


def test_parse_error_is_one_line_with_file_and_line(write_policy: WritePolicy) -> None:
    root = write_policy("broken", 'violation contains {"msg": m} if {\n\tm := [1,\n}\n')
    assert load_error(root) == f"{root}/org/broken/policy.rego:11: this is unclosed (SMI5001)"


def test_unknown_function_is_a_compile_error_at_its_call(write_policy: WritePolicy) -> None:
    root = write_policy("unknown", 'violation contains {"msg": m} if {\n\tm := nope(1)\n}\n')
    assert load_error(root) == (
        f"{root}/org/unknown/policy.rego:11: test.unknown.violation: Function not found: nope "
        "(SMI5002)"
    )


def test_duplicate_default_fails_compilation_at_the_second_default(
    write_policy: WritePolicy,
) -> None:
    root = write_policy("dup", 'default x := 1\ndefault x := 2\nviolation contains "a" if x\n')
    assert load_error(root) == f"{root}/org/dup/policy.rego:11: Multiple default rules (SMI5002)"


def test_rego_v0_partial_set_is_refused(write_policy: WritePolicy) -> None:
    root = write_policy("old", 'violation[{"msg": m}] {\n\tm := "x"\n}\n')
    message = load_error(root)
    assert "`violation` is an object, not a set" in message and message.endswith("(SMI5002)")


def test_missing_or_wrong_metadata_is_smi5004(write_policy: WritePolicy) -> None:
    root = write_policy("bare", OWNER, with_metadata=False)
    assert load_error(root) == (
        f"{root}/org/bare/policy.rego:1: defines `violation` but has no `# METADATA` block "
        "before `package` (SMI5004)"
    )
    root = write_policy("block", OWNER, root="other", enforcement="block")
    assert "must be deny or warn, not 'block'" in load_error(root)


def test_helper_packages_without_metadata_are_libraries(
    write_policy: WritePolicy, tmp_path: Path
) -> None:
    root = write_policy("uses-lib", 'violation contains "lib says no" if data.lib.helpers.no\n')
    (root / "lib").mkdir()
    (root / "lib" / "helpers.rego").write_text("package lib.helpers\n\nno := true\n")
    [decision] = load(root).evaluate(kind="X", input_for=lambda _: {})
    assert decision.violations == (Violation("lib says no"),)


def test_parameters_reach_data_parameters(write_policy: WritePolicy) -> None:
    root = write_policy(
        "param", "violation contains data.parameters.word if data.parameters.word\n"
    )
    policies = PolicySet.load([root], include_shipped=False, parameters={"word": "hello"})
    [decision] = policies.evaluate(kind="X", input_for=lambda _: {})
    assert decision.violations == (Violation("hello"),)


def test_test_files_are_not_part_of_the_admission_set(write_policy: WritePolicy) -> None:
    root = write_policy("owner", OWNER, test="test_x if { false }\n")
    policies = load(root)
    assert [m.name.endswith("_test.rego") for m in policies.modules] == [False]


def test_data_api_answers_like_opa(write_policy: WritePolicy) -> None:
    policies = load(write_policy("owner", OWNER))
    assert policies.data_api("test/owner/violation", hub({})) == (
        200,
        {"result": [{"msg": "s has no owner", "path": "metadata.labels", "details": None}]},
    )
    assert policies.data_api("/test/owner/violation", hub({"owner": "x"})) == (200, {"result": []})
    assert policies.data_api("test/other/allow", hub({})) == (200, {})


def test_data_api_reports_an_evaluation_error_as_500(write_policy: WritePolicy) -> None:
    body = 'x := 1 if input.hub\nx := 2 if input.hub\nviolation contains "x" if x\n'
    status, answer = load(write_policy("conflict", body)).data_api(
        "test/conflict/violation", hub({})
    )
    assert status == 500 and answer["code"] == "internal_error" and answer["message"]


def test_a_missing_policy_directory_is_smi5010(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load(tmp_path / "nope")
    assert (
        info.value.diagnostics[0].format()
        == f"{tmp_path}/nope: no such policy directory or file (SMI5010)"
    )
