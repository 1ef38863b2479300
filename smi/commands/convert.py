"""`smictl convert -f FILE --to GROUP/VERSION`: rewrite SMI objects in another version.

Every document of the file whose group is the target's is converted through the hub
(smi.conversion); fields the target cannot hold ride in the `smictl.io/lossy-fields`
annotation, so converting back restores them. Other documents (Services, objects of other SMI
groups) pass through unchanged, so a whole manifest file can be converted in one go. Output is
YAML on standard output; problems go to standard error as `file:line: path: reason (CODE)`.
Nothing is printed when there is no object of the target's group to convert (SMI4003), or no
object at all (SMI1012: an empty file or standard input, or only comments and `---`), or when
an object to convert fails the checks `smictl validate` makes of one object alone (a negative
weight, a TrafficTarget without rules): converted, it would be as invalid in the new version,
and a pipeline that only converts would ship it. References to other objects are not checked
(`smictl validate` does that); warnings are not printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

import yaml

from smi.commands import flags
from smi.errors import ConversionError, Diagnostic, LoadError, SMIError
from smi.yamlout import Dumper as _Dumper


def register(sub: Any) -> None:
    p = sub.add_parser(
        "convert",
        help="convert SMI objects to another version of their group",
        description="Convert every SMI object of the target's group in FILE to GROUP/VERSION "
        "(through the unversioned hub; lossless round trips). Other documents pass through.",
    )
    p.add_argument(
        "-f",
        "--filename",
        dest="path",
        required=True,
        type=flags.path_text,
        metavar="FILE",
        help="a manifest file, or - for standard input",
    )
    p.add_argument(
        "--to",
        required=True,
        metavar="GROUP/VERSION",
        help="target apiVersion, e.g. access.smi-spec.io/v1alpha3",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from smi.apis import registry
    from smi.loading import nothing_to_do, read_documents, read_source
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
    name, text = read_source(args.path)
    docs = read_documents(text, filename=name)
    empty = (
        None
        if docs
        else nothing_to_do(LoadResult(files=[name]), [args.path], then="nothing to convert")
    )
    if empty is not None:
        raise LoadError([empty])
    group = args.to.partition("/")[0]
    out: list[Any] = []
    problems: list[Diagnostic] = _invalid(text, name, group)
    converted = 0
    for doc in docs:
        value, count = _convert(
            doc.value, to=args.to, group=group, problems=problems, where=(name, doc.lines)
        )
        out.append(value)
        converted += count
    if not problems and converted == 0:
        problems.append(
            Diagnostic(code="SMI4003", message=f"no {group} object to convert", file=name)
        )
    if problems:
        raise ConversionError(problems)
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


def _invalid(text: str, name: str, group: str) -> list[Diagnostic]:
    """The errors `check_resource` finds in the file's objects of `group` (schema errors are
    left to the conversion, which reports them in its own words)."""
    from smi.loading import load_text
    from smi.validation import check_resource

    loaded = load_text(text, filename=name)
    return [
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

    if not isinstance(value, Mapping):
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
    try:
        return convert_document(value, to=to), 1
    except SMIError as exc:
        name, lines = where
        for d in exc.diagnostics:
            line = lines.line_of(d.path) if lines is not None else None
            problems.append(d.located(file=name, line=line))
        return value, 0
