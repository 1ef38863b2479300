"""Per-object hard checks (SPEC.md §6.4, DESIGN.md §3) over the hub form.

`check_resource` is the one entry point: it runs the checks of the object's kind and returns
located diagnostics (file, line of the offending field, object key). Paths are in the wire
layout of the version the object was written in, so that they point into the user's file.
Cross-resource checks (references, one split per root) live in `smi.compiler.checks`.
"""

from __future__ import annotations

from collections.abc import Callable

from smi.errors import Diagnostic
from smi.loading import Resource
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


__all__ = ["check_resource", "root_service"]
