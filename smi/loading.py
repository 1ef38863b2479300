"""Files -> SMI resources and context objects, every problem with file, line, path and code.

The one way manifests enter smictl (CLI, admission, conformance): files, directories
(recursive, sorted, `.yaml`/`.yml`/`.json`), `-` for standard input, multi-document YAML,
`kind: List` and typed lists (read by `list_items`, which `inject` and `convert` share), and
single objects handed over by the webhook. Each document is dispatched on
(apiVersion, kind):

    an SMI group            -> its version's wire model -> hub object   (a `Resource`)
    Service, ServiceAccount, Deployment, Pod, Namespace -> kept for cross-reference checks
    anything else           -> skipped with a warning (SMI1008), never an error
    (a non-SMI object with `generateName` and no name is skipped so too; an SMI one is SMI1009)

Nothing here raises for bad input: YAML, JSON and pydantic errors are mapped to `Diagnostic`s
(SMI1xxx and SMI20xx) at this boundary; the semantic checks live in `smi.validation`. Input
that holds no object is no problem of any file, so loading it is no error either: commands ask
`nothing_to_do` (SMI1012) and refuse it, each deciding whether only SMI objects count.

Speed (bench/bench_load.py): a clean set never needs a line, so lines are not read up front.
JSON goes through `json`, plain block YAML through `smi.yamlblock`; each document keeps a
`LazyLines` whose file's line maps are computed once, by the full parser, when a diagnostic or
`Resource.line_of` first asks. Other YAML is read by the full parser with its maps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, TextIO, get_args

from pydantic import ValidationError

from smi.apis import registry
from smi.apis.served import ConversionNotPossible, LossyAnnotationCorrupt, Served
from smi.errors import Diagnostic
from smi.gcpause import gc_paused
from smi.ports import is_port, not_a_port
from smi.resources import ContextObject, LoadResult, Refused, Resource, Source
from smi.schema_errors import json_type, schema_diagnostics
from smi.sources import (
    EXTENSIONS,
    LINKED_DIRECTORY,
    STDIN,
    FileLines,
    JsonLines,
    LazyLines,
    Lines,
    RawDocument,
    is_blank,
    parse_json,
    read_documents,
    read_path,
    read_source,
)
from smi.yamlblock import parse_block
from smi.yamlpos import (
    LineMap,
    PathPart,
    YamlError,
    bounds_problem,
    format_path,
    join_path,
    load_documents,
)

# Non-SMI kinds the cross-resource checks use, with the apiVersions that define them.
CONTEXT_KINDS: Mapping[str, frozenset[str]] = {
    "Service": frozenset({"v1"}),
    "ServiceAccount": frozenset({"v1"}),
    "Pod": frozenset({"v1"}),
    "Namespace": frozenset({"v1"}),
    "Deployment": frozenset({"apps/v1", "apps/v1beta1", "apps/v1beta2", "extensions/v1beta1"}),
    # The other pod-owning kinds `smictl inject` handles: a Service's identity may come from
    # any of them (smi.compiler.workloads), and one not read would be guessed at by `explain`.
    "StatefulSet": frozenset({"apps/v1", "apps/v1beta1", "apps/v1beta2"}),
    "DaemonSet": frozenset({"apps/v1", "apps/v1beta2", "extensions/v1beta1"}),
    "ReplicaSet": frozenset({"apps/v1", "apps/v1beta2", "extensions/v1beta1"}),
    "ReplicationController": frozenset({"v1"}),
    "Job": frozenset({"batch/v1"}),
    "CronJob": frozenset({"batch/v1", "batch/v1beta1"}),
}
_CLUSTER_SCOPED = frozenset({"Namespace"})
# Where each kind that runs pods holds its pod, by API group ("" is the core group): what
# `smictl inject` patches and what `explain` follows a Service to (smi.compiler.workloads). A
# kind of another group with one of these names (a CRD's `Deployment`) holds no pod.
_APPS = frozenset({"apps", "extensions"})
POD_PATHS: Mapping[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "Pod": (frozenset({""}), ()),
    "ReplicationController": (frozenset({""}), ("spec", "template")),
    "Deployment": (_APPS, ("spec", "template")),
    "DaemonSet": (_APPS, ("spec", "template")),
    "ReplicaSet": (_APPS, ("spec", "template")),
    "StatefulSet": (frozenset({"apps"}), ("spec", "template")),
    "Job": (frozenset({"batch"}), ("spec", "template")),
    "CronJob": (frozenset({"batch"}), ("spec", "jobTemplate", "spec", "template")),
}


def pod_path(kind: object, api_version: object) -> tuple[str, ...] | None:
    """Where a manifest of `kind` under `api_version` holds its pod (() for a Pod), or None
    when it runs none: not a pod-running kind, or one of another group (a CRD's `Deployment`)."""
    target = POD_PATHS.get(kind) if isinstance(kind, str) else None
    group = api_version.rpartition("/")[0] if isinstance(api_version, str) else None
    if target is None or group not in target[0]:
        return None
    return target[1]


# Line maps that know their document's first line without being computed.
_ROOT_LINE_KNOWN = (LineMap, LazyLines)
# SMI kinds by group: a document of one of these kinds under another apiVersion is a typo that
# would otherwise be skipped silently (and a skipped TrafficTarget allows nothing).
SMI_KIND_GROUPS: Mapping[str, str] = {
    "TrafficTarget": "access.smi-spec.io",
    "IdentityBinding": "access.smi-spec.io",
    "HTTPRouteGroup": "specs.smi-spec.io",
    "TCPRoute": "specs.smi-spec.io",
    "UDPRoute": "specs.smi-spec.io",
    "TrafficSplit": "split.smi-spec.io",
    "TrafficMetrics": "metrics.smi-spec.io",
    "TrafficMetricsList": "metrics.smi-spec.io",
}
# Read-only metrics types are API responses, not stored objects: they need no name.
_NAMELESS_KINDS = frozenset({"TrafficMetrics", "TrafficMetricsList"})
# Fields that live under `spec` in the versions that have one: at the object root they are the
# flat layout of an older version (SMI2005), not merely unknown fields.
_SPEC_FIELDS: Mapping[str, frozenset[str]] = {
    "TrafficTarget": frozenset({"destination", "sources", "rules", "specs"}),
    "IdentityBinding": frozenset({"schemes"}),
    "HTTPRouteGroup": frozenset({"matches", "routes"}),
    "TCPRoute": frozenset({"matches", "ports"}),
    "UDPRoute": frozenset({"matches", "ports"}),
    "TrafficSplit": frozenset({"service", "backends", "matches"}),
}

# ObjectMeta fields the API server decodes into typed fields (it refuses `finalizers: x`),
# beyond the four the wire models type (name, namespace, labels, annotations): metadata is kept
# as written (extra="allow"), so these are checked here. Null is unset, as for the others.
_META_TYPES: Mapping[str, str] = {
    "generateName": "a string", "uid": "a string", "resourceVersion": "a string",
    "selfLink": "a string", "creationTimestamp": "a string", "deletionTimestamp": "a string",
    "generation": "an integer", "deletionGracePeriodSeconds": "an integer",
    "finalizers": "a list", "ownerReferences": "a list", "managedFields": "a list",
}  # fmt: skip
_META_ITEMS: Mapping[str, str] = {
    "finalizers": "a string", "ownerReferences": "an object", "managedFields": "an object"
}  # fmt: skip
_OWNER_REQUIRED = ("apiVersion", "kind", "name", "uid")
_OWNER_TYPES: Mapping[str, str] = {
    **dict.fromkeys(_OWNER_REQUIRED, "a string"),
    **dict.fromkeys(("controller", "blockOwnerDeletion"), "a boolean"),
}
_IS_JSON_TYPE: Mapping[str, Callable[[Any], bool]] = {
    "a string": lambda v: isinstance(v, str),
    "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "a boolean": lambda v: isinstance(v, bool),
    "a list": lambda v: isinstance(v, list),
    "an object": lambda v: isinstance(v, dict),
}


def metadata_type_problems(meta: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(path, code, message) for each field of `meta` of the wrong JSON type (SMI2003), and
    each owner reference that lacks a required field (SMI2002)."""
    for key, value in meta.items():
        expected = _META_TYPES.get(key)
        if expected is None or value is None:
            continue
        if not _IS_JSON_TYPE[expected](value):
            yield f"metadata.{key}", "SMI2003", f"must be {expected}, not {json_type(value)}"
            continue
        item_type = _META_ITEMS.get(key)
        if item_type is None:
            continue
        for i, item in enumerate(value):
            path = f"metadata.{key}[{i}]"
            # A null item too: the API server reads it as an empty value, then refuses that.
            if not _IS_JSON_TYPE[item_type](item):
                yield path, "SMI2003", f"must be {item_type}, not {json_type(item)}"
            elif key == "ownerReferences":
                yield from _owner_problems(item, path=path)


def _owner_problems(owner: Mapping[str, Any], *, path: str) -> Iterator[tuple[str, str, str]]:
    for key, expected in _OWNER_TYPES.items():
        value = owner.get(key)
        if key in _OWNER_REQUIRED and (value is None or value == ""):
            yield f"{path}.{key}", "SMI2002", "required field missing"
        elif value is not None and not _IS_JSON_TYPE[expected](value):
            yield f"{path}.{key}", "SMI2003", f"must be {expected}, not {json_type(value)}"


def context_metadata_problems(meta: Any, *, typed: bool) -> Iterator[tuple[str, str, str]]:
    """(path, code, message) for a context object's metadata that is not an object, a name
    missing (SMI1009) or not a string, a namespace not a string, and (`typed`) labels or
    annotations that are not maps of strings and the fields `metadata_type_problems` checks
    (SMI2003): what the wire models check of an SMI object's metadata. Without these, a
    `namespace: 42` put the object in the default namespace and `name: 123` was "missing"."""
    if not isinstance(meta, dict):
        if meta is not None:
            yield "metadata", "SMI2003", f"must be an object, not {json_type(meta)}"
        else:
            yield "metadata.name", "SMI1009", "metadata.name missing"
        return
    name = meta.get("name")
    if name is None or name == "":
        yield "metadata.name", "SMI1009", "metadata.name missing"
    elif not isinstance(name, str):
        yield "metadata.name", "SMI2003", f"must be a string, not {json_type(name)}"
    namespace = meta.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        yield "metadata.namespace", "SMI2003", f"must be a string, not {json_type(namespace)}"
    if not typed:
        return
    for field in ("labels", "annotations"):
        entries = meta.get(field)
        if entries is None:
            continue
        if not isinstance(entries, dict):
            yield f"metadata.{field}", "SMI2003", f"must be an object, not {json_type(entries)}"
            continue
        for key, entry in entries.items():
            if not isinstance(entry, str):
                path = join_path(f"metadata.{field}", key)
                yield path, "SMI2003", f"must be a string, not {json_type(entry)}"
    yield from metadata_type_problems(meta)


def generated_name_only(meta: Any) -> bool:
    """Whether `meta` asks the API server to make the name up (`generateName`, a non-empty
    string) and gives none: Helm hook Jobs, Argo workflows' Pods, `kubectl create` of Pods."""
    if not isinstance(meta, dict) or meta.get("name") not in (None, ""):
        return False
    prefix = meta.get("generateName")
    return isinstance(prefix, str) and prefix != ""


# An SMI object is referred to (a TrafficTarget's rules name its routes), updated and deleted by
# its name: one the API server makes up on create (as it does, for custom resources too) could
# be none of these, and a second apply would make a second object.
GENERATED_SMI_NAME = (
    "metadata.name missing: generateName is not supported for SMI objects, which are referred "
    "to, updated and deleted by name"
)


# What a file (or standard input) that holds no object holds, in SMI1012's message.
EMPTY = "empty or only comments and '---'"


# --- entry points -------------------------------------------------------------------------------


def load_paths(
    paths: Sequence[str], *, default_namespace: str = "default", stdin: TextIO | None = None
) -> LoadResult:
    """Load files, directories (recursive, sorted) and `-` (standard input), in the order given.
    A file is loaded once, however many times the paths name it (`-f x.yaml -f x.yaml`, or a
    directory and a file in it): read again, each of its objects was "defined twice,
    identically" at its own line, and every problem of the file was reported twice."""
    result = LoadResult()
    seen: set[str] = set()
    # A symlinked directory that is also named itself is read: no warning that it is not.
    named = {os.path.normpath(p) for p in paths if p != STDIN}
    with gc_paused():
        for path in paths:
            for name, text, problem in read_path(path, stdin=stdin):
                if problem is not None and problem.code == LINKED_DIRECTORY:
                    if os.path.normpath(name) not in named:
                        result.diagnostics.append(problem)
                    continue
                if path != STDIN:
                    # By name, not resolved (a stat or realpath per file is what
                    # `manifests_under` avoids); `..` is kept, as after a symlink it may
                    # lead elsewhere than normpath says.
                    once = name if ".." in name else os.path.normpath(name)
                    if once in seen:
                        continue
                    seen.add(once)
                if problem is not None:
                    result.diagnostics.append(problem)
                    continue
                result.extend(_load(text, filename=name, default_namespace=default_namespace))
    return result


def load_text(text: str, *, filename: str, default_namespace: str = "default") -> LoadResult:
    """Load every document of one file's text (YAML, or JSON when the name ends in .json)."""
    with gc_paused():
        return _load(text, filename=filename, default_namespace=default_namespace)


def load_object(
    doc: Mapping[str, Any], *, filename: str = "<request>", default_namespace: str = "default"
) -> LoadResult:
    """Load one object given as data (an AdmissionReview's `request.object`)."""
    out = LoadResult(files=[filename])
    loader = _Loader(out, filename=filename, default_namespace=default_namespace)
    if isinstance(doc, Mapping) and not isinstance(doc, dict):
        doc = dict(doc)  # a read-only view (MappingProxyType, ...) is still an object
    problem = bounds_problem(doc)
    if problem is not None:
        loader.problem("SMI1010", problem, line=None)
    else:
        loader.document(doc, lines=None, index=0)
    return out


def nothing_to_do(
    loaded: LoadResult, paths: Sequence[str], *, smi_only: bool = False, then: str = ""
) -> Diagnostic | None:
    """SMI1012 when a load that found no error found no object to work on, else None.

    No object at all (empty files, standard input, only comments and `---`, a `kind: List`
    without items) is never what a command was asked to do: it is an earlier stage of a
    pipeline that printed nothing (`helm template ... | smictl compile -f -`), and kubectl
    refuses it too ("no objects passed to apply"). With `smi_only`, objects that are not SMI
    resources (Services, skipped kinds) do not count either: a MeshPolicy compiled without
    one denies every request. `then` says what the command did not do because of it."""
    if not loaded.ok or loaded.resources:
        return None
    # Each object the loader skips (a ConfigMap, ...) left exactly one SMI1008 warning.
    others = len(loaded.context) + sum(1 for d in loaded.diagnostics if d.code == "SMI1008")
    if others and not smi_only:
        return None
    names = list(dict.fromkeys("<stdin>" if p == STDIN else p for p in paths))
    where = f" in {', '.join(names)}" if len(names) > 1 else ""
    files = len(dict.fromkeys(loaded.files))
    if others:
        what = f"no SMI objects{where}, only {_plural(others, 'object')} of other kinds"
    elif files > 1:
        count = f" ({_plural(files, 'file')})" if where else f" in {_plural(files, 'file')}"
        what = f"no objects{where}{count}: each {EMPTY}"
    else:
        what = f"no objects{where}: {EMPTY}"
    return Diagnostic(
        code="SMI1012",
        message=f"{what}; {then}" if then else what,
        file=names[0] if len(names) == 1 else None,
    )


# --- reading ------------------------------------------------------------------------------------


def load_identities(text: str, *, filename: str, default_namespace: str = "default") -> LoadResult:
    """What each object is (apiVersion, kind, name, namespace), read as `load_text` reads it
    (lists, served kinds and versions, context kinds, the same codes), but without an SMI
    object's schema: every object comes back in `context`, SMI ones too. `smictl delete -f`
    needs nothing more, and a manifest cut down to its identity, or one whose spec smictl
    would refuse, must still name the object it deletes."""
    return _load(text, filename=filename, default_namespace=default_namespace, identities=True)


def _load(
    text: str, *, filename: str, default_namespace: str, identities: bool = False
) -> LoadResult:
    out = LoadResult(files=[filename])
    loader = _Loader(
        out, filename=filename, default_namespace=default_namespace, identities=identities
    )
    is_json = filename.lower().endswith(".json")
    if is_json and is_blank(text):
        return out  # an empty .json file holds no object, as an empty .yaml file holds none
    # JSON is parsed by `json` (fast); text that only looks like JSON falls back to YAML.
    looks_json = is_json or text.lstrip().startswith(("{", "["))
    if looks_json and loader.json_text(text, strict=is_json):
        return out
    loader.yaml_text(text)
    return out


# --- documents ----------------------------------------------------------------------------------


class _Loader:
    """Dispatches the documents of one file into a LoadResult."""

    def __init__(
        self, out: LoadResult, *, filename: str, default_namespace: str, identities: bool = False
    ) -> None:
        self.out = out
        self.filename = filename
        self.default_namespace = default_namespace
        self.identities = identities  # SMI objects as identities only (`load_identities`)

    def problem(
        self,
        code: str,
        message: str,
        *,
        path: str = "",
        line: int | None,
        lines: Lines | None = None,
        warning: bool = False,
    ) -> None:
        """Record a problem; without a line, ask `lines` for the line of `path` (lazily: for
        JSON that is a second parse, paid only here)."""
        if line is None and lines is not None:
            line = lines.line_of(path)
        self.out.diagnostics.append(
            Diagnostic(
                code=code,
                message=message,
                path=path,
                file=self.filename,
                line=line,
                severity="warning" if warning else "error",
            )
        )

    def yaml_text(self, text: str) -> None:
        block = parse_block(text)
        if block is not None:  # plain block YAML: line maps only if a diagnostic asks
            file = FileLines(text)
            for value, index, line in block:
                self.document(value, lines=LazyLines(file, index, (), line), index=index)
            return
        try:
            for doc in load_documents(text):
                self.document(doc.value, lines=doc.lines, index=doc.index)
        except YamlError as exc:
            code = "SMI1010" if exc.too_large else "SMI1002"
            self.problem(code, exc.message, path=format_path(exc.path), line=exc.line)

    def json_text(self, text: str, *, strict: bool) -> bool:
        """Load `text` as JSON; False (nothing recorded) when it is not JSON this loader
        accepts and not `strict`: the YAML reader then reads it, and says where it is wrong."""
        try:
            value = parse_json(text)
        except YamlError as exc:
            if strict:
                code = "SMI1010" if exc.too_large else "SMI1002"
                self.problem(code, exc.message, path=format_path(exc.path), line=exc.line)
            return strict
        # Located where it starts (its `{`), as a YAML document is, without the line map: a
        # JSON object had no line (`"line": null`, JUnit's `line="0"`) while its fields had.
        self.document(value, lines=JsonLines(FileLines(text)), index=0)
        return True

    def document(self, value: Any, *, lines: Lines | None, index: int) -> None:
        # The line of the document's root; its fields' lines are computed only when asked.
        line = lines.line if isinstance(lines, _ROOT_LINE_KNOWN) else None
        if not isinstance(value, dict):
            self.problem(
                "SMI1003",
                f"document is {_what_value(value)}, not an object",
                line=line,
                lines=lines,
            )
            return
        listed = list_items(value)
        if listed is not None:
            if listed.problem is not None:
                d = listed.problem
                self.problem(d.code, d.message, path=d.path, line=None, lines=lines)
            for item in listed.items:
                if item.problem is not None:
                    d = item.problem
                    self.problem(d.code, d.message, path=d.path, line=None, lines=lines)
                    continue
                sub = lines.sub(("items", item.index)) if lines is not None else None
                self.document(item.value, lines=sub, index=index)
            return
        api_version, kind = value.get("apiVersion"), value.get("kind")
        plainly_typed = type(api_version) is str and type(kind) is str and api_version and kind
        if not plainly_typed and not self._has_type(api_version, kind, line=line, lines=lines):
            return
        assert isinstance(api_version, str) and isinstance(kind, str)  # checked just above
        source = Source(file=self.filename, line=line, index=index)
        if registry.is_smi_group(api_version):
            document = _SmiDocument(self, value, api_version=api_version, kind=kind, lines=lines)
            if self.identities:
                document.identity(source)
            else:
                document.load(source)
        elif kind in SMI_KIND_GROUPS:
            self.problem(
                "SMI1011",
                f"{kind} is an SMI kind, but apiVersion {api_version!r} is not an SMI group "
                f"(expected {SMI_KIND_GROUPS[kind]}/<version>)",
                path="apiVersion",
                line=_line(lines, "apiVersion", default=line),
            )
        elif api_version in CONTEXT_KINDS.get(kind, ()):
            self._context(value, api_version=api_version, kind=kind, lines=lines, source=source)
        else:
            self.problem(
                "SMI1008",
                f"skipped {api_version} {kind}: not an SMI resource or a context object",
                line=line,
                lines=lines,
                warning=True,
            )

    def _has_type(
        self, api_version: Any, kind: Any, *, line: int | None, lines: Lines | None
    ) -> bool:
        ok = True
        for name, value, code in (
            ("apiVersion", api_version, "SMI1004"),
            ("kind", kind, "SMI1005"),
        ):
            if value is None or value == "":
                self.problem(code, "required field missing", path=name, line=line, lines=lines)
                ok = False
            elif not isinstance(value, str):
                self.problem(
                    "SMI2003",
                    f"must be a string, not {json_type(value)}",
                    path=name,
                    line=_line(lines, name, default=line),
                )
                ok = False
        return ok

    def _context(
        self,
        value: dict[str, Any],
        *,
        api_version: str,
        kind: str,
        lines: Lines | None,
        source: Source,
    ) -> None:
        meta = value.get("metadata")
        problems = list(context_metadata_problems(meta, typed=not self.identities))
        if generated_name_only(meta):
            if registry.is_smi_group(api_version):  # an SMI object's identity (`delete -f`)
                problems = [
                    (p, c, GENERATED_SMI_NAME if c == "SMI1009" else m) for p, c, m in problems
                ]
            else:
                problems = [p for p in problems if p[1] != "SMI1009"]
                if not problems:
                    self._generated(api_version, kind, line=source.line, lines=lines)
                    return
        for path, code, message in problems:
            self.problem(code, message, path=path, line=_line(lines, path, default=source.line))
        if problems:
            return
        assert isinstance(meta, dict)  # checked just above
        name = meta["name"]
        if kind == "Service":
            for path, code, message in service_port_problems(value):
                self.problem(code, message, path=path, line=None, lines=lines)
        namespace = meta.get("namespace") if isinstance(meta, dict) else None
        if kind in _CLUSTER_SCOPED:
            namespace = ""
        elif not isinstance(namespace, str) or not namespace:
            namespace = self.default_namespace
        self.out.context.append(
            ContextObject(
                api_version=api_version,
                kind=kind,
                name=name,
                namespace=namespace,
                raw=value,
                source=source,
                lines=lines,
            )
        )

    def _generated(
        self, api_version: str, kind: str, *, line: int | None, lines: Lines | None
    ) -> None:
        """Skip an object the API server names on create, as other objects smictl has no use
        for are skipped: a context object is kept by its name, which this one does not have
        yet. It was "metadata.name missing" (SMI1009), an error that failed every Helm chart
        with a hook Job, which the API server takes as it is."""
        self.problem(
            "SMI1008",
            f"skipped {api_version} {kind}: metadata.generateName without a name (the API "
            "server makes the name up on create), so it is not used for cross-reference checks",
            line=line,
            lines=lines,
            warning=True,
        )


_NOT_LOADED: Any = object()  # (`_SmiDocument._parse`: no hub object is this)


class _SmiDocument:
    """One document of an SMI group: version and kind served, layout, schema, hub object."""

    def __init__(
        self,
        loader: _Loader,
        value: dict[str, Any],
        *,
        api_version: str,
        kind: str,
        lines: Lines | None,
    ) -> None:
        self.loader = loader
        self.value = value
        self.api_version = api_version
        self.kind = kind
        self.lines = lines

    def line(self, path: str | Sequence[PathPart]) -> int | None:
        return self.lines.line_of(path) if self.lines is not None else None

    def fail(self, code: str, message: str, *, path: str = "") -> None:
        self.loader.problem(code, message, path=path, line=self.line(path))

    def load(self, source: Source) -> None:
        served = registry.lookup(self.api_version, self.kind)
        if served is None:
            self._unserved()
            return
        start = len(self.loader.out.diagnostics)
        if not self._layout_ok(served):
            self._refused(source, start)
            return
        if not self._metadata_ok():
            return
        typed = self._metadata_typed()  # reported, and the schema's problems with them
        obj = self._parse(served)
        if obj is _NOT_LOADED or not typed:
            self._refused(source, start)
            return
        resource = Resource(
            obj=obj,
            api_version=self.api_version,
            kind=self.kind,
            source=source,
            raw=self.value,
            lines=self.lines,
        )
        self.loader.out.resources.append(resource)

    def _parse(self, served: Served) -> Any:
        """The hub object, or `_NOT_LOADED` with the reasons reported."""
        try:
            return registry.parse_as(served, self._with_namespace())
        except ValidationError as exc:
            where = f"{self.api_version} {self.kind}"
            for d in schema_diagnostics(exc, where=where):
                self.loader.out.diagnostics.append(
                    d.located(file=self.loader.filename, line=self.line(d.path))
                )
        except LossyAnnotationCorrupt as exc:
            self.fail("SMI4004", str(exc), path="metadata.annotations")
        except (ConversionNotPossible, LookupError, ValueError) as exc:
            self.fail("SMI2004", str(exc))
        except RecursionError:
            self.fail("SMI1010", "document nested too deeply")
        return _NOT_LOADED

    def _refused(self, source: Source, start: int) -> None:
        """The object named itself but did not load: its problems (those reported since
        `start`) name it, and it is counted as a refused object. Without this, a file's
        broken object was anonymous (`"object": ""`), `validate` counted "0 SMI objects" for
        it, and `admit` a load error rather than an invalid object, as `/validate` calls it."""
        meta = self.value.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not name:
            return
        namespace = meta.get("namespace") if isinstance(meta, dict) else None
        if not isinstance(namespace, str) or not namespace:
            namespace = self.loader.default_namespace
        key = f"{self.kind}/{namespace}/{name}"
        found = self.loader.out.diagnostics
        found[start:] = [replace(d, object_ref=d.object_ref or key) for d in found[start:]]
        self.loader.out.refused.append(Refused(key=key, source=source))

    def identity(self, source: Source) -> None:
        """The object as `load_identities` reads it: a served kind, and a name."""
        if registry.lookup(self.api_version, self.kind) is None:
            self._unserved()
            return
        self.loader._context(
            self.value, api_version=self.api_version, kind=self.kind, lines=self.lines,
            source=source,
        )  # fmt: skip

    def _unserved(self) -> None:
        kinds = registry.kinds_of(self.api_version)
        if kinds:
            self.fail(
                "SMI1007",
                f"{self.api_version} has no kind {self.kind} (it defines {', '.join(kinds)})",
                path="kind",
            )
            return
        group = self.api_version.partition("/")[0]
        versions = sorted(
            {v for vs in registry.supported_versions().get(group, {}).values() for v in vs}
        )
        hint = f" (served: {', '.join(versions)})" if versions else ""
        self.fail(
            "SMI1006", f"{self.api_version} is not a served SMI version{hint}", path="apiVersion"
        )

    def _layout_ok(self, served: Served) -> bool:
        if served.flat:
            if "spec" in self.value and self.kind in _SPEC_FIELDS:
                self.fail(
                    "SMI2005",
                    f"{self.api_version} {self.kind} is flat: its fields go at the object root, "
                    "not under 'spec'",
                    path="spec",
                )
                return False
            return True
        spec_fields = _SPEC_FIELDS.get(self.kind)
        if spec_fields is None or spec_fields.isdisjoint(self.value):
            return True
        misplaced = [k for k in self.value if k in spec_fields]
        for key in misplaced:
            if key in spec_field_names(served):
                message = (
                    f"{self.api_version} {self.kind} expects '{key}' under 'spec' (at the "
                    "object root it is the flat layout of an older version, and would be pruned)"
                )
            else:  # moved under `spec`, it would be "unknown field": say where it is one
                having = [
                    s.api_version
                    for s in registry.served(served.group)
                    if s.kind == self.kind and key in spec_field_names(s)
                ]
                message = (
                    f"{self.api_version} {self.kind} has no '{key}' field, at the object root "
                    "or under 'spec'"
                    + (
                        f" ({' and '.join(having)} {self.kind} has it, under 'spec')"
                        if having
                        else ""
                    )
                )
            self.fail("SMI2005", message, path=key)
        return not misplaced

    def _metadata_ok(self) -> bool:
        meta = self.value.get("metadata")
        if meta is None and self.kind in _NAMELESS_KINDS:
            return True
        if not isinstance(meta, dict):
            if meta is None:
                self.fail("SMI1009", "metadata.name missing", path="metadata.name")
            else:
                self.fail("SMI2003", f"must be an object, not {json_type(meta)}", path="metadata")
            return False
        name = meta.get("name")
        if (name is None or name == "") and self.kind not in _NAMELESS_KINDS:
            message = GENERATED_SMI_NAME if generated_name_only(meta) else "metadata.name missing"
            self.fail("SMI1009", message, path="metadata.name")
            return False
        return True

    def _metadata_typed(self) -> bool:
        """Whether the metadata fields the schema leaves untyped have their types; each that
        has not is reported at its line."""
        meta = self.value.get("metadata")
        problems = list(metadata_type_problems(meta)) if isinstance(meta, dict) else []
        for path, code, message in problems:
            self.fail(code, message, path=path)
        return not problems

    def _with_namespace(self) -> dict[str, Any]:
        """A shallow copy with `metadata.namespace` defaulted, so that every hub object knows
        its namespace; `raw` keeps the document as written."""
        meta = self.value.get("metadata")
        if not isinstance(meta, dict) or meta.get("namespace"):
            return self.value
        return {**self.value, "metadata": {**meta, "namespace": self.loader.default_namespace}}


@cache
def spec_field_names(served: Served) -> frozenset[str]:
    """The fields (by their names in documents) of `served`'s `spec`, none for a flat layout:
    TCPRoute has `spec.matches` from specs v1alpha4 on only, so telling a v1alpha3 writer to
    move a root `matches` under `spec` sent them to an "unknown field" error next."""
    field = served.wire.model_fields.get("spec")
    names: set[str] = set()
    for model in get_args(field.annotation) or (field.annotation,) if field is not None else ():
        for name, info in getattr(model, "model_fields", {}).items():
            names.add(info.alias or name)
    return frozenset(names)


def service_port_problems(service: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(path, code, message) for each `spec.ports[i].port` of a Service that is no integer
    1-65535, and each `targetPort` that is neither such a number nor a name: the API server
    refuses them, and the cross-resource checks and `explain` passed over such a port as if
    the Service had none ("--port is needed"). Only the ports: other fields of a context
    object are read where used."""
    spec = service.get("spec")
    ports = spec.get("ports") if isinstance(spec, Mapping) else None
    for i, entry in enumerate(ports if isinstance(ports, list) else ()):
        if not isinstance(entry, Mapping):
            continue
        for field in ("port", "targetPort"):
            value = entry.get(field)
            if value is None or (field == "targetPort" and isinstance(value, str)):
                continue  # a missing `port` is the API server's to refuse; a name is a name
            path = f"spec.ports[{i}].{field}"
            if type(value) is not int:
                what = "an integer or a port name" if field == "targetPort" else "an integer"
                quoted = isinstance(value, str) and value.isascii() and value.isdigit()
                hint = f" (write {value} without quotes)" if quoted and len(value) < 6 else ""
                yield path, "SMI2003", f"must be {what}, not {json_type(value)}{hint}"
            elif not is_port(value):
                yield path, "SMI2301", not_a_port(value)


def typed_list(api_version: Any, kind: Any) -> bool:
    """Whether (apiVersion, kind) is the list kind of a kind this loader reads, and not a
    served kind of its own (metrics' TrafficMetricsList is an object, not a wrapper)."""
    if not isinstance(api_version, str) or not isinstance(kind, str) or not kind.endswith("List"):
        return False
    item = kind[: -len("List")]
    if registry.is_smi_group(api_version):
        return (
            registry.lookup(api_version, kind) is None
            and registry.lookup(api_version, item) is not None
        )
    return api_version in CONTEXT_KINDS.get(item, ())


@dataclass(frozen=True, slots=True)
class ListItem:
    """One item of a list as every command reads it: a typed list's with the list's
    apiVersion and kind where it names none, or its `problem` (SMI1013, path in the list's
    document) when it names others; such an item is not read."""

    index: int  # in the list's `items`
    value: Any
    problem: Diagnostic | None = None


@dataclass(frozen=True, slots=True)
class ListItems:
    """What a list holds: its items, or the `problem` of its `items` field (SMI2003, path
    `items`) when that is not a list."""

    items: tuple[ListItem, ...] = ()
    problem: Diagnostic | None = None


def list_items(value: Mapping[str, Any]) -> ListItems | None:
    """The items of `value` when it is a `kind: List` or a typed list this loader reads
    (`typed_list`), else None: the one reading of lists, shared by the loader, `inject` and
    `convert`, so that an item one command reads is read by every command.

    `items` missing or null is a list without items, as kubectl reads it (holding no object,
    it is SMI1012 when nothing else is given). Any other `items` that is not a list (a
    mis-indented mapping) is SMI2003: the list was skipped as an unknown kind and the objects
    in it never checked, and kubectl refuses such a list."""
    api_version, kind = value.get("apiVersion"), value.get("kind")
    if kind != "List" and not typed_list(api_version, kind):
        return None
    items = value.get("items")
    if items is None:
        return ListItems()
    if not isinstance(items, list):
        message = f"must be a list, not {json_type(items)}"
        return ListItems(problem=Diagnostic(code="SMI2003", message=message, path="items"))
    if kind == "List":
        return ListItems(tuple(ListItem(i, item) for i, item in enumerate(items)))
    typed = {"apiVersion": str(api_version), "kind": str(kind)[: -len("List")]}
    return ListItems(
        tuple(
            ListItem(i, {**typed, **item}, _foreign_item(item, typed, i))
            if isinstance(item, dict)
            else ListItem(i, item)
            for i, item in enumerate(items)
        )
    )


def holds_object(value: Any) -> bool:
    """Whether a document holds an object as the loader reads it: any document but a list
    without items (or whose items are such lists). A list whose `items` or an item of which
    is refused holds one: its problem is what to report, not SMI1012."""
    listed = list_items(value) if isinstance(value, dict) else None
    if listed is None or listed.problem is not None:
        return True
    return any(item.problem is not None or holds_object(item.value) for item in listed.items)


def _foreign_item(item: dict[str, Any], typed: dict[str, str], i: int) -> Diagnostic | None:
    """An item of a `<Kind>List` that says it is of another apiVersion or kind (SMI1013):
    the API server never answers such a list, and read as its own type it would be
    enforced by `compile` while `convert`, which converts the list as one object of its
    version, left it out. Refused, so that every command reads the file alike."""
    for field, want in typed.items():
        given = item.get(field, want)
        if given != want:
            return Diagnostic(
                code="SMI1013",
                message=f"a {typed['apiVersion']} {typed['kind']}List holds {typed['kind']} "
                "objects of that version, not "
                f"{_what_value(given) if not isinstance(given, str) else given}",
                path=f"items[{i}].{field}",
            )
    return None


def _what_value(value: Any) -> str:
    """A document that is not a mapping, in YAML and JSON terms (`null`, `a number`): Python's
    type names (`a NoneType scalar`) meant nothing to the writer of the file."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"  # `5` and `5.0` alike: the difference is no help here
    return json_type(value)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _line(lines: Lines | None, path: str, *, default: int | None) -> int | None:
    return lines.line_of(path) if lines is not None else default


__all__ = [
    "CONTEXT_KINDS",
    "EXTENSIONS",
    "POD_PATHS",
    "SMI_KIND_GROUPS",
    "STDIN",
    "ContextObject",
    "Lines",
    "ListItem",
    "ListItems",
    "LoadResult",
    "RawDocument",
    "Resource",
    "Source",
    "format_path",
    "gc_paused",
    "holds_object",
    "list_items",
    "load_identities",
    "load_object",
    "load_paths",
    "load_text",
    "nothing_to_do",
    "read_documents",
    "read_source",
    "typed_list",
]
