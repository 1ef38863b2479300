"""`smictl policy list` shows "the policies that would be loaded": a set that `admit` and
`serve` refuse when they load it is refused by `list` too, with the same line."""

from __future__ import annotations

import json
from pathlib import Path

from policy_types import RunCli, WritePolicy

# A Rego v0 partial set: regopy parses it as a v1 partial *object*, which never denies.
V0_SET = """\
# METADATA
# title: v0 syntax
# custom:
#   code: X1
#   enforcement: deny
package a.v0

violation[{"msg": m}] { m := "x" }
"""


def _v0_policies(tmp_path: Path) -> Path:
    root = tmp_path / "v0"
    (root / "a" / "v0").mkdir(parents=True)
    (root / "a" / "v0" / "policy.rego").write_text(V0_SET)
    return root


def test_list_refuses_what_admit_refuses(tmp_path: Path, repo_root: Path, run_cli: RunCli) -> None:
    policies = str(_v0_policies(tmp_path))
    manifests = str(repo_root / "examples" / "mesh")
    admit = run_cli("admit", "-f", manifests, "--no-shipped-policies", "--policies", policies)
    listed = run_cli("policy", "list", "--no-shipped-policies", "--policies", policies)
    assert admit[0] == 1 and "is an object, not a set" in admit[2] and "(SMI5002)" in admit[2]
    assert listed == (1, "", admit[2])


def test_list_refuses_a_policy_that_does_not_compile(
    write_policy: WritePolicy, run_cli: RunCli
) -> None:
    root = write_policy("broken", 'violation contains {"msg": m} if { m := no_such_rule }\n')
    code, out, err = run_cli("policy", "list", "--no-shipped-policies", "--policies", str(root))
    assert (code, out) == (1, "")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("(SMI5002)") and "broken" in lines[0]


def test_list_still_lists_a_good_set(write_policy: WritePolicy, run_cli: RunCli) -> None:
    root = write_policy("good", 'violation contains {"msg": "no"} if { input.hub.kind == "X" }\n')
    code, out, err = run_cli(
        "policy", "list", "--no-shipped-policies", "--policies", str(root), "-o", "json"
    )
    assert (code, err) == (0, "")
    assert [p["name"] for p in json.loads(out)] == ["good"]


def test_list_of_no_policies_is_empty(tmp_path: Path, run_cli: RunCli) -> None:
    assert run_cli("policy", "list", "--no-shipped-policies", "--policies", str(tmp_path)) == (
        0,
        "",
        f"warning: --policies {tmp_path}: no .rego policy files\nno policies\n",
    )


def test_rego_files_that_define_no_violation_are_named(tmp_path: Path, run_cli: RunCli) -> None:
    """A conftest-style `deny` package loads as a helper and checks nothing: the warning said
    "no .rego policy files" beside a directory that holds one."""
    area = tmp_path / "admission" / "trivial"
    area.mkdir(parents=True)
    (area / "policy.rego").write_text(
        "package admission.trivial\n\nimport rego.v1\n\n"
        'deny contains msg if {\n  input.hub.kind == "TrafficSplit"\n  msg := "no splits"\n}\n'
    )
    (area / "policy_test.rego").write_text("package admission.trivial\n\ntest_x if true\n")
    (tmp_path / "lib.rego").write_text("package lib\n\nhelper := 1\n")
    code, out, err = run_cli("policy", "list", "--no-shipped-policies", "--policies", str(tmp_path))
    assert (code, out) == (0, "")
    assert err == (
        f"warning: --policies {tmp_path}: 2 .rego files but no policy: a policy's package "
        "defines `violation`; admission/trivial/policy.rego defines deny, not `violation` "
        "(nor does 1 more)\nno policies\n"
    )
