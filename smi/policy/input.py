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
                     as written. Cluster-scoped objects (Namespace) sit under namespace "".
                     Only the kinds a policy lists in METADATA `custom.inventory` are included
                     (copying every object into each evaluation costs about 0.3 ms per 10
                     objects in regopy; a policy that needs none pays nothing). In the webhook
                     the inventory is what the store holds; in `smictl admit` it is every other
                     object in the files given. It may contain the object's stored version.
    data.parameters  the policy set's parameters (`--parameters FILE`), shared by all policies.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

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

    @classmethod
    def of(
        cls, resources: Iterable[Resource] = (), context: Iterable[ContextObject] = ()
    ) -> Inventory:
        res, ctx = tuple(resources), tuple(context)
        docs: dict[str, dict[str, dict[str, Any]]] = {}
        for r in res:
            docs.setdefault(r.kind, {}).setdefault(r.namespace, {})[r.name] = hub_document(r.obj)
        for c in ctx:
            docs.setdefault(c.kind, {}).setdefault(c.namespace, {})[c.name] = dict(c.raw)
        return cls(resources=res, context=ctx, documents=docs)

    def document(self, kinds: Collection[str]) -> dict[str, Any]:
        """The `input.inventory` of a policy that asked for `kinds`."""
        return {k: self.documents[k] for k in sorted(kinds) if k in self.documents}

    def without(self, key: str) -> tuple[Resource, ...]:
        """The inventory's resources other than `key` (`kind/namespace/name`)."""
        return tuple(r for r in self.resources if r.key != key)


EMPTY_INVENTORY = Inventory()


def admission_input(
    request: Mapping[str, Any],
    *,
    hub: Any,
    old_hub: Any,
    inventory: Mapping[str, Any],
) -> dict[str, Any]:
    """The whole input document; `hub`/`old_hub` are hub models (or None)."""
    return {
        "request": dict(request),
        "hub": hub_document(hub) if hub is not None else None,
        "oldHub": hub_document(old_hub) if old_hub is not None else None,
        "inventory": dict(inventory),
    }


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


def kinds_needed(groups: Sequence[Collection[str]]) -> frozenset[str]:
    out: set[str] = set()
    for g in groups:
        out.update(g)
    return frozenset(out)
