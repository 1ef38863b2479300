"""Lossless conversion through the hub: what a version cannot hold rides in an annotation.

Each version module supplies two plain functions per kind, `project(hub) -> wire` (the best
this version can say) and `read(wire, metadata) -> hub` (what the wire says, annotation
aside), and declares the kind with `served(...)`, which builds the converters below from them.
`from_hub` compares the hub with what its projection reads back; every hub field that differs
is stored in the `LOSSY_ANNOTATION` with its exact value and a fingerprint of what the wire
gives for it. `to_hub` reads the wire and puts those fields back, removing the annotation,
so that `to_hub(from_hub(h)) == h` for every hub object the version can take.

The fingerprint makes an edited object safe: when someone changes a field after converting
(say, the weights), the wire no longer gives the fingerprinted value and the stale stored
value is ignored: the wire wins.

A field is stored whole, so a list the version shows only part of (access v1alpha2 leaves out
UDPRoute rules) comes back with every entry in its original place. A version module refuses
(`ConversionNotPossible`) only what its version cannot mean at all, never what it merely
cannot hold: the API server converts a whole list in one ConversionReview, so one refused
stored object breaks every list and watch of its kind in that version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from smi.apis.meta import LOSSY_ANNOTATION, ObjectMeta
from smi.apis.served import ConversionNotPossible, LossyAnnotationCorrupt, Served
from smi.apis.wire import WireObject, parse_lossy_payload

H = TypeVar("H", bound=BaseModel)
W = TypeVar("W", bound=WireObject)

_NOT_LOSSY = frozenset({"metadata", "kind"})


def fingerprint(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _as_json(model: BaseModel, name: str) -> Any:
    return model.model_dump(mode="json", include={name})[name]


def meta_of(obj: BaseModel) -> ObjectMeta:
    meta = obj.__dict__.get("metadata")
    if not isinstance(meta, ObjectMeta):
        raise TypeError(f"{type(obj).__name__} has no ObjectMeta metadata")
    return meta


def lost_fields(hub: BaseModel, kept: BaseModel) -> dict[str, Any]:
    """The annotation payload: hub fields whose value `kept` (the read-back) does not give."""
    lost: dict[str, Any] = {}
    for name in type(hub).model_fields:
        if name in _NOT_LOSSY or getattr(hub, name) == getattr(kept, name):
            continue
        lost[name] = {"value": _as_json(hub, name), "was": fingerprint(_as_json(kept, name))}
    return lost


def with_payload(meta: ObjectMeta, lost: dict[str, Any]) -> ObjectMeta:
    text = json.dumps(lost, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return meta.model_copy(update={"annotations": {**meta.annotations, LOSSY_ANNOTATION: text}})


def split_payload(meta: ObjectMeta) -> tuple[ObjectMeta, str | None]:
    """Metadata without the annotation, and the annotation's text (None when absent)."""
    raw = meta.annotations.get(LOSSY_ANNOTATION)
    if raw is None:
        return meta, None
    rest = {k: v for k, v in meta.annotations.items() if k != LOSSY_ANNOTATION}
    return meta.model_copy(update={"annotations": rest}), raw


def restore(hub: H, raw: str, read_back: Callable[[H], H] | None = None) -> H:
    """Put back the stored fields whose fingerprint still matches what the wire gave.

    With `read_back` (project onto this version, then read), a stored value is also dropped
    when the wire could not have come from it: the annotation may only add what this version
    cannot hold (DESIGN.md §3), never contradict what the manifest says. Otherwise a
    hand-edited annotation with an unchanged fingerprint could, say, swap the destination
    name of a TrafficTarget or the backends of a split behind a manifest that reads otherwise.
    """
    try:
        payload = parse_lossy_payload(type(hub), raw)
    except ValueError as exc:
        raise LossyAnnotationCorrupt(f"annotation {LOSSY_ANNOTATION}: {exc}") from exc
    updates = {
        name: value
        for name, (value, was) in payload.items()
        if was == fingerprint(_as_json(hub, name))
    }
    restored = _updated(hub, updates)
    if read_back is not None and updates:
        try:
            back = read_back(restored)
        except (ConversionNotPossible, ValidationError) as exc:
            # Stored values this version cannot even write (an IdentityBinding destination
            # on an access v1alpha3 object, a weight beyond its range): no conversion to this
            # version made them, so the annotation is corrupt, not the object's own fields.
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise LossyAnnotationCorrupt(f"annotation {LOSSY_ANNOTATION}: {reason}") from exc
        updates = {n: v for n, v in updates.items() if getattr(back, n) == getattr(hub, n)}
        restored = _updated(hub, updates)
    return restored


def _updated(hub: H, updates: dict[str, Any]) -> H:
    if not updates:
        return hub
    data = {name: getattr(hub, name) for name in type(hub).model_fields}
    data.update(updates)
    try:
        return type(hub).model_validate(data)
    except ValidationError as exc:  # pragma: no cover - each value was checked on its own
        raise LossyAnnotationCorrupt(f"annotation {LOSSY_ANNOTATION}: {exc}") from exc


def served(
    *,
    group: str,
    version: str,
    kind: str,
    wire: type[W],
    read: Callable[[W, ObjectMeta], H],
    project: Callable[[H], W],
    flat: bool,
    draft: bool = False,
) -> Served:
    """One served kind whose conversions go through the lossy-fields annotation: a version
    module says only how its wire form reads into the hub (`read`) and how the hub projects
    onto it (`project`); `to_hub_via` and `from_hub_via` do the rest, the same for every kind."""
    return Served(
        group=group,
        version=version,
        kind=kind,
        wire=wire,
        to_hub=partial(to_hub_via, read=read, project=project),
        from_hub=partial(from_hub_via, project=project, read=read),
        flat=flat,
        draft=draft,
    )


def to_hub_via(
    wire: W, read: Callable[[W, ObjectMeta], H], project: Callable[[H], W] | None = None
) -> H:
    meta, raw = split_payload(wire.metadata)
    hub = read(wire, meta)
    if raw is None:
        return hub
    read_back = None if project is None else (lambda h: read(project(h), meta))
    return restore(hub, raw, read_back)


def from_hub_via(hub: H, project: Callable[[H], W], read: Callable[[W, ObjectMeta], H]) -> W:
    wire = project(hub)
    meta = meta_of(hub)
    lost = lost_fields(hub, read(wire, meta))
    if not lost:
        return wire
    return wire.model_copy(update={"metadata": with_payload(meta, lost)})
