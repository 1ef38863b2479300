"""`metadata.generateName` without a name: the API server takes it (and makes the name up on
create), so a Helm hook Job or an Argo Pod is skipped as other objects smictl has no use for
are (SMI1008, a warning). Both were "metadata.name missing" (SMI1009), an error that failed
every chart with a hook Job. An SMI object is referred to, updated and deleted by name: for
it, generateName is an error that says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from smi.cli import main
from smi.loading import load_identities, load_object, load_text

HOOK_JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  generateName: migrate-
  namespace: shop
  annotations: {helm.sh/hook: pre-install}
spec:
  template:
    spec:
      serviceAccountName: api
      restartPolicy: Never
      containers: [{name: m, image: x}]
---
apiVersion: v1
kind: Pod
metadata: {generateName: debug-, name: ""}
spec:
  containers: [{name: m, image: x}]
"""
SPLIT = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata:
  generateName: canary-
  namespace: shop
spec:
  service: web
  backends:
  - {service: web-v1, weight: 1}
"""
SKIPPED = (
    "metadata.generateName without a name (the API server makes the name up on create), so it "
    "is not used for cross-reference checks (SMI1008)"
)
NOT_FOR_SMI = (
    "metadata.name: metadata.name missing: generateName is not supported for SMI objects, which "
    "are referred to, updated and deleted by name (SMI1009)"
)


def test_a_non_smi_object_with_generate_name_is_skipped_with_a_warning() -> None:
    loaded = load_text(HOOK_JOB, filename="hooks.yaml")
    assert loaded.ok and loaded.context == []
    assert [d.format() for d in loaded.diagnostics] == [
        f"hooks.yaml:1: warning: skipped batch/v1 Job: {SKIPPED}",
        f"hooks.yaml:14: warning: skipped v1 Pod: {SKIPPED}",
    ]


def test_validate_passes_a_chart_with_a_hook_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "hooks.yaml").write_text(HOOK_JOB)
    code = main(["validate", "-f", str(tmp_path / "hooks.yaml")])
    _, err = capsys.readouterr()
    assert (code, err) == (0, "valid: 0 SMI objects in 1 file; 0 errors, 2 warnings\n")


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"generateName": ""}, [("SMI1009", "metadata.name")]),  # no prefix: no name at all
        ({"generateName": 5}, [("SMI1009", "metadata.name"), ("SMI2003", "metadata.generateName")]),
        ({"generateName": "m-", "namespace": 42}, [("SMI2003", "metadata.namespace")]),
    ],
)
def test_what_the_api_server_refuses_is_still_refused(
    meta: dict[str, object], expected: list[tuple[str, str]]
) -> None:
    loaded = load_object({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta})
    assert [(d.code, d.path) for d in loaded.diagnostics] == expected


def test_an_smi_object_with_generate_name_is_an_error_that_says_why() -> None:
    loaded = load_text(SPLIT, filename="split.yaml")
    assert [d.format() for d in loaded.diagnostics] == [f"split.yaml:3: {NOT_FOR_SMI}"]
    deleted = load_identities(SPLIT, filename="split.yaml")
    assert [d.format() for d in deleted.diagnostics] == [f"split.yaml:3: {NOT_FOR_SMI}"]


def test_a_non_smi_object_to_delete_is_skipped_too() -> None:
    loaded = load_identities(HOOK_JOB, filename="hooks.yaml")
    assert loaded.ok and loaded.context == []
    assert [d.code for d in loaded.diagnostics] == ["SMI1008", "SMI1008"]
