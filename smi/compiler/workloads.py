"""Which identities run behind a Service, read from context manifests.

A request to a Service reaches the pods its selector matches, and each pod's identity is its
ServiceAccount (DESIGN.md §3). Given the context objects the loader keeps (Services, Pods and
the workload kinds that hold a pod template), this answers "which SPIFFE ids does
`ns/service` lead to?" — what `smictl explain --to NS/SERVICE` needs. A workload's pods carry
its template labels and ServiceAccount; a pod without `serviceAccountName` runs as "default".
Each object is read once (`context_objects`): of two different copies, the one compile reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from smi.compiler.resolve import context_objects
from smi.identity import spiffe_id
from smi.loading import pod_path


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def find_service(context: Iterable[Any], key: str) -> Mapping[str, Any] | None:
    """The Service manifest "ns/name" among the context objects, or None."""
    ns, _, name = key.partition("/")
    return context_objects(context).get(("Service", ns, name))


def _pod(raw: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    """The pod (`metadata` and `spec`) a manifest of `kind` is or holds, or None."""
    path = pod_path(kind, raw.get("apiVersion"))
    if path is None:
        return None
    pod: Any = raw
    for field in path:
        pod = pod.get(field) if isinstance(pod, Mapping) else None
    return pod if isinstance(pod, Mapping) else None


def _pod_specs(context: Iterable[Any]) -> Iterator[tuple[str, dict[str, str], Mapping[str, Any]]]:
    """(namespace, pod labels, pod spec) of every Pod and workload pod template."""
    for (kind, ns, _), raw in context_objects(context).items():
        pod = _pod(raw, kind)
        if pod is None:
            continue
        meta, spec = pod.get("metadata"), pod.get("spec")
        labels = _str_map(meta.get("labels")) if isinstance(meta, Mapping) else {}
        yield ns, labels, spec if isinstance(spec, Mapping) else {}


def _selected(objects: list[Any], service: Mapping[str, Any], ns: str) -> list[Mapping[str, Any]]:
    """The pod specs a Service's selector matches (none without a selector)."""
    spec = service.get("spec")
    selector = _str_map(spec.get("selector")) if isinstance(spec, Mapping) else {}
    if not selector:
        return []
    return [
        pod_spec
        for pod_ns, labels, pod_spec in _pod_specs(objects)
        if pod_ns == ns and all(labels.get(k) == v for k, v in selector.items())
    ]


def service_app_ports(context: Iterable[Any], key: str, port: int) -> tuple[int, ...] | None:
    """The app ports Service "ns/name" sends its `port` to: each pod's proxy authorizes on the
    port of the app it fronts (the container port), which is what TCPRoute ports and
    `destination.port` name, not the Service's own port. `targetPort` a number: that number;
    absent: `port` itself; a name: the selected pods' container ports of that name (several
    when the pods differ). None when the Service has no such port, or names a container port
    no selected pod in the files has."""
    objects = list(context)
    service = find_service(objects, key)
    spec = service.get("spec") if service is not None else None
    if service is None or not isinstance(spec, Mapping) or not isinstance(spec.get("ports"), list):
        return None
    for entry in spec["ports"]:
        if not isinstance(entry, Mapping) or entry.get("port") != port:
            continue
        target = entry.get("targetPort", port)
        if isinstance(target, int) and not isinstance(target, bool):
            return (target,)
        if not isinstance(target, str):
            return None
        if target.isascii() and target.isdigit():  # (`"²".isdigit()`, and `int` refuses it)
            return (int(target),)
        named = {
            p["containerPort"]
            for pod_spec in _selected(objects, service, key.partition("/")[0])
            for p in _container_ports(pod_spec)
            if p.get("name") == target and isinstance(p.get("containerPort"), int)
        }
        return tuple(sorted(named)) or None
    return None


def service_udp_only_ports(context: Iterable[Any], key: str) -> frozenset[int]:
    """The `port`s of Service "ns/name" listed only with `protocol: UDP` (a port entry's
    protocol is TCP when absent): no other traffic crosses them."""
    service = find_service(context, key)
    spec = service.get("spec") if service is not None else None
    ports = spec.get("ports") if isinstance(spec, Mapping) else None
    udp: set[int] = set()
    other: set[int] = set()
    for entry in ports if isinstance(ports, list) else ():
        port = entry.get("port") if isinstance(entry, Mapping) else None
        if isinstance(port, int) and not isinstance(port, bool):
            (udp if entry.get("protocol") == "UDP" else other).add(port)
    return frozenset(udp - other)


def _container_ports(pod_spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for field in ("containers", "initContainers"):
        containers = pod_spec.get(field)
        for container in containers if isinstance(containers, list) else ():
            ports = container.get("ports") if isinstance(container, Mapping) else None
            for entry in ports if isinstance(ports, list) else ():
                if isinstance(entry, Mapping):
                    yield entry


def _service_account(pod_spec: Mapping[str, Any]) -> str:
    for field in ("serviceAccountName", "serviceAccount"):  # the second is the deprecated alias
        value = pod_spec.get(field)
        if isinstance(value, str) and value:
            return value
    return "default"


def service_identities(
    context: Iterable[Any], key: str, *, trust_domain: str
) -> tuple[str, ...] | None:
    """The sorted SPIFFE ids of the workloads Service "ns/name" selects; None when there is
    no such Service. A Service without a selector selects nothing."""
    objects = list(context)
    service = find_service(objects, key)
    if service is None:
        return None
    found = {
        spiffe_id(key.partition("/")[0], _service_account(pod_spec), trust_domain)
        for pod_spec in _selected(objects, service, key.partition("/")[0])
    }
    return tuple(sorted(found))
