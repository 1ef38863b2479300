"""The compiler's view of its input: hub objects sorted by kind and key, context Services, and
where each object came from.

`compile()` accepts hub objects or `smi.loading.Resource` values (which carry the hub object in
`.obj` and its file and line); context objects (`smi.loading.ContextObject`, or a plain manifest
mapping) contribute Services and their ports. Objects sharing a kind and `namespace/name` are
reduced to one, chosen by content so that the result does not depend on input order; context
objects too (`context_objects`), the same way for every reader of them (compile, `validate`,
`smictl explain`), so that none of them sees another copy than the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from smi.apis import registry
from smi.apis.access.hub import IdentityBinding, TrafficTarget
from smi.apis.meta import ObjectMeta
from smi.apis.specs.hub import HTTPRouteGroup, TCPRoute, UDPRoute
from smi.apis.split.hub import TrafficSplit
from smi.compiler.ir.model import Endpoint
from smi.errors import Diagnostic
from smi.ports import is_port

DEFAULT_NAMESPACE = "default"

# Diagnostics the compiler reports (smi.codes, SMI6xxx).
UNRESOLVED = "SMI6001"
ALLOWS_NOTHING = "SMI6004"
CONFLICT = "SMI6005"
NOT_COMPILABLE = "SMI6006"

Hub = TrafficTarget | IdentityBinding | HTTPRouteGroup | TCPRoute | UDPRoute | TrafficSplit
_HUB_TYPES = (TrafficTarget, IdentityBinding, HTTPRouteGroup, TCPRoute, UDPRoute, TrafficSplit)


def namespace_of(meta: ObjectMeta) -> str:
    """An object without a namespace lives in "default", as `kubectl apply` would put it."""
    return meta.namespace or DEFAULT_NAMESPACE


def ref(kind: str, meta: ObjectMeta) -> str:
    """ "ns/Kind/name": how diagnostics and MeshPolicy origins name an object."""
    return f"{namespace_of(meta)}/{kind}/{meta.name}"


@dataclass(slots=True)
class Inventory:
    """Everything `compile()` was given, by kind, keyed "ns/name"."""

    targets: dict[str, TrafficTarget] = field(default_factory=dict)
    bindings: dict[str, IdentityBinding] = field(default_factory=dict)
    groups: dict[str, HTTPRouteGroup] = field(default_factory=dict)
    tcp_routes: dict[str, TCPRoute] = field(default_factory=dict)
    udp_routes: dict[str, UDPRoute] = field(default_factory=dict)
    splits: dict[str, TrafficSplit] = field(default_factory=dict)
    service_ports: dict[str, tuple[int, ...]] = field(default_factory=dict)
    endpoints: dict[str, tuple[Endpoint, ...]] = field(default_factory=dict)
    # "ns/Kind/name" -> what the object came in (a `smi.loading.Resource` knows its file and
    # the line of every field), used to locate diagnostics.
    origins: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def diag(self, code: str, obj_ref: str, message: str, *, path: str = "") -> None:
        """Record a warning about the object "ns/Kind/name", located where it was loaded.
        `path` is in the `spec.` layout; it is given in the layout of the version the object
        was written in (as validation does), so that it and its line point into the file."""
        item = self.origins.get(obj_ref)
        diag = Diagnostic(
            code=code,
            message=message,
            path=wire_path(path, item),
            severity="warning",
            object_ref=obj_ref,
        )
        self.diagnostics.append(_located(diag, item))

    def known_service(self, key: str) -> bool:
        """Whether a split may send traffic to Service `key`. Services are checked only where
        the set knows some Services of that namespace (as validation does): a CI run on SMI
        manifests alone compiles splits as written instead of dropping every backend."""
        if key in self.service_ports or key in self.endpoints:
            return True
        namespace = key.partition("/")[0] + "/"
        return not any(k.startswith(namespace) for k in (*self.service_ports, *self.endpoints))


def wire_path(path: str, item: Any) -> str:
    """`path` (`spec.` layout) as the wire layout of the version `item` was loaded from:
    flat versions (access v1alpha1, specs v1alpha1/v1alpha2) have no `spec`, and access
    v1alpha1 calls the rules `specs`."""
    api_version = getattr(item, "api_version", None)
    kind = getattr(getattr(item, "obj", None), "kind", None)
    if not path.startswith("spec.") or not isinstance(api_version, str) or kind is None:
        return path
    served = registry.lookup(api_version, kind)
    if served is None or not served.flat:
        return path
    flat = path.removeprefix("spec.")
    if kind == "TrafficTarget" and (flat == "rules" or flat.startswith(("rules[", "rules."))):
        flat = "specs" + flat.removeprefix("rules")
    return flat


def collect(
    resources: Iterable[Any],
    *,
    context: Iterable[Any] = (),
    endpoints: Mapping[str, Sequence[Endpoint]] | None = None,
) -> Inventory:
    inv = Inventory()
    seen: dict[str, list[tuple[Hub, Any]]] = {}
    for item in resources:
        # (isinstance first: a missing attribute on a pydantic model is slow to report)
        obj = item if isinstance(item, _HUB_TYPES) else getattr(item, "obj", None)
        if isinstance(obj, _HUB_TYPES):
            seen.setdefault(ref(obj.kind, obj.metadata), []).append((obj, item))
    for key, copies in seen.items():
        obj, item = _one_of(copies)
        inv.origins[key] = item
        if any(c[0] != copies[0][0] for c in copies[1:]):
            inv.diag(CONFLICT, key, f"{len(copies)} different objects named {key}; one is used")
        _file(inv, obj)
    for (kind, ns, name), chosen in context_objects(context, copies=_context_conflict(inv)).items():
        if kind == "Service":
            _add_service(inv, f"{ns}/{name}", chosen)
    for key, eps in (endpoints or {}).items():
        # An endpoint no peer could dial (a port outside 1-65535, from a pod's own
        # `--inbound 0:8080`) is left out here, so that it never reaches the MeshPolicy: the
        # proxies refuse a policy with one, and would keep their last good policy for good.
        inv.endpoints[key] = tuple(e for e in eps if is_port(e.port))
    return inv


def _one_of(copies: list[tuple[Hub, Any]]) -> tuple[Hub, Any]:
    """The copy whose JSON sorts first, so that input order never decides."""
    if len(copies) == 1:
        return copies[0]
    return min(copies, key=lambda c: (c[0].model_dump_json(), repr(_where(c[1]))))


def _where(item: Any) -> tuple[str, int]:
    source = getattr(item, "source", None)
    return (str(getattr(source, "file", "")), getattr(source, "line", None) or 0)


def _located(diag: Diagnostic, item: Any) -> Diagnostic:
    """Give a diagnostic the file and line of the object it is about, when known."""
    locate = getattr(item, "locate", None)
    if callable(locate):
        located = locate(diag)
        if isinstance(located, Diagnostic):
            return located
    file, line = _where(item)
    return diag.located(file=file or None, line=line or None)


def _file(inv: Inventory, obj: Hub) -> None:
    key = f"{namespace_of(obj.metadata)}/{obj.metadata.name}"
    if isinstance(obj, TrafficTarget):
        inv.targets[key] = obj
    elif isinstance(obj, IdentityBinding):
        inv.bindings[key] = obj
    elif isinstance(obj, HTTPRouteGroup):
        inv.groups[key] = obj
    elif isinstance(obj, TCPRoute):
        inv.tcp_routes[key] = obj
    elif isinstance(obj, UDPRoute):
        inv.udp_routes[key] = obj
    else:
        inv.splits[key] = obj


def _context_conflict(inv: Inventory) -> Callable[[ContextKey, Sequence[Any]], None]:
    """SMI6005 for a Service given twice with different content, as for SMI objects (`validate`
    refuses such a set with SMI3008, so only a direct caller meets it here); located at the
    copy that sorts first by file and line, so that input order does not move it."""

    def report(key: ContextKey, copies: Sequence[Any]) -> None:
        kind, ns, name = key
        if kind != "Service":
            return  # the compiler reads no other context kind
        obj_ref = f"{ns}/{kind}/{name}"
        inv.origins.setdefault(obj_ref, min(copies, key=_where))
        inv.diag(CONFLICT, obj_ref, f"{len(copies)} different objects named {obj_ref}; one is used")

    return report


def _add_service(inv: Inventory, key: str, raw: Mapping[str, Any]) -> None:
    """A context Service contributes its key and the `port` of each `spec.ports` entry."""
    spec = raw.get("spec")
    ports: set[int] = set()
    if isinstance(spec, Mapping) and isinstance(spec.get("ports"), list):
        for entry in spec["ports"]:
            port = entry.get("port") if isinstance(entry, Mapping) else None
            if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
                ports.add(port)
    inv.service_ports[key] = tuple(sorted(ports))


ContextKey = tuple[str, str, str]  # (kind, namespace, name); namespace "" if cluster-scoped


def context_key(ctx: Any) -> ContextKey | None:
    """(kind, namespace, name) of a context object, or None when it has no kind or name. A
    `smi.loading.ContextObject` knows its namespace (the loader's `-n` default applied, none
    for a cluster-scoped kind): its manifest alone would put a Service loaded with `-n shop`
    and no `namespace:` in "default", where the TrafficTargets beside it are not."""
    raw = manifest_of(ctx)
    meta = raw.get("metadata") if raw is not None else None
    if raw is None or not isinstance(meta, Mapping):
        return None
    kind, name = raw.get("kind"), meta.get("name")
    if not isinstance(kind, str) or not isinstance(name, str) or not name:
        return None
    ns = None if isinstance(ctx, Mapping) else getattr(ctx, "namespace", None)
    if not isinstance(ns, str):
        written = meta.get("namespace")
        ns = written if isinstance(written, str) and written else DEFAULT_NAMESPACE
        ns = "" if kind == "Namespace" else ns
    return kind, ns, name


def as_applied(raw: Mapping[str, Any], namespace: str) -> str:
    """The document as a store keeps it (keys sorted, the namespace filled in), so that copies
    written in another key order or with `namespace:` left to its default compare equal, as
    the local store compares them."""
    doc = dict(raw)
    meta = doc.get("metadata")
    if isinstance(meta, Mapping):
        doc["metadata"] = {**meta, "namespace": namespace}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=repr)


def context_objects(
    context: Iterable[Any], *, copies: Callable[[ContextKey, Sequence[Any]], None] | None = None
) -> dict[ContextKey, Mapping[str, Any]]:
    """Each context object's manifest by `context_key`, once. Identical copies (key order and
    a defaulted namespace aside) are one object; of copies that differ, the one whose stored
    form sorts first, so that input order never decides (DESIGN.md §4) and compile, validate
    and explain all read the same one. `copies(key, objects)` hears of each key given twice
    with different content, with every copy in input order."""
    found: dict[ContextKey, list[Any]] = {}
    for ctx in context:
        key = context_key(ctx)
        if key is not None:
            found.setdefault(key, []).append(ctx)
    out: dict[ContextKey, Mapping[str, Any]] = {}
    for key, group in found.items():
        raws = [m for m in map(manifest_of, group) if m is not None]
        if len(raws) == 1:
            out[key] = raws[0]
            continue
        forms = {as_applied(raw, key[1]): raw for raw in raws}
        out[key] = forms[min(forms)]
        if len(forms) > 1 and copies is not None:
            copies(key, group)
    return out


def manifest_of(ctx: Any) -> Mapping[str, Any] | None:
    """The raw Kubernetes manifest of a context object: a mapping itself, or the mapping a
    `smi.loading.ContextObject` holds."""
    if isinstance(ctx, Mapping):
        return ctx
    for attr in ("raw", "doc", "document", "manifest", "body", "data"):
        value = getattr(ctx, attr, None)
        if isinstance(value, Mapping):
            return value
    return None
