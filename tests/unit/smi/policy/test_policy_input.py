"""The input document policies see: request, hub (camelCase, version-free), inventory."""

from __future__ import annotations

from typing import Any

from smi.loading import load_object
from smi.policy.input import (
    Inventory,
    admission_input,
    create_request,
    hub_document,
    referenced_namespaces,
)

SPLIT_V1ALPHA1 = {
    "apiVersion": "split.smi-spec.io/v1alpha1",
    "kind": "TrafficSplit",
    "metadata": {"name": "s", "namespace": "shop", "labels": {"team_name": "a"}},
    "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": "500m"}]},
}
SPLIT_V1ALPHA4 = {
    **SPLIT_V1ALPHA1,
    "apiVersion": "split.smi-spec.io/v1alpha4",
    "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": 5}]},
}
GROUP = {
    "apiVersion": "specs.smi-spec.io/v1alpha4",
    "kind": "HTTPRouteGroup",
    "metadata": {"name": "g", "namespace": "shop"},
    "spec": {"matches": [{"name": "m", "pathRegex": "/a$", "headers": {"X-Id": "1"}}]},
}


def loaded(doc: dict[str, Any]) -> Any:
    result = load_object(doc)
    assert result.ok, [d.format() for d in result.diagnostics]
    return result.resources[0]


def test_hub_form_is_camel_case_and_keeps_label_keys_as_written() -> None:
    doc = hub_document(loaded(SPLIT_V1ALPHA1).obj)
    assert doc["metadata"]["labels"] == {"team_name": "a"}
    assert doc["backends"] == [{"service": "web-v1", "weightMilli": 500}]
    assert doc["kind"] == "TrafficSplit" and doc["matches"] is None


def test_hub_form_is_the_same_for_every_version() -> None:
    v1 = hub_document(loaded(SPLIT_V1ALPHA1).obj)
    v4 = hub_document(loaded(SPLIT_V1ALPHA4).obj)
    assert v1["backends"] == [{"service": "web-v1", "weightMilli": 500}]
    assert v4["backends"] == [{"service": "web-v1", "weightMilli": 5000}]
    assert {k: v for k, v in v1.items() if k != "backends"} == {
        k: v for k, v in v4.items() if k != "backends"
    }


def test_headers_are_lower_case_name_value_pairs() -> None:
    [match] = hub_document(loaded(GROUP).obj)["matches"]
    assert match == {"name": "m", "pathRegex": "/a$", "methods": None, "headers": [["x-id", "1"]]}


def test_inventory_groups_by_kind_namespace_name() -> None:
    namespace = load_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "p"}})
    inv = Inventory.of([loaded(GROUP)], namespace.context)
    assert set(inv.documents) == {"HTTPRouteGroup", "Namespace"}
    assert inv.documents["HTTPRouteGroup"]["shop"]["g"]["matches"][0]["pathRegex"] == "/a$"
    assert inv.documents["Namespace"][""]["p"]["metadata"] == {"name": "p"}
    assert inv.document(["Namespace"]) == {"Namespace": inv.documents["Namespace"]}
    assert inv.document([]) == {}


def test_create_request_is_an_admission_request_for_the_file_object() -> None:
    r = loaded(SPLIT_V1ALPHA4)
    request = create_request(r, uid="u1")
    assert request["uid"] == "u1" and request["operation"] == "CREATE"
    assert request["kind"] == {
        "group": "split.smi-spec.io",
        "version": "v1alpha4",
        "kind": "TrafficSplit",
    }
    assert request["resource"]["resource"] == "trafficsplits"
    assert (request["namespace"], request["name"]) == ("shop", "s")
    assert request["object"] == SPLIT_V1ALPHA4 and request["oldObject"] is None


def test_admission_input_has_request_hub_old_hub_and_inventory() -> None:
    r = loaded(SPLIT_V1ALPHA4)
    doc = admission_input({"uid": "u"}, hub=r.obj, old_hub=None, inventory={"X": {}})
    assert set(doc) == {"request", "hub", "oldHub", "inventory"}
    assert doc["hub"]["metadata"]["name"] == "s" and doc["oldHub"] is None


def test_inventory_is_limited_to_referenced_namespaces_and_cluster_scope() -> None:
    docs = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a", "namespace": ns}}
        for ns in ("shop", "web", "unrelated")
    ]
    docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}})
    inv = Inventory.of((), [c for d in docs for c in load_object(d).context])
    target = {
        "apiVersion": "access.smi-spec.io/v1alpha3",
        "kind": "TrafficTarget",
        "metadata": {"name": "t", "namespace": "shop"},
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "shop"},
            "rules": [{"kind": "TCPRoute", "name": "r"}],
            "sources": [{"kind": "ServiceAccount", "name": "x", "namespace": "web"}],
        },
    }
    namespaces = referenced_namespaces(loaded(target).obj, own="shop")
    assert namespaces == {"", "shop", "web"}
    scoped = inv.document(["ServiceAccount", "Namespace"], namespaces=namespaces)
    assert set(scoped["ServiceAccount"]) == {"shop", "web"}
    assert set(scoped["Namespace"][""]) == {"web"}


def test_context_objects_lose_status_and_managed_fields() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop", "managedFields": [{"manager": "kubectl"}]},
        "spec": {"serviceAccountName": "web"},
        "status": {"phase": "Running"},
    }
    inv = Inventory.of((), load_object(pod).context)
    assert inv.documents["Pod"]["shop"]["p"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": {"serviceAccountName": "web"},
    }
