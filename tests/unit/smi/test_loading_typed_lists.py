"""A CRD's typed list (`TrafficSplitList`, the `listKind` SPEC.md §1 names; what the API server
answers a list with, items without apiVersion and kind) is read like `kind: List`. It was
refused: `kind: split.smi-spec.io/v1alpha4 has no kind TrafficSplitList (SMI1007)`."""

from __future__ import annotations

from typing import Any

from smi.loading import load_text

SPLITS = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplitList
metadata: {resourceVersion: "12"}
items:
- metadata: {name: s, namespace: shop}
  spec:
    service: web
    backends:
    - {service: a, weight: -5}
- apiVersion: split.smi-spec.io/v1alpha4
  kind: TrafficSplit
  metadata: {name: t, namespace: shop}
  spec: {service: web2, backends: [{service: a, weight: 5}]}
"""


def test_a_typed_list_of_smi_objects_gives_its_items_with_their_lines() -> None:
    loaded = load_text(SPLITS, filename="l.yaml")
    assert [(r.kind, r.name) for r in loaded.resources] == [
        ("TrafficSplit", "s"),
        ("TrafficSplit", "t"),
    ]
    assert [d for d in loaded.diagnostics if d.is_error] == []
    from smi.validation import check_resource

    [problem] = [d for r in loaded.resources for d in check_resource(r)]
    assert (problem.code, problem.line, problem.path) == ("SMI2103", 9, "spec.backends[0].weight")


def test_a_typed_list_of_context_objects_is_context() -> None:
    text = (
        "apiVersion: v1\nkind: ServiceList\nitems:\n"
        "- metadata: {name: web, namespace: shop}\n  spec: {ports: [{port: 80}]}\n"
    )
    loaded = load_text(text, filename="l.yaml")
    assert loaded.diagnostics == [] and len(loaded.context) == 1


def test_a_list_kind_of_nothing_served_is_still_refused() -> None:
    text = "apiVersion: split.smi-spec.io/v1alpha4\nkind: BananaList\nitems: []\n"
    [problem] = load_text(text, filename="l.yaml").diagnostics
    assert problem.code == "SMI1007" and problem.is_error


def test_a_list_kind_that_is_served_is_an_object_not_a_wrapper() -> None:
    """metrics v1alpha1 serves TrafficMetricsList as a kind of its own: the loader unwrapped it
    into TrafficMetrics items (and `convert`, which kept it whole, disagreed)."""
    from smi.loading import load_text

    text = (
        "apiVersion: metrics.smi-spec.io/v1alpha1\nkind: TrafficMetricsList\n"
        "resource: {kind: Deployment, namespace: shop, name: web}\n"
        "items:\n- resource: {kind: Pod, namespace: shop, name: web-1}\n"
        "  edge: {direction: to, side: client,\n"
        "         resource: {kind: Pod, namespace: shop, name: api-1}}\n"
        '  timestamp: "2019-04-08T22:25:55Z"\n  window: 30s\n  metrics: []\n'
    )
    loaded = load_text(text, filename="m.yaml")
    assert [d.format() for d in loaded.diagnostics if d.is_error] == []
    assert [r.kind for r in loaded.resources] == ["TrafficMetricsList"]


FOREIGN = """\
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplitList
items:
- apiVersion: access.smi-spec.io/v1alpha3
  kind: TrafficTarget
  metadata: {name: t, namespace: ns1}
  spec:
    destination: {kind: ServiceAccount, name: a, namespace: ns1}
    rules: [{kind: TCPRoute, name: r}]
    sources: [{kind: ServiceAccount, name: b, namespace: ns1}]
- kind: TrafficSplit
  apiVersion: split.smi-spec.io/v1alpha4
  metadata: {name: s, namespace: ns1}
  spec: {service: web, backends: [{service: a, weight: 5}]}
- kind: TrafficSplit
  metadata: {name: ok, namespace: ns1}
  spec: {service: web, backends: [{service: a, weight: 5}]}
"""


def test_an_item_of_another_type_in_a_typed_list_is_refused() -> None:
    """It was read as its own type (a TrafficTarget in a TrafficSplitList), so `compile`
    enforced it while `convert` converted the list as TrafficSplits and left it out."""
    loaded = load_text(FOREIGN, filename="l.yaml")
    assert [(d.code, d.line, d.path) for d in loaded.diagnostics] == [
        ("SMI1013", 4, "items[0].apiVersion"),
        ("SMI1013", 12, "items[1].apiVersion"),
    ]
    assert all(d.is_error for d in loaded.diagnostics)
    assert "not access.smi-spec.io/v1alpha3" in loaded.diagnostics[0].message
    assert [(r.kind, r.name) for r in loaded.resources] == [("TrafficSplit", "ok")]


def test_convert_refuses_the_list_as_validate_does(tmp_path: Any) -> None:
    from smi.cli import main

    path = tmp_path / "l.yaml"
    path.write_text(FOREIGN)
    for to in ("split.smi-spec.io/v1alpha4", "access.smi-spec.io/v1alpha1"):
        assert main(["convert", "-f", str(path), "--to", to]) == 1
