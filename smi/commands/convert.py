"""`smictl convert -f PATH... --to GROUP/VERSION`: rewrite SMI objects in another version.

`-f` is repeatable and takes files, directories (recursive, sorted) and `-`, as every command
that reads manifests takes them; the documents of all of them are converted in the order given
and printed as one YAML stream. Every document whose group is the target's is converted through
the hub (smi.conversion); fields the target cannot hold ride in the `smictl.io/lossy-fields`
annotation, so converting back restores them, and an object already in the target version comes
back as it was. `kind: List` and typed lists (`TrafficSplitList`, whose items may leave out
apiVersion and kind, as the API server lists them) are converted item by item, read as every
command reads them (`smi.loading.list_items`: `items` null or missing is an empty list, a
mapping is SMI2003); a typed list comes out as the target version's. Other documents
(Services, objects of other SMI groups) pass through unchanged, so a whole manifest file can
be converted in one go. Output is YAML on standard output; problems go to standard error as
`file:line: path: reason (CODE)`.
Nothing is printed when a file cannot be read, when there is no object of the target's group to
convert (SMI4003), or no object at all (SMI1012: empty files or standard input, only comments
and `---`, lists without items), or when an object to convert fails the checks `smictl
validate` makes of one object alone (a negative weight, a TrafficTarget without rules):
converted, it would be as invalid in the new version, and a pipeline that only converts would
ship it. References to other objects are not checked (`smictl validate` does that); its
warnings are not printed. One warning is:
an object whose output keeps a restriction only in the annotation (a TrafficTarget
destination's port in access v1alpha3, a match's headers in specs v1alpha1, a TrafficSplit's
matches in split v1alpha2) is named on standard error (SMI4005). smictl enforces it, but every
other reader of the output sees the object allow (or split) more than it does; the output and
the exit status stay as they are.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import yaml

from smi.commands import flags
from smi.errors import ConversionError, Diagnostic, LoadError, SMIError
from smi.yamlout import Dumper as _Dumper

if TYPE_CHECKING:
    from smi.apis.lossy import Narrowing
    from smi.sources import Lines, RawDocument

# (name, text, documents) of one file read.
_File = tuple[str, str, "list[RawDocument]"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "convert",
        help="convert SMI objects to another version of their group",
        description="Convert every SMI object of the target's group in the files to "
        "GROUP/VERSION (through the unversioned hub; lossless round trips). Other documents "
        "pass through.",
    )
    flags.add_filenames(p, help=f"{flags.FILENAMES_HELP}, read in order")
    p.add_argument(
        "--to",
        required=True,
        metavar="GROUP/VERSION",
        help="target apiVersion, e.g. access.smi-spec.io/v1alpha3",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from smi.apis import registry
    from smi.loading import nothing_to_do
    from smi.resources import LoadResult

    if not registry.kinds_of(args.to):
        # A usage error (exit 2), worded as the other commands word bad flags: as a diagnostic
        # it named no file (`<input>: --to: ...`) and exited 1, as if a manifest were invalid.
        print(
            f"smictl convert: --to: {args.to!r} is not an SMI version smictl serves "
            "(see `smictl version`) (SMI4001)",
            file=sys.stderr,
        )
        return 2
    files = _read(args.paths)
    if not any(docs for _, _, docs in files):
        loaded = LoadResult(files=[name for name, _, _ in files])
        empty = nothing_to_do(loaded, args.paths, then="nothing to convert")
        if empty is not None:
            raise LoadError([empty])
    group = args.to.partition("/")[0]
    out: list[Any] = []
    problems: list[Diagnostic] = []
    converted = 0
    for name, text, docs in files:
        problems += _invalid(text, name, group)
        for doc in docs:
            value, count = _convert(
                doc.value, to=args.to, group=group, problems=problems, where=(name, doc.lines)
            )
            out.append(value)
            converted += count
    errors = [d for d in problems if d.is_error]
    if not errors and converted == 0:
        errors.append(_nothing_of(group, args.paths, files))
    if errors:
        raise ConversionError(errors)
    for d in problems:
        print(d.format(), file=sys.stderr)
    yaml.dump_all(
        out,
        sys.stdout,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        explicit_start=len(out) > 1,
    )
    return 0


def _read(paths: Sequence[str]) -> list[_File]:
    """Every file the paths name, in order, with its documents. A file that cannot be read or
    parsed stops the command before anything is converted, with every such file reported: a
    stream that left out the objects of one file would look complete."""
    from smi.sources import read_documents, read_path

    files: list[_File] = []
    problems: list[Diagnostic] = []
    for path in paths:
        for name, text, problem in read_path(path, stdin=None):
            if problem is not None:
                if problem.is_error:
                    problems.append(problem)
                else:  # a symlinked directory not entered (SMI1014): said, not refused
                    print(problem.format(), file=sys.stderr)
                continue
            try:
                files.append((name, text, read_documents(text, filename=name)))
            except LoadError as exc:
                problems += exc.diagnostics
    if problems:
        raise LoadError(problems)
    return files


def _nothing_of(group: str, paths: Sequence[str], files: list[_File]) -> Diagnostic:
    """SMI4003 at the one path given, or naming every path (as SMI1012 names them); SMI1012
    when the documents hold no object at all (lists without items), as in every command."""
    from smi.loading import holds_object, nothing_to_do
    from smi.resources import LoadResult
    from smi.sources import STDIN

    if not any(holds_object(doc.value) for _, _, docs in files for doc in docs):
        loaded = LoadResult(files=[name for name, _, _ in files])
        empty = nothing_to_do(loaded, paths, then="nothing to convert")
        if empty is not None:
            return empty
    names = list(dict.fromkeys("<stdin>" if p == STDIN else p for p in paths))
    if len(names) == 1:
        return Diagnostic(code="SMI4003", message=f"no {group} object to convert", file=names[0])
    where = ", ".join(names)
    return Diagnostic(code="SMI4003", message=f"no {group} object to convert in {where}")


def _invalid(text: str, name: str, group: str) -> list[Diagnostic]:
    """The errors `check_resource` finds in the file's objects of `group` (schema errors are
    left to the conversion, which reports them in its own words)."""
    from smi.loading import load_text
    from smi.validation import check_resource

    loaded = load_text(text, filename=name)
    # (A typed list's item of another type, whatever the group: every command refuses it.)
    foreign = [d for d in loaded.diagnostics if d.code == "SMI1013"]
    return foreign + [
        d
        for resource in loaded.resources
        if resource.api_version.partition("/")[0] == group
        for d in check_resource(resource)
        if d.is_error
    ]


def _convert(
    value: Any, *, to: str, group: str, problems: list[Diagnostic], where: tuple[str, Any]
) -> tuple[Any, int]:
    """(the document converted or as it was, how many objects were converted)."""
    from smi.conversion import convert_document
    from smi.loading import typed_list

    problem = _items_problem(value, where) if isinstance(value, Mapping) else None
    if problem is not None:
        problems.append(problem)
    if not isinstance(value, Mapping) or problem is not None:
        return value, 0
    if value.get("kind") == "List" and isinstance(value.get("items"), list):
        name, lines = where
        items, count = [], 0
        for i, item in enumerate(value["items"]):
            sub = lines.sub(("items", i)) if lines is not None else None
            converted, n = _convert(item, to=to, group=group, problems=problems, where=(name, sub))
            items.append(converted)
            count += n
        return {**value, "items": items}, count
    api_version = value.get("apiVersion")
    if not isinstance(api_version, str) or api_version.partition("/")[0] != group:
        return value, 0
    if typed_list(api_version, value.get("kind")):  # (`items` a list, null or missing)
        return _convert_typed_list(value, to=to, group=group, problems=problems, where=where)
    try:
        converted = convert_document(value, to=to)
    except SMIError as exc:
        name, lines = where
        for d in exc.diagnostics:
            line = lines.line_of(d.path) if lines is not None else None
            problems.append(d.located(file=name, line=line))
        return value, 0
    hidden = _hidden_restrictions(value, converted, where=where)
    if hidden is not None:
        problems.append(hidden)
    return converted, 1


def _items_problem(value: Mapping[str, Any], where: tuple[str, Any]) -> Diagnostic | None:
    """SMI2003 for a list whose `items` is not a list, as every command reads lists."""
    from smi.loading import list_items

    listed = list_items(value)
    if listed is None or listed.problem is None:
        return None
    name, lines = where
    line = lines.line_of(listed.problem.path) if lines is not None else None
    return listed.problem.located(file=name, line=line)


def _narrowing(api_version: str, kind: str) -> Sequence[Narrowing]:
    """What in objects of `kind` only narrows what they allow (`smi.apis.lossy.Narrowing`),
    as the version modules declare it (a split's `matches`: `smi.apis.split.common`)."""
    from smi.apis.access import hub as access
    from smi.apis.access.common import TARGET_NARROWING
    from smi.apis.specs import hub as specs
    from smi.apis.specs.common import GROUP_NARROWING, ROUTE_NARROWING
    from smi.apis.split import hub as split
    from smi.apis.split.common import SPLIT_NARROWING

    return {
        (access.GROUP, "TrafficTarget"): TARGET_NARROWING,
        (specs.GROUP, "HTTPRouteGroup"): GROUP_NARROWING,
        (specs.GROUP, "TCPRoute"): ROUTE_NARROWING,
        (specs.GROUP, "UDPRoute"): ROUTE_NARROWING,
        (split.GROUP, "TrafficSplit"): SPLIT_NARROWING,
    }.get((api_version.partition("/")[0], kind), ())


def _hidden_restrictions(
    source: Mapping[str, Any], converted: Mapping[str, Any], *, where: tuple[str, Any]
) -> Diagnostic | None:
    """SMI4005 when `converted` keeps a restriction only in the lossy-fields annotation.

    smictl restores and enforces it, but any other reader of the converted object (another
    mesh, a reviewer, a tool that strips unknown annotations) sees the object allow more than
    it does; the user converting is the last one who can be told. Located where the source
    writes the restriction, or at the nearest field that holds it (a restriction the source
    itself keeps in the annotation, a field named otherwise on the wire)."""
    from smi.apis import lossy, registry
    from smi.apis.meta import LOSSY_ANNOTATION

    api_version, kind = str(converted["apiVersion"]), str(converted["kind"])
    narrowing = _narrowing(api_version, kind)
    entry = registry.lookup(api_version, kind)
    if not narrowing or entry is None or not lossy.carries_annotation(converted):
        return None
    hub = registry.parse(converted)
    found: list[str] = []
    line = None
    for rule in narrowing:
        described = lossy.hidden_restrictions(entry, hub, (rule,))
        if described and not found:
            line = _line_of(source, getattr(hub, rule.field), rule, described, lines=where[1])
        found += described
    if not found:
        return None
    them, they_ride = ("it", "it rides") if len(found) == 1 else ("them", "they ride")
    return Diagnostic(
        code="SMI4005",
        message=(
            f"{'; '.join(found)} cannot be written in {api_version}: {they_ride} in the "
            f"{LOSSY_ANNOTATION} annotation; smictl enforces {them}, other readers of this "
            f"object do not see {them}"
        ),
        file=where[0],
        line=line,
        severity="warning",
    )


def _line_of(
    source: Mapping[str, Any],
    value: Any,
    rule: Narrowing,
    described: Sequence[str],
    *,
    lines: Lines | None,
) -> int | None:
    """The line of the first hidden restriction in the source, by its hub name under the
    version's layout (the entry of a list found by its description); `line_of` falls back to
    the nearest field that exists."""
    from smi.apis import registry

    if lines is None:
        return None
    entry = registry.lookup(str(source["apiVersion"]), str(source["kind"]))
    parts: list[str | int] = [] if entry is None or entry.flat else ["spec"]
    parts.append(rule.field)
    if rule.part is None:
        return lines.line_of(parts)
    if isinstance(value, tuple):
        parts += [i for i, e in enumerate(value) if _told(rule, e) == described[0]][:1]
    return lines.line_of([*parts, rule.part])


def _told(rule: Narrowing, entry: Any) -> str | None:
    """How `smi.apis.lossy.hidden_restrictions` describes the entry's restriction, if any."""
    part = getattr(entry, str(rule.part))
    return None if part in (None, ()) else rule.describe(rule.key(entry), part)


def _convert_typed_list(
    value: Mapping[str, Any],
    *,
    to: str,
    group: str,
    problems: list[Diagnostic],
    where: tuple[str, Any],
) -> tuple[Any, int]:
    """A typed list converted item by item, as the loader reads it (an item without apiVersion
    or kind is of the list's), and written as the target version's typed list: the items keep
    the shape they had (without apiVersion and kind when they left them out). The list is an
    object of the target's group itself, so an empty one converts too."""
    from smi.apis import registry

    name, lines = where
    kind = str(value["kind"]).removesuffix("List")
    if registry.lookup(to, kind) is None:
        line = lines.line_of("kind") if lines is not None else None
        problems.append(
            Diagnostic(
                code="SMI4002",
                message=f"{to} has no kind {kind}, so no {kind}List",
                path="kind",
                file=name,
                line=line,
            )
        )
        return value, 0
    typed = {"apiVersion": value["apiVersion"], "kind": kind}
    items, count = [], 0
    for i, item in enumerate(value.get("items") or ()):  # (null: a list without items)
        if not isinstance(item, Mapping):
            items.append(item)
            continue
        sub = lines.sub(("items", i)) if lines is not None else None
        converted, n = _convert(
            {**typed, **item}, to=to, group=group, problems=problems, where=(name, sub)
        )
        items.append(_shaped(converted, like=item) if n else item)
        count += n
    return {**value, "apiVersion": to, "items": items}, max(count, 1)


def _shaped(converted: Mapping[str, Any], *, like: Mapping[str, Any]) -> dict[str, Any]:
    """`converted` without the apiVersion and kind that the item `like` left to its list."""
    return {k: v for k, v in converted.items() if k in like or k not in ("apiVersion", "kind")}
