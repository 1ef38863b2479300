"""`smi.conversion`: converting documents between versions, and every failure as an SMI code."""

from __future__ import annotations

import copy
import json
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


# --- converting to the object's own version is the identity ------------------------------------

SPELLED_V1 = {
    "apiVersion": "split.smi-spec.io/v1alpha1",
    "kind": "TrafficSplit",
    "metadata": {"name": "spelled", "namespace": "shop"},
    "spec": {
        "service": "web",
        "backends": [
            {"service": "int", "weight": 1},
            {"service": "zero", "weight": 0},
            {"service": "decimal", "weight": "1.5"},
            {"service": "milli", "weight": "500m"},
            {"service": "text", "weight": "1"},
            {"service": "float", "weight": 2.5},
            {"service": "kilo", "weight": "1k"},
        ],
    },
}
METRICS_LIST: dict[str, Any] = {
    "apiVersion": "metrics.smi-spec.io/v1alpha1",
    "kind": "TrafficMetricsList",
    "metadata": {},
    "resource": {"kind": "Pod", "namespace": "shop"},
    "items": [
        {
            "resource": {"kind": "Pod", "name": "a", "namespace": "shop"},
            "edge": {"direction": "to", "side": "client", "resource": {}},
            "timestamp": "2019-04-08T22:25:55.123Z",
            "window": "30s",
            "metrics": [],
        },
        {
            "resource": {"kind": "Pod", "name": "b", "namespace": "shop"},
            "edge": {"direction": "to", "side": "client", "resource": {}},
            "timestamp": "2019-04-08 22:25:55Z",
            "window": "30s",
            "metrics": [{"name": "p99_response_latency", "unit": "ms", "value": "1.5"}],
        },
    ],
}


@pytest.mark.parametrize(
    "doc",
    [
        SPELLED_V1,
        METRICS_LIST,
        {
            **SPLIT_V1,
            "apiVersion": "split.smi-spec.io/v1alpha4",
            "metadata": {"name": "w", "labels": None, "annotations": {}},
            "spec": {"service": "web", "backends": [{"service": "a", "weight": 10}]},
        },
    ],
    ids=["split-weights", "metrics-times-and-metadata", "null-and-empty-maps"],
)
def test_converting_to_the_objects_own_version_gives_it_back_unchanged(
    doc: dict[str, Any],
) -> None:
    """It respelled weights (`1` -> `"1"`, `"1.5"` -> `"1500m"`), times (`.123Z` ->
    `.123000Z`) and metadata (items gained `name: ''`, `metadata: {}` was dropped)."""
    original = copy.deepcopy(doc)
    same = convert_document(doc, doc["apiVersion"])
    assert same == original
    same["metadata"]["name"] = "edited"  # a copy: the caller's document is not touched
    assert doc == original


def test_the_own_version_is_still_validated() -> None:
    doc = {**SPELLED_V1, "spec": {"service": "web", "backends": [{"service": "a", "weight": "x"}]}}
    with pytest.raises(SchemaError) as info:
        convert_document(doc, "split.smi-spec.io/v1alpha1")
    assert _code(info) == ("SMI2103", "spec.backends[0].weight")


@pytest.mark.parametrize(
    "through",
    ["split.smi-spec.io/v1alpha2", "split.smi-spec.io/v1alpha3", "split.smi-spec.io/v1alpha4"],
)
def test_v1alpha1_weights_come_back_as_written_through_an_integer_version(through: str) -> None:
    converted = convert_document(SPELLED_V1, through)
    assert LOSSY_ANNOTATION in converted["metadata"]["annotations"]
    assert convert_document(converted, "split.smi-spec.io/v1alpha1") == SPELLED_V1


def test_canonical_weights_need_no_annotation() -> None:
    """Only a weight spelled otherwise than v1alpha1 writes it rides in the annotation."""
    doc = {
        **SPELLED_V1,
        "spec": {
            "service": "web",
            "backends": [{"service": "a", "weight": "1"}, {"service": "b", "weight": "2"}],
        },
    }
    converted = convert_document(doc, "split.smi-spec.io/v1alpha4")
    assert "annotations" not in converted["metadata"]
    assert convert_document(converted, "split.smi-spec.io/v1alpha1") == doc


def test_a_spelling_of_another_weight_in_the_annotation_is_not_written() -> None:
    """The milli weight wins over a stored spelling that does not say it (an edited
    annotation, a hub built from data): the v1alpha1 weight is never other than the hub's."""
    converted = convert_document(SPELLED_V1, "split.smi-spec.io/v1alpha4")
    annotations = converted["metadata"]["annotations"]
    payload = json.loads(annotations[LOSSY_ANNOTATION])
    payload["backends"]["value"][0]["weight_written"] = 7
    annotations[LOSSY_ANNOTATION] = json.dumps(payload)
    back = convert_document(converted, "split.smi-spec.io/v1alpha1")
    assert back["spec"]["backends"][0] == {"service": "int", "weight": "1"}
    assert back["spec"]["backends"][1:] == SPELLED_V1["spec"]["backends"][1:]


def test_an_annotation_written_before_spellings_were_kept_still_reads() -> None:
    v4 = {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": {
            "name": "my-weights",
            "annotations": {
                LOSSY_ANNOTATION: '{"backends":{"value":[{"service":"one","weight_milli":10},'
                '{"service":"two","weight_milli":100},{"service":"three","weight_milli":1500}],'
                '"was":"' + _was_of(SPLIT_V1) + '"}}'
            },
        },
        "spec": {
            "service": "numbers",
            "backends": [
                {"service": "one", "weight": 1},
                {"service": "two", "weight": 10},
                {"service": "three", "weight": 150},
            ],
        },
    }
    assert convert_document(v4, "split.smi-spec.io/v1alpha1") == SPLIT_V1


def _was_of(doc: dict[str, Any]) -> str:
    v4 = convert_document(doc, "split.smi-spec.io/v1alpha4")
    return str(json.loads(v4["metadata"]["annotations"][LOSSY_ANNOTATION])["backends"]["was"])


def test_the_spelling_stays_out_of_the_hub_form_policies_read() -> None:
    """Policies read `{service, weightMilli}` whatever version a split was written in."""
    from smi.apis import registry
    from smi.policy.input import hub_document

    v1 = hub_document(registry.parse(SPELLED_V1))
    v4 = hub_document(registry.parse(convert_document(SPELLED_V1, "split.smi-spec.io/v1alpha4")))
    assert v1["backends"][0] == {"service": "int", "weightMilli": 1000}
    assert v1["backends"] == v4["backends"]


def test_null_maps_are_read_as_absent_and_left_out_of_another_version() -> None:
    """`labels:` and `annotations:` with no value (Helm templates leave them so) were refused
    with SMI2003; they are no labels, written as absent, as `labels: {}` always was."""
    spec = {"service": "web", "backends": [{"service": "a", "weight": "1"}]}
    doc = {
        "apiVersion": "split.smi-spec.io/v1alpha1",
        "kind": "TrafficSplit",
        "metadata": {"name": "w", "namespace": "shop", "labels": None, "annotations": None},
        "spec": spec,
    }
    converted = convert_document(doc, "split.smi-spec.io/v1alpha4")
    assert converted["metadata"] == {"name": "w", "namespace": "shop"}
    back = convert_document(converted, "split.smi-spec.io/v1alpha1")
    assert back == {**doc, "metadata": {"name": "w", "namespace": "shop"}}


def test_a_stored_spelling_that_is_no_weight_is_a_corrupt_annotation() -> None:
    converted = convert_document(SPELLED_V1, "split.smi-spec.io/v1alpha4")
    annotations = converted["metadata"]["annotations"]
    payload = json.loads(annotations[LOSSY_ANNOTATION])
    payload["backends"]["value"][0]["weight_written"] = [1]
    annotations[LOSSY_ANNOTATION] = json.dumps(payload)
    with pytest.raises(SchemaError) as info:
        convert_document(converted, "split.smi-spec.io/v1alpha1")
    assert _code(info) == ("SMI4004", f'metadata.annotations["{LOSSY_ANNOTATION}"]')
    assert "weight_written must be an integer, a number or a string" in str(info.value)


TCP_V4 = {
    "apiVersion": "specs.smi-spec.io/v1alpha4",
    "kind": "TCPRoute",
    "metadata": {"name": "db"},
    "spec": {"matches": {"ports": [5432, 5433]}},
}
TT_V1 = {
    "apiVersion": "access.smi-spec.io/v1alpha1",
    "kind": "TrafficTarget",
    "metadata": {"name": "api"},
    "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "shop", "port": 8080},
    "sources": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}],
}


def _edit_stored(doc: dict[str, Any], to: str, edit: Any) -> dict[str, Any]:
    """`doc` converted to `to`, with one value of its lossy-fields annotation edited."""
    converted = convert_document(doc, to)
    annotations = converted["metadata"]["annotations"]
    payload = json.loads(annotations[LOSSY_ANNOTATION])
    edit(payload)
    annotations[LOSSY_ANNOTATION] = json.dumps(payload)
    return converted


def _set_port(payload: dict[str, Any], value: Any) -> None:
    payload["ports"]["value"][0] = value


def _set_destination_port(payload: dict[str, Any], value: Any) -> None:
    payload["destination"]["value"]["port"] = value


def _set_weight(payload: dict[str, Any], value: Any) -> None:
    payload["backends"]["value"][0]["weight_milli"] = value


@pytest.mark.parametrize("value", ["5432", True, 5432.0])
@pytest.mark.parametrize(
    ("doc", "via", "edit", "where"),
    [
        (TCP_V4, "specs.smi-spec.io/v1alpha3", _set_port, "'ports'[0]"),
        (TT_V1, "access.smi-spec.io/v1alpha3", _set_destination_port, "'destination'.port"),
        (SPLIT_V1, "split.smi-spec.io/v1alpha4", _set_weight, "'backends'[0].weight_milli"),
    ],
)
def test_a_stored_number_of_another_json_type_is_a_corrupt_annotation(
    doc: dict[str, Any], via: str, edit: Any, where: str, value: Any
) -> None:
    # Read leniently, a stored port `true` came back as port 1 and "5432" as 5432: a value
    # nobody wrote, or one the wire models refuse, converted without a word.
    edited = _edit_stored(doc, via, lambda payload: edit(payload, value))
    with pytest.raises(SchemaError) as info:
        convert_document(edited, doc["apiVersion"])
    assert _code(info) == ("SMI4004", f'metadata.annotations["{LOSSY_ANNOTATION}"]')
    assert f"{where}: Input should be a valid integer, not " in str(info.value)


def test_stored_values_of_their_own_json_type_still_convert_back() -> None:
    for doc, via in [
        (TCP_V4, "specs.smi-spec.io/v1alpha1"),
        (TT_V1, "access.smi-spec.io/v1alpha4"),
        (SPLIT_V1, "split.smi-spec.io/v1alpha2"),
    ]:
        edited = _edit_stored(doc, via, lambda payload: None)
        assert convert_document(edited, doc["apiVersion"]) == doc
