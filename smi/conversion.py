"""Convert SMI objects between versions of their group, through the unversioned hub.

`convert_document(doc, to)` validates a document, reads it into the hub and writes it in the
target version; `convert_object(hub_obj, to)` does the last step for an object already read.
`convert_document` is the one entry point of `smictl convert` and the webhook's `/convert`: a
document already in the target version comes back as it was (validated, copied), not rewritten
through the hub, which would respell it (a split v1alpha1 `weight: 1` as `"1"`, a metrics
timestamp `.123Z` as `.123000Z`) and drop what the hub does not keep apart (null maps, empty
metadata): converting to an object's own version is the identity.
Fields the target version cannot hold ride in the `smictl.io/lossy-fields` annotation, so
converting back gives the original object (see `smi.apis.lossy`). That includes entries of a
list the target can hold only in part: UDPRoute rules below access v1alpha3, IdentityBinding
sources below v1alpha4 (left out of the view, which only narrows what an allow-only
TrafficTarget grants; `smi.apis.access.common` has the reasoning).

This is the boundary where `smi.apis`' own exceptions become smictl errors:
ConversionError with SMI4001 (target version unknown), SMI4002 (the kind does not exist in the
target version, or the object means something it cannot say at all: an IdentityBinding
destination below access v1alpha4), SMI4003 (target in another group, or the
document is not an SMI object), SMI4004 (lossy-field annotation corrupt); SchemaError for a
document that does not match its own version's schema (mapped by `smi.schema_errors`, as
the loader does); LoadError when its apiVersion or kind is missing or not served.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from smi.apis import registry
from smi.apis.registry import (
    ConversionNotPossible,
    LossyAnnotationCorrupt,
    UnknownTarget,
    WrongGroup,
)
from smi.errors import ConversionError, LoadError, SchemaError
from smi.schema_errors import schema_diagnostics


def convert_object(hub_obj: Any, to: str) -> dict[str, Any]:
    """`hub_obj` written as a document of apiVersion `to` (`GROUP/VERSION`)."""
    try:
        return registry.render(hub_obj, to)
    except UnknownTarget as exc:
        raise ConversionError.of("SMI4001", f"{exc}; see `smictl version`") from exc
    except WrongGroup as exc:
        raise ConversionError.of("SMI4003", str(exc)) from exc
    except LossyAnnotationCorrupt as exc:
        raise ConversionError.of("SMI4004", str(exc), path="metadata.annotations") from exc
    except ConversionNotPossible as exc:
        raise ConversionError.of("SMI4002", str(exc)) from exc
    except ValidationError as exc:
        # The target's own model refused a value the hub holds (a hub object built from data,
        # not loaded, e.g. a weight beyond what a v1alpha1 quantity holds): a problem of this
        # object, not a crash of the command.
        reason = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        raise ConversionError.of("SMI4002", f"cannot be written as {to}: {reason}") from exc


def convert_document(doc: Mapping[str, Any], to: str) -> dict[str, Any]:
    """Validate `doc` in its own version and write it in version `to`."""
    if not registry.kinds_of(to):
        raise ConversionError.of("SMI4001", f"{to!r} is not an SMI version smictl serves")
    _require_served(doc)
    try:
        hub_obj = registry.parse(doc)
    except ValidationError as exc:
        where = f"{doc['apiVersion']} {doc['kind']}"
        raise SchemaError(schema_diagnostics(exc, where=where)) from exc
    if doc["apiVersion"] == to:
        return _copied(doc)
    return convert_object(hub_obj, to)


def _copied(doc: Mapping[str, Any]) -> dict[str, Any]:
    """`doc` as plain dicts and lists that share nothing with it (a caller may edit the result).
    Iterative: metadata is free-form, and may nest as deep as the reader of the input allowed."""
    root: dict[str, Any] = {}
    stack: list[tuple[Any, Any]] = [(doc, root)]
    while stack:
        source, target = stack.pop()
        pairs = source.items() if isinstance(source, Mapping) else enumerate(source)
        for key, value in pairs:
            if isinstance(value, Mapping):
                target[key] = {}
                stack.append((value, target[key]))
            elif isinstance(value, list | tuple):
                target[key] = [None] * len(value)
                stack.append((value, target[key]))
            else:
                target[key] = value
    return root


def _require_served(doc: Mapping[str, Any]) -> None:
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api_version, str) or not api_version:
        raise LoadError.of("SMI1004", "apiVersion missing", path="apiVersion")
    if not isinstance(kind, str) or not kind:
        raise LoadError.of("SMI1005", "kind missing", path="kind")
    if not registry.is_smi_group(api_version):
        raise ConversionError.of(
            "SMI4003", f"{kind} {api_version} is not an SMI object; only SMI objects convert"
        )
    if not registry.kinds_of(api_version):
        raise LoadError.of("SMI1006", f"smictl does not serve {api_version}", path="apiVersion")
    if registry.lookup(api_version, kind) is None:
        served = ", ".join(registry.kinds_of(api_version))
        raise LoadError.of(
            "SMI1007", f"{api_version} has no kind {kind} (it has {served})", path="kind"
        )
