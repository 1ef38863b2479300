"""Mesh endpoints in Kubernetes mode: recorded EndpointSlice and Pod list/watch payloads through
the kubernetes client's own layers, joined into EndpointRecords (address, proxy inbound port,
identity, services), and the mapping rules on hand-written documents."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from smi.store.base import EndpointRecord
from smi.store.endpoints import EndpointIndex, PodView, listeners, pod_view, slice_view
from smi.store.kubernetes import WATCHED, KubernetesStore, Watched

SLICES = Watched("discovery.k8s.io/v1", "EndpointSlice", "endpointslices")
PODS = Watched("v1", "Pod", "pods")
SLICE_PATH = "/apis/discovery.k8s.io/v1/endpointslices"
POD_PATH = "/api/v1/pods"
WEB = ("shop/web", "shop/web-v1")
pytestmark = pytest.mark.timeout(30)


def record(address: str, identity: str, *services: str, port: int = 15006) -> EndpointRecord:
    return EndpointRecord(address=address, port=port, identity=identity, services=services)


def listed(api: tuple[Any, Any]) -> KubernetesStore:
    """A store with the recorded slices, then pods, listed (the informers' first step)."""
    api_client, scripted = api
    store = KubernetesStore(api_client, watched=[SLICES, PODS])
    scripted.expect(SLICE_PATH, "endpointslices-list.json")
    scripted.expect(POD_PATH, "pods-list.json")
    for informer in store.informers:
        informer.relist()
    return store


def test_the_store_watches_endpointslices_and_pods() -> None:
    assert SLICES in WATCHED and PODS in WATCHED


def test_ready_injected_endpoints_become_records_with_identities(api: tuple[Any, Any]) -> None:
    store = listed(api)
    assert store.snapshot().endpoints == (
        # web-6b7c9-a backs web and web-v1: one record, both services, its proxy's inbound port
        record("10.244.1.5", "shop/web", *WEB),
        # api-0 has no serviceAccountName: the default ServiceAccount
        record("10.244.1.9", "shop/default", "shop/api"),
        record("10.244.2.6", "shop/web", *WEB),
        # left out: 10.244.3.7 (not ready), legacy (no proxy), external-db (no Service label)
    )
    assert store.ready() and store.revision() == 52010
    # Slices and Pods are not documents the compiler loads.
    assert store.snapshot().objects == ()


def test_endpoints_wait_for_their_pods(api: tuple[Any, Any]) -> None:
    api_client, scripted = api
    store = KubernetesStore(api_client, watched=[SLICES, PODS])
    scripted.expect(SLICE_PATH, "endpointslices-list.json")
    scripted.expect(POD_PATH, "pods-list.json")
    store.informers[0].relist()
    assert store.snapshot().endpoints == ()  # no Pod known yet: no identity, no endpoint
    assert store.revision() == 0
    store.informers[1].relist()
    assert len(store.snapshot().endpoints) == 3
    assert store.revision() == 52010


def test_a_slice_update_removes_and_adds_endpoints(api: tuple[Any, Any]) -> None:
    store = listed(api)
    _, scripted = api
    informer = store.informers[0]
    scripted.expect(SLICE_PATH, "endpointslices-watch.jsonl", watch=True)
    informer.watch_once()
    assert scripted.calls[-1].resource_version == "52000"
    assert store.snapshot().endpoints == (
        record("10.244.1.5", "shop/web", *WEB),
        record("10.244.1.9", "shop/default", "shop/api"),
        # 10.244.2.6 is terminating (not ready) and gone from web-v1; 10.244.3.7 became ready
        record("10.244.3.7", "shop/web", "shop/web"),
    )
    assert store.revision() == 52025
    assert informer.resource_version == "52030"  # the bookmark moved the version only


def test_pod_status_churn_does_not_bump_the_revision_but_a_deletion_does(
    api: tuple[Any, Any],
) -> None:
    store = listed(api)
    _, scripted = api
    informer = store.informers[1]
    scripted.expect(POD_PATH, "pods-watch.jsonl", watch=True)
    seen: list[int] = []

    def after_each_event() -> bool:
        seen.append(store.revision())
        return False

    informer.watch_once(stop=after_each_event)
    # After the status-only MODIFIED of web-6b7c9-a: nothing changed for the mesh.
    assert seen[0] == 52010
    # After web-6b7c9-b was DELETED: its endpoint has no identity any more.
    assert seen[1] == 52041
    addresses = [r.address for r in store.snapshot().endpoints]
    assert addresses == ["10.244.1.5", "10.244.1.9"]


def test_410_gone_relists_the_slices(api: tuple[Any, Any]) -> None:
    store = listed(api)
    _, scripted = api
    informer = store.informers[0]
    scripted.expect(SLICE_PATH, "watch-410-gone.jsonl", watch=True)
    scripted.expect(SLICE_PATH, "endpointslices-relist.json")
    with pytest.raises(ApiException) as info:
        informer.watch_once()
    assert info.value.status == 410
    informer.relist()
    assert store.snapshot().endpoints == (
        record("10.244.1.5", "shop/web", "shop/web"),  # web-v1's slice is gone
        record("10.244.1.9", "shop/default", "shop/api"),
    )
    assert store.revision() == 53500 and informer.resource_version == "53500"


def test_the_informer_thread_relists_slices_after_410(api: tuple[Any, Any]) -> None:
    api_client, scripted = api
    store = KubernetesStore(api_client, watched=[SLICES], backoff=0.01)
    store.replace(
        PODS, [_pod("web-6b7c9-a", sa="web"), _pod("api-0", sa=None, inbound="15006:9090")], "1"
    )
    for recording, watch in (
        ("endpointslices-list.json", False),
        ("watch-410-gone.jsonl", True),
        ("endpointslices-relist.json", False),
    ):
        scripted.expect(SLICE_PATH, recording, watch=watch)
    store.start()
    try:
        while store.revision() < 53500:
            assert store.wait_for_change(store.revision(), timeout=10) > 0
    finally:
        store.close()
    assert [r.address for r in store.snapshot().endpoints] == ["10.244.1.5", "10.244.1.9"]
    assert store.informers[0].relists == 2


# --- the mapping, on hand-written documents ------------------------------------------------


def _pod(
    name: str, *, sa: str | None, inbound: str | None = "15006:8080", args: tuple[str, ...] = ()
) -> dict[str, Any]:
    proxy: dict[str, Any] = {"name": "smictl-proxy", "args": ["proxy", *args], "env": []}
    if inbound is not None:
        proxy["env"].append({"name": "SMI_PROXY_INBOUND", "value": inbound})
    spec: dict[str, Any] = {"containers": [{"name": "app"}, proxy]}
    if sa is not None:
        spec["serviceAccountName"] = sa
    return {"kind": "Pod", "metadata": {"name": name, "namespace": "shop"}, "spec": spec}


def _slice(
    endpoints: list[dict[str, Any]], *, ports: list[Any] | None = None, service: str = "web"
) -> dict[str, Any]:
    return {
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-1",
            "namespace": "shop",
            "labels": {"kubernetes.io/service-name": service},
        },
        "ports": [{"port": 8080}] if ports is None else ports,
        "endpoints": endpoints,
    }


def _ep(ip: str, pod: str, **conditions: bool) -> dict[str, Any]:
    ref = {"kind": "Pod", "name": pod, "namespace": "shop"}
    return {"addresses": [ip], "targetRef": ref, "conditions": conditions}


def test_listeners_come_from_the_variable_and_the_inbound_flags() -> None:
    container = {
        "name": "smictl-proxy",
        "env": [{"name": "SMI_PROXY_INBOUND", "value": "15006:8080, 15007:5432"}],
        "args": ["proxy", "--inbound", "15008:9090", "--inbound=15009:9091", "--inbound=bad"],
    }
    assert listeners(container) == ((15006, 8080), (15007, 5432), (15008, 9090), (15009, 9091))
    assert pod_view({"spec": {"containers": [{"name": "app"}]}}) == PodView("default", ())


def test_a_proxy_injected_as_a_native_sidecar_is_found_too() -> None:
    # The injector's default: the first init container, restartPolicy Always. An init container
    # of that name that runs to completion is no proxy.
    proxy = _pod("web-1", sa="web")["spec"]["containers"].pop()
    spec = {"serviceAccountName": "web", "containers": [{"name": "app"}]}
    native = {"spec": {**spec, "initContainers": [{**proxy, "restartPolicy": "Always"}]}}
    assert pod_view(native) == PodView("web", ((15006, 8080),))
    native["spec"]["initContainers"][0].pop("restartPolicy")
    assert pod_view(native) == PodView("web", ())


def test_the_port_is_the_listener_in_front_of_the_slices_port() -> None:
    view = PodView("web", listeners=((15006, 8080), (15007, 5432)))
    assert view.inbound_for([5432]) == 15007
    assert view.inbound_for([9999, 8080]) == 15006  # the first port a listener fronts
    assert view.inbound_for([None]) == 15006  # no port numbers: all ports, the first listener
    assert view.inbound_for([9999]) is None  # nothing fronts the Service's port
    assert PodView("web").inbound_for([8080]) is None  # no proxy


def test_unset_ready_means_ready_and_foreign_or_unowned_endpoints_are_ignored() -> None:
    doc = _slice(
        [
            {"addresses": ["10.0.0.1"], "targetRef": {"kind": "Pod", "name": "a"}},
            {**_ep("10.0.0.2", "b"), "targetRef": {"kind": "Pod", "name": "b", "namespace": "x"}},
            {"addresses": ["10.0.0.3"]},
            _ep("10.0.0.4", "d", ready=False, serving=True, terminating=True),
        ]
    )
    view = slice_view(doc)
    assert view is not None and view.service == "shop/web"
    assert view.endpoints == (("10.0.0.1", "a"),)
    assert slice_view({"metadata": {"name": "manual", "namespace": "shop"}}) is None


def test_a_pod_whose_proxy_does_not_front_the_service_port_is_no_endpoint() -> None:
    index = EndpointIndex()
    index.replace("Pod", [_pod("a", sa="web"), _pod("m", sa="web", inbound="15006:9100")])
    changed = index.event("ADDED", _slice([_ep("10.0.0.1", "a"), _ep("10.0.0.2", "m")]))
    assert changed and index.records() == (record("10.0.0.1", "shop/web", "shop/web"),)


def test_index_reports_only_changes_that_reach_the_records() -> None:
    index = EndpointIndex()
    assert not index.replace("EndpointSlice", [_slice([_ep("10.0.0.1", "a")])])
    assert not index.event("ADDED", _pod("unrelated", sa="x"))
    assert index.event("ADDED", _pod("a", sa=None))
    assert index.records() == (record("10.0.0.1", "shop/default", "shop/web"),)
    assert not index.event("MODIFIED", _pod("a", sa=None))  # same view: no change
    assert index.event("DELETED", _slice([]))
    assert index.records() == ()
