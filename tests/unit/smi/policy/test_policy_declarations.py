"""The `package` and `import` lines of a policy as OPA reads them.

- `package acme["my-policy"]` is valid Rego, but the policy was looked up as `acme` and never
  ran: an undefined violation is no violation, so every object was admitted (fail-open). It
  is now refused at load.
- A comment at the end of a `package` or `import` line is valid Rego, but regopy refused the
  module ("Invalid import declaration"), and with it the whole policy set."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_types import RunCli

SPLIT = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: checkout, namespace: shop}
spec:
  service: checkout
  backends: [{service: checkout-v1, weight: 70}, {service: checkout-v2, weight: 30}]
"""
METADATA = "# METADATA\n# title: test policy\n# custom:\n#   code: T0001\n#   enforcement: deny\n"
RULE = 'violation contains {"msg": "always"} if {\n  input.hub.service == "checkout"\n}\n'


def policy(tmp_path: Path, head: str) -> Path:
    d = tmp_path / "p" / "org" / "a"
    d.mkdir(parents=True)
    (d / "policy.rego").write_text(METADATA + head + RULE)
    (tmp_path / "split.yaml").write_text(SPLIT)
    return tmp_path


def admit(run_cli: RunCli, root: Path) -> tuple[int, str, str]:
    return run_cli(
        "admit", "-f", str(root / "split.yaml"), "--policies", str(root / "p"),
        "--no-shipped-policies",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("package", "shown"),
    [
        ('package acme["my-policy"]', 'package acme["my-policy"]'),
        ('package acme.a["x"]', 'package acme.a["x"]'),
        ("package acme.a['x'] # why", "package acme.a['x']"),
    ],
)
def test_a_package_path_with_brackets_is_refused(
    tmp_path: Path, run_cli: RunCli, package: str, shown: str
) -> None:
    root = policy(tmp_path, f"{package}\n\nimport rego.v1\n\n")
    code, out, err = admit(run_cli, root)
    assert (code, out) == (1, "")
    [line] = err.strip().splitlines()
    assert line.startswith(f"{root}/p/org/a/policy.rego:6: {shown}: smictl needs a package path")
    assert line.endswith("(SMI5001)")


@pytest.mark.parametrize(
    "head",
    [
        "package acme.a # the org's\nimport rego.v1\n",
        "package acme.a\nimport rego.v1 # v1 syntax\n",
        "package acme.a\t# tab\n\nimport future.keywords.if  # old\n"
        "import future.keywords.contains\n\n",
        'package acme.a\n\nimport data.lib["x#y"] # quoted\nimport rego.v1\n\n',
    ],
)
def test_a_comment_at_the_end_of_a_declaration_loads_and_denies(
    tmp_path: Path, run_cli: RunCli, head: str
) -> None:
    root = policy(tmp_path, head)
    code, out, err = admit(run_cli, root)
    assert code == 1, err
    assert "[a] always (T0001)" in out + err


LIMIT_POLICY = """\
package acme.a

import rego.v1

default max_backends := 10

allowed(ns) if ns == "shop"

violation contains {"msg": "too many backends"} if {
  count(input.hub.backends) > max_backends
}

violation contains {"msg": "namespace"} if not allowed(input.hub.metadata.namespace)
"""
TWO = '[{"service": "x"}, {"service": "y"}]'


@pytest.mark.parametrize(
    ("imports", "ref"),
    [
        ("import data.acme.a", "a"),
        ("import data.acme.a as lib", "lib"),
        ("import data.acme.a  # the policy\r", "a"),
    ],
)
def test_with_on_an_import_alias_mocks_as_in_opa(
    tmp_path: Path, run_cli: RunCli, imports: str, ref: str
) -> None:
    """`with a.max_backends as 1` (`a` an import's alias) was ignored by regopy: the test ran
    on the real rule, so one expecting the override failed and one expecting none passed."""
    d = tmp_path / "p" / "org" / "a"
    d.mkdir(parents=True)
    (d / "policy.rego").write_text(METADATA + LIMIT_POLICY)
    hub = f'{{"backends": {TWO}, "metadata": {{"namespace": "shop"}}}}'
    (d / "policy_test.rego").write_text(
        f"package acme.a_test\n\n{imports}\nimport rego.v1\n\n"
        f"test_rule_mocked if {{\n  v := {ref}.violation with input.hub as {hub}"
        f" with {ref}.max_backends as 1\n  count(v) == 1\n}}\n\n"
        f"test_unmocked if {{\n  v := {ref}.violation with input.hub as {hub}\n"
        "  count(v) == 0\n}\n\n"
        "no_ns(_) := false\n\n"
        f"test_function_mocked if {{\n  v := {ref}.violation with input.hub as {hub}"
        f" with {ref}.allowed as no_ns\n  count(v) == 1\n}}\n"
    )
    code, out, err = run_cli("policy", "test", str(tmp_path / "p"))
    assert code == 0, out + err
    assert "PASS: 3/3" in out


EXPIRY_POLICY = """\
package acme.expiry

import rego.v1

violation contains {"msg": "expired"} if {
  expires := input.hub.metadata.annotations["acme.io/expires"]
  time.parse_rfc3339_ns(expires) < time.now_ns()
}
"""


@pytest.mark.parametrize(
    ("expires", "denied"),
    [
        ("2020-01-01T00:00:00Z", True),
        ("2020-01-01T00:00:00.5Z", True),
        ("2020-01-01T00:00:00+00:00", True),
        ("2999-01-01T00:00:00Z", False),
        ("not a time", False),
    ],
)
def test_a_utc_time_ending_in_z_parses_as_in_opa(
    tmp_path: Path, run_cli: RunCli, expires: str, denied: bool
) -> None:
    """regopy's time.parse_rfc3339_ns is undefined for `...Z` (a numeric offset parses), so an
    expiry check on a Kubernetes-style timestamp never denied (fail-open)."""
    d = tmp_path / "p" / "org" / "expiry"
    d.mkdir(parents=True)
    (d / "policy.rego").write_text(METADATA + EXPIRY_POLICY)
    split = SPLIT.replace(
        "metadata: {name: checkout, namespace: shop}",
        "metadata: {name: checkout, namespace: shop, "
        f'annotations: {{acme.io/expires: "{expires}"}}}}',
    )
    (tmp_path / "split.yaml").write_text(split)
    code, out, err = admit(run_cli, tmp_path)
    assert code == (1 if denied else 0), out + err
    assert ("[expiry] expired" in out + err) is denied


def test_a_test_may_still_mock_the_built_in(tmp_path: Path, run_cli: RunCli) -> None:
    d = tmp_path / "p" / "org" / "expiry"
    d.mkdir(parents=True)
    (d / "policy.rego").write_text(METADATA + EXPIRY_POLICY)
    (d / "policy_test.rego").write_text(
        "package acme.expiry_test\n\nimport rego.v1\n\n"
        "test_mocked_parse if {\n"
        '  hub := {"metadata": {"annotations": {"acme.io/expires": "x"}}}\n'
        "  count(data.acme.expiry.violation) == 1 with input.hub as hub"
        " with time.parse_rfc3339_ns as 1\n}\n"
    )
    code, out, err = run_cli("policy", "test", str(tmp_path / "p"))
    assert code == 0, out + err
