"""METADATA `custom.replaces`: a policy that reports what a built-in check reports, at the same
field, takes that check's place in admission. The shipped path-regex-anchored replaces SMI2206,
so `pathRegex: /api` gets one warning, not the same one twice; a deny copy of it one denial.
A `replaces` value that would replace nothing is refused at load, at its line (SMI5004)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from policy_types import RunCli, WritePolicy

from smi.errors import PolicyError
from smi.policy.admission import AdmissionResult, admit
from smi.policy.policyset import PolicySet, shipped_dir

FIELD = "spec.matches[0].pathRegex"
GROUP = {
    "apiVersion": "specs.smi-spec.io/v1alpha4",
    "kind": "HTTPRouteGroup",
    "metadata": {"name": "api-routes", "namespace": "shop", "labels": {"owner": "team"}},
    "spec": {"matches": [{"name": "api", "pathRegex": "/api", "methods": ["GET"]}]},
}
GROUP_YAML = """\
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata:
  name: api-routes
  namespace: shop
  labels: {owner: team}
spec:
  matches:
  - name: api
    pathRegex: /api
    methods: [GET]
"""
SELF_SPLIT = {
    "apiVersion": "split.smi-spec.io/v1alpha4",
    "kind": "TrafficSplit",
    "metadata": {"name": "self", "namespace": "shop", "labels": {"owner": "team"}},
    "spec": {"service": "web", "backends": [{"service": "web", "weight": 1}]},
}
SHIPPED_POLICY = shipped_dir() / "specs" / "path-regex-anchored" / "policy.rego"
DENY_SPLITS = 'violation contains "no splits" if input.hub.kind == "TrafficSplit"\n'
# A complete rule with two values: evaluating it fails (the engine's error, not a violation).
FAILS = 'x := 1 if input.hub\n\nx := 2 if input.hub\n\nviolation contains "never" if x == 3\n'


def review(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "uid": "u-1",
        "kind": {"group": "", "version": "", "kind": obj["kind"]},
        "namespace": "shop",
        "name": obj["metadata"]["name"],
        "operation": "CREATE",
        "userInfo": {"username": "alice"},
        "object": obj,
    }


def at_field(result: AdmissionResult) -> list[tuple[str, str]]:
    """(code, severity) of every finding at FIELD."""
    return [(d.code, d.severity) for d in result.diagnostics if d.path == FIELD]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "group.yaml"
    path.write_text(GROUP_YAML)
    return path


@pytest.fixture
def deny_copy(tmp_path: Path) -> Path:
    """The shipped policy as its METADATA description tells users to copy it: `deny`."""
    d = tmp_path / "mine" / "specs" / "path-regex-anchored"
    d.mkdir(parents=True)
    source = SHIPPED_POLICY.read_text()
    assert source.count("enforcement: warn") == 1
    (d / "policy.rego").write_text(source.replace("enforcement: warn", "enforcement: deny"))
    return tmp_path / "mine"


def test_the_shipped_policies_warn_once_about_an_unanchored_path_regex(
    shipped: PolicySet,
) -> None:
    result = admit(review(GROUP), shipped)
    assert result.allowed and at_field(result) == [("SMI5103", "warning")]
    assert result.warnings == (
        "[path-regex-anchored] match api: /api also matches longer paths (/api-admin); "
        "end it with $, / or .*",
    )


def test_admit_with_the_shipped_policies_prints_one_warning_for_the_field(
    run_cli: RunCli, manifest: Path
) -> None:
    code, out, _ = run_cli("admit", "-f", str(manifest), "--format", "json")
    [result] = json.loads(out)["results"]
    assert code == 0 and result["verdict"] == "allowed"
    assert [(d["code"], d["path"]) for d in result["diagnostics"]] == [("SMI5103", FIELD)]
    assert len(result["warnings"]) == 1 and "SMI2206" not in json.dumps(result)


def test_without_the_shipped_policies_the_built_in_warning_stays(
    run_cli: RunCli, manifest: Path
) -> None:
    code, out, _ = run_cli(
        "admit", "-f", str(manifest), "--format", "json", "--no-shipped-policies"
    )
    [result] = json.loads(out)["results"]
    assert code == 0 and [(d["code"], d["path"]) for d in result["diagnostics"]] == [
        ("SMI2206", FIELD)
    ]
    assert result["warnings"] == [
        f"{FIELD}: '/api' also matches longer paths (/api-admin); end it with $, / or .* (SMI2206)"
    ]


def test_validate_runs_no_policies_and_keeps_the_built_in_warning(
    run_cli: RunCli, manifest: Path
) -> None:
    code, out, _ = run_cli("validate", "-f", str(manifest))
    assert code == 0 and out.count("SMI2206") == 1 and "SMI5103" not in out


def test_a_deny_copy_gives_one_denial_and_no_built_in_warning(
    run_cli: RunCli, manifest: Path, deny_copy: Path
) -> None:
    args = ("admit", "-f", str(manifest), "--no-shipped-policies", "--policies", str(deny_copy))
    code, out, _ = run_cli(*args, "--format", "json")
    [result] = json.loads(out)["results"]
    assert code == 1 and (result["verdict"], result["code"]) == ("denied", 403)
    assert result["messages"] == [
        "[path-regex-anchored] match api: /api also matches longer paths (/api-admin); "
        "end it with $, / or .*"
    ]
    assert result["warnings"] == [] and "SMI2206" not in json.dumps(result)
    assert [(d["code"], d["severity"]) for d in result["diagnostics"]] == [("SMI5103", "error")]


def test_a_replacing_policy_that_does_not_apply_to_the_kind_leaves_the_warning(
    write_policy: WritePolicy,
) -> None:
    root = write_policy(
        "splits-only",
        DENY_SPLITS,
        enforcement="warn",
        extra="kinds: [TrafficSplit]\nreplaces: [SMI2206]",
    )
    result = admit(review(GROUP), PolicySet.load([root], include_shipped=False))
    assert at_field(result) == [("SMI2206", "warning")]


def test_a_replacing_policy_that_fails_leaves_the_warning(write_policy: WritePolicy) -> None:
    root = write_policy("broken", FAILS, enforcement="warn", extra="replaces: [SMI2206]")
    result = admit(review(GROUP), PolicySet.load([root], include_shipped=False))
    assert at_field(result) == [("SMI2206", "warning")]
    assert any(w.startswith("[broken] policy evaluation failed") for w in result.warnings)


def test_only_the_codes_named_are_replaced(write_policy: WritePolicy) -> None:
    root = write_policy("quiet", DENY_SPLITS, enforcement="warn", extra="replaces: [SMI2206]")
    result = admit(review(SELF_SPLIT), PolicySet.load([root], include_shipped=False))
    assert "SMI2106" in {d.code for d in result.diagnostics}
    assert any(w.endswith("(SMI2106)") for w in result.warnings)


def test_policy_list_shows_what_a_policy_replaces(run_cli: RunCli) -> None:
    code, out, _ = run_cli("policy", "list", "-o", "json")
    by_name = {p["name"]: p for p in json.loads(out)}
    assert code == 0 and by_name["path-regex-anchored"]["replaces"] == ["SMI2206"]
    assert by_name["canary-step"]["replaces"] == []


def _refusal(root: Path) -> str:
    with pytest.raises(PolicyError) as info:
        PolicySet.load([root], include_shipped=False)
    [diag] = info.value.diagnostics
    return diag.format()


# The METADATA block write_policy writes: `# METADATA` on line 1, the extra keys from line 6.
@pytest.mark.parametrize(
    ("extra", "line", "says"),
    [
        (
            "replaces: SMI2206",
            6,
            "METADATA `custom.replaces` must be a list of built-in codes, e.g. [SMI2206]",
        ),
        (
            "kinds: [TrafficSplit]\nreplaces: [2206]",
            7,
            "METADATA `custom.replaces` must be a list of built-in codes, e.g. [SMI2206]",
        ),
        (
            "replaces:\n  - SMI2206\n  - SMI2260",
            8,
            "METADATA custom.replaces: unknown code 'SMI2260' (`smictl explain-code` lists "
            "the codes)",
        ),
        (
            "replaces:\n  - smi2206",
            7,
            "METADATA custom.replaces: unknown code 'smi2206': did you mean 'SMI2206'? "
            "(`smictl explain-code` lists the codes)",
        ),
        (
            "replaces: [SMI5103]",
            6,
            "METADATA custom.replaces: SMI5103 is not a code of the built-in checks (SMI2xxx, "
            "SMI3xxx), so there is nothing for the policy to replace",
        ),
    ],
)
def test_a_bad_replaces_value_is_refused_at_its_line(
    write_policy: WritePolicy, extra: str, line: int, says: str
) -> None:
    root = write_policy("bad", DENY_SPLITS, extra=extra)
    assert _refusal(root) == f"{root}/org/bad/policy.rego:{line}: {says} (SMI5004)"
