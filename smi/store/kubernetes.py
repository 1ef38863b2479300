"""The Kubernetes store: a list+watch cache of SMI resources, Services, ServiceAccounts and
Namespaces, plus the mesh endpoints made of EndpointSlices and Pods (smi/store/endpoints.py), kept
with the kubernetes client (read-only; kubectl writes, the webhook admits).

One `Informer` per resource type, each on its own daemon thread:

    list  -> replace this type's cache, remember the list's resourceVersion
    watch from that resourceVersion (server-side timeout) -> apply ADDED/MODIFIED/DELETED,
          BOOKMARKs only move the resourceVersion
    the watch ends (timeout) or the connection drops  -> watch again from the last version seen
    410 Gone (the version was compacted away)         -> list again
    any other API error                               -> back off, list again

The revision is the highest resourceVersion seen across every type. etcd's revisions are one
cluster-wide counter, so this is monotonic and the same in every replica (the MeshPolicy
revision then agrees between replicas too); a non-numeric resourceVersion falls back to a local
counter.

EndpointSlices and Pods are not stored as documents: `EndpointIndex` keeps only what endpoints
need and the snapshot carries its `EndpointRecord`s. Their events bump the revision only when
the records change (Pods churn through status updates that never touch an endpoint).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from smi.store.base import ObjectKey, Snapshot, Store, StoredObject
from smi.store.endpoints import EndpointIndex

HTTP_GONE = 410
# A watch that ends sooner than this without a single event is backed off like an error.
QUICK_WATCH_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Watched:
    """One resource type the store lists and watches."""

    api_version: str
    kind: str
    plural: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


WATCHED: tuple[Watched, ...] = (
    Watched("access.smi-spec.io/v1alpha3", "TrafficTarget", "traffictargets"),
    Watched("specs.smi-spec.io/v1alpha4", "HTTPRouteGroup", "httproutegroups"),
    Watched("specs.smi-spec.io/v1alpha4", "TCPRoute", "tcproutes"),
    Watched("specs.smi-spec.io/v1alpha4", "UDPRoute", "udproutes"),
    Watched("split.smi-spec.io/v1alpha4", "TrafficSplit", "trafficsplits"),
    Watched("v1", "Service", "services"),
    Watched("v1", "ServiceAccount", "serviceaccounts"),
    Watched("v1", "Namespace", "namespaces"),
    Watched("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
    Watched("v1", "Pod", "pods"),
)
# Kinds that feed the EndpointIndex instead of the document cache.
ENDPOINT_KINDS = frozenset({"EndpointSlice", "Pod"})


def api_client_for(kubeconfig: str) -> Any:
    """A kubernetes ApiClient from a kubeconfig path, or `in-cluster`."""
    from kubernetes import client, config

    if kubeconfig == "in-cluster":
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return client.ApiClient(configuration)
    return config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]


class KubernetesStore(Store):
    """The read-only watch cache (see the module docstring)."""

    writable = False

    def __init__(
        self,
        api_client: Any,
        *,
        watched: Iterable[Watched] = WATCHED,
        watch_timeout: int = 300,
        backoff: float = 1.0,
    ) -> None:
        self.api_client = api_client
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._objects: dict[ObjectKey, StoredObject] = {}
        self._endpoints = EndpointIndex()
        self._revision = 0
        self._stop = threading.Event()
        self.informers = [
            Informer(self, w, watch_timeout=watch_timeout, backoff=backoff) for w in watched
        ]
        self._threads: list[threading.Thread] = []

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        for inf in self.informers:
            t = threading.Thread(target=inf.run, name=f"watch-{inf.watched.plural}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=1.0)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def ready(self) -> bool:
        return all(inf.synced for inf in self.informers)

    # --- reads ------------------------------------------------------------------------------

    def revision(self) -> int:
        return self._revision

    def snapshot(self) -> Snapshot:
        with self._lock:
            objects = tuple(sorted(self._objects.values(), key=lambda o: o.key))
            return Snapshot(
                revision=self._revision, objects=objects, endpoints=self._endpoints.records()
            )

    def wait_for_change(self, revision: int, *, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._revision <= revision:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return self._revision

    # --- updates from informers -------------------------------------------------------------

    def replace(self, watched: Watched, docs: Iterable[Mapping[str, Any]], rv: str) -> None:
        """A fresh list of one type: drop what is gone, keep what is there."""
        if watched.kind in ENDPOINT_KINDS:
            with self._changed:
                if self._endpoints.replace(watched.kind, docs):
                    self._bump(rv)
            return
        with self._changed:
            revision = self._next(rv)
            fresh = {}
            for doc in docs:
                key = ObjectKey.of(doc)
                fresh[key] = StoredObject(key=key, body=doc, revision=revision)
            for key in [k for k in self._objects if _belongs(k, watched)]:
                if key not in fresh:
                    del self._objects[key]
            self._objects.update(fresh)
            self._revision = revision
            self._changed.notify_all()

    def event(self, kind: str, doc: Mapping[str, Any]) -> None:
        """One watch event: ADDED, MODIFIED or DELETED."""
        if doc.get("kind") in ENDPOINT_KINDS:
            with self._changed:
                if self._endpoints.event(kind, doc):
                    self._bump(str((doc.get("metadata") or {}).get("resourceVersion", "")))
            return
        key = ObjectKey.of(doc)
        rv = str((doc.get("metadata") or {}).get("resourceVersion", ""))
        with self._changed:
            revision = self._next(rv)
            if kind == "DELETED":
                self._objects.pop(key, None)
            else:
                self._objects[key] = StoredObject(key=key, body=doc, revision=revision)
            self._revision = revision
            self._changed.notify_all()

    def _bump(self, rv: str) -> None:
        """Move to the revision of a change at `rv` and wake waiters (caller holds the lock)."""
        self._revision = self._next(rv)
        self._changed.notify_all()

    def _next(self, rv: str) -> int:
        """The store revision after a change at resourceVersion `rv` (caller holds the lock).
        ASCII digits only: `str.isdigit` is true of `²`, which `int` refuses, and of `١`."""
        if rv.isascii() and rv.isdigit():
            return max(self._revision + 1, int(rv))
        return self._revision + 1


def _belongs(key: ObjectKey, watched: Watched) -> bool:
    return key.group == watched.group and key.kind == watched.kind


class Informer:
    """List+watch of one resource type into the store."""

    def __init__(
        self, store: KubernetesStore, watched: Watched, *, watch_timeout: int, backoff: float
    ) -> None:
        self.store = store
        self.watched = watched
        self.watch_timeout = watch_timeout
        self.backoff = backoff
        self.resource_version = ""
        self.synced = False
        self.relists = 0

    def run(self) -> None:
        """The thread body: list, then watch until stopped (see the module docstring)."""
        from kubernetes.client.exceptions import ApiException

        need_list = True
        while not self.store.stopped:
            try:
                if need_list:
                    self.relist()
                need_list = False
                started = time.monotonic()
                if self.watch_once() == 0 and time.monotonic() - started < QUICK_WATCH_SECONDS:
                    # A watch that ended at once with nothing in it (a proxy or load balancer
                    # closing it): back off rather than hammer the API server in a tight loop.
                    self.store._stop.wait(self.backoff)
            except ApiException as exc:
                need_list = True
                if exc.status != HTTP_GONE:
                    self.store._stop.wait(self.backoff)
            except Exception:  # a dropped connection: resume the watch where it broke
                self.store._stop.wait(self.backoff)

    def relist(self) -> None:
        docs, rv = self._list_call()
        self.store.replace(self.watched, docs, rv)
        self.resource_version = rv
        self.relists += 1
        self.synced = True

    def watch_once(self, *, stop: Callable[[], bool] | None = None) -> int:
        """One watch request from the last resourceVersion until it ends; the number of events
        it delivered (bookmarks included).

        Raises ApiException(410) when that version is gone (the caller lists again); a dropped
        connection raises whatever urllib3 raised, with `resource_version` at the last event.
        A line that is not a JSON event (blank, or cut short) is skipped.
        """
        from kubernetes import watch

        w: Any = watch.Watch()  # type: ignore[no-untyped-call]
        func, kwargs = self._watch_call()
        seen = 0
        for event in w.stream(
            func,
            resource_version=self.resource_version,
            timeout_seconds=self.watch_timeout,
            allow_watch_bookmarks=True,
            **kwargs,
        ):
            if not isinstance(event, dict):  # the client yields None for an undecodable line
                continue
            seen += 1
            kind = event.get("type")
            raw = event.get("raw_object") or {}
            rv = str((raw.get("metadata") or {}).get("resourceVersion", ""))
            if kind in {"ADDED", "MODIFIED", "DELETED"}:
                self.store.event(kind, self._document(raw))
            if rv:
                self.resource_version = rv
            if self.store.stopped or (stop is not None and stop()):
                w.stop()
        return seen

    # --- the API calls ----------------------------------------------------------------------

    def _document(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Core list items and watch objects may lack apiVersion/kind; the store needs them."""
        doc = dict(raw)
        doc.setdefault("apiVersion", self.watched.api_version)
        doc.setdefault("kind", self.watched.kind)
        return doc

    def _list_call(self) -> tuple[list[dict[str, Any]], str]:
        from kubernetes import client

        w = self.watched
        typed = self._typed_list()
        if typed is None:
            api = client.CustomObjectsApi(self.store.api_client)
            result = api.list_cluster_custom_object(w.group, w.version, w.plural)
            doc: dict[str, Any] = result if isinstance(result, dict) else {}
            items = doc.get("items") or []
            rv = str((doc.get("metadata") or {}).get("resourceVersion", ""))
        else:
            listed = typed()
            serial = self.store.api_client.sanitize_for_serialization(listed)
            items = serial.get("items") or []
            rv = str((serial.get("metadata") or {}).get("resourceVersion", ""))
        return [self._document(i) for i in items], rv

    def _watch_call(self) -> tuple[Callable[..., Any], dict[str, Any]]:
        from kubernetes import client

        w = self.watched
        typed = self._typed_list()
        if typed is None:
            api = client.CustomObjectsApi(self.store.api_client)
            func = api.list_cluster_custom_object
            return _bind(func, w.group, w.version, w.plural), {}
        return typed, {}

    def _typed_list(self) -> Callable[..., Any] | None:
        """The kubernetes client's typed list call for built-in types (deserialised into its
        models), None for the SMI CRDs (CustomObjectsApi)."""
        from kubernetes import client

        core = client.CoreV1Api(self.store.api_client)
        discovery = client.DiscoveryV1Api(self.store.api_client)
        calls: dict[tuple[str, str], Callable[..., Any]] = {
            ("", "services"): core.list_service_for_all_namespaces,
            ("", "serviceaccounts"): core.list_service_account_for_all_namespaces,
            ("", "namespaces"): core.list_namespace,
            ("", "pods"): core.list_pod_for_all_namespaces,
            (
                "discovery.k8s.io",
                "endpointslices",
            ): discovery.list_endpoint_slice_for_all_namespaces,
        }
        return calls.get((self.watched.group, self.watched.plural))


def _bind(func: Callable[..., Any], *args: Any) -> Callable[..., Any]:
    """`functools.partial` that keeps the docstring: `Watch` reads the return type from it."""

    def call(**kwargs: Any) -> Any:
        return func(*args, **kwargs)

    call.__doc__ = func.__doc__
    return call
