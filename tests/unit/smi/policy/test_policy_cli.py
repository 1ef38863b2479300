"""`smictl admit` (every format, exit codes) and `smictl policy test|list` as users run them."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from policy_types import RunCli, WritePolicy

from smi.policy.policyset import shipped_dir

SAMPLES = shipped_dir() / "specs" / "path-regex-anchored" / "samples"
BROKEN_SPLIT = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata:
  name: broken
  namespace: shop
  labels: {owner: me}
spec:
  service: web
  backends:
  - service: web-v1
    weight: -5
"""


# A deny policy of the user's own: the shipped path-regex-anchored only warns (SMI5103), and its
# description tells users who want such regexes refused to copy it with `enforcement: deny`.
STRICT_PATHS = """\
anchored(r) if endswith(r, "$")

anchored(r) if endswith(r, "/")

anchored(r) if endswith(r, ".*")

violation contains {"msg": msg, "path": sprintf("spec.matches[%v].pathRegex", [i])} if {
	some i, m in input.hub.matches
	is_string(m.pathRegex)
	not anchored(m.pathRegex)
	msg := concat("", ["match ", m.name, ": ", m.pathRegex, " is not end-anchored"])
}
"""


@pytest.fixture
def strict(write_policy: WritePolicy) -> tuple[str, str]:
    """`--policies DIR` holding STRICT_PATHS, which denies the disallowed sample (code ACME2)."""
    root = write_policy("strict-paths", STRICT_PATHS, code="ACME2", extra="kinds: [HTTPRouteGroup]")
    return ("--policies", str(root))


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    """One allowed, one denied (by `strict`), one invalid object, one unreadable file."""
    d = tmp_path / "manifests"
    d.mkdir()
    shutil.copy(SAMPLES / "allowed.yaml", d / "a-allowed.yaml")
    shutil.copy(SAMPLES / "disallowed.yaml", d / "b-denied.yaml")
    (d / "c-invalid.yaml").write_text(BROKEN_SPLIT)
    (d / "d-syntax.yaml").write_text("kind: [unclosed\n")
    return d


def test_admit_allowed_files_exit_0(run_cli: RunCli) -> None:
    code, out, err = run_cli("admit", "-f", str(SAMPLES / "allowed.yaml"))
    assert (code, out) == (0, "")
    assert err.startswith("smictl admit: ok: 1 object (1 allowed, 0 denied, 0 invalid)")


def test_admit_text_names_file_line_and_reason_and_exits_1(
    run_cli: RunCli, manifests: Path, strict: tuple[str, str]
) -> None:
    code, out, err = run_cli("admit", "-f", str(manifests), "-q", *strict)
    assert code == 1
    lines = out.splitlines()
    assert f"{manifests}/d-syntax.yaml:1:" in lines[0] and lines[0].endswith("(SMI1002)")
    denied = f"{manifests}/b-denied.yaml:12: spec.matches[0].pathRegex: [strict-paths]"
    assert f"{denied} match admin: /admin is not end-anchored (ACME2)" in lines
    invalid = f"{manifests}/c-invalid.yaml:11: spec.backends[0].weight:"
    assert f"{invalid} must be an integer >= 0 (got -5) (SMI2103)" in lines
    assert "FAILED: 3 objects (1 allowed, 1 denied, 1 invalid, 1 load error)" in err


def test_admit_json_has_a_verdict_per_object(
    run_cli: RunCli, manifests: Path, strict: tuple[str, str]
) -> None:
    code, out, _ = run_cli("admit", "-f", str(manifests), "--format", "json", *strict)
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False
    assert {r["object"]: (r["verdict"], r["code"]) for r in doc["results"]} == {
        "HTTPRouteGroup/shop/api-routes": ("allowed", 200),
        "HTTPRouteGroup/shop/admin-routes": ("denied", 403),
        "TrafficSplit/shop/broken": ("invalid", 422),
    }
    assert doc["summary"]["load_errors"] == 1 and [d["code"] for d in doc["load"]] == ["SMI1002"]


def test_admit_junit_has_a_failing_testcase_per_refused_object(
    run_cli: RunCli, manifests: Path, strict: tuple[str, str]
) -> None:
    code, out, _ = run_cli("admit", "-f", str(manifests), "--format", "junit", *strict)
    root = ET.fromstring(out)
    suite = root.find("testsuite")
    assert code == 1 and suite is not None and suite.get("failures") == "3"
    failures = {
        c.get("name"): c.find("failure").get("type") for c in suite if c.find("failure") is not None
    }  # type: ignore[union-attr]
    assert failures == {
        "load": "load",
        "HTTPRouteGroup shop/admin-routes": "denied",
        "TrafficSplit shop/broken": "invalid",
    }
    denied = next(c for c in suite if c.get("name") == "HTTPRouteGroup shop/admin-routes")
    assert denied.get("file", "").endswith("b-denied.yaml") and denied.get("line") == "2"


def test_admit_sarif_is_structurally_valid_and_points_at_lines(
    run_cli: RunCli, manifests: Path, strict: tuple[str, str]
) -> None:
    code, out, _ = run_cli("admit", "-f", str(manifests), "--format", "sarif", *strict)
    doc = json.loads(out)
    assert code == 1 and doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    [run] = doc["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"] == "smictl"
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning") and result["message"]["text"]
        [location] = result["locations"]
        region = location["physicalLocation"]["region"]
        assert isinstance(region["startLine"], int) and region["startLine"] >= 1
        assert location["physicalLocation"]["artifactLocation"]["uri"]
    by_rule = {(r["ruleId"], r["level"]): r for r in run["results"]}
    denied = by_rule[("ACME2", "error")]["locations"][0]["physicalLocation"]
    assert denied["artifactLocation"]["uri"] == (manifests / "b-denied.yaml").as_uri()
    assert denied["region"]["startLine"] == 12
    assert next(r for r in rules if r["id"] == "ACME2")["shortDescription"]["text"] == (
        "test policy"  # the policy's METADATA title
    )
    # The shipped policy's finding on the same line is a warning, described from its code.
    warned = by_rule[("SMI5103", "warning")]["locations"][0]["physicalLocation"]
    assert warned["region"]["startLine"] == 12
    assert next(r for r in rules if r["id"] == "SMI5103")["shortDescription"]["text"]


def test_admit_github_annotations_point_at_file_and_line(run_cli: RunCli, manifests: Path) -> None:
    code, out, _ = run_cli("admit", "-f", str(manifests), "--format", "github")
    lines = out.splitlines()
    assert code == 1
    where = f"file={manifests}/c-invalid.yaml,line=11,title=SMI2103"
    assert f"::error {where}::spec.backends[0].weight: must be an integer >= 0 (got -5)" in lines
    # The shipped path-regex-anchored warns in place of the built-in SMI2206 (it replaces it).
    assert any(
        x.startswith(f"::warning file={manifests}/b-denied.yaml,line=12,title=SMI5103::")
        for x in lines
    )
    assert not any("title=SMI2206" in x for x in lines)
    assert all(x.startswith(("::error ", "::warning ")) for x in lines)


def test_admit_user_policies_and_no_shipped(run_cli: RunCli, write_policy: WritePolicy) -> None:
    root = write_policy(
        "no-admin",
        'violation contains "no admin routes" if input.hub.metadata.name == "admin-routes"\n',
        code="ACME1",
    )
    args = ("admit", "-f", str(SAMPLES / "disallowed.yaml"), "--no-shipped-policies")
    code, out, _ = run_cli(*args, "--policies", str(root), "-q")
    assert code == 1 and "[no-admin] no admin routes (ACME1)" in out and "SMI5103" not in out
    assert run_cli(*args)[0] == 0


def test_admit_parameters_reach_the_policies(run_cli: RunCli, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("ownerLabel: acme.io/team\n")
    code, out, _ = run_cli(
        "admit", "-f", str(SAMPLES / "allowed.yaml"), "--parameters", str(params)
    )
    assert code == 0 and "has no acme.io/team label (SMI5105)" in out


def test_admit_with_a_broken_policy_is_one_line_and_exit_1(
    run_cli: RunCli, write_policy: WritePolicy
) -> None:
    root = write_policy("broken", "violation contains x if {\n\tx := [1,\n}\n")
    code, out, err = run_cli("admit", "-f", str(SAMPLES / "allowed.yaml"), "--policies", str(root))
    assert (code, out) == (1, "")
    assert err == f"{root}/org/broken/policy.rego:11: this is unclosed (SMI5001)\n"


def test_admit_writes_the_report_to_a_file(
    run_cli: RunCli, tmp_path: Path, strict: tuple[str, str]
) -> None:
    report = tmp_path / "out.sarif"
    code, out, _ = run_cli(
        "admit", "-f", str(SAMPLES / "disallowed.yaml"), "--format", "sarif", "-o", str(report),
        *strict,
    )  # fmt: skip
    doc = json.loads(report.read_text())
    assert code == 1 and out == "" and doc["version"] == "2.1.0"
    assert {(r["ruleId"], r["level"]) for r in doc["runs"][0]["results"]} >= {("ACME2", "error")}


TESTS = """\
test_allows_anchored if {
	count(data.test.anchor.violation) == 0 with input.hub as {"name": "/a$"}
}

test_denies_open if {
	count(data.test.anchor.violation) == 1 with input.hub as {"name": "/a"}
}
"""
POLICY = 'violation contains "open" if not endswith(input.hub.name, "$")\n'


def test_policy_test_prints_opa_style_lines(run_cli: RunCli, write_policy: WritePolicy) -> None:
    root = write_policy("anchor", POLICY, test=TESTS)
    code, out, _ = run_cli("policy", "test", "-v", str(root))
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == f"{root}/org/anchor/policy_test.rego:"
    assert lines[1].startswith("data.test.anchor_test.test_allows_anchored: PASS (")
    assert lines[2].startswith("data.test.anchor_test.test_denies_open: PASS (")
    assert lines[-2:] == ["-" * 80, "PASS: 2/2"]


def test_policy_test_failure_exits_1_and_shows_only_failures(
    run_cli: RunCli, write_policy: WritePolicy
) -> None:
    root = write_policy("anchor", POLICY.replace('"$"', '"/"'), test=TESTS)
    code, out, _ = run_cli("policy", "test", str(root))
    assert code == 1
    assert out.splitlines()[1].startswith("data.test.anchor_test.test_allows_anchored: FAIL (")
    assert "test_denies_open" not in out
    assert out.splitlines()[-2:] == ["PASS: 1/2", "FAIL: 1/2"]


def test_policy_test_broken_rego_is_one_line_and_exit_1(
    run_cli: RunCli, write_policy: WritePolicy
) -> None:
    root = write_policy("anchor", POLICY, test="test_x if {\n\tcount(violation == 0\n}\n")
    code, out, err = run_cli("policy", "test", str(root))
    assert (code, out) == (1, "")
    assert err.startswith(f"{root}/org/anchor/policy_test.rego:") and err.endswith("(SMI5001)\n")
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_policy_test_coverage_and_threshold(run_cli: RunCli, write_policy: WritePolicy) -> None:
    body = POLICY + 'violation contains "empty" if input.hub.name == ""\n'
    root = write_policy("anchor", body, test=TESTS)
    code, out, _ = run_cli("policy", "test", "--coverage", str(root))
    assert code == 0
    assert "COVERAGE: 1/2 rule bodies (50.0%)" in out
    assert f"  not covered: {root}/org/anchor/policy.rego:11: violation" in out.splitlines()
    code, out, _ = run_cli("policy", "test", "--threshold", "80", str(root))
    assert (
        code == 1 and out.splitlines()[-1] == "coverage 50.0% is below the threshold 80% (SMI5009)"
    )


def test_policy_list_shows_the_shipped_policies(run_cli: RunCli) -> None:
    code, out, _ = run_cli("policy", "list", "-o", "json")
    names = {p["name"]: p["enforcement"] for p in json.loads(out)}
    assert code == 0 and names["canary-step"] == "deny" and names["owner-label"] == "warn"
