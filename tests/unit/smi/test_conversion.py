"""`smi.conversion`: converting documents between versions, and every failure as an SMI code."""

from __future__ import annotations

from typing import Any

import pytest

from smi.apis.meta import LOSSY_ANNOTATION
from smi.conversion import convert_document, convert_object
from smi.errors import ConversionError, LoadError, SchemaError

SPLIT_V1 = {
    "apiVersion": "split.smi-spec.io/v1alpha1",
    "kind": "TrafficSplit",
    "metadata": {"name": "my-weights"},
    "spec": {
        "service": "numbers",
        "backends": [
            {"service": "one", "weight": "10m"},
            {"service": "two", "weight": "100m"},
            {"service": "three", "weight": "1500m"},
        ],
    },
}


def _code(exc: pytest.ExceptionInfo[Any]) -> tuple[str, str]:
    first = exc.value.diagnostics[0]
    return first.code, first.path


def test_a_v1alpha1_split_converts_to_v1alpha4_and_back_unchanged() -> None:
    v4 = convert_document(SPLIT_V1, "split.smi-spec.io/v1alpha4")
    assert [b["weight"] for b in v4["spec"]["backends"]] == [1, 10, 150]
    assert convert_document(v4, "split.smi-spec.io/v1alpha1") == SPLIT_V1


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("split.smi-spec.io/v1alpha9", "SMI4001"),
        ("split.smi-spec.io", "SMI4001"),
        ("apps/v1", "SMI4001"),
        ("access.smi-spec.io/v1alpha3", "SMI4003"),
    ],
)
def test_bad_targets_are_conversion_errors(to: str, code: str) -> None:
    with pytest.raises(ConversionError) as info:
        convert_document(SPLIT_V1, to)
    assert _code(info)[0] == code


def test_a_kind_missing_from_the_target_is_smi4002() -> None:
    udp = {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "UDPRoute",
        "metadata": {"name": "dns"},
        "spec": {"matches": {"ports": [53]}},
    }
    with pytest.raises(ConversionError) as info:
        convert_document(udp, "specs.smi-spec.io/v1alpha3")
    assert _code(info)[0] == "SMI4002"
    assert "specs.smi-spec.io/v1alpha3 has no kind UDPRoute" in str(info.value)


def test_a_corrupt_annotation_is_smi4004_on_the_way_in() -> None:
    doc = {**SPLIT_V1, "metadata": {"name": "w", "annotations": {LOSSY_ANNOTATION: "{"}}}
    with pytest.raises(SchemaError) as info:
        convert_document(doc, "split.smi-spec.io/v1alpha2")
    assert _code(info) == ("SMI4004", f'metadata.annotations["{LOSSY_ANNOTATION}"]')


def test_schema_problems_of_the_input_are_schema_errors_with_paths() -> None:
    doc: dict[str, Any] = {
        **SPLIT_V1,
        "spec": {"backends": [{"service": "a", "weight": "1u", "extra": 1}]},
    }
    with pytest.raises(SchemaError) as info:
        convert_document(doc, "split.smi-spec.io/v1alpha4")
    found = {(d.code, d.path) for d in info.value.diagnostics}
    assert found == {
        ("SMI2002", "spec.service"),
        ("SMI2103", "spec.backends[0].weight"),
        ("SMI2001", "spec.backends[0].extra"),
    }
    assert "spec.backends[0].weight: '1u' is finer than one milli-unit (1m) (SMI2103)" in str(
        info.value
    )


@pytest.mark.parametrize(
    ("doc", "error", "code"),
    [
        ({"kind": "TrafficSplit"}, LoadError, "SMI1004"),
        ({"apiVersion": "split.smi-spec.io/v1alpha4"}, LoadError, "SMI1005"),
        (
            {"apiVersion": "split.smi-spec.io/v1alpha5-draft", "kind": "TrafficSplit"},
            LoadError,
            "SMI1006",
        ),
        ({"apiVersion": "specs.smi-spec.io/v1alpha3", "kind": "UDPRoute"}, LoadError, "SMI1007"),
        ({"apiVersion": "v1", "kind": "Service"}, ConversionError, "SMI4003"),
    ],
)
def test_documents_that_are_not_served_say_why(
    doc: dict[str, Any], error: type[Exception], code: str
) -> None:
    with pytest.raises(error) as info:
        convert_document(doc, "split.smi-spec.io/v1alpha4")
    assert info.value.diagnostics[0].code == code  # type: ignore[attr-defined]


def test_convert_object_maps_refusals_to_smi4002() -> None:
    from smi.apis import registry

    v4 = {
        "apiVersion": "access.smi-spec.io/v1alpha4",
        "kind": "TrafficTarget",
        "metadata": {"name": "t", "namespace": "shop"},
        "spec": {
            "destination": {
                "kind": "IdentityBinding",
                "group": "access.smi-spec.io",
                "name": "api",
            },
            "rules": [],
            "sources": [],
        },
    }
    with pytest.raises(ConversionError) as info:
        convert_object(registry.parse(v4), "access.smi-spec.io/v1alpha3")
    assert _code(info)[0] == "SMI4002"
    assert "destination is an IdentityBinding" in str(info.value)
