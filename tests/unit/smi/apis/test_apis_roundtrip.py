"""Round trips through the hub for every ordered pair of versions of each group, on
hand-written objects that exercise every lossy field, and same-version round trips of the
shared SMI example manifests."""

from __future__ import annotations

import datetime
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from smi.apis import registry
from smi.apis.access import hub as access
from smi.apis.meta import LOSSY_ANNOTATION, ObjectMeta
from smi.apis.specs import hub as specs
from smi.apis.split import hub as split
from smi.conversion import convert_document
from smi.errors import ConversionError

META = ObjectMeta(name="obj", namespace="shop", labels={"app": "web"})


def _versions(group: str, kind: str) -> list[str]:
    return [s.api_version for s in registry.served(group) if s.kind == kind]


def _pairs(group: str, kind: str) -> list[tuple[str, str]]:
    versions = _versions(group, kind)
    return [(a, b) for a in versions for b in versions]


def _tt(**kw: Any) -> access.TrafficTarget:
    base: dict[str, Any] = {
        "metadata": META,
        "destination": access.Subject(kind="ServiceAccount", name="api", namespace="shop"),
        "rules": (access.Rule(kind="HTTPRouteGroup", name="routes", matches=("metrics",)),),
        "sources": (access.Subject(kind="ServiceAccount", name="web", namespace="shop"),),
    }
    return access.TrafficTarget(**{**base, **kw})


ACCESS_CASES = {
    "plain": _tt(),
    "destination-port": _tt(
        destination=access.Subject(kind="ServiceAccount", name="api", namespace="shop", port=8080)
    ),
    "tcp-rule-no-matches": _tt(
        rules=(
            access.Rule(kind="TCPRoute", name="tcp"),
            access.Rule(kind="HTTPRouteGroup", name="routes", matches=()),
        )
    ),
    "no-rules-no-sources": _tt(rules=(), sources=()),
    "namespace-less-source": _tt(sources=(access.Subject(kind="ServiceAccount", name="web"),)),
}
ACCESS_V4_ONLY = {
    "identity-binding-subjects": _tt(
        destination=access.Subject(
            kind="IdentityBinding", name="api", namespace="shop", group="access.smi-spec.io"
        ),
        sources=(
            access.Subject(
                kind="IdentityBinding", name="web", namespace="shop", group="access.smi-spec.io"
            ),
        ),
    ),
}
UDP_RULE = _tt(rules=(access.Rule(kind="UDPRoute", name="udp"),))

HEADERS = (("user-agent", ".*Android.*"), ("cookie", "^(.*?;)?(type=insider)(;.*)?$"))
SPECS_CASES: dict[str, specs.SpecsHub] = {
    "plain": specs.HTTPRouteGroup(
        metadata=META,
        matches=(specs.HTTPMatch(name="metrics", path_regex="/metrics", methods=("GET",)),),
    ),
    "headers": specs.HTTPRouteGroup(
        metadata=META,
        matches=(
            specs.HTTPMatch(name="android", headers=HEADERS),
            specs.HTTPMatch(name="all", path_regex=".*", methods=("*",), headers=()),
        ),
    ),
    "tcp-ports": specs.TCPRoute(metadata=META, ports=(8301, 8302, 8300)),
    "tcp-all-ports": specs.TCPRoute(metadata=META, ports=()),
    "tcp-no-matches-block": specs.TCPRoute(metadata=META, has_matches=False),
    "udp-ports": specs.UDPRoute(metadata=META, ports=(53,)),
}


def _ts(weights: tuple[int, ...], **kw: Any) -> split.TrafficSplit:
    backends = tuple(
        split.Backend(service=f"web-v{i}", weight_milli=w) for i, w in enumerate(weights)
    )
    return split.TrafficSplit(metadata=META, service="web", backends=backends, **kw)


SPLIT_CASES = {
    "milli-weights": _ts((10, 100, 1500)),
    "whole-weights": _ts((90_000, 10_000)),
    "zero-weight": _ts((1000, 0)),
    "matches": _ts(
        (50_000, 50_000),
        matches=(split.MatchRef(kind="HTTPRouteGroup", name="ab-test"),),
    ),
    "empty-matches": _ts((1000,), matches=()),
    "matches-and-milli": _ts(
        (1, 2), matches=(split.MatchRef(kind="HTTPRouteGroup", name="ab", api_group="specs"),)
    ),
}


def _round_trip(hub_obj: Any, source: str, target: str) -> dict[str, Any]:
    doc = registry.render(hub_obj, source)
    converted = convert_document(doc, target)
    assert converted["apiVersion"] == target
    assert registry.parse(converted) == hub_obj
    assert LOSSY_ANNOTATION not in registry.parse(converted).metadata.annotations
    return converted


@pytest.mark.parametrize("case", sorted(ACCESS_CASES))
@pytest.mark.parametrize(("source", "target"), _pairs(access.GROUP, "TrafficTarget"))
def test_traffic_target_round_trips_between_every_pair(case: str, source: str, target: str) -> None:
    _round_trip(ACCESS_CASES[case], source, target)


@pytest.mark.parametrize("version", _versions(access.GROUP, "TrafficTarget")[:3])
def test_identity_binding_subjects_do_not_convert_below_v1alpha4(version: str) -> None:
    doc = registry.render(
        ACCESS_V4_ONLY["identity-binding-subjects"], "access.smi-spec.io/v1alpha4"
    )
    with pytest.raises(ConversionError) as info:
        convert_document(doc, version)
    assert info.value.diagnostics[0].code == "SMI4002"
    assert "destination is an IdentityBinding" in info.value.diagnostics[0].message


def test_identity_binding_subjects_round_trip_in_v1alpha4() -> None:
    _round_trip(
        ACCESS_V4_ONLY["identity-binding-subjects"],
        "access.smi-spec.io/v1alpha4",
        "access.smi-spec.io/v1alpha4",
    )


@pytest.mark.parametrize(
    ("source", "target"),
    list(
        itertools.product(["access.smi-spec.io/v1alpha3", "access.smi-spec.io/v1alpha4"], repeat=2)
    ),
)
def test_udp_rules_round_trip_between_v1alpha3_and_v1alpha4(source: str, target: str) -> None:
    _round_trip(UDP_RULE, source, target)


@pytest.mark.parametrize("older", ["access.smi-spec.io/v1alpha1", "access.smi-spec.io/v1alpha2"])
def test_udp_rule_rides_in_the_annotation_below_access_v1alpha3(older: str) -> None:
    _round_trip(UDP_RULE, "access.smi-spec.io/v1alpha3", older)


def test_destination_port_rides_in_the_annotation_in_v1alpha3() -> None:
    converted = _round_trip(
        ACCESS_CASES["destination-port"],
        "access.smi-spec.io/v1alpha1",
        "access.smi-spec.io/v1alpha3",
    )
    assert "port" not in converted["spec"]["destination"]
    lossy = json.loads(converted["metadata"]["annotations"][LOSSY_ANNOTATION])
    assert lossy["destination"]["value"]["port"] == 8080
    back = convert_document(converted, "access.smi-spec.io/v1alpha2")
    assert back["spec"]["destination"]["port"] == 8080
    assert "annotations" not in back["metadata"]


def test_access_v1alpha1_is_flat_and_names_rules_specs() -> None:
    doc = registry.render(ACCESS_CASES["plain"], "access.smi-spec.io/v1alpha1")
    assert list(doc) == ["apiVersion", "kind", "metadata", "destination", "specs", "sources"]
    doc2 = registry.render(ACCESS_CASES["plain"], "access.smi-spec.io/v1alpha2")
    assert list(doc2["spec"]) == ["destination", "rules", "sources"]


@pytest.mark.parametrize("case", sorted(SPECS_CASES))
@pytest.mark.parametrize(
    ("source", "target"),
    sorted(
        {
            p
            for kind in ("HTTPRouteGroup", "TCPRoute", "UDPRoute")
            for p in _pairs(specs.GROUP, kind)
        }
    ),
)
def test_specs_round_trip_between_every_pair(case: str, source: str, target: str) -> None:
    hub_obj = SPECS_CASES[case]
    if (
        registry.lookup(source, hub_obj.kind) is None
        or registry.lookup(target, hub_obj.kind) is None
    ):
        with pytest.raises(registry.KindNotInTarget):
            registry.render(
                hub_obj, source if registry.lookup(source, hub_obj.kind) is None else target
            )
        return
    _round_trip(hub_obj, source, target)


def test_headers_are_written_in_list_form_and_dropped_into_the_annotation_in_v1alpha1() -> None:
    doc = registry.render(SPECS_CASES["headers"], "specs.smi-spec.io/v1alpha4")
    assert doc["spec"]["matches"][0]["headers"] == [
        {"user-agent": ".*Android.*"},
        {"cookie": "^(.*?;)?(type=insider)(;.*)?$"},
    ]
    old = convert_document(doc, "specs.smi-spec.io/v1alpha1")
    assert "headers" not in old["matches"][0]
    assert LOSSY_ANNOTATION in old["metadata"]["annotations"]


def test_map_form_headers_read_like_the_list_form_with_lower_case_names() -> None:
    base = {"apiVersion": "specs.smi-spec.io/v1alpha4", "kind": "HTTPRouteGroup"}
    as_map = {
        **base,
        "spec": {"matches": [{"name": "m", "headers": {"User-Agent": "x", "cookie": "y"}}]},
    }
    as_list = {
        **base,
        "spec": {"matches": [{"name": "m", "headers": [{"user-agent": "x"}, {"Cookie": "y"}]}]},
    }
    parsed = registry.parse(as_map)
    assert parsed == registry.parse(as_list)
    assert parsed.matches[0].headers == (("user-agent", "x"), ("cookie", "y"))


def test_tcp_ports_ride_in_the_annotation_below_v1alpha4() -> None:
    doc = registry.render(SPECS_CASES["tcp-ports"], "specs.smi-spec.io/v1alpha4")
    assert doc["spec"] == {"matches": {"ports": [8301, 8302, 8300]}}
    old = convert_document(doc, "specs.smi-spec.io/v1alpha3")
    assert old["spec"] == {}
    assert json.loads(old["metadata"]["annotations"][LOSSY_ANNOTATION])["ports"]["value"] == [
        8301,
        8302,
        8300,
    ]
    assert convert_document(old, "specs.smi-spec.io/v1alpha4")["spec"] == doc["spec"]


def test_tcp_route_without_ports_needs_no_annotation_anywhere() -> None:
    for version in _versions(specs.GROUP, "TCPRoute"):
        doc = registry.render(SPECS_CASES["tcp-all-ports"], version)
        assert "annotations" not in doc["metadata"], version


@pytest.mark.parametrize("case", sorted(SPLIT_CASES))
@pytest.mark.parametrize(("source", "target"), _pairs(split.GROUP, "TrafficSplit"))
def test_traffic_split_round_trips_between_every_pair(case: str, source: str, target: str) -> None:
    _round_trip(SPLIT_CASES[case], source, target)


def test_milli_weights_become_ratio_preserving_integers() -> None:
    doc = registry.render(SPLIT_CASES["milli-weights"], "split.smi-spec.io/v1alpha1")
    assert [b["weight"] for b in doc["spec"]["backends"]] == ["10m", "100m", "1500m"]
    for version in ("v1alpha2", "v1alpha3", "v1alpha4"):
        out = convert_document(doc, f"split.smi-spec.io/{version}")
        assert [b["weight"] for b in out["spec"]["backends"]] == [1, 10, 150]
        assert LOSSY_ANNOTATION in out["metadata"]["annotations"]


def test_whole_weights_convert_without_annotation() -> None:
    doc = registry.render(SPLIT_CASES["whole-weights"], "split.smi-spec.io/v1alpha4")
    assert [b["weight"] for b in doc["spec"]["backends"]] == [90, 10]
    old = convert_document(doc, "split.smi-spec.io/v1alpha1")
    assert [b["weight"] for b in old["spec"]["backends"]] == ["90", "10"]
    assert "annotations" not in old["metadata"]


def test_split_matches_ride_in_the_annotation_in_v1alpha2() -> None:
    doc = registry.render(SPLIT_CASES["matches"], "split.smi-spec.io/v1alpha4")
    old = convert_document(doc, "split.smi-spec.io/v1alpha2")
    assert "matches" not in old["spec"]
    assert json.loads(old["metadata"]["annotations"][LOSSY_ANNOTATION])["matches"]["value"] == [
        {"kind": "HTTPRouteGroup", "name": "ab-test", "api_group": None}
    ]


def test_identity_binding_round_trips_in_its_only_version() -> None:
    binding = access.IdentityBinding(
        metadata=META,
        schemes=access.IdentityBindingSchemes(
            pod_label_selector={"matchLabels": {"app": "web"}},
            spiffe_identities=("cluster.local/ns/shop/sa/web",),
            service_account="web",
        ),
    )
    _round_trip(binding, "access.smi-spec.io/v1alpha4", "access.smi-spec.io/v1alpha4")
    with pytest.raises(registry.KindNotInTarget, match="has no kind IdentityBinding"):
        registry.render(binding, "access.smi-spec.io/v1alpha3")


# --- the shared example manifests, read and written back in their own version ------------------

_IMPLIED = re.compile(r"implied apiVersion is (\S+/v\w+)(?:\s|$)")


def _example_docs(root: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(root.rglob("*.yaml")):
        text = path.read_text()
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            continue  # one metrics example is a deliberately partial document
        implied = _IMPLIED.search(text)
        for raw in docs:
            if not isinstance(raw, dict):
                continue
            doc = raw
            if "apiVersion" not in raw and implied:
                doc = {"apiVersion": implied.group(1), **raw}
            api_version = doc.get("apiVersion")
            if isinstance(api_version, str) and registry.lookup(api_version, str(doc.get("kind"))):
                out.append((str(path.relative_to(root)), doc))
    return out


def _canonical(doc: Any, *, key: str = "") -> Any:
    """What smictl writes for `doc`: headers in the list form with lower-case names, times
    (which the YAML reader of this test makes datetimes of) in RFC 3339, no explicit nulls.
    v1alpha1 weights are written as they were (`1`, `"0m"`), no longer as canonical quantities."""
    if isinstance(doc, dict):
        out = {k: _canonical(v, key=k) for k, v in doc.items() if v is not None}
        if isinstance(out.get("headers"), dict):
            out["headers"] = [{k.lower(): v} for k, v in out["headers"].items()]
        elif isinstance(out.get("headers"), list):
            out["headers"] = [{k.lower(): v for k, v in e.items()} for e in out["headers"]]
        return out
    if isinstance(doc, list):
        return [_canonical(v, key=key) for v in doc]
    if isinstance(doc, datetime.datetime):
        return doc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return doc


def test_the_examples_cover_every_group(smi_examples: Path) -> None:
    groups = {doc["apiVersion"].split("/")[0] for _, doc in _example_docs(smi_examples)}
    assert groups == set(registry.SMI_GROUPS)


def test_valid_examples_round_trip_in_their_own_version(smi_examples: Path) -> None:
    checked = 0
    for name, doc in _example_docs(smi_examples):
        try:
            hub_obj = registry.parse(doc)
        except ValueError:
            # e.g. a flat HTTPRouteGroup under specs v1alpha4: rejected, nothing to round-trip
            assert name.endswith("httproutegroup-ab-test--firefox-users.yaml"), name
            continue
        expected = _canonical(doc)
        assert registry.render(hub_obj, doc["apiVersion"]) == expected, name
        checked += 1
    assert checked >= 80


def test_examples_convert_to_every_version_of_their_group_and_back(smi_examples: Path) -> None:
    for name, doc in _example_docs(smi_examples):
        try:
            hub_obj = registry.parse(doc)
        except ValueError:
            continue
        group = doc["apiVersion"].split("/")[0]
        for version in {s.api_version for s in registry.served(group) if s.kind == doc["kind"]}:
            try:
                out = convert_document(doc, version)
            except ConversionError as exc:
                assert exc.diagnostics[0].code == "SMI4002", name
                assert hub_obj.kind == "TrafficTarget", name
                continue
            assert registry.parse(out) == hub_obj, (name, version)
