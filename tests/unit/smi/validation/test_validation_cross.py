"""Cross-resource checks of `smi.compiler.validate` (SMI3xxx): references are warnings unless
strict, one split per root service per namespace, backend Services and their ports, and the
`subjects` mode admission uses."""

from __future__ import annotations

import json

from validation_helpers import findings, run_checks

from smi.compiler import validate
from smi.loading import load_text

GROUP = """\
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: shop}
spec:
  matches: [{name: read, pathRegex: /.*}]
"""
TARGET = """\
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: tt, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  rules:
  - {kind: HTTPRouteGroup, name: routes, matches: [read, write]}
  - {kind: TCPRoute, name: db}
  sources: [{kind: ServiceAccount, name: web, namespace: shop}]
"""


def split(name: str, root: str, backends: str, matches: str = "") -> str:
    return (
        f"apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n"
        f"metadata: {{name: {name}, namespace: shop}}\nspec:\n  service: {root}\n{matches}"
        f"  backends: [{backends}]\n"
    )


def service(name: str, ports: str, namespace: str = "shop") -> str:
    return (
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec: {{ports: [{ports}]}}\n"
    )


def docs(*texts: str) -> str:
    return "---\n".join(texts)


def test_dangling_rule_references_and_match_names_warn() -> None:
    diags = run_checks(docs(GROUP, TARGET))
    assert [(d.code, d.path, d.severity, d.line) for d in diags] == [
        ("SMI3002", "spec.rules[0].matches[1]", "warning", 13),
        ("SMI3001", "spec.rules[1].name", "warning", 14),
    ]
    assert diags[0].message == "HTTPRouteGroup shop/routes has no match 'write' (it has: read)"
    assert diags[0].object_ref == "TrafficTarget/shop/tt"


def test_empty_matches_on_a_rule_warn_that_they_allow_every_route() -> None:
    target = TARGET.replace("matches: [read, write]", "matches: []")
    diags = run_checks(docs(GROUP, target), strict=True)
    assert [(d.code, d.path, d.severity, d.line) for d in diags if d.code == "SMI3010"] == [
        ("SMI3010", "spec.rules[0].matches", "warning", 13),  # strict leaves it a warning
    ]
    # Left out: every route too, and nothing to warn about.
    omitted = TARGET.replace(", matches: [read, write]", "")
    assert "SMI3010" not in {d.code for d in run_checks(docs(GROUP, omitted))}


def test_empty_matches_on_a_split_warn_that_every_request_is_split() -> None:
    backends = "{service: web-v1, weight: 90}, {service: web-v2, weight: 10}"
    empty = split("ab", "web", backends, matches="  matches: []\n")
    diags = run_checks(empty, strict=True)
    assert [(d.code, d.path, d.severity, d.line) for d in diags if d.code == "SMI3011"] == [
        ("SMI3011", "spec.matches", "warning", 6),  # strict leaves it a warning
    ]
    assert "splits every request to shop/web" in next(
        d.message for d in diags if d.code == "SMI3011"
    )
    listed = split(
        "ab", "web", backends, matches="  matches: [{kind: HTTPRouteGroup, name: routes}]\n"
    )
    for text in (split("ab", "web", backends), docs(GROUP, listed)):
        assert "SMI3011" not in {d.code for d in run_checks(text)}


def test_strict_turns_reference_warnings_into_errors() -> None:
    diags = run_checks(docs(GROUP, TARGET), strict=True)
    assert {(d.code, d.severity) for d in diags} == {("SMI3001", "error"), ("SMI3002", "error")}


def test_references_resolve_in_the_targets_own_namespace() -> None:
    other = GROUP.replace("namespace: shop", "namespace: other")
    diags = run_checks(docs(other, TARGET))
    assert ("SMI3001", "spec.rules[0].name") in findings(diags)


def test_one_split_per_root_service_the_second_is_rejected() -> None:
    first = split("a", "web", "{service: v1, weight: 1}")
    second = split("b", "web.shop.svc.cluster.local", "{service: v2, weight: 1}")
    diags = run_checks(docs(first, second))
    [d] = diags
    assert (d.code, d.path, d.severity, d.object_ref) == (
        "SMI3003",
        "spec.service",
        "error",
        "TrafficSplit/shop/b",
    )
    assert d.message == (
        "TrafficSplit/shop/a already splits root service shop/web; one "
        "TrafficSplit per root service per namespace"
    )


def test_split_matches_reference_route_groups() -> None:
    matches = "  matches: [{kind: HTTPRouteGroup, name: beta}]\n"
    diags = run_checks(split("a", "web", "{service: v1, weight: 1}", matches))
    assert findings(diags) == [("SMI3001", "spec.matches[0].name")]


def test_backend_services_are_checked_only_when_the_namespace_has_services() -> None:
    text = split("a", "web", "{service: v1, weight: 1}, {service: v2, weight: 1}")
    assert run_checks(text) == []
    with_services = docs(
        service("web", "{port: 80}, {port: 443}"),
        service("v1", "{port: 80}"),
        text,
        service("v3", "{port: 80}", namespace="elsewhere"),
    )
    diags = run_checks(with_services)
    assert [(d.code, d.path) for d in diags] == [
        ("SMI3005", "spec.backends[0].service"),
        ("SMI3004", "spec.backends[1].service"),
    ]
    assert diags[0].message == (
        "backend Service 'v1' lacks port 443 of root service 'web'; it gets no traffic on it"
    )
    no_root = docs(service("v1", "{port: 80}"), service("v2", "{port: 80}"), text)
    assert findings(run_checks(no_root)) == [("SMI3007", "spec.service")]


def test_a_backend_that_is_another_splits_root_warns() -> None:
    diags = run_checks(
        docs(
            split("a", "web", "{service: api, weight: 1}"),
            split("b", "api", "{service: api-v1, weight: 1}"),
        )
    )
    assert [(d.code, d.object_ref) for d in diags] == [("SMI3006", "TrafficSplit/shop/a")]


def test_an_object_defined_twice_in_the_set_warns() -> None:
    diags = run_checks(docs(GROUP, GROUP))
    [d] = diags
    assert (d.code, d.severity, d.line) == ("SMI3008", "warning", 9)
    assert "first at t.yaml:1" in d.message


def test_copies_that_differ_only_in_key_order_or_a_defaulted_namespace_are_identical() -> None:
    meta = "{name: routes, namespace: shop}"
    reordered = GROUP.replace(meta, "{namespace: shop, name: routes}")
    assert [d.severity for d in run_checks(docs(GROUP, reordered))] == ["warning"]
    plain = GROUP.replace(meta, "{name: routes}")
    explicit = GROUP.replace(meta, "{name: routes, namespace: default}")
    assert [d.severity for d in run_checks(docs(plain, explicit))] == ["warning"]


def test_an_object_defined_twice_with_different_content_is_an_error() -> None:
    # A warning let `validate` pass a set that `smictl apply` refuses (SMI2007).
    other = GROUP.replace("pathRegex: /.*", "pathRegex: /admin/.*")
    [d] = run_checks(docs(GROUP, other))
    assert (d.code, d.severity, d.line, d.path) == ("SMI3008", "error", 9, "metadata.name")
    assert d.message.startswith(
        "HTTPRouteGroup/shop/routes is defined twice with different content (first at "
        "t.yaml:1, again at t.yaml:7)"
    )
    # The same content under another version of the group is stored as another document.
    v1alpha3 = GROUP.replace("v1alpha4", "v1alpha3")
    assert [d.severity for d in run_checks(docs(GROUP, v1alpha3))] == ["error"]


def test_copies_in_a_json_file_name_the_lines_of_both() -> None:
    """JSON objects have no line in their source (a JSON file's lines are computed only when
    asked): the copies were "first at t.json, again at t.json", a Service's without any line."""
    group = {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": "routes", "namespace": "shop"},
        "spec": {"matches": [{"name": "read", "pathRegex": "/.*"}]},
    }
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "shop"}}
    other = {**group, "spec": {"matches": [{"name": "read", "pathRegex": "/a/.*"}]}}
    items = [group, other, svc, {**svc, "spec": {"ports": [{"port": 80}]}}]
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=1)
    starts = [n for n, line in enumerate(text.splitlines(), 1) if line == "  {"]
    loaded = load_text(text, filename="t.json")
    diags = loaded.diagnostics + validate(loaded.resources, loaded.context, strict=False)
    assert [(d.code, d.object_ref, d.line) for d in diags] == [
        ("SMI3008", "HTTPRouteGroup/shop/routes", starts[1] + 4),  # at its metadata.name
        ("SMI3008", "Service/shop/api", starts[3]),
    ]
    for diag, first, again in zip(diags, starts[::2], starts[1::2], strict=True):
        assert f"(first at t.json:{first}, again at t.json:{again})" in diag.message


def test_identity_binding_references_are_checked_in_v1alpha4() -> None:
    text = TARGET.replace("v1alpha3", "v1alpha4").replace(
        "{kind: ServiceAccount, name: web, namespace: shop}",
        "{kind: IdentityBinding, group: access.smi-spec.io, name: web, namespace: shop}",
    )
    assert ("SMI3009", "spec.sources[0].name") in findings(run_checks(docs(GROUP, text)))


def test_subjects_are_checked_against_the_set_they_replace_objects_in() -> None:
    existing = load_text(
        docs(split("a", "web", "{service: v1, weight: 1}"), GROUP), filename="store"
    ).resources
    update = load_text(split("a", "web", "{service: v2, weight: 1}"), filename="req").resources
    assert validate(existing, subjects=update) == []  # an update is not a second split
    rival = load_text(split("b", "web", "{service: v2, weight: 1}"), filename="req").resources
    [d] = validate(existing, subjects=rival)
    assert (d.code, d.file) == ("SMI3003", "req")
    assert validate(existing, subjects=[]) == []
