"""Wire models: layouts per version, required fields per CRD, strict types, and the error
types/locations the loader turns into SMI codes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from smi.apis import registry
from smi.apis.meta import LOSSY_ANNOTATION

TT1 = "access.smi-spec.io/v1alpha1"
TT2 = "access.smi-spec.io/v1alpha2"
TT3 = "access.smi-spec.io/v1alpha3"
SP1 = "specs.smi-spec.io/v1alpha1"
SP3 = "specs.smi-spec.io/v1alpha3"
SP4 = "specs.smi-spec.io/v1alpha4"
TS1 = "split.smi-spec.io/v1alpha1"
TS2 = "split.smi-spec.io/v1alpha2"
TS4 = "split.smi-spec.io/v1alpha4"

SUBJECT = {"kind": "ServiceAccount", "name": "api", "namespace": "shop"}
META = {"name": "obj", "namespace": "shop"}


def errors(doc: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
    with pytest.raises(ValidationError) as info:
        registry.parse(doc)
    return [(e["type"], tuple(e["loc"])) for e in info.value.errors()]


def tt(version: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": version, "kind": "TrafficTarget", "metadata": META, **body}


def hrg(version: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": version, "kind": "HTTPRouteGroup", "metadata": META, **body}


def ts(version: str, backends: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": version,
        "kind": "TrafficSplit",
        "metadata": META,
        "spec": {"service": "web", "backends": backends, **spec},
    }


# --- layouts ----------------------------------------------------------------------------------


def test_access_v1alpha1_rejects_the_spec_layout() -> None:
    got = errors(tt(TT1, {"spec": {"destination": SUBJECT}}))
    assert ("missing", ("destination",)) in got
    assert ("extra_forbidden", ("spec",)) in got


def test_access_v1alpha2_rejects_the_flat_layout() -> None:
    got = errors(tt(TT2, {"destination": SUBJECT, "rules": []}))
    assert set(got) == {
        ("missing", ("spec",)),
        ("extra_forbidden", ("destination",)),
        ("extra_forbidden", ("rules",)),
    }


def test_flat_matches_in_specs_v1alpha4_are_rejected_with_their_path() -> None:
    got = errors(hrg(SP4, {"matches": [{"name": "m"}]}))
    assert set(got) == {("missing", ("spec",)), ("extra_forbidden", ("matches",))}


def test_specs_v1alpha1_keeps_matches_at_the_root() -> None:
    assert (
        registry.parse(hrg(SP1, {"matches": [{"name": "m", "pathRegex": "/x"}]}))
        .matches[0]
        .path_regex
        == "/x"
    )
    assert ("extra_forbidden", ("spec",)) in errors(hrg(SP1, {"spec": {"matches": []}}))


def test_specs_v1alpha1_has_no_headers() -> None:
    got = errors(hrg(SP1, {"matches": [{"name": "m", "headers": [{"a": "b"}]}]}))
    assert got == [("extra_forbidden", ("matches", 0, "headers"))]


@pytest.mark.parametrize(
    ("version", "body", "problems"),
    [
        (SP1, {"spec": {}}, [("extra_forbidden", ("spec",))]),
        (SP3, {"spec": {"matches": {"ports": [1]}}}, [("extra_forbidden", ("spec", "matches"))]),
        (
            SP4,
            {"spec": {"matches": {"ports": ["80"]}}},
            [("int_type", ("spec", "matches", "ports", 0))],
        ),
        (
            SP4,
            {"spec": {"matches": {"ports": [80], "name": "x"}}},
            [("extra_forbidden", ("spec", "matches", "name"))],
        ),
    ],
)
def test_tcp_route_shapes_per_version(
    version: str, body: dict[str, Any], problems: list[tuple[str, tuple[Any, ...]]]
) -> None:
    assert errors({"apiVersion": version, "kind": "TCPRoute", "metadata": META, **body}) == problems


@pytest.mark.parametrize(
    ("version", "body", "has_matches", "ports"),
    [
        (SP1, {}, True, ()),
        (SP3, {}, False, ()),
        (SP3, {"spec": {}}, True, ()),
        (SP4, {}, False, ()),
        (SP4, {"spec": {"matches": {"ports": []}}}, True, ()),
        # Left out (or null), ports mean every port, as the spec says (SMI2303 warns).
        (SP4, {"spec": {}}, True, ()),
        (SP4, {"spec": {"matches": {}}}, True, ()),
        (SP4, {"spec": {"matches": None}}, True, ()),
        (SP4, {"spec": {"matches": {"ports": None}}}, True, ()),
        (SP4, {"spec": {"matches": {"ports": [3306, 6446]}}}, True, (3306, 6446)),
    ],
)
def test_tcp_routes_read_into_the_hub(
    version: str, body: dict[str, Any], has_matches: bool, ports: tuple[int, ...]
) -> None:
    route = registry.parse({"apiVersion": version, "kind": "TCPRoute", "metadata": META, **body})
    assert (route.has_matches, route.ports) == (has_matches, ports)


# --- required fields --------------------------------------------------------------------------


def test_destination_port_is_optional_in_access_v1alpha1() -> None:
    target = registry.parse(tt(TT1, {"destination": SUBJECT}))
    assert target.destination.port is None
    assert (target.rules, target.sources) == ((), ())


def test_access_v1alpha2_requires_only_the_destination() -> None:
    assert registry.parse(tt(TT2, {"spec": {"destination": SUBJECT}})).rules == ()
    assert errors(tt(TT2, {"spec": {}})) == [("missing", ("spec", "destination"))]


def test_access_v1alpha3_requires_destination_rules_and_sources() -> None:
    assert set(errors(tt(TT3, {"spec": {"destination": SUBJECT}}))) == {
        ("missing", ("spec", "rules")),
        ("missing", ("spec", "sources")),
    }
    assert errors(
        tt(TT3, {"spec": {"destination": SUBJECT, "rules": [{"kind": "TCPRoute"}], "sources": []}})
    ) == [("missing", ("spec", "rules", 0, "name"))]


def test_access_v1alpha3_has_no_destination_port() -> None:
    body = {"spec": {"destination": {**SUBJECT, "port": 8080}, "rules": [], "sources": []}}
    assert errors(tt(TT3, body)) == [("extra_forbidden", ("spec", "destination", "port"))]


def test_rule_and_subject_kinds_are_strings_for_the_validation_layer() -> None:
    body = {
        "spec": {
            "destination": {**SUBJECT, "kind": "Group"},
            "rules": [{"kind": "GRPCRoute", "name": "r"}],
            "sources": [],
        }
    }
    target = registry.parse(tt(TT3, body))
    assert (target.destination.kind, target.rules[0].kind) == ("Group", "GRPCRoute")


def test_split_requires_service_backends_and_their_fields() -> None:
    doc = ts(TS4, [{"service": "a"}])
    del doc["spec"]["service"]
    assert set(errors(doc)) == {
        ("missing", ("spec", "service")),
        ("missing", ("spec", "backends", 0, "weight")),
    }
    bad_match = ts(TS4, [{"service": "a", "weight": 1}], matches=[{"name": "ab"}])
    assert errors(bad_match) == [("missing", ("spec", "matches", 0, "kind"))]


def test_split_matches_do_not_exist_before_v1alpha3() -> None:
    doc = ts(
        TS2, [{"service": "a", "weight": 1}], matches=[{"kind": "HTTPRouteGroup", "name": "ab"}]
    )
    assert errors(doc) == [("extra_forbidden", ("spec", "matches"))]


def test_a_wrong_api_version_literal_is_a_literal_error() -> None:
    from smi.apis.split import v1alpha4

    with pytest.raises(ValidationError) as info:
        v1alpha4.TrafficSplit.model_validate({**ts(TS4, []), "apiVersion": TS2})
    assert info.value.errors()[0]["type"] == "literal_error"


def test_unserved_kinds_and_versions_are_lookup_errors() -> None:
    for doc in (
        {"apiVersion": "specs.smi-spec.io/v1alpha3", "kind": "UDPRoute"},
        {"apiVersion": "specs.smi-spec.io/v1alpha5-draft", "kind": "HTTPRouteGroup"},
        {"kind": "TrafficSplit"},
        {"apiVersion": "v1", "kind": "Service"},
    ):
        with pytest.raises(LookupError):
            registry.parse(doc)


# --- types and field-local formats ------------------------------------------------------------


def test_ports_are_strict_integers() -> None:
    body = {"spec": {"destination": {**SUBJECT, "port": "8080"}}}
    assert errors(tt(TT2, body)) == [("int_type", ("spec", "destination", "port"))]


@pytest.mark.parametrize(
    ("weight", "problem"),
    [
        (1.5, ("SMI2103", ("spec", "backends", 0, "weight"))),
        ("50", ("SMI2003", ("spec", "backends", 0, "weight"))),
        (True, ("SMI2003", ("spec", "backends", 0, "weight"))),
        (None, ("SMI2003", ("spec", "backends", 0, "weight"))),
    ],
)
def test_integer_weights_must_be_whole_numbers(weight: Any, problem: tuple[str, Any]) -> None:
    assert errors(ts(TS2, [{"service": "a", "weight": weight}])) == [problem]


def test_integral_floats_are_whole_weights() -> None:
    assert (
        registry.parse(ts(TS2, [{"service": "a", "weight": 2.0}])).backends[0].weight_milli == 2000
    )


@pytest.mark.parametrize(
    ("weight", "code"),
    [("1u", "SMI2103"), ("abc", "SMI2103"), ("1500u", "SMI2103"), ([1], "SMI2003")],
)
def test_quantity_weights_report_their_problem(weight: Any, code: str) -> None:
    assert errors(ts(TS1, [{"service": "a", "weight": weight}])) == [
        (code, ("spec", "backends", 0, "weight"))
    ]


def test_quantity_weights_read_as_milli_units() -> None:
    split = registry.parse(
        ts(
            TS1,
            [
                {"service": s, "weight": w}
                for s, w in [("a", "10m"), ("b", 1), ("c", 1.5), ("d", "1000u")]
            ],
        )
    )
    assert [b.weight_milli for b in split.backends] == [10, 1000, 1500, 1]


def test_weights_are_not_checked_for_sign_here() -> None:
    assert (
        registry.parse(ts(TS4, [{"service": "a", "weight": -3}])).backends[0].weight_milli == -3000
    )


def test_methods_are_plain_strings_for_the_validation_layer() -> None:
    group = registry.parse(
        hrg(SP4, {"spec": {"matches": [{"name": "m", "methods": ["get", "FETCH"]}]}})
    )
    assert group.matches[0].methods == ("get", "FETCH")


def test_a_header_list_entry_with_two_keys_is_smi2205_at_its_index() -> None:
    headers = [{"a": "x"}, {"b": "y", "c": "z"}]
    got = errors(hrg(SP4, {"spec": {"matches": [{"name": "m", "headers": headers}]}}))
    assert got == [("SMI2205", ("spec", "matches", 0, "headers", 1))]


def test_a_header_list_entry_with_no_key_is_smi2205() -> None:
    got = errors(hrg(SP3, {"spec": {"matches": [{"name": "m", "headers": [{}]}]}}))
    assert got == [("SMI2205", ("spec", "matches", 0, "headers", 0))]


def test_header_values_must_be_strings_in_both_forms() -> None:
    as_list = errors(hrg(SP4, {"spec": {"matches": [{"name": "m", "headers": [{"a": 1}]}]}}))
    assert as_list == [("string_type", ("spec", "matches", 0, "headers", 0, "a"))]
    with pytest.raises(ValidationError) as info:
        registry.parse(hrg(SP4, {"spec": {"matches": [{"name": "m", "headers": {"x-id": 7}}]}}))
    error = info.value.errors()[0]
    assert (error["type"], error["loc"]) == ("SMI2003", ("spec", "matches", 0, "headers"))
    assert "header x-id: value must be a string, not an integer" in error["msg"]


@pytest.mark.parametrize(
    ("weight", "expected"),
    [("ninety", "a string"), ([90], "a list"), ({"w": 90}, "an object"), (None, "null")],
)
def test_wrong_weight_types_are_named_as_json_names_them(weight: object, expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        registry.parse(ts(TS4, [{"service": "a", "weight": weight}]))
    [error] = info.value.errors()
    assert (error["type"], error["msg"]) == ("SMI2003", f"weight must be a number, not {expected}")


def test_a_v1alpha1_quantity_of_the_wrong_type_is_named_as_json_names_it() -> None:
    with pytest.raises(ValidationError) as info:
        registry.parse(ts(TS1, [{"service": "a", "weight": [1]}]))
    [error] = info.value.errors()
    assert error["msg"] == "a quantity is an integer or a string like '500m', not a list"


def test_headers_of_another_shape_are_a_type_error() -> None:
    got = errors(hrg(SP4, {"spec": {"matches": [{"name": "m", "headers": "user-agent"}]}}))
    assert got == [("list_type", ("spec", "matches", 0, "headers"))]


# --- metadata and the lossy annotation --------------------------------------------------------


def test_metadata_keeps_every_field_a_cluster_writes() -> None:
    meta = {
        "name": "obj",
        "namespace": "shop",
        "uid": "1234",
        "resourceVersion": "77",
        "creationTimestamp": None,
        "managedFields": [{"manager": "kubectl"}],
    }
    doc = {**ts(TS4, [{"service": "a", "weight": 1}]), "metadata": meta}
    assert registry.render(registry.parse(doc), TS4)["metadata"] == meta


@pytest.mark.parametrize(
    ("annotation", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"colour": {"value": 1, "was": "x"}}', "'colour' is not a field of TrafficSplit"),
        ('{"backends": 3}', "expected an object with 'value' and 'was'"),
        ('{"backends": {"value": [{"service": 1}], "was": "x"}}', "'backends'"),
        ('{"metadata": {"value": {}, "was": "x"}}', "not a field"),
    ],
)
def test_a_corrupt_lossy_annotation_is_smi4004(annotation: str, reason: str) -> None:
    doc = ts(TS4, [{"service": "a", "weight": 1}])
    doc["metadata"] = {**META, "annotations": {LOSSY_ANNOTATION: annotation}}
    with pytest.raises(ValidationError) as info:
        registry.parse(doc)
    error = info.value.errors()[0]
    assert (error["type"], error["loc"]) == ("SMI4004", ("metadata",))
    assert reason in error["msg"]


def test_an_edited_field_wins_over_its_stale_lossy_value() -> None:
    exact = registry.parse(
        ts(TS1, [{"service": "a", "weight": "10m"}, {"service": "b", "weight": "30m"}])
    )
    doc = registry.render(exact, TS2)
    assert [b["weight"] for b in doc["spec"]["backends"]] == [1, 3]
    assert registry.parse(doc) == exact
    doc["spec"]["backends"][1]["weight"] = 5  # someone edits the converted object
    edited = registry.parse(doc)
    assert [b.weight_milli for b in edited.backends] == [1000, 5000]
    assert edited.metadata.annotations == {}


def test_an_unrelated_edit_keeps_the_lossy_fields() -> None:
    target = registry.parse(tt(TT1, {"destination": {**SUBJECT, "port": 8080}}))
    doc = registry.render(target, TT3)
    doc["spec"]["sources"] = [{"kind": "ServiceAccount", "name": "new", "namespace": "shop"}]
    assert registry.parse(doc).destination.port == 8080
    lossy = json.loads(doc["metadata"]["annotations"][LOSSY_ANNOTATION])
    assert set(lossy) == {"destination"}


def test_traffic_metrics_read_quantities_times_and_backends() -> None:
    doc = {
        "apiVersion": "metrics.smi-spec.io/v1alpha1",
        "kind": "TrafficMetrics",
        "resource": {"kind": "TrafficSplit", "name": "ts", "namespace": "shop"},
        "edge": {"direction": "from", "side": "client", "resource": {}},
        "backend": {"apex": "web", "name": "web-v1", "weight": 90},
        "timestamp": "2019-04-08T22:25:55Z",
        "window": "30s",
        "metrics": [{"name": "p99_response_latency", "unit": "seconds", "value": "10m"}],
    }
    tm = registry.parse(doc)
    assert (tm.backend.weight, tm.metrics[0].value, tm.timestamp.year) == (90, "10m", 2019)
    assert registry.render(tm, "metrics.smi-spec.io/v1alpha1") == doc
    doc["metrics"] = [{"name": "x", "value": "ten"}]
    doc["edge"] = {"direction": "sideways", "side": "client", "resource": {}}
    assert set(errors(doc)) == {
        ("SMI2003", ("metrics", 0, "value")),
        ("literal_error", ("edge", "direction")),
    }
