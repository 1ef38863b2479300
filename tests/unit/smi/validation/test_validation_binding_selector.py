"""An IdentityBinding's podLabelSelector names pods, not identities, and smictl skips it: the
binding says so where it is checked (SMI2411), in `validate` and `admit --strict` alike, not
only when it is compiled, because a binding with only a selector allows nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from validation_helpers import findings, run_checks

from smi.cli import main

BINDING = """\
apiVersion: access.smi-spec.io/v1alpha4
kind: IdentityBinding
metadata: {{name: web, namespace: shop}}
spec:
  schemes:
{schemes}
"""
TARGET = """\
---
apiVersion: access.smi-spec.io/v1alpha4
kind: TrafficTarget
metadata: {name: tt, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  rules: [{kind: TCPRoute, name: tcp}]
  sources: [{kind: IdentityBinding, group: access.smi-spec.io, name: web, namespace: shop}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: tcp, namespace: shop}
spec: {matches: {ports: []}}
"""
SELECTOR = "    podLabelSelector: {matchLabels: {app: web}}"
ONLY_SELECTOR = BINDING.format(schemes=SELECTOR) + TARGET


def test_a_binding_with_only_a_selector_is_said_to_allow_nothing() -> None:
    [d] = run_checks(ONLY_SELECTOR, strict=True)
    assert (d.code, d.path, d.severity) == (
        "SMI2411",
        "spec.schemes.podLabelSelector",
        "warning",
    )
    assert d.message == (
        "podLabelSelector names pods, not identities: smictl skips it, so this binding names "
        "no identity, and a TrafficTarget allows nothing through it"
    )


def test_a_selector_beside_identities_is_said_to_be_skipped() -> None:
    text = BINDING.format(
        schemes=f"{SELECTOR}\n    spiffeIdentities: [cluster.local/ns/shop/sa/web]"
    )
    [d] = run_checks(text)
    assert (d.code, d.path) == ("SMI2411", "spec.schemes.podLabelSelector")
    assert d.message.endswith(
        "smictl skips it, so only serviceAccount and spiffeIdentities name identities here"
    )


@pytest.mark.parametrize(
    "schemes",
    ["    serviceAccount: web", "    spiffeIdentities: [cluster.local/ns/shop/sa/web]"],
)
def test_schemes_smictl_enforces_get_no_warning(schemes: str) -> None:
    assert findings(run_checks(BINDING.format(schemes=schemes) + TARGET)) == []


def test_admit_strict_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "binding.yaml"
    path.write_text(ONLY_SELECTOR)
    code = main(["admit", "--strict", "--no-shipped-policies", "-f", str(path)])
    out, err = capsys.readouterr()
    assert code == 0  # a warning: the object is admitted, and says what it does not do
    assert f"{path}:6: warning: spec.schemes.podLabelSelector: podLabelSelector names" in out
    assert out.count("(SMI2411)") == 1
    assert err.endswith("0 invalid), 1 warning, 0 policies\n")
