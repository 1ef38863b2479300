"""Which SMI (group, version, kind) smictl serves, and the one way in and out of the hubs.

Everything above `smi.apis` (the loader, `smictl convert`, the webhook, conformance) finds wire
models and converters here and nowhere else:

- `lookup(api_version, kind)` gives the `Served` entry (wire model, `to_hub`, `from_hub`, layout);
- `parse(doc)` validates a document against its wire model and returns the hub object;
- `render(hub_obj, api_version)` writes a hub object as a document of the given version.

Conversions between versions go through the hub only (`render(parse(doc), target)`); fields a
version cannot hold ride in the `smi.apis.meta.LOSSY_ANNOTATION` (see `smi.apis.lossy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from smi.apis.access import v1alpha1 as access_v1alpha1
from smi.apis.access import v1alpha2 as access_v1alpha2
from smi.apis.access import v1alpha3 as access_v1alpha3
from smi.apis.access import v1alpha4 as access_v1alpha4
from smi.apis.lossy import meta_of
from smi.apis.meta import LOSSY_ANNOTATION
from smi.apis.metrics import v1alpha1 as metrics_v1alpha1
from smi.apis.served import (
    ConversionNotPossible,
    KindNotInTarget,
    LossyAnnotationCorrupt,
    Served,
    UnknownTarget,
    WrongGroup,
)
from smi.apis.specs import v1alpha1 as specs_v1alpha1
from smi.apis.specs import v1alpha2 as specs_v1alpha2
from smi.apis.specs import v1alpha3 as specs_v1alpha3
from smi.apis.specs import v1alpha4 as specs_v1alpha4
from smi.apis.split import v1alpha1 as split_v1alpha1
from smi.apis.split import v1alpha2 as split_v1alpha2
from smi.apis.split import v1alpha3 as split_v1alpha3
from smi.apis.split import v1alpha4 as split_v1alpha4

__all__ = [
    "SMI_GROUPS",
    "ConversionNotPossible",
    "KindNotInTarget",
    "LossyAnnotationCorrupt",
    "Served",
    "UnknownTarget",
    "WrongGroup",
    "dump",
    "group_of",
    "is_smi_group",
    "kinds_of",
    "lookup",
    "parse",
    "parse_as",
    "render",
    "served",
    "supported_versions",
    "target",
]

SMI_GROUPS: tuple[str, ...] = (
    "access.smi-spec.io",
    "specs.smi-spec.io",
    "split.smi-spec.io",
    "metrics.smi-spec.io",
)

# Version modules in release order; each lists what it serves in `SERVED`.
_MODULES = (
    access_v1alpha1,
    access_v1alpha2,
    access_v1alpha3,
    access_v1alpha4,
    specs_v1alpha1,
    specs_v1alpha2,
    specs_v1alpha3,
    specs_v1alpha4,
    split_v1alpha1,
    split_v1alpha2,
    split_v1alpha3,
    split_v1alpha4,
    metrics_v1alpha1,
)


@cache
def _index() -> Mapping[tuple[str, str], Served]:
    table = {(s.api_version, s.kind): s for module in _MODULES for s in module.SERVED}
    return MappingProxyType(table)


def served(group: str | None = None) -> tuple[Served, ...]:
    """Every served kind (of one group), in release order."""
    return tuple(s for s in _index().values() if group is None or s.group == group)


def lookup(api_version: str, kind: str) -> Served | None:
    return _index().get((api_version, kind))


def _group_part(api_version: str) -> str:
    return api_version.partition("/")[0] if "/" in api_version else ""


def is_smi_group(api_version: str) -> bool:
    """The group part of `api_version` is an SMI group (whatever the version)."""
    return _group_part(api_version) in SMI_GROUPS


def kinds_of(api_version: str) -> tuple[str, ...]:
    """The kinds `api_version` serves; empty when smictl does not serve that version."""
    return tuple(kind for (av, kind) in _index() if av == api_version)


def supported_versions() -> dict[str, dict[str, list[str]]]:
    """group -> kind -> versions in release order, for `smictl version` and the README table
    (`Served.draft` tells which are unreleased drafts)."""
    out: dict[str, dict[str, list[str]]] = {}
    for s in served():
        out.setdefault(s.group, {}).setdefault(s.kind, []).append(s.version)
    return out


@cache
def _group_by_kind() -> Mapping[str, str]:
    return MappingProxyType({s.kind: s.group for s in served()})


def group_of(hub_obj: Any) -> str:
    """The API group a hub object belongs to (kinds are unique across SMI groups)."""
    kind = getattr(hub_obj, "kind", None)
    group = _group_by_kind().get(kind) if isinstance(kind, str) else None
    if group is None:
        raise TypeError(f"{type(hub_obj).__name__} is not an SMI hub object")
    return group


def parse(doc: Mapping[str, Any]) -> Any:
    """Validate `doc` against the wire model of its apiVersion and kind; return the hub object.

    Raises LookupError when smictl does not serve (apiVersion, kind), and
    pydantic.ValidationError for every schema problem (error `type` is a pydantic type or an
    `SMI####` code, `loc` the field path), including a corrupt lossy-fields annotation."""
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    entry = (
        lookup(api_version, kind)
        if isinstance(api_version, str) and isinstance(kind, str)
        else None
    )
    if entry is None:
        raise LookupError(f"smictl does not serve kind {kind!r} in apiVersion {api_version!r}")
    return parse_as(entry, doc)


def parse_as(entry: Served, doc: Mapping[str, Any]) -> Any:
    """`parse` for a caller that has looked up the document's `Served` entry already (the
    loader); the document's apiVersion and kind are still validated against it."""
    wire = entry.wire.model_validate(doc)
    try:
        return entry.to_hub(wire)
    except LossyAnnotationCorrupt as exc:
        error = PydanticCustomError("SMI4004", "{reason}", {"reason": str(exc)})
        detail: InitErrorDetails = {
            "type": error,
            "loc": ("metadata", "annotations", LOSSY_ANNOTATION),
            "input": meta_of(wire).annotations.get(LOSSY_ANNOTATION),
        }
        raise ValidationError.from_exception_data(entry.wire.__name__, [detail]) from exc


def target(hub_obj: Any, api_version: str) -> Served:
    """The `Served` entry that `hub_obj` converts to in `api_version`, or why there is none."""
    group = group_of(hub_obj)
    if not kinds_of(api_version):
        raise UnknownTarget(f"{api_version!r} is not an SMI version smictl serves")
    if _group_part(api_version) != group:
        raise WrongGroup(f"a {hub_obj.kind} belongs to {group}, not to {api_version}")
    entry = lookup(api_version, hub_obj.kind)
    if entry is None:
        raise KindNotInTarget(f"{api_version} has no kind {hub_obj.kind}")
    return entry


def dump(wire: BaseModel) -> dict[str, Any]:
    """A wire object as a JSON-ready document: apiVersion and kind first, then metadata,
    then the rest; absent optional fields are left out."""
    body = wire.model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"metadata"})
    out = {"apiVersion": body.pop("apiVersion"), "kind": body.pop("kind")}
    meta = getattr(wire, "metadata", None)
    if isinstance(meta, BaseModel):
        meta_doc = meta.model_dump(mode="json", exclude_defaults=True)
        if meta_doc:
            out["metadata"] = meta_doc
    out.update(body)
    return out


def render(hub_obj: Any, api_version: str) -> dict[str, Any]:
    """`hub_obj` as a document of `api_version` (raises ConversionNotPossible or a subclass)."""
    return dump(target(hub_obj, api_version).from_hub(hub_obj))
