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

That rule is right for hidden values that *grant*: UDPRoute rules below access v1alpha3,
IdentityBinding sources below v1alpha4. A client that edits the rules or sources it sees has
said what the object grants; adding hidden grants back behind that edit would grant what the
editor never saw, so they go, and the object only narrows. It is wrong for hidden values that
*restrict* (`Narrowing`): a match's headers below specs v1alpha2, a TrafficTarget
destination's port in access v1alpha3/v1alpha4, TCPRoute ports below specs v1alpha4.
Dropping those because someone appended HEAD to another match would allow what nobody wrote
(GET /admin without the admin token). So an edited field still gets each stored restriction
back on the entry it belonged to (a match by name, the destination by kind and name) while
that entry is there and does not show one of its own; only removing or renaming the entry
drops it, with the entry. A restriction this version cannot show is enforced without being in
the manifest, and `kubectl apply` keeps the annotation (it is not in last-applied), so
validation names each one (`hidden_restrictions`, SMI4005).

A field is stored whole, so a list the version shows only part of (access v1alpha2 leaves out
UDPRoute rules) comes back with every entry in its original place. A version module refuses
(`ConversionNotPossible`) only what its version cannot mean at all, never what it merely
cannot hold: the API server converts a whole list in one ConversionReview, so one refused
stored object breaks every list and watch of its kind in that version.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from smi.apis.meta import LOSSY_ANNOTATION, ObjectMeta
from smi.apis.served import ConversionNotPossible, LossyAnnotationCorrupt, Served
from smi.apis.wire import WireObject, parse_lossy_payload

H = TypeVar("H", bound=BaseModel)
W = TypeVar("W", bound=WireObject)

_NOT_LOSSY = frozenset({"metadata", "kind"})

# A restriction's place in its field: (the entry's key, which occurrence of that key).
Place = tuple[Hashable, int]


@dataclass(frozen=True)
class Narrowing:
    """Values in one hub field that only ever narrow what the object allows.

    `part` names the attribute of each entry of `field` that restricts (`headers` of each
    match), identified across edits by `key` (the match's name); `part` None means the whole
    field restricts (a TCPRoute's `ports`). An entry whose part is None restricts nothing, nor
    does an empty whole field. `describe(key, value)` names one restriction in a warning."""

    field: str
    part: str | None
    describe: Callable[[Hashable, Any], str]
    key: Callable[[Any], Hashable] = lambda _entry: None

    def restrictions(self, value: Any) -> dict[Place, Any]:
        """{place: restriction} of the field's entries that have one. A key given twice (an
        admission error) is told apart by its occurrence, so nothing lands on the wrong one."""
        if self.part is None:
            return {} if value in (None, ()) else {(None, 0): value}
        out: dict[Place, Any] = {}
        seen: Counter[Hashable] = Counter()
        for entry in _entries(value):
            key = self.key(entry)
            part = getattr(entry, self.part)
            if part is not None:
                out[key, seen[key]] = part
            seen[key] += 1
        return out

    def put_back(self, value: Any, stored: Mapping[Place, Any]) -> Any:
        """`value` with each stored restriction on the entry it belonged to, where that entry
        is still there and shows no restriction of its own (the manifest's own wins)."""
        if self.part is None:
            return stored.get((None, 0), value) if value in (None, ()) else value
        if not isinstance(value, tuple):  # a field of one entry (the destination)
            return value if value is None else self.put_back((value,), stored)[0]
        seen: Counter[Hashable] = Counter()
        out = []
        for entry in value:
            key = self.key(entry)
            part = stored.get((key, seen[key]))
            seen[key] += 1
            if part is not None and getattr(entry, self.part) is None:
                out.append(entry.model_copy(update={self.part: part}))
            else:
                out.append(entry)
        return tuple(out)


def _entries(value: Any) -> tuple[Any, ...]:
    """The entries of a list field, or the one entry of a field that holds one (destination)."""
    if value is None:
        return ()
    return value if isinstance(value, tuple) else (value,)


def _put_back(narrowing: Sequence[Narrowing], name: str, current: Any, stored: Any) -> Any:
    for rule in narrowing:
        if rule.field == name:
            current = rule.put_back(current, rule.restrictions(stored))
    return current


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


def restore(
    hub: H,
    raw: str,
    read_back: Callable[[H], H] | None = None,
    narrowing: Sequence[Narrowing] = (),
) -> H:
    """Put back the stored fields whose fingerprint still matches what the wire gave, and of
    an edited field the restrictions in `narrowing` whose entries are still there.

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
    updates: dict[str, Any] = {}
    for name, (value, was) in payload.items():
        if was == fingerprint(_as_json(hub, name)):
            updates[name] = value
        else:
            _as_edited(updates, narrowing, hub, name, value)
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
        # A stored value the wire contradicts is read as an edit of that field (the wire
        # wins), so its restrictions still come back on their entries, as they do when the
        # manifest was edited: an annotation edited by hand must not keep less than that
        # (GET /admin without its hidden x-admin-token header, allowed).
        for name in [n for n in updates if getattr(back, n) != getattr(hub, n)]:
            del updates[name]
            _as_edited(updates, narrowing, hub, name, payload[name][0])
        restored = _updated(hub, updates)
    return restored


def _as_edited(
    updates: dict[str, Any], narrowing: Sequence[Narrowing], hub: BaseModel, name: str, stored: Any
) -> None:
    """A field the manifest changed since `stored` was kept: the manifest's value stays, with
    the stored restrictions put back on the entries still there (into `updates` when any)."""
    current = getattr(hub, name)
    narrowed = _put_back(narrowing, name, current, stored)
    if narrowed != current:
        updates[name] = narrowed


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
    narrowing: Sequence[Narrowing] = (),
) -> Served:
    """One served kind whose conversions go through the lossy-fields annotation: a version
    module says only how its wire form reads into the hub (`read`), how the hub projects
    onto it (`project`) and which hub values only narrow what the kind allows (`narrowing`);
    `to_hub_via` and `from_hub_via` do the rest, the same for every kind."""
    return Served(
        group=group,
        version=version,
        kind=kind,
        wire=wire,
        to_hub=partial(to_hub_via, read=read, project=project, narrowing=narrowing),
        from_hub=partial(from_hub_via, project=project, read=read),
        flat=flat,
        draft=draft,
    )


def to_hub_via(
    wire: W,
    read: Callable[[W, ObjectMeta], H],
    project: Callable[[H], W] | None = None,
    narrowing: Sequence[Narrowing] = (),
) -> H:
    meta, raw = split_payload(wire.metadata)
    hub = read(wire, meta)
    if raw is None:
        return hub
    read_back = None if project is None else (lambda h: read(project(h), meta))
    return restore(hub, raw, read_back, narrowing)


def from_hub_via(hub: H, project: Callable[[H], W], read: Callable[[W, ObjectMeta], H]) -> W:
    wire = project(hub)
    meta = meta_of(hub)
    lost = lost_fields(hub, read(wire, meta))
    if not lost:
        return wire
    return wire.model_copy(update={"metadata": with_payload(meta, lost)})


def carries_annotation(doc: Mapping[str, Any]) -> bool:
    """Whether a document as written has the lossy-fields annotation (cheap: checks run for
    every object of a set, and almost none has it)."""
    meta = doc.get("metadata")
    # (`dict` first: documents are dicts, and an ABC's isinstance costs more than the rest.)
    if not isinstance(meta, (dict, Mapping)):
        return False
    annotations = meta.get("annotations")
    return isinstance(annotations, (dict, Mapping)) and LOSSY_ANNOTATION in annotations


def restored_note(entry: Served, hub: Any, narrowing: Sequence[Narrowing]) -> str | None:
    """The one-line warning for restrictions the annotation restores out of sight, or None.

    A reader of the manifest cannot see them, yet smictl enforces them; and `kubectl apply`
    of a manifest written without them keeps the annotation (it is not in last-applied), so
    they would outlive the manifest that dropped them without a word."""
    found = hidden_restrictions(entry, hub, narrowing)
    if not found:
        return None
    them = "it" if len(found) == 1 else "them"
    return (
        f"restores {'; '.join(found)}, which {entry.api_version} cannot show: smictl "
        f"enforces {them}, and deleting the annotation drops {them}"
    )


def hidden_restrictions(entry: Served, hub: Any, narrowing: Sequence[Narrowing]) -> list[str]:
    """Each restriction `hub` holds that its version (`entry`) cannot show, described: what
    the annotation restores and smictl enforces, though a reader of the manifest cannot see
    it (the version's own view is the hub projected onto it and read without the annotation).
    """
    wire = entry.from_hub(hub)
    meta, raw = split_payload(meta_of(wire))
    if raw is None:
        return []
    shown = entry.to_hub(wire.model_copy(update={"metadata": meta}))
    found: list[str] = []
    for rule in narrowing:
        visible = rule.restrictions(getattr(shown, rule.field))
        for place, value in rule.restrictions(getattr(hub, rule.field)).items():
            if value != () and visible.get(place) != value:
                found.append(rule.describe(place[0], value))
    return found
