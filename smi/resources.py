"""What loading produces: SMI resources, context objects, and where each came from.

`Resource` carries the hub object (`obj`, the form everything above `smi.apis` reads), the
apiVersion it was written in (validation reports paths in that version's wire layout), the
document as written (`raw`) and its line map, so that any check can locate a diagnostic at the
offending field. `smi.loading` builds these and re-exports them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from smi.apis import registry
from smi.apis.meta import LOSSY_ANNOTATION
from smi.errors import Diagnostic
from smi.sources import Lines
from smi.yamlpos import PathPart, parse_path


@dataclass(frozen=True, slots=True)
class Source:
    """Where an object came from: file, line of its first field, document number in the file."""

    file: str
    line: int | None
    index: int


@dataclass(frozen=True, init=False)
class Resource:
    """An SMI object: its hub form (`obj`), as which version it was written, and where."""

    obj: Any
    api_version: str
    kind: str
    source: Source
    raw: Mapping[str, Any]
    lines: Lines | None = field(default=None, compare=False, repr=False)
    # Derived from the (frozen) hub object once, at construction: every check reads them.
    name: str = field(init=False, compare=False, repr=False)
    namespace: str = field(init=False, compare=False, repr=False)
    key: str = field(init=False, compare=False, repr=False)
    """`kind/namespace/name`, how diagnostics and the compiler name the object."""

    def __init__(  # noqa: PLR0917 - the signature a dataclass would generate
        self,
        obj: Any,
        api_version: str,
        kind: str,
        source: Source,
        raw: Mapping[str, Any],
        lines: Lines | None = None,
    ) -> None:
        # One resource per loaded object: the fields are set in one step (a frozen dataclass's
        # own __init__ sets them one by one through object.__setattr__, at twice the cost).
        meta = obj.metadata
        name = str(getattr(meta, "name", "") or "")
        namespace = str(getattr(meta, "namespace", "") or "")
        object.__setattr__(
            self,
            "__dict__",
            {
                "obj": obj,
                "api_version": api_version,
                "kind": kind,
                "source": source,
                "raw": raw,
                "lines": lines,
                "name": name,
                "namespace": namespace,
                "key": f"{kind}/{namespace}/{name}",
            },
        )

    def __hash__(self) -> int:
        return hash((self.key, self.api_version, self.source))

    def line_of(self, path: str) -> int | None:
        """The line of a JSON path inside this document (or of its nearest parent)."""
        return self.lines.line_of(path) if self.lines is not None else self.source.line

    def locate(self, diagnostic: Diagnostic) -> Diagnostic:
        """The diagnostic with this object's file, the line of its path, and its key. A path
        the document does not have, where the lossy-fields annotation restores it (a UDPRoute
        rule of access v1alpha1, a split v1alpha2's `matches`), is the annotation's: the
        writer can find that, where `specs[1].name` named a field the manifest lacks."""
        if diagnostic.path and _restored(self.raw, diagnostic.path, self._wire()):
            diagnostic = replace(diagnostic, path=f'metadata.annotations["{LOSSY_ANNOTATION}"]')
        located = diagnostic.located(file=self.source.file, line=self.line_of(diagnostic.path))
        return located if located.object_ref else replace(located, object_ref=self.key)

    def _wire(self) -> type[BaseModel] | None:
        entry = registry.lookup(self.api_version, self.kind)
        return None if entry is None else entry.wire


def _restored(raw: Mapping[str, Any], path: str, wire: type[BaseModel] | None) -> bool:
    """Whether `path` names nothing in the document `raw`, and its field is one the
    lossy-fields annotation holds (so restored it: not a required field left out). Inside an
    entry the manifest writes, only a field its version (`wire`, the model of the document)
    has no place for is restored: a destination's port in access v1alpha3 or a match's headers
    in specs v1alpha1, not a source's `namespace` its writer left out, whose warning (SMI2406)
    moved to the annotation whenever the annotation held hidden sources."""
    meta = raw.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    if not isinstance(annotations, Mapping) or LOSSY_ANNOTATION not in annotations:
        return False
    try:
        held = json.loads(annotations[LOSSY_ANNOTATION])
    except (TypeError, ValueError):
        return False
    top = path.removeprefix("spec.").partition(".")[0].partition("[")[0]
    if not isinstance(held, dict) or {"specs": "rules"}.get(top, top) not in held:
        return False
    node: Any = raw
    parts = parse_path(path)
    for depth, part in enumerate(parts):
        found = (isinstance(part, str) and isinstance(node, Mapping) and part in node) or (
            isinstance(part, int) and isinstance(node, list) and part < len(node)
        )
        if not found:
            # An entry of the list (a hidden UDPRoute rule), or the held field itself (a
            # split v1alpha2's `matches`), is the annotation's; a field of what is there is
            # only where the version cannot write it.
            within = isinstance(part, str) and depth > path.startswith("spec.")
            return not within or wire is None or not _wire_holds(wire, parts[: depth + 1])
        node = node[part]
    return False


def _wire_holds(wire: type[BaseModel], parts: Sequence[PathPart]) -> bool:
    """Whether documents of the wire model `wire` have a place at `parts`: what a version
    cannot hold is in none of its models (access v1alpha3 subjects have no `port`)."""
    held: list[Any] = [wire]
    for part in parts:
        held = [inner for outer in held for inner in _inside(outer, part)]
        if not held:
            return False
    return True


def _inside(held: Any, part: PathPart) -> list[Any]:
    """The types `part` of a value of type `held` can have (none: no such place)."""
    origin = get_origin(held)
    if origin is Annotated:
        return _inside(get_args(held)[0], part)
    if origin is Union or origin is UnionType:
        return [inner for arg in get_args(held) for inner in _inside(arg, part)]
    if isinstance(part, int):
        return list(get_args(held)[:1]) if origin in (list, tuple) else []
    if origin in (dict, Mapping):
        return list(get_args(held)[1:2])
    if isinstance(held, type) and issubclass(held, BaseModel):
        fields = held.model_fields.items()
        return [f.annotation for name, f in fields if part in (name, f.alias)]
    return []


@dataclass(frozen=True)
class ContextObject:
    """A non-SMI object the cross-resource checks use (Service, ServiceAccount, ...)."""

    api_version: str
    kind: str
    name: str
    namespace: str
    raw: Mapping[str, Any]
    source: Source
    # Where its fields were written; for a JSON list's item the only way to its line (`source.line`
    # is None).
    lines: Lines | None = field(default=None, compare=False, repr=False)

    def __hash__(self) -> int:
        return hash((self.kind, self.namespace, self.name, self.source))

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Refused:
    """An SMI object that named itself but did not load (a schema or metadata error): its
    problems carry `key` as their object, and the commands count it as an invalid object."""

    key: str
    source: Source


@dataclass
class LoadResult:
    resources: list[Resource] = field(default_factory=list)
    context: list[ContextObject] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)

    def extend(self, other: LoadResult) -> None:
        self.resources.extend(other.resources)
        self.context.extend(other.context)
        self.diagnostics.extend(other.diagnostics)
        self.files.extend(other.files)
        self.refused.extend(other.refused)
