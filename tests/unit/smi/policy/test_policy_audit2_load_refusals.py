"""Files a user means to be loaded that smictl never would load are refused, not skipped: an
OPA-style `data.json` next to a policy (a denylist reading it admitted everything) and a
`*_test.rego` that declares a policy. A `path` that is not a string is said, not dropped."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_types import RunCli, WritePolicy

from smi.errors import PolicyError
from smi.policy.engine import outcome_of_value
from smi.policy.policyset import PolicySet

DENYLIST = """
violation contains msg if {
	some b in input.hub.backends
	b.service in data.test.denylist.services
	msg := concat(" ", ["backend", b.service, "is denylisted"])
}
"""


@pytest.mark.parametrize("name", ["data.json", "data.yaml", "data.yml"])
def test_a_data_file_beside_a_policy_is_refused_naming_it(
    write_policy: WritePolicy, name: str
) -> None:
    root = write_policy("denylist", DENYLIST)
    data = root / "org" / "denylist" / name
    data.write_text('{"services": ["evil"]}\n')
    with pytest.raises(PolicyError) as info:
        PolicySet.load([root], include_shipped=False)
    [diag] = info.value.diagnostics
    assert diag.format() == (
        f"{data}: a policy data file is not loaded (OPA would make it data.org.denylist, "
        "smictl leaves that undefined): put its content in the --parameters file and read it "
        "as data.parameters (SMI5004)"
    )


def test_admit_list_and_test_all_refuse_a_data_file(
    write_policy: WritePolicy, run_cli: RunCli
) -> None:
    root = write_policy("denylist", DENYLIST, test="test_x if { true }\n")
    (root / "data.yaml").write_text("services: [evil]\n")
    for argv in (
        ("policy", "list", "--no-shipped-policies", "--policies", str(root)),
        ("policy", "test", str(root)),
    ):
        code, _, err = run_cli(*argv)
        assert code == 1 and f"{root}/data.yaml: a policy data file is not loaded" in err


def test_other_json_files_are_no_data_files(write_policy: WritePolicy) -> None:
    root = write_policy("denylist", DENYLIST)
    (root / "org" / "denylist" / "samples").mkdir()
    (root / "org" / "denylist" / "samples" / "allowed.json").write_text("{}\n")
    (root / "org" / "denylist" / "mydata.json").write_text("{}\n")
    assert [p.name for p in PolicySet.load([root], include_shipped=False).policies] == ["denylist"]


def test_a_test_named_file_that_declares_a_policy_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "acme" / "x"
    d.mkdir(parents=True)
    (d / "deny_test.rego").write_text(
        "# METADATA\n# title: quick\n# custom:\n#   code: ACME0212\n#   enforcement: deny\n"
        'package acme.quick2\n\nimport rego.v1\n\nviolation contains "no" if true\n'
    )
    with pytest.raises(PolicyError) as info:
        PolicySet.load([tmp_path], include_shipped=False)
    [diag] = info.value.diagnostics
    assert diag.format() == (
        f"{d / 'deny_test.rego'}:1: has METADATA and defines `violation`, but files named "
        "`*_test.rego` are test modules and never loaded as policies: rename it (`policy.rego`) "
        "(SMI5004)"
    )


def test_ordinary_test_modules_still_load(write_policy: WritePolicy) -> None:
    root = write_policy(
        "owner",
        'violation contains "no owner" if not input.hub.metadata.labels.owner\n',
        test="test_denies if { count(data.test.owner.violation) == 1 with input.hub as {} }\n",
    )
    assert len(PolicySet.load([root], include_shipped=False).policies) == 1


def test_a_path_that_is_not_a_string_is_said_in_the_message() -> None:
    outcome = outcome_of_value([{"msg": "bad weight", "path": ["spec", "backends", 0]}])
    [violation] = outcome.violations
    assert violation.path == ""
    assert violation.msg == (
        'bad weight (the policy\'s `path` ["spec", "backends", 0] is not a string and was ignored)'
    )


def test_a_string_or_missing_path_is_unchanged() -> None:
    outcome = outcome_of_value([{"msg": "a", "path": "spec.x"}, {"msg": "b"}, "c"])
    assert [(v.msg, v.path) for v in outcome.violations] == [("b", ""), ("c", ""), ("a", "spec.x")]
