"""`smictl admit` on a set with two different copies of a Service: `validate` refuses it
(SMI3008) and so does `smictl apply`, but admit grouped problems by SMI object and dropped the
ones of context objects, so CI passed a set whose MeshPolicy depends on the order of its
files."""

from __future__ import annotations

from pathlib import Path

from policy_types import RunCli

SPLIT = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s, namespace: shop, labels: {owner: team}}
spec:
  service: api
  backends: [{service: api-v1, weight: 50}, {service: api-v2, weight: 50}]
---
apiVersion: v1
kind: Service
metadata: {name: api-v2, namespace: shop}
spec: {selector: {app: api}, ports: [{port: 80}]}
"""
OTHER_COPY = """\
apiVersion: v1
kind: Service
metadata: {name: api-v2, namespace: shop}
spec: {selector: {app: api}, ports: [{port: 9090}]}
"""


def test_two_different_copies_of_a_service_fail_admit_once(tmp_path: Path, run_cli: RunCli) -> None:
    base, other = tmp_path / "base.yaml", tmp_path / "other.yaml"
    base.write_text(SPLIT, encoding="utf-8")
    other.write_text(OTHER_COPY, encoding="utf-8")
    code, out, err = run_cli("admit", "-f", str(base), "-f", str(other), "--no-shipped-policies")
    assert code == 1
    copies = [ln for ln in out.splitlines() if "(SMI3008)" in ln]
    assert len(copies) == 1
    assert copies[0].startswith(f"{other}:1: Service/shop/api-v2 is defined twice")
    assert "1 invalid" in err


def test_identical_copies_of_a_service_pass_admit_with_validates_warning(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """They are one object (SMI3008, a warning), as `validate` says; admit used to say nothing
    of them, so the two gates printed different findings for the same files."""
    base, other = tmp_path / "base.yaml", tmp_path / "other.yaml"
    base.write_text(SPLIT, encoding="utf-8")
    other.write_text(OTHER_COPY.replace("9090", "80"), encoding="utf-8")
    code, out, err = run_cli("admit", "-f", str(base), "-f", str(other), "--no-shipped-policies")
    copies = [ln for ln in out.splitlines() if "(SMI3008)" in ln]
    assert code == 0, out + err
    assert copies == [
        f"{other}:1: warning: Service/shop/api-v2 is defined twice, identically (first at "
        f"{base}:8); the copies are applied as one object (SMI3008)"
    ]
    _, validated, _ = run_cli("validate", "-f", str(base), str(other))
    assert [ln for ln in validated.splitlines() if "(SMI3008)" in ln] == copies


ZERO_SPLIT = """\
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata:
  name: s
  namespace: shop
spec:
  service: web
  backends:
  - service: web-v1
    weight: 0
"""


def test_two_copies_of_an_smi_object_in_one_file_each_say_their_own(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """Diagnostics were grouped by object and file, so each of two copies in one file was
    given both copies' findings, and admit printed every one twice."""
    both = tmp_path / "both.yaml"
    both.write_text(ZERO_SPLIT + "---\n" + ZERO_SPLIT, encoding="utf-8")
    code, out, err = run_cli("admit", "-f", str(both), "--no-shipped-policies")
    assert code == 1
    lines = [ln for ln in out.splitlines() if "(SMI" in ln]
    assert sorted(lines) == sorted(set(lines)), out
    assert [ln.split(": ", 1)[0] for ln in lines if "(SMI2104)" in ln] == [
        f"{both}:8",
        f"{both}:19",
    ]
    assert sum("(SMI3008)" in ln for ln in lines) == 1
    assert "1 warning" in err
