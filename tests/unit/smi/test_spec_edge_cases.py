"""SPEC.md / DESIGN.md §3 edge cases found by the spec audit, each pinned by a test that fails
without its fix."""

from __future__ import annotations

import json
from typing import Any

from smi.apis.meta import LOSSY_ANNOTATION
from smi.conversion import convert_document

TT_V1 = {
    "apiVersion": "access.smi-spec.io/v1alpha1",
    "kind": "TrafficTarget",
    "metadata": {"name": "t", "namespace": "ns"},
    "destination": {"kind": "ServiceAccount", "name": "srv", "port": 8080},
    "specs": [{"kind": "TCPRoute", "name": "x"}],
    "sources": [{"kind": "ServiceAccount", "name": "cli", "namespace": "ns"}],
}


def _forge(doc: dict[str, Any], field: str, edit: dict[str, Any]) -> dict[str, Any]:
    """`doc` with the stored value of `field` in the lossy annotation edited, fingerprint kept."""
    annotations = doc["metadata"]["annotations"]
    payload = json.loads(annotations[LOSSY_ANNOTATION])
    payload[field]["value"].update(edit)
    annotations[LOSSY_ANNOTATION] = json.dumps(payload)
    return doc


def test_the_lossy_annotation_restores_what_the_version_cannot_hold() -> None:
    v3 = convert_document(TT_V1, "access.smi-spec.io/v1alpha3")
    assert "port" not in v3["spec"]["destination"]
    assert convert_document(v3, "access.smi-spec.io/v1alpha1") == TT_V1


def test_the_lossy_annotation_cannot_override_what_the_manifest_says() -> None:
    """DESIGN.md §3: the annotation keeps only fields the target version cannot hold. A stored
    destination whose name differs from spec.destination.name must not replace it."""
    v3 = _forge(
        convert_document(TT_V1, "access.smi-spec.io/v1alpha3"), "destination", {"name": "db"}
    )
    back = convert_document(v3, "access.smi-spec.io/v1alpha1")
    assert back["destination"]["name"] == "srv"
