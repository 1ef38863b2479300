"""Mesh endpoints in Kubernetes mode: EndpointSlices joined with the Pods behind them.

In a cluster nobody registers endpoints (DESIGN.md §5): the control plane watches
`discovery.k8s.io/v1` EndpointSlices and Pods, and this module turns them into the same
`EndpointRecord`s that proxies register in local mode, so one compile path serves both.

The mapping, one record per (address, inbound port, identity) with every Service it backs:

- **service**: the slice's `kubernetes.io/service-name` label in the slice's namespace
  (`ns/name`); a slice without the label (not managed for a Service) is ignored;
- **address**: `endpoints[].addresses[0]` of each endpoint whose `conditions.ready` is not
  false (unset means ready, as the API documents); terminating and unready endpoints are left
  out, and so is an endpoint without a Pod `targetRef` (nothing tells its identity);
- **identity**: `<pod namespace>/<spec.serviceAccountName or "default">` of the `targetRef` Pod,
  the same rule the injector uses for `SMI_PROXY_IDENTITY` and that TokenReview enforces when the
  proxy asks for its certificate. The control plane qualifies it with its trust domain;
- **port**: the inbound listener of the Pod's `smictl-proxy` (a native sidecar, an init container
  with `restartPolicy: Always`; or a container, injected without native sidecars) that fronts
  the slice's port (`ports[].port` is the container port the Service targets). The injector
  gives each pod one listener, `15006:<app port>` (`SMI_PROXY_INBOUND`; `--inbound` args add
  more), so a Service targeting the app port maps to `podIP:15006`. A slice with several ports
  uses the first one a listener fronts; a slice without port numbers ("all ports") uses the
  first listener. A pod without the proxy, or whose listeners front none of the slice's ports,
  is not a mesh endpoint of that Service: an mTLS connection from a peer proxy could not reach
  the app there.

Only the fields above are kept per Pod (`PodView`), not the Pod. A Pod's service account and
containers are immutable, so status updates change nothing here and cost no recompile:
`EndpointIndex` reports a change only when the records themselves change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smi.store.base import EndpointRecord

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# The names the sidecar injector writes (webhook/injection.py; smi must not import webhook).
PROXY_CONTAINER = "smictl-proxy"
INBOUND_ENV = "SMI_PROXY_INBOUND"
INBOUND_FLAG = "--inbound"

NameKey = tuple[str, str]  # (namespace, name) of a Pod or an EndpointSlice


@dataclass(frozen=True, slots=True)
class PodView:
    """What the endpoints need of one Pod: its service account and its proxy's listeners."""

    service_account: str
    listeners: tuple[tuple[int, int], ...] = ()  # (inbound port, app port), in proxy order

    def inbound_for(self, ports: Sequence[int | None]) -> int | None:
        """The inbound port in front of the first of `ports` a listener fronts (no port
        numbers: the first listener); None when there is none."""
        if not self.listeners:
            return None
        numbers = [p for p in ports if p is not None]
        if not numbers:
            return self.listeners[0][0]
        fronting = {app: inbound for inbound, app in reversed(self.listeners)}
        return next((fronting[p] for p in numbers if p in fronting), None)


@dataclass(frozen=True, slots=True)
class SliceView:
    """One EndpointSlice: its Service, its port numbers, and its ready Pod endpoints."""

    service: str  # "ns/name"
    ports: tuple[int | None, ...]
    endpoints: tuple[tuple[str, str], ...]  # (address, pod name), pods in the slice's namespace


def pod_view(doc: Mapping[str, Any]) -> PodView:
    spec = doc.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    proxy = next(
        (
            c
            for c in (*sidecars, *(spec.get("containers") or ()))
            if c.get("name") == PROXY_CONTAINER
        ),
        None,
    )
    return PodView(
        service_account=str(spec.get("serviceAccountName") or "default"),
        listeners=listeners(proxy) if proxy is not None else (),
    )


def listeners(container: Mapping[str, Any]) -> tuple[tuple[int, int], ...]:
    """The proxy's `PORT:APP_PORT` inbound listeners: `SMI_PROXY_INBOUND`, then `--inbound`
    arguments (the proxy appends flags to the variable's value); malformed entries skipped."""
    specs: list[str] = [
        str(e.get("value") or "")
        for e in container.get("env") or ()
        if e.get("name") == INBOUND_ENV
    ]
    args = [str(a) for a in container.get("args") or ()]
    for i, arg in enumerate(args):
        if arg == INBOUND_FLAG and i + 1 < len(args):
            specs.append(args[i + 1])
        elif arg.startswith(f"{INBOUND_FLAG}="):
            specs.append(arg.partition("=")[2])
    out: list[tuple[int, int]] = []
    for spec in specs:
        for item in spec.split(","):
            port, _, app = item.strip().partition(":")
            if _port(port) and _port(app):
                out.append((int(port), int(app)))
    return tuple(out)


def _port(text: str) -> bool:
    """A port number as `--inbound` takes it (ASCII digits: `"²".isdigit()` is true)."""
    return text.isascii() and text.isdigit() and 0 < int(text) < 65536


def slice_view(doc: Mapping[str, Any]) -> SliceView | None:
    meta = doc.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service:
        return None
    namespace = str(meta.get("namespace") or "default")
    ports = tuple(
        p["port"] if isinstance(p.get("port"), int) else None for p in doc.get("ports") or ()
    )
    ready: list[tuple[str, str]] = []
    for ep in doc.get("endpoints") or ():
        ref = ep.get("targetRef") or {}
        addresses = ep.get("addresses") or ()
        if (ep.get("conditions") or {}).get("ready") is False or not addresses:
            continue
        if ref.get("kind") != "Pod" or not ref.get("name"):
            continue
        if (ref.get("namespace") or namespace) != namespace:
            continue  # a Service's endpoints live in its namespace; anything else is foreign
        ready.append((str(addresses[0]), str(ref["name"])))
    return SliceView(service=f"{namespace}/{service}", ports=ports, endpoints=tuple(ready))


def _key(doc: Mapping[str, Any]) -> NameKey:
    meta = doc.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))


class EndpointIndex:
    """EndpointSlices and Pod views, and the records they make. Not thread-safe: the store
    calls it under its own lock. Every update returns whether the records changed."""

    def __init__(self) -> None:
        self._slices: dict[NameKey, SliceView] = {}
        self._pods: dict[NameKey, PodView] = {}
        self._referenced: frozenset[NameKey] = frozenset()
        self._records: tuple[EndpointRecord, ...] = ()

    def records(self) -> tuple[EndpointRecord, ...]:
        return self._records

    def replace(self, kind: str, docs: Iterable[Mapping[str, Any]]) -> bool:
        """A fresh list of EndpointSlices or Pods."""
        if kind == "Pod":
            self._pods = {_key(d): pod_view(d) for d in docs}
        else:
            views = ((_key(d), slice_view(d)) for d in docs)
            self._slices = {k: v for k, v in views if v is not None}
        return self._rebuild()

    def event(self, event: str, doc: Mapping[str, Any]) -> bool:
        """One watch event (ADDED, MODIFIED, DELETED) of an EndpointSlice or a Pod."""
        key = _key(doc)
        if doc.get("kind") == "Pod":
            view = None if event == "DELETED" else pod_view(doc)
            if self._pods.get(key) == view:
                return False
            _put(self._pods, key, view)
            return key in self._referenced and self._rebuild()
        sliced = None if event == "DELETED" else slice_view(doc)
        if self._slices.get(key) == sliced:
            return False
        _put(self._slices, key, sliced)
        return self._rebuild()

    def _rebuild(self) -> bool:
        services: dict[tuple[str, int, str], set[str]] = {}
        referenced: set[NameKey] = set()
        for (namespace, _), view in self._slices.items():
            for address, pod_name in view.endpoints:
                referenced.add((namespace, pod_name))
                pod = self._pods.get((namespace, pod_name))
                port = pod.inbound_for(view.ports) if pod is not None else None
                if pod is None or port is None:
                    continue
                identity = f"{namespace}/{pod.service_account}"
                services.setdefault((address, port, identity), set()).add(view.service)
        records = tuple(
            sorted(
                EndpointRecord(address=a, port=p, identity=i, services=tuple(sorted(s)))
                for (a, p, i), s in services.items()
            )
        )
        self._referenced = frozenset(referenced)
        changed = records != self._records
        self._records = records
        return changed


def _put(table: dict[NameKey, Any], key: NameKey, value: Any) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value
