"""The Kubernetes watch cache at its edges, through the kubernetes client's own urllib3 layer:
lines that are not events, watches that end at once, deletes of unknown objects, relists."""

from __future__ import annotations

import io
import json
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client
from urllib3.response import HTTPResponse

from smi.store.kubernetes import KubernetesStore, Watched

pytestmark = pytest.mark.timeout(30)

SPLITS = Watched("split.smi-spec.io/v1alpha4", "TrafficSplit", "trafficsplits")


def split(name: str, rv: str, *, weight: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": rv},
        "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": weight}]},
    }


def listing(rv: str, *items: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "apiVersion": "split.smi-spec.io/v1alpha4",
            "items": list(items),
            "metadata": {"resourceVersion": rv},
        }
    ).encode()


def event(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


class Body(io.RawIOBase):
    """A response body that delivers `data` and then ends like a closed connection."""

    def __init__(self, data: bytes) -> None:
        self._data, self._sent = data, False

    def readable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._sent

    def readinto(self, b: Any) -> int:
        chunk, self._data, self._sent = self._data, b"", True
        b[: len(chunk)] = chunk
        return len(chunk)


class Bodies:
    """urllib3's pool manager answering each request with the next body (then refusing)."""

    def __init__(self, *bodies: bytes) -> None:
        self.bodies = deque(bodies)
        self.calls: list[dict[str, list[str]]] = []

    def request(self, method: str, url: str, **_: Any) -> HTTPResponse:
        self.calls.append(parse_qs(urlsplit(url).query))
        if not self.bodies:
            raise ConnectionRefusedError(111, "script exhausted")
        return HTTPResponse(
            body=Body(self.bodies.popleft()),
            headers={"Content-Type": "application/json"},
            status=200,
            reason="OK",
            preload_content=False,
        )


def store_on(bodies: Bodies, **kwargs: Any) -> KubernetesStore:
    configuration = client.Configuration()
    configuration.host = "https://kube.test:6443"
    api_client = client.ApiClient(configuration)
    api_client.rest_client.pool_manager = bodies
    return KubernetesStore(api_client, watched=[SPLITS], **kwargs)


def names(store: KubernetesStore) -> list[str]:
    return [o.key.name for o in store.snapshot().objects]


def test_a_blank_or_cut_line_in_a_watch_is_skipped_and_the_rest_applied() -> None:
    bodies = Bodies(
        listing("10", split("a", "10")),
        event("ADDED", split("b", "11"))
        + b"\n"  # a blank line (a keep-alive from a proxy)
        + b'{"type":"ADDED","object":{"apiVer\n'  # a line cut short
        + event("MODIFIED", split("a", "12", weight=5)),
    )
    store = store_on(bodies)
    inf = store.informers[0]
    inf.relist()
    assert inf.watch_once() == 2  # raised AttributeError on the blank line
    assert names(store) == ["a", "b"]
    assert store.snapshot().objects[0].body["spec"]["backends"][0]["weight"] == 5
    assert inf.resource_version == "12" and store.revision() == 12


def test_watches_that_end_at_once_are_backed_off_not_spun() -> None:
    bodies = Bodies(listing("10", split("a", "10")), *([b""] * 500))
    store = store_on(bodies, backoff=0.2)
    store.start()
    try:
        time.sleep(0.5)
    finally:
        store.close()
    watches = [c for c in bodies.calls if c.get("watch") == ["true"]]
    assert 1 <= len(watches) <= 5, len(watches)  # was: all 500 within milliseconds
    assert names(store) == ["a"]


def test_a_delete_of_an_unknown_object_keeps_the_rest() -> None:
    bodies = Bodies(
        listing("10", split("a", "10")),
        event("DELETED", split("ghost", "11"))
        + event("BOOKMARK", {"metadata": {"resourceVersion": "15"}}),
    )
    store = store_on(bodies)
    inf = store.informers[0]
    inf.relist()
    inf.watch_once()
    assert names(store) == ["a"]
    assert inf.resource_version == "15"
    assert store.revision() >= 11


def test_an_error_event_relists_and_the_relist_replaces_rather_than_merges() -> None:
    gone = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "too old resource version", "reason": "Expired", "code": 410}  # fmt: skip
    bodies = Bodies(
        listing("10", split("a", "10"), split("b", "10")),
        event("ADDED", split("c", "11")) + event("ERROR", gone),
        listing("20", split("b", "18", weight=7)),
        b"",
    )
    store = store_on(bodies, backoff=0.05)
    store.start()
    try:
        deadline = time.monotonic() + 10
        while store.revision() < 20 and time.monotonic() < deadline:
            store.wait_for_change(store.revision(), timeout=0.5)
    finally:
        store.close()
    assert names(store) == ["b"]  # a and c vanished while the watch was expired
    assert store.snapshot().objects[0].body["spec"]["backends"][0]["weight"] == 7
    assert store.informers[0].relists == 2


def test_revisions_never_move_back() -> None:
    store = store_on(Bodies())
    seen = []
    for rv in ("50", "40", "abc", "60"):
        store.event("MODIFIED", split("a", rv))
        seen.append(store.revision())
    assert seen == sorted(seen) and len(set(seen)) == 4
