"""Metadata the API server refuses is refused here too, at the field's line: fields of the wrong
type (SMI2003; only labels and annotations were typed, so `finalizers: x` passed `validate` and
`apply`), owner references without their required fields (SMI2002), and label keys and values,
annotation keys and finalizers that are not Kubernetes qualified names (SMI2006)."""

from __future__ import annotations

from typing import Any

from validation_helpers import run_checks

from smi.loading import load_object

HEAD = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata:
  name: s
  namespace: shop
"""
SPEC = "spec:\n  service: api\n  backends:\n  - {service: api-v1, weight: 1}\n"


def problems(metadata: str) -> list[tuple[str, int | None, str, str]]:
    return [(d.code, d.line, d.path, d.message) for d in run_checks(HEAD + metadata + SPEC)]


def test_metadata_fields_of_the_wrong_type_are_refused_at_their_lines() -> None:
    found = problems(
        "  finalizers: x\n"
        "  ownerReferences: 5\n"
        "  deletionTimestamp: [1]\n"
        "  generation: 1.5\n"
        "  labels: {a: 1}\n"
    )
    assert found == [
        ("SMI2003", 6, "metadata.finalizers", "must be a list, not a string"),
        ("SMI2003", 7, "metadata.ownerReferences", "must be a list, not an integer"),
        ("SMI2003", 8, "metadata.deletionTimestamp", "must be a string, not a list"),
        ("SMI2003", 9, "metadata.generation", "must be an integer, not a number"),
        # The schema's own check of labels is still reported alongside.
        ("SMI2003", 10, "metadata.labels.a", "must be a string, not an integer"),
    ]


def test_items_and_owner_references_are_checked_field_by_field() -> None:
    found = problems(
        "  finalizers: [example.com/x, 7]\n"
        "  ownerReferences:\n"
        "  - {apiVersion: v1, kind: Pod, name: p, uid: 1}\n"
        "  - {apiVersion: v1, kind: Pod, name: p, controller: 'yes'}\n"
        "  - null\n"
    )
    assert found == [
        ("SMI2003", 6, "metadata.finalizers[1]", "must be a string, not an integer"),
        ("SMI2003", 8, "metadata.ownerReferences[0].uid", "must be a string, not an integer"),
        ("SMI2002", 9, "metadata.ownerReferences[1].uid", "required field missing"),
        (
            "SMI2003",
            9,
            "metadata.ownerReferences[1].controller",
            "must be a boolean, not a string",
        ),
        ("SMI2003", 10, "metadata.ownerReferences[2]", "must be an object, not null"),
    ]


def test_label_keys_and_values_annotation_keys_and_finalizers_must_be_qualified_names() -> None:
    found = problems(
        "  labels:\n"
        '    "a b": "bad value!"\n'
        "    x/y/z: a\n"
        "  annotations:\n"
        "    example.com/: b\n"
        "  finalizers: [a b]\n"
    )
    assert [(code, line, path) for code, line, path, _ in found] == [
        ("SMI2006", 7, 'metadata.labels["a b"]'),
        ("SMI2006", 7, 'metadata.labels["a b"]'),
        ("SMI2006", 8, 'metadata.labels["x/y/z"]'),
        ("SMI2006", 10, 'metadata.annotations["example.com/"]'),
        ("SMI2006", 11, "metadata.finalizers[0]"),
    ]
    assert found[0][3].startswith("label key 'a b' is not a qualified name (an optional DNS-1123")
    assert found[1][3].startswith("label value 'bad value!' is not valid (at most 63 letters")
    assert found[4][3].startswith("finalizer 'a b' is not a qualified name")


def test_metadata_as_the_api_server_writes_it_passes() -> None:
    assert (
        problems(
            "  uid: 0b6f6c1e-3e0a-4e47-9d6e-2f8d0b8a1c11\n"
            "  resourceVersion: '4711'\n"
            "  generation: 3\n"
            "  creationTimestamp: '2024-05-01T10:00:00Z'\n"
            "  deletionTimestamp: null\n"
            "  labels: {app.kubernetes.io/name: web, empty: '', v: 1.2.3}\n"
            "  annotations:\n"
            "    Example.com/Note: any text at all!\n"
            "    kubectl.kubernetes.io/last-applied-configuration: '{}'\n"
            "  finalizers: [example.com/cleanup, kubernetes]\n"
            "  ownerReferences:\n"
            "  - {apiVersion: v1, kind: Pod, name: p, uid: u, controller: true}\n"
            "  managedFields: [{manager: kubectl, operation: Apply}]\n"
        )
        == []
    )


def test_an_object_given_as_data_is_refused_as_well() -> None:
    """The local store's apply and the admission webhook read objects as data."""
    doc: dict[str, Any] = {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": {"name": "s", "namespace": "shop", "finalizers": "x"},
        "spec": {"service": "api", "backends": [{"service": "api-v1", "weight": 1}]},
    }
    loaded = load_object(doc)
    assert (loaded.resources, [(d.code, d.path) for d in loaded.diagnostics]) == (
        [],
        [("SMI2003", "metadata.finalizers")],
    )
