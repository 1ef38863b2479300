"""METADATA mistakes that would switch a policy off silently are refused at load (SMI5004) with
the file and line of the mistake: an unknown kind, a `violation` defined through a ref head in a
package without METADATA, and YAML that does not parse (one readable line)."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_types import RunCli, WritePolicy

from smi.errors import PolicyError
from smi.policy.policyset import PolicySet

DENY_SPLITS = 'violation contains "no splits" if input.hub.kind == "TrafficSplit"\n'


def _refusal(root: Path) -> str:
    with pytest.raises(PolicyError) as info:
        PolicySet.load([root], include_shipped=False)
    [diag] = info.value.diagnostics
    return diag.format()


@pytest.mark.parametrize(
    ("kinds", "says"),
    [
        ("[TrafficSplits]", "unknown kind 'TrafficSplits': did you mean 'TrafficSplit'?"),
        ("[trafficsplit]", "unknown kind 'trafficsplit': did you mean 'TrafficSplit'?"),
        ("[Pod]", "'Pod' is not a kind policies are evaluated for"),
        ("[TrafficSpilt]", "unknown kind 'TrafficSpilt': one of TrafficTarget, IdentityBinding"),
    ],
)
def test_an_unknown_kind_is_refused_at_its_line(
    write_policy: WritePolicy, kinds: str, says: str
) -> None:
    root = write_policy("typo", DENY_SPLITS, extra=f"kinds: {kinds}")
    line = _refusal(root)
    assert line.startswith(f"{root}/org/typo/policy.rego:6: METADATA custom.kinds: {says}")
    assert line.endswith("(SMI5004)")


def test_an_unknown_inventory_kind_is_refused(write_policy: WritePolicy) -> None:
    root = write_policy(
        "inv", DENY_SPLITS, extra="kinds: [TrafficSplit]\ninventory:\n  - Service\n  - Services"
    )
    assert _refusal(root) == (
        f"{root}/org/inv/policy.rego:9: METADATA custom.inventory: unknown kind 'Services': "
        "did you mean 'Service'? (kinds are case-sensitive, singular) (SMI5004)"
    )


def test_known_kinds_load_and_apply(write_policy: WritePolicy) -> None:
    root = write_policy(
        "ok", DENY_SPLITS, extra="kinds: [TrafficSplit]\ninventory: [Service, Namespace]"
    )
    [policy] = PolicySet.load([root], include_shipped=False).policies
    assert (policy.kinds, policy.inventory) == (("TrafficSplit",), ("Service", "Namespace"))


def test_a_ref_head_violation_without_metadata_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "pol"
    (root / "a").mkdir(parents=True)
    (root / "a" / "u.rego").write_text(
        'package acme2\n\nimport rego.v1\n\nfoo.violation contains "x" if input.hub\n'
    )
    line = _refusal(root)
    assert line.startswith(
        f"{root}/a/u.rego:5: defines `foo.violation` (data.acme2.foo.violation) but no package "
        "here has `# METADATA`, so it would never be enforced"
    )
    assert line.endswith("(SMI5004)")


def test_a_helper_package_with_other_rules_still_loads(tmp_path: Path) -> None:
    root = tmp_path / "pol"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "u.rego").write_text(
        "package lib.u\n\nimport rego.v1\n\nviolations_of(x) := x\nfoo.bar := 1\n"
    )
    assert PolicySet.load([root], include_shipped=False).policies == ()


def test_metadata_yaml_errors_are_one_line_at_the_rego_line(
    write_policy: WritePolicy, run_cli: RunCli
) -> None:
    root = write_policy("bad", DENY_SPLITS, extra="kinds: [TrafficSplit\ninventory: []")
    code, out, err = run_cli("policy", "list", "--no-shipped-policies", "--policies", str(root))
    assert (code, out) == (1, "")
    assert err == (
        f"{root}/org/bad/policy.rego:6: METADATA is not valid YAML: while parsing a flow "
        "sequence, expected ',' or ']', but got ':' (SMI5004)\n"
    )
