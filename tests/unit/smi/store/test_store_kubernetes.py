"""The Kubernetes watch cache on recorded API payloads: list, watch events, bookmarks, a 410 that
forces a re-list, and a dropped watch that resumes from the last resourceVersion."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from smi.store.base import ObjectKey, StoreError
from smi.store.kubernetes import KubernetesStore, Watched

SPLITS = Watched("split.smi-spec.io/v1alpha4", "TrafficSplit", "trafficsplits")
SERVICES = Watched("v1", "Service", "services")
SPLIT_PATH = "/apis/split.smi-spec.io/v1alpha4/trafficsplits"
# A scripted response that never ends would hang a watch: fail fast instead.
pytestmark = pytest.mark.timeout(30)


def names(store: KubernetesStore) -> list[str]:
    return [str(o.key) for o in store.snapshot().objects]


def test_list_fills_the_cache_with_documents_and_revision(api: tuple[Any, Any]) -> None:
    api_client, scripted = api
    store = KubernetesStore(api_client, watched=[SPLITS])
    scripted.expect(SPLIT_PATH, "trafficsplits-list.json")
    store.informers[0].relist()
    assert names(store) == ["shop/TrafficSplit/old-split", "shop/TrafficSplit/web-canary"]
    assert store.revision() == 48390
    assert store.ready()
    web = store.snapshot().get(ObjectKey("split.smi-spec.io", "TrafficSplit", "shop", "web-canary"))
    assert web is not None and web.body["spec"]["backends"][0] == {
        "service": "web-v1",
        "weight": 90,
    }


def test_watch_applies_events_and_bookmarks_move_the_version(api: tuple[Any, Any]) -> None:
    api_client, scripted = api
    store = KubernetesStore(api_client, watched=[SPLITS])
    inf = store.informers[0]
    scripted.expect(SPLIT_PATH, "trafficsplits-list.json")
    scripted.expect(SPLIT_PATH, "trafficsplits-watch.jsonl", watch=True)
    inf.relist()
    inf.watch_once()
    watch_call = scripted.calls[-1]
    assert watch_call.resource_version == "48390"
    assert watch_call.query.get("allowWatchBookmarks") == ["true"]
    assert names(store) == ["bank/TrafficSplit/payments", "shop/TrafficSplit/web-canary"]
    web = store.snapshot().get(ObjectKey("split.smi-spec.io", "TrafficSplit", "shop", "web-canary"))
    assert web is not None and web.body["spec"]["backends"][1]["weight"] == 50
    assert inf.resource_version == "48420"
    assert store.revision() == 48420


def test_410_gone_raises_and_a_relist_drops_what_vanished(api: tuple[Any, Any]) -> None:
    api_client, scripted = api
    store = KubernetesStore(api_client, watched=[SPLITS])
    inf = store.informers[0]
    scripted.expect(SPLIT_PATH, "trafficsplits-list.json")
    scripted.expect(SPLIT_PATH, "watch-410-gone.jsonl", watch=True)
    scripted.expect(SPLIT_PATH, "trafficsplits-relist.json")
    inf.relist()
    with pytest.raises(ApiException) as info:
        inf.watch_once()
    assert info.value.status == 410
    inf.relist()
    assert names(store) == ["bank/TrafficSplit/payments"]  # both shop splits are gone
    assert store.revision() == 49880


def test_core_types_go_through_the_clients_models(api: tuple[Any, Any]) -> None:
    api_client, scripted = api
    store = KubernetesStore(api_client, watched=[SERVICES])
    scripted.expect("/api/v1/services", "services-list.json")
    store.informers[0].relist()
    [web, _] = store.snapshot().objects
    # Deserialised into V1ServiceList and back: camelCase keys, apiVersion/kind filled in.
    assert web.body["apiVersion"] == "v1" and web.body["kind"] == "Service"
    assert web.body["spec"]["ports"][0]["targetPort"] == 8080
    assert web.body["spec"]["clusterIP"] == "10.96.14.7"
    assert web.body["metadata"]["resourceVersion"] == "47001"


def test_a_dropped_watch_resumes_from_the_last_event(api: tuple[Any, Any]) -> None:
    api_client, scripted = api
    store = KubernetesStore(api_client, watched=[SERVICES])
    inf = store.informers[0]
    scripted.expect("/api/v1/services", "services-list.json")
    scripted.expect("/api/v1/services", "services-watch-dropped.jsonl", watch=True, drop=True)
    scripted.expect("/api/v1/services", "services-watch-resumed.jsonl", watch=True)
    inf.relist()
    with pytest.raises(Exception, match=r"Connection broken|reset"):
        inf.watch_once()
    assert inf.resource_version == "48500"  # the event before the drop was applied
    inf.watch_once()
    assert scripted.calls[-1].resource_version == "48500"
    v2 = store.snapshot().get(ObjectKey("", "Service", "shop", "web-v2"))
    assert v2 is not None and v2.body["metadata"]["labels"] == {"tier": "canary"}
    assert inf.relists == 1  # resumed, not re-listed


def test_the_informer_thread_relists_after_410_and_wakes_waiters(api: tuple[Any, Any]) -> None:
    api_client, scripted = api
    store = KubernetesStore(api_client, watched=[SPLITS], backoff=0.01)
    for path, recording, watch in (
        (SPLIT_PATH, "trafficsplits-list.json", False),
        (SPLIT_PATH, "watch-410-gone.jsonl", True),
        (SPLIT_PATH, "trafficsplits-relist.json", False),
    ):
        scripted.expect(path, recording, watch=watch)
    store.start()
    try:
        deadline = time.monotonic() + 10
        while store.revision() < 49880 and time.monotonic() < deadline:
            store.wait_for_change(store.revision(), timeout=0.5)
        assert names(store) == ["bank/TrafficSplit/payments"]
        assert store.informers[0].relists == 2
    finally:
        store.close()
    lists = [c for c in scripted.calls if not c.watch]
    assert len(lists) >= 2


def test_the_kubernetes_store_is_read_only(api: tuple[Any, Any]) -> None:
    store = KubernetesStore(api[0], watched=[SPLITS])
    with pytest.raises(StoreError) as info:
        store.apply([{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}])
    assert info.value.diagnostics[0].code == "SMI7006"
    assert not store.ready()  # nothing listed yet


def test_wait_for_change_wakes_on_an_event(api: tuple[Any, Any]) -> None:
    store = KubernetesStore(api[0], watched=[SERVICES])
    doc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x", "namespace": "a", "resourceVersion": "7"},
    }
    threading.Timer(0.05, lambda: store.event("ADDED", doc)).start()
    assert store.wait_for_change(0, timeout=5) == 7
