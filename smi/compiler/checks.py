"""`validate`: the one validation path (CLI, `smictl admit`, the webhook, conformance).

Per-object hard checks come from `smi.validation.check_resource`; the checks here need the
whole set: rule -> route and match names, one TrafficSplit per root service per namespace,
split matches -> HTTPRouteGroups, backend Services and their ports when the set holds
Services in the split's namespace (`services_unchecked` names the namespaces where it holds
none), a `destination.port` no rule opens, and an object defined twice, SMI or context object
(an error when the copies differ, as `smictl apply` refuses them). References may point at
objects that do not exist yet (the spec allows any order of creation), so those are warnings;
`strict=True` makes them errors (`smictl admit --strict`).

With `subjects`, only those objects are checked (against the whole set, in which each subject
replaces any object of the same key: that is what applying it does), as admission needs.
A caller that checks many subjects against one set (the webhook, against the store's view)
builds `SetIndex.of(resources, context)` once and calls `validate_subjects(index, subjects)`:
the same diagnostics as `validate(resources, context, subjects=subjects)`, without indexing
the whole set again for every request (about 10 ms per request with 10,000 stored objects).
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from smi.apis.access.hub import TrafficTarget
from smi.apis.meta import LOSSY_ANNOTATION
from smi.apis.specs.hub import HTTPRouteGroup
from smi.apis.split.hub import TrafficSplit
from smi.compiler.resolve import as_applied, context_objects
from smi.errors import Diagnostic
from smi.gcpause import gc_paused
from smi.loading import ContextObject, Resource
from smi.validation import check_context, check_resource, root_service
from smi.validation.access import LOSSY_PATH, rule_paths
from smi.validation.names import error, warning
from smi.yamlpos import join_path

# Reference warnings that `strict` turns into errors.
STRICT_CODES = frozenset({"SMI3001", "SMI3002", "SMI3004", "SMI3007", "SMI3009"})
ROUTE_KINDS = frozenset({"HTTPRouteGroup", "TCPRoute", "UDPRoute"})


def validate(
    resources: Sequence[Resource],
    context: Sequence[ContextObject] = (),
    *,
    strict: bool = False,
    subjects: Sequence[Resource] | None = None,
) -> list[Diagnostic]:
    """Per-object checks of `subjects` (default: every resource) plus the cross-resource checks
    that concern them, against the whole set. Diagnostics are located (file, line, object)."""
    whole_set = subjects is None
    checked = list(resources) if subjects is None else list(subjects)
    with gc_paused():
        if whole_set:
            index = _Index.build(checked, context, namespaces=None)
            found = _check(checked, index, whole_set=True, strict=strict)
            found += (d for ctx in context for d in check_context(ctx))
            return found + list(_context_duplicates(context))
        # admission: index only the namespaces the subjects can reference
        index = _Index.build(
            [*resources, *checked], context, namespaces=_namespaces_referenced(checked)
        )
        return _check(checked, index, whole_set=False, strict=strict)


def _check(
    checked: Sequence[Resource], index: _Index, *, whole_set: bool, strict: bool
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for resource in checked:
        out.extend(check_resource(resource))
        found = list(_cross(resource, index))
        if whole_set:
            found.extend(_duplicate(resource, index))
        out.extend(resource.locate(d) for d in found)
    if strict:
        out = [replace(d, severity="error") if d.code in STRICT_CODES else d for d in out]
    return out


@dataclass(frozen=True)
class SetIndex:
    """The cross-resource index of one whole set, built once (`SetIndex.of`) and shared by
    every `validate_subjects` call against that set; never changed after it is built."""

    _base: _Index
    _splits: Mapping[tuple[str, str], tuple[Resource, ...]]

    @classmethod
    def of(cls, resources: Sequence[Resource], context: Sequence[ContextObject] = ()) -> SetIndex:
        with gc_paused():
            base = _Index.build(resources, context, namespaces=None)
            splits: dict[tuple[str, str], list[Resource]] = {}
            for resource in resources:  # every TrafficSplit with a root, in set order
                obj = resource.obj
                if isinstance(obj, TrafficSplit):
                    root = root_service(obj.service, resource.namespace)
                    if root is not None:
                        splits.setdefault((resource.namespace, root), []).append(resource)
        return cls(base, {k: tuple(v) for k, v in splits.items()})


def validate_subjects(
    index: SetIndex, subjects: Sequence[Resource], *, strict: bool = False
) -> list[Diagnostic]:
    """`validate(resources, context, strict=strict, subjects=subjects)` for the set `index`
    was built from: the subjects laid over the set (each replaces the object of its key), in
    time that depends on the subjects, not on the size of the set."""
    checked = list(subjects)
    mine: dict[str, Resource] = {}
    for resource in checked:  # later subjects of one key win, as in `validate`
        mine[resource.key] = resource
    base = index._base
    by_key = ChainMap(mine, base.by_key)
    overlay = _Index(
        by_key=by_key,
        split_roots=_SplitRoots(index._splits, checked, by_key),
        service_ports=base.service_ports,
        namespaces_with_services=base.namespaces_with_services,
    )
    with gc_paused():
        return _check(checked, overlay, whole_set=False, strict=strict)


class _SplitRoots(Mapping[tuple[str, str], str]):
    """`_Index.split_roots` of a set with subjects appended, answered per lookup as
    `_Index.build` would: the first TrafficSplit of the root, in the order of the set then the
    subjects, that is the object its key resolves to (a replaced split no longer counts)."""

    def __init__(
        self,
        splits: Mapping[tuple[str, str], tuple[Resource, ...]],
        subjects: Sequence[Resource],
        by_key: Mapping[str, Resource],
    ) -> None:
        self._splits = splits
        self._by_key = by_key
        self._subject_roots: dict[tuple[str, str], list[Resource]] = {}
        for resource in subjects:
            obj = resource.obj
            if isinstance(obj, TrafficSplit):
                root = root_service(obj.service, resource.namespace)
                if root is not None:
                    self._subject_roots.setdefault((resource.namespace, root), []).append(resource)

    def __getitem__(self, where: tuple[str, str]) -> str:
        for group in (self._splits.get(where, ()), self._subject_roots.get(where, ())):
            for resource in group:
                if self._by_key[resource.key] is resource:
                    return resource.key
        raise KeyError(where)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        seen = {*self._splits, *self._subject_roots}
        return (where for where in seen if where in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass
class _Index:
    """The set as the cross-resource checks see it (later definitions of a key win, as in
    `kubectl apply` of the files in order)."""

    by_key: MutableMapping[str, Resource] = field(default_factory=dict)
    first_seen: dict[str, Resource] = field(default_factory=dict)
    split_roots: Mapping[tuple[str, str], str] = field(default_factory=dict)
    service_ports: dict[tuple[str, str], frozenset[int]] = field(default_factory=dict)
    namespaces_with_services: set[str] = field(default_factory=set)

    @classmethod
    def build(
        cls,
        resources: Sequence[Resource],
        context: Sequence[ContextObject],
        *,
        namespaces: set[str] | None,
    ) -> _Index:
        """Index `resources` and `context`, or only their objects in `namespaces`: every
        reference resolves in one namespace, so that is all one object's checks can see."""
        split_roots: dict[tuple[str, str], str] = {}
        index = cls(split_roots=split_roots)
        if namespaces is not None:
            resources = [r for r in resources if r.namespace in namespaces]
            context = [c for c in context if c.namespace in namespaces]
        for resource in resources:
            index.by_key[resource.key] = resource
            index.first_seen.setdefault(resource.key, resource)
        for resource in resources:
            obj = resource.obj
            if isinstance(obj, TrafficSplit) and index.by_key[resource.key] is resource:
                root = root_service(obj.service, resource.namespace)
                if root is not None:
                    split_roots.setdefault((resource.namespace, root), resource.key)
        for (kind, ns, name), raw in context_objects(context).items():
            if kind == "Service":  # the copy compile reads, whatever the order of the files
                index.service_ports[(ns, name)] = _ports(raw)
                index.namespaces_with_services.add(ns)
        return index

    def get(self, kind: str, *, namespace: str, name: str) -> Resource | None:
        return self.by_key.get(f"{kind}/{namespace}/{name}")


def _namespaces_referenced(subjects: Sequence[Resource]) -> set[str]:
    """Namespaces the cross-resource checks of `subjects` look into: each subject's own, and
    those of TrafficTarget subjects (IdentityBinding references may name another namespace)."""
    out: set[str] = set()
    for resource in subjects:
        out.add(resource.namespace)
        if isinstance(resource.obj, TrafficTarget):
            out.update(s.namespace for _, s in _subjects(resource.obj, spec="") if s.namespace)
    return out


def _ports(raw: Mapping[str, Any]) -> frozenset[int]:
    spec = raw.get("spec")
    ports = spec.get("ports") if isinstance(spec, Mapping) else None
    if not isinstance(ports, list):
        return frozenset()
    return frozenset(
        p["port"] for p in ports if isinstance(p, Mapping) and isinstance(p.get("port"), int)
    )


def _cross(resource: Resource, index: _Index) -> Iterator[Diagnostic]:
    obj = resource.obj
    if isinstance(obj, TrafficTarget):
        yield from _target_refs(resource, obj, index=index)
    elif isinstance(obj, TrafficSplit):
        yield from _split_refs(resource, obj, index=index)


def _target_refs(
    resource: Resource, target: TrafficTarget, *, index: _Index
) -> Iterator[Diagnostic]:
    spec = "" if resource.api_version.endswith("/v1alpha1") else "spec."
    ns = resource.namespace
    # Paths of the manifest as written; a rule it does not show (a UDPRoute rule the
    # annotation restores below access v1alpha3) is reported at the annotation.
    for rule, at in zip(target.rules, rule_paths(resource), strict=True):
        if rule.kind not in ROUTE_KINDS:
            continue  # reported by the per-object checks
        route = index.get(rule.kind, namespace=ns, name=rule.name)
        if route is None:
            yield warning(
                "SMI3001",
                f"{rule.kind} {ns}/{rule.name} is not in the set; until it exists this rule "
                "allows nothing",
                path=_field(at, ".name"),
            )
            continue
        if isinstance(route.obj, HTTPRouteGroup):
            if rule.matches is not None and not rule.matches:
                # Read as SPEC's "omitted" (OSM and the SDKs cannot tell them apart), which
                # allows every route of the group: a writer of `[]` may have meant none.
                yield warning(
                    "SMI3010",
                    f"`matches: []` allows every match of HTTPRouteGroup {ns}/{rule.name}, as "
                    "leaving `matches` out does; list the match names to allow only those",
                    path=_field(at, ".matches"),
                )
            yield from _match_names(rule.matches or (), route.obj, rule=at)
    yield from _port_opens_nothing(resource, target, index=index)
    if not resource.api_version.endswith("/v1alpha4"):
        return  # IdentityBinding subjects exist only in access v1alpha4 (else SMI2404)
    for where, subject in _subjects(target, spec=spec):
        if (
            subject.kind == "IdentityBinding"
            and index.get("IdentityBinding", namespace=subject.namespace or ns, name=subject.name)
            is None
        ):
            yield warning(
                "SMI3009",
                f"IdentityBinding {subject.namespace or ns}/{subject.name} is not in the set; "
                "until it exists it names no workload",
                path=f"{where}.name",
            )


def _port_opens_nothing(
    resource: Resource, target: TrafficTarget, *, index: _Index
) -> Iterator[Diagnostic]:
    """SMI6004 when `destination.port` (access v1alpha1/v1alpha2, or restored from the
    lossy-fields annotation) is none of the ports its TCPRoute and UDPRoute rules open: each
    rule is restricted to that port, so the TrafficTarget allows nothing, and compile leaves it
    out. Said here too, as a dangling rule is (SMI3001), so that CI hears of it. An
    HTTPRouteGroup rule allows requests on the port; a rule not in the set is SMI3001's."""
    port = target.destination.port
    if port is None or not target.rules:
        return
    opened: list[str] = []
    for rule in target.rules:
        if rule.kind not in ("TCPRoute", "UDPRoute"):
            return
        route = index.get(rule.kind, namespace=resource.namespace, name=rule.name)
        ports = getattr(route.obj, "ports", ()) if route is not None else ()
        if route is None or not ports or port in ports:
            return
        opened.append(f"{rule.kind} {rule.name}: {_join(sorted(ports))}")
    version = resource.api_version.rpartition("/")[2]
    path = {"v1alpha1": "destination.port", "v1alpha2": "spec.destination.port"}.get(
        version, join_path("metadata.annotations", LOSSY_ANNOTATION)
    )
    yield warning(
        "SMI6004",
        f"destination.port {port} is none of the ports its rules open ({'; '.join(opened)}): "
        "this TrafficTarget allows nothing, and compile leaves it out",
        path=path,
    )


def _subjects(target: TrafficTarget, *, spec: str) -> Iterator[tuple[str, Any]]:
    yield f"{spec}destination", target.destination
    for i, source in enumerate(target.sources):
        yield f"{spec}sources[{i}]", source


def _field(rule: str | None, tail: str) -> str:
    """The path of `tail` in a rule at `rule` (`rule_paths`), the annotation's when hidden."""
    return LOSSY_PATH if rule is None else f"{rule}{tail}"


def _match_names(
    names: Sequence[str], group: HTTPRouteGroup, *, rule: str | None
) -> Iterator[Diagnostic]:
    defined = [m.name for m in group.matches]
    for j, name in enumerate(names):
        if name not in defined:
            yield warning(
                "SMI3002",
                f"HTTPRouteGroup {group.metadata.namespace}/{group.metadata.name} has no match "
                f"{name!r} (it has: {', '.join(defined) or 'none'})",
                path=_field(rule, f".matches[{j}]"),
            )


def _split_refs(resource: Resource, split: TrafficSplit, *, index: _Index) -> Iterator[Diagnostic]:
    ns = resource.namespace
    root = root_service(split.service, ns)
    if root is not None:
        first = index.split_roots.get((ns, root))
        if first is not None and first != resource.key:
            yield error(
                "SMI3003",
                f"{first} already splits root service {ns}/{root}; one TrafficSplit per root "
                "service per namespace",
                path="spec.service",
            )
    if split.matches is not None and not split.matches:
        # Read as omitted (the SDKs cannot tell them apart): every request is split.
        yield warning(
            "SMI3011",
            f"`matches: []` splits every request to {ns}/{split.service}, as leaving `matches` "
            "out does; list HTTPRouteGroups to split only their requests",
            path="spec.matches",
        )
    for i, match in enumerate(split.matches or ()):
        if (
            match.kind == "HTTPRouteGroup"
            and index.get("HTTPRouteGroup", namespace=ns, name=match.name) is None
        ):
            yield warning(
                "SMI3001",
                f"HTTPRouteGroup {ns}/{match.name} is not in the set; until it exists no request "
                "matches this split",
                path=f"spec.matches[{i}].name",
            )
    yield from _backend_refs(split, root=root, namespace=ns, index=index)


def _backend_refs(
    split: TrafficSplit, *, root: str | None, namespace: str, index: _Index
) -> Iterator[Diagnostic]:
    services = namespace in index.namespaces_with_services
    root_ports = index.service_ports.get((namespace, root)) if root is not None else None
    if services and root is not None and root_ports is None:
        yield warning(
            "SMI3007", f"root Service {namespace}/{root} is not in the set", path="spec.service"
        )
    for i, backend in enumerate(split.backends):
        at = f"spec.backends[{i}].service"
        if backend.service != root and (namespace, backend.service) in index.split_roots:
            yield warning(
                "SMI3006",
                f"backend {backend.service!r} is itself the root of "
                f"{index.split_roots[(namespace, backend.service)]}; splits are not hierarchical",
                path=at,
            )
        if not services:
            continue
        ports = index.service_ports.get((namespace, backend.service))
        if ports is None:
            yield warning(
                "SMI3004",
                f"backend Service {namespace}/{backend.service} is not in the set",
                path=at,
            )
        elif root_ports and (missing := sorted(root_ports - ports)):
            yield warning(
                "SMI3005",
                f"backend Service {backend.service!r} lacks port {_join(missing)} of root "
                f"service {root!r}; it gets no traffic on {'it' if len(missing) == 1 else 'them'}",
                path=at,
            )


def services_unchecked(
    resources: Sequence[Resource], context: Sequence[ContextObject] = ()
) -> list[str]:
    """Namespaces whose TrafficSplits' Services (root and backends) `_backend_refs` leaves
    unchecked, because the set holds no Service there, sorted. Checking them anyway would flood
    a repository of SMI manifests alone (Services rendered elsewhere, by Helm) with SMI3004 and
    SMI3007, so the rule stays; `--strict` names these namespaces, so that a pass is not read as
    "every Service a split names exists"."""
    with_services = {c.namespace for c in context if c.kind == "Service"}
    splits = {r.namespace for r in resources if isinstance(r.obj, TrafficSplit)}
    return sorted(splits - with_services)


def _join(ports: Sequence[int]) -> str:
    return ", ".join(str(p) for p in ports)


def _duplicate(resource: Resource, index: _Index) -> Iterator[Diagnostic]:
    """SMI3008 at each later copy of an object (`_copies`)."""
    first = index.first_seen[resource.key]
    if first is not resource:
        yield from _copies(first, resource, path="metadata.name")


def _context_duplicates(context: Sequence[ContextObject]) -> Iterator[Diagnostic]:
    """SMI3008 for the context objects (Services, workloads, ...) as for SMI ones: two
    different copies of a Service made the MeshPolicy depend on the order of the files, and
    `smictl explain` read another copy than compile. Located at the later copy's first line
    (a context object keeps no line map)."""
    first: dict[str, ContextObject] = {}
    for ctx in context:
        seen = first.setdefault(ctx.key, ctx)
        if seen is not ctx:
            for found in _copies(seen, ctx, path=""):
                located = found.located(file=ctx.source.file, line=_line(ctx))
                yield replace(located, object_ref=ctx.key)


def _copies(
    first: Resource | ContextObject, again: Resource | ContextObject, *, path: str
) -> Iterator[Diagnostic]:
    """SMI3008 for `again`, a later copy of `first`. Copies that differ are an error: the
    object in force would depend on the order of applying them, `smictl apply` refuses the
    set, and a CI gate that only warned passed what the deploy then refused. Identical copies
    are one object (`smictl apply` stores it once, `kubectl apply` leaves the second
    unchanged). Copies alike but for their version still differ: the store keeps each object
    as written, one document per object, so `smictl apply` refuses them too; the message
    says so, since "different content" sent readers looking for a field that differs."""
    where = _where(first)
    if _as_applied(first) == _as_applied(again):
        yield warning(
            "SMI3008",
            f"{again.key} is defined twice, identically (first at {where}); the copies "
            "are applied as one object",
            path=path,
        )
        return
    if first.api_version != again.api_version and _alike(first, again):
        yield error(
            "SMI3008",
            f"{again.key} is defined twice, in different versions ({first.api_version} at "
            f"{where}, {again.api_version} at {_where(again)}), alike otherwise: an object is "
            "stored in the version it is written in, so smictl apply refuses the set; keep one",
            path=path,
        )
        return
    yield error(
        "SMI3008",
        f"{again.key} is defined twice with different content (first at {where}, again at "
        f"{_where(again)}): which one takes effect would depend on the order they are "
        "applied in, and smictl apply refuses the set; keep one",
        path=path,
    )


def _alike(first: Resource | ContextObject, again: Resource | ContextObject) -> bool:
    """Whether two copies say the same in their versions: SMI objects as hub objects (their
    layouts differ between versions), context objects as written but for `apiVersion`."""
    if isinstance(first, Resource) and isinstance(again, Resource):
        return bool(first.obj == again.obj)
    return _as_applied(first, version=False) == _as_applied(again, version=False)


def _where(resource: Resource | ContextObject) -> str:
    line = _line(resource)
    return resource.source.file + (f":{line}" if line else "")


def _line(resource: Resource | ContextObject) -> int | None:
    """The line an object starts on. The items of a JSON `kind: List` have none in their
    `source` (a JSON file's line maps are computed only when asked): theirs is asked of their
    lines, or a copy in JSON was "first at dupobj.json, again at dupobj.json"."""
    if resource.source.line is not None or resource.lines is None:
        return resource.source.line
    return resource.lines.line_of(())


def _as_applied(resource: Resource | ContextObject, *, version: bool = True) -> str:
    """The document as a store keeps it (`smi.compiler.resolve.as_applied`); without
    `apiVersion` when not `version`."""
    raw = resource.raw if version else {k: v for k, v in resource.raw.items() if k != "apiVersion"}
    return as_applied(raw, resource.namespace)
