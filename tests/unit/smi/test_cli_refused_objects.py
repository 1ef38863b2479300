"""An SMI object that names itself but does not load (a schema error): its problems name it,
and `validate` and `admit` count it as an invalid object. It was anonymous (`"object": ""`),
`validate` counted "1 SMI object" for a file of two, and `admit` a load error and no invalid
object, where the webhook's `/validate` answers the same object invalid (422)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smi.cli import main

BROKEN = """\
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: r, namespace: shop}
spec:
  matches:
  - name: c
    headers:
    - {X-Team: blue, x-env: prod}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: r2}
spec:
  matches:
  - name: c
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s}
spec:
  service: web
  backends: [{service: web-v1, weight: "x"}]
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_names_and_counts_an_object_that_did_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    code, out, _ = run(capsys, "validate", "-f", str(path), "-o", "json")
    report = json.loads(out)
    assert code == 1
    assert report["resources"] == 3
    assert sorted(d["object"] for d in report["diagnostics"]) == [
        "HTTPRouteGroup/shop/r",
        "TrafficSplit/default/s",
    ]
    code, _, err = run(capsys, "validate", "-f", str(path))
    assert err.strip().endswith("INVALID: 3 SMI objects in 1 file; 2 errors, 0 warnings")


def test_admit_counts_an_object_that_did_not_load_as_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    code, out, err = run(
        capsys, "admit", "-f", str(path), "--no-shipped-policies", "--format", "json"
    )
    assert code == 1, err
    report = json.loads(out)
    assert {k: report["summary"][k] for k in ("objects", "allowed", "invalid", "load_errors")} == {
        "objects": 3,
        "allowed": 1,
        "invalid": 2,
        "load_errors": 0,
    }


def test_a_root_field_no_spec_of_that_version_has_is_not_sent_under_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """TCPRoute has `spec.matches` from specs v1alpha4 on: "expects 'matches' under 'spec'"
    sent a v1alpha3 writer to an "unknown field" error next."""
    path = tmp_path / "tcp.yaml"
    path.write_text(
        "apiVersion: specs.smi-spec.io/v1alpha3\nkind: TCPRoute\n"
        "metadata: {name: db, namespace: shop}\nmatches: {ports: [5432]}\n",
        encoding="utf-8",
    )
    code, out, err = run(capsys, "validate", "-f", str(path))
    assert code == 1
    assert out == (
        f"{path}:4: matches: specs.smi-spec.io/v1alpha3 TCPRoute has no 'matches' field, at the "
        "object root or under 'spec' (specs.smi-spec.io/v1alpha4 TCPRoute has it, under "
        "'spec') (SMI2005)\n"
    )
    assert err.strip().endswith("INVALID: 1 SMI object in 1 file; 1 error, 0 warnings")
