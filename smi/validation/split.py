"""Hard checks and warnings for split.smi-spec.io: TrafficSplit.

Weights are relative shares held in milli-units by the hub: whole numbers >= 0 from v1alpha2 on,
non-negative quantities in v1alpha1; their sum must be > 0. The root service is a Service of the
split's own namespace, written `name` or `name.<namespace>[.svc[.cluster.local]]`. `matches`
the lossy-fields annotation restores below v1alpha3 split only the requests they match, out of
the manifest's sight, so they are named (SMI4005, as a TrafficTarget's hidden destination port).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from smi.apis.lossy import carries_annotation
from smi.apis.split import hub
from smi.apis.split.common import SPLIT_NARROWING
from smi.errors import Diagnostic
from smi.validation.access import restored_restrictions
from smi.validation.names import (
    check_label,
    check_subdomain,
    duplicates,
    error,
    is_label,
    warning,
)

if TYPE_CHECKING:
    from smi.loading import Resource

SPECS_GROUP = "specs.smi-spec.io"


_CLUSTER_SUFFIXES = ((), ("svc",), ("svc", "cluster", "local"))


def root_service(service: str, namespace: str) -> str | None:
    """The Service name `spec.service` designates in `namespace` (`name` or
    `name.<namespace>[.svc[.cluster.local]]`, DESIGN §3), or None when it names a Service
    elsewhere or nothing a Service could be called (`web.`: an empty label). The one reading,
    for validation and the compiler alike: where they differed, `web.` passed admission, was
    skipped by the compiler, and still took its root's one split."""
    name, *rest = service.split(".")
    if not name:
        return None
    if not rest:
        return name
    if rest[0] and rest[0] == namespace and tuple(rest[1:]) in _CLUSTER_SUFFIXES:
        return name
    return None


def check_traffic_split(resource: Resource) -> list[Diagnostic]:
    split: hub.TrafficSplit = resource.obj
    namespace = split.metadata.namespace
    root = root_service(split.service, namespace)
    out: list[Diagnostic] = []
    if root is None:
        out.append(
            error(
                "SMI2102",
                f"{split.service!r} is not a Service of namespace {namespace!r}: write 'name' "
                f"or 'name.{namespace}[.svc[.cluster.local]]'",
                path="spec.service",
            )
        )
    else:
        out += check_label(root, "spec.service", what="Service name")
    _backends(
        out,
        split,
        root=root,
        v1alpha1=resource.api_version.endswith("/v1alpha1"),
        raw=resource.raw,
    )
    _matches(out, split.matches or ())
    if carries_annotation(resource.raw):
        out += restored_restrictions(resource, SPLIT_NARROWING)
    return out


def _written_weight(raw: Mapping[str, Any], index: int) -> Any:
    """The weight of backend `index` as the document wrote it (None when it did not)."""
    spec = raw.get("spec")
    backends = spec.get("backends") if isinstance(spec, Mapping) else None
    if not isinstance(backends, list) or index >= len(backends):
        return None
    backend = backends[index]
    return backend.get("weight") if isinstance(backend, dict) else None


def _backends(
    out: list[Diagnostic],
    split: hub.TrafficSplit,
    *,
    root: str | None,
    v1alpha1: bool,
    raw: Mapping[str, Any],
) -> None:
    if not split.backends:
        out.append(error("SMI2101", "at least one backend is needed", path="spec.backends"))
        return
    weights_ok = True
    for i, backend in enumerate(split.backends):
        if not is_label(backend.service):
            out += check_label(backend.service, f"spec.backends[{i}].service", what="Service name")
        if backend.service == root:
            out.append(
                warning(
                    "SMI2106",
                    f"the root service {root!r} is listed as a backend; list the "
                    "versioned Services instead",
                    path=f"spec.backends[{i}].service",
                )
            )
        problem = _weight_problem(backend.weight_milli, v1alpha1=v1alpha1)
        if problem is not None:
            weights_ok = False
            written = _written_weight(raw, i)
            shown = f" (got {written!r})" if written is not None else ""
            out.append(error("SMI2103", f"{problem}{shown}", path=f"spec.backends[{i}].weight"))
    for i, service in duplicates(b.service for b in split.backends):
        out.append(
            error(
                "SMI2105",
                f"backend {service!r} is listed twice",
                path=f"spec.backends[{i}].service",
            )
        )
    if weights_ok and sum(b.weight_milli for b in split.backends) == 0:
        out.append(
            error(
                "SMI2104", "every weight is 0, so no request could be routed", path="spec.backends"
            )
        )


def _weight_problem(milli: int, *, v1alpha1: bool) -> str | None:
    """Whole numbers are the schema's business (SMI2103 at load); a v1alpha2+ weight whose
    hub value is finer than a unit came from the lossy-fields annotation (a v1alpha1 split
    converted: `500m` is written 1 beside `1` written 2) and is as valid as its wire value."""
    if milli < 0:
        return "must be a quantity >= 0" if v1alpha1 else "must be an integer >= 0"
    return None


def _matches(out: list[Diagnostic], matches: tuple[hub.MatchRef, ...]) -> None:
    for i, match in enumerate(matches):
        at = f"spec.matches[{i}]"
        if match.kind != "HTTPRouteGroup":
            out.append(
                error(
                    "SMI2107",
                    f"match kind {match.kind!r} is not HTTPRouteGroup",
                    path=f"{at}.kind",
                )
            )
        if match.api_group not in (None, "", SPECS_GROUP):
            out.append(error("SMI2107", f"apiGroup must be {SPECS_GROUP}", path=f"{at}.apiGroup"))
        out += check_subdomain(match.name, f"{at}.name", what="HTTPRouteGroup name")
