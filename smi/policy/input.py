"""The input document every admission policy sees (documented for users in docs/policy-input.md).

Like Gatekeeper's `input.review`, but for SMI:

    input.request    the AdmissionRequest as the API server sends it (or `smictl admit` builds
                     it for a file): uid, kind {group, version, kind}, resource, namespace, name,
                     operation (CREATE | UPDATE | DELETE | CONNECT), userInfo {username, groups},
                     object, oldObject, dryRun. `object`/`oldObject` are the wire objects, in
                     whatever version the client wrote.
    input.hub        the object in its unversioned hub form: the same fields for every version,
                     camelCase, weights as `weightMilli` (v1alpha1 "500m" = 500, v1alpha2+
                     integer w = w * 1000), headers as [[lower-case name, regex], ...],
                     absent optional fields as null. null for a DELETE.
    input.oldHub     oldObject in hub form (UPDATE and DELETE), else null. Compare versions
                     with this, not with oldObject: the client may have switched API versions.
    input.inventory  other known objects, `inventory[kind][namespace][name]`: SMI objects in hub
                     form, context objects (Service, ServiceAccount, Namespace, Pod, Deployment)
                     as written but without `status` and `metadata.managedFields`.
                     Cluster-scoped objects (Namespace) sit under namespace "". Only the kinds a
                     policy lists in METADATA `custom.inventory` are included, and only the
                     namespaces the object refers to (its own, every `namespace` field of its
                     hub form, such as a TrafficTarget's sources) plus "": regopy copies the
                     input into the engine on every evaluation, at about 0.07 ms per small
                     object on the 2-core CI machines (bench/bench_rego.py, "inventory"), so a
                     policy that needs none pays nothing and one that does pays for what it can
                     use. In the webhook the inventory is what the store holds; in `smictl
                     admit` it is every other object in the files given. It may contain the
                     object's stored version.
    data.parameters  the policy set's parameters (`--parameters FILE`), shared by all policies.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from smi.compiler.checks import SetIndex
from smi.loading import ContextObject, Resource


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def hub_document(value: Any) -> Any:
    """A hub model as plain JSON-able data: model fields camelCase, free-form maps untouched."""
    if isinstance(value, BaseModel):
        out = {camel(name): hub_document(getattr(value, name)) for name in type(value).model_fields}
        for key, extra in (value.model_extra or {}).items():
            out.setdefault(key, hub_document(extra))
        return out
    if isinstance(value, Mapping):
        return {str(k): hub_document(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [hub_document(v) for v in value]
    return value


@dataclass(frozen=True)
class Inventory:
    """Other known objects, indexed once: `documents[kind][namespace][name]`."""

    resources: tuple[Resource, ...] = ()
    context: tuple[ContextObject, ...] = ()
    documents: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)

    @cached_property
    def validation_index(self) -> SetIndex:
        """The cross-resource index of these objects, built on first use and kept: admission
        checks each request's object against it without indexing the inventory again."""
        return SetIndex.of(self.resources, self.context)

    @classmethod
    def of(
        cls, resources: Iterable[Resource] = (), context: Iterable[ContextObject] = ()
    ) -> Inventory:
        res, ctx = tuple(resources), tuple(context)
        docs: dict[str, dict[str, dict[str, Any]]] = {}
        for r in res:
            docs.setdefault(r.kind, {}).setdefault(r.namespace, {})[r.name] = hub_document(r.obj)
        for c in ctx:
            docs.setdefault(c.kind, {}).setdefault(c.namespace, {})[c.name] = _trimmed(c.raw)
        return cls(resources=res, context=ctx, documents=docs)

    def document(
        self, kinds: Collection[str], *, namespaces: Collection[str] | None = None
    ) -> dict[str, Any]:
        """The `input.inventory` of a policy that asked for `kinds`, limited to `namespaces`
        (cluster-scoped objects, under "", are always kept; None = every namespace)."""
        out: dict[str, Any] = {}
        for kind in sorted(kinds):
            by_ns = self.documents.get(kind)
            if by_ns is None:
                continue
            if namespaces is None:
                out[kind] = by_ns
                continue
            kept = {ns: objs for ns, objs in by_ns.items() if ns == "" or ns in namespaces}
            if kept:
                out[kind] = kept
        return out


def referenced_namespaces(hub: Any, *, own: str) -> frozenset[str]:
    """The object's namespace and every namespace its hub form names (subjects, ...)."""
    return namespaces_in(hub_document(hub) if hub is not None else None, own=own)


def namespaces_in(document: Any, *, own: str) -> frozenset[str]:
    """`referenced_namespaces` of a hub form already made a document (`hub_document`)."""
    found = {own, ""}
    stack = [document] if document is not None else []
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            ns = value.get("namespace")
            if isinstance(ns, str) and ns:
                found.add(ns)
            stack.extend(v for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend(v for v in value if isinstance(v, (dict, list)))
    return frozenset(found)


def _trimmed(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A context object without what only costs: `status` and `metadata.managedFields`."""
    out = {k: v for k, v in raw.items() if k != "status"}
    meta = out.get("metadata")
    if isinstance(meta, Mapping) and "managedFields" in meta:
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return out


EMPTY_INVENTORY = Inventory()


def admission_input(
    request: Mapping[str, Any],
    *,
    hub: Any,
    old_hub: Any,
    inventory: Mapping[str, Any],
) -> dict[str, Any]:
    """The whole input document; `hub`/`old_hub` are hub models (or None)."""
    return input_document(
        request,
        hub=hub_document(hub) if hub is not None else None,
        old_hub=hub_document(old_hub) if old_hub is not None else None,
        inventory=inventory,
    )


def input_document(
    request: Mapping[str, Any], *, hub: Any, old_hub: Any, inventory: Mapping[str, Any]
) -> dict[str, Any]:
    """`admission_input` of hub forms already made documents: the admission chain converts
    each hub once per request, however many inventory groups the policies ask for."""
    return {"request": dict(request), "hub": hub, "oldHub": old_hub, "inventory": dict(inventory)}


def create_request(resource: Resource, *, uid: str, username: str = "smictl") -> dict[str, Any]:
    """The AdmissionRequest `smictl admit` makes for an object read from a file (a CREATE)."""
    group, _, version = resource.api_version.rpartition("/")
    return {
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": resource.kind},
        "resource": {"group": group, "version": version, "resource": _plural(resource.kind)},
        "namespace": resource.namespace,
        "name": resource.name,
        "operation": "CREATE",
        "userInfo": {"username": username, "groups": []},
        "object": dict(resource.raw),
        "oldObject": None,
        "dryRun": True,
    }


def _plural(kind: str) -> str:
    lower = kind.lower()
    return lower + ("es" if lower.endswith(("s", "x")) else "s")
