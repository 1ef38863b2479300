"""Per-object hard checks (SPEC.md §6.4, DESIGN.md §3) over the hub form.

`check_resource` is the one entry point: it runs the checks of the object's kind and returns
located diagnostics (file, line of the offending field, object key). Paths are in the wire
layout of the version the object was written in, so that they point into the user's file.
`check_context` gives a context object (Service, workload, ...) the same metadata checks.
Cross-resource checks (references, one split per root) live in `smi.compiler.checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from smi.errors import Diagnostic
from smi.loading import ContextObject, Resource
from smi.validation.access import check_identity_binding, check_traffic_target
from smi.validation.names import (
    check_label,
    check_metadata,
    check_subdomain,
    is_label,
    is_subdomain,
)
from smi.validation.specs import check_l4_route, check_route_group
from smi.validation.split import check_traffic_split, root_service

_CHECKERS: dict[str, Callable[[Resource], list[Diagnostic]]] = {
    "TrafficTarget": check_traffic_target,
    "IdentityBinding": check_identity_binding,
    "HTTPRouteGroup": check_route_group,
    "TCPRoute": check_l4_route,
    "UDPRoute": check_l4_route,
    "TrafficSplit": check_traffic_split,
}


def check_resource(resource: Resource) -> list[Diagnostic]:
    """Every per-object problem and warning of one resource, located in its file."""
    checker = _CHECKERS.get(resource.kind)
    if checker is None:  # read-only metrics types carry nothing to check
        return []
    if is_subdomain(resource.name) and is_label(resource.namespace):
        found = checker(resource)
    else:
        found = [
            *check_subdomain(resource.name, "metadata.name"),
            *check_label(resource.namespace, "metadata.namespace", what="namespace"),
            *checker(resource),
        ]
    if meta_found := check_metadata(resource.raw.get("metadata")):
        found = [*meta_found, *found]
    # Locating reads the file's line map, computed on first use: only for what was found.
    return [resource.locate(d) for d in found] if found else found


# Context kinds whose names are DNS-1123 labels (the API server's rule for them); the others'
# are subdomains, as an SMI object's.
_LABEL_NAMED = frozenset({"Service", "Namespace"})


def check_context(ctx: ContextObject) -> list[Diagnostic]:
    """The metadata checks an SMI object gets, for a context object (Service, workload,
    ServiceAccount, Namespace): its name a DNS-1123 name, its namespace a label, label keys
    and values, annotation keys and finalizers the API server takes (SMI2006); their types
    were checked on loading. Located at the field's line, as an SMI object's are."""
    label_named = ctx.kind in _LABEL_NAMED
    found: list[Diagnostic] = []
    if not (is_label(ctx.name) if label_named else is_subdomain(ctx.name)):
        name_check = check_label if label_named else check_subdomain
        found += name_check(ctx.name, "metadata.name", what=f"{ctx.kind} name")
    found += check_metadata(ctx.raw.get("metadata"))
    if ctx.namespace:  # "" for a cluster-scoped kind
        found += check_label(ctx.namespace, "metadata.namespace", what="namespace")
    return [_located(d, ctx) for d in found] if found else found


def _located(diag: Diagnostic, ctx: ContextObject) -> Diagnostic:
    line = ctx.lines.line_of(diag.path) if ctx.lines is not None else None
    located = diag.located(file=ctx.source.file, line=line or ctx.source.line)
    return replace(located, object_ref=ctx.key)


__all__ = ["check_context", "check_resource", "root_service"]
