"""`smictl validate -f PATH... [-o text|json] [--strict]`: check manifests before they ship.

Loads files, directories and `-` (smi.loading), runs the one validation path
(smi.compiler.validate) and prints every problem, warnings included, as
`file:line: path: reason (CODE)`, then a one-line summary on standard error. Exit 0 when
nothing is an error, 1 otherwise (2 for usage errors, from argparse).

An input that holds no object at all (empty files or standard input, only comments and `---`)
is an error (SMI1012), as an empty directory is (SMI1001): a gate that passes on nothing hides
the earlier stage that printed nothing. Objects that are not SMI resources are not: validating
every manifest of a repository, some directories of which hold no SMI object, is legitimate,
and the summary says `0 SMI objects`.

A TrafficSplit's Services are checked only where the set holds a Service of its namespace (a
repository of SMI manifests alone would drown in "not in the set"); `--strict` says on
standard error, once per namespace, where they were not.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from smi.commands import flags
from smi.errors import Diagnostic, escaped_line, json_safe

if TYPE_CHECKING:
    from smi.loading import ContextObject, Resource

# `admit --strict` works as this one does, and says so in the same words.
STRICT_HELP = (
    "turn references to objects that are not in the set (routes, match names, Services) into "
    "errors; a TrafficSplit's Services are checked only in namespaces where the set holds some "
    "Service (a note on standard error names the others)"
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "validate",
        help="check SMI manifests (files, directories, - for stdin)",
        description="Load SMI manifests and report every problem with file:line, field path "
        "and code. Exit 0 when valid, 1 when any error is found.",
    )
    flags.add_filenames(p)
    p.add_argument(
        "-o",
        "--output",
        choices=["text", "json"],
        default="text",
        help="text: one line per problem; json: one document with every diagnostic "
        "(default: %(default)s)",
    )
    p.add_argument("--strict", action="store_true", help=STRICT_HELP)
    p.add_argument(
        "-n",
        "--namespace",
        default="default",
        type=flags.namespace,
        help="namespace of objects that name none (default: %(default)s)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from smi.compiler.checks import validate
    from smi.loading import load_paths, nothing_to_do

    loaded = load_paths(args.paths, default_namespace=args.namespace)
    found = loaded.diagnostics + validate(loaded.resources, loaded.context, strict=args.strict)
    empty = nothing_to_do(loaded, args.paths)
    if empty is not None:
        found.append(empty)
    diagnostics = ordered(found, files=loaded.files)
    errors = sum(1 for d in diagnostics if d.is_error)
    summary = {
        "valid": errors == 0,
        "errors": errors,
        "warnings": len(diagnostics) - errors,
        "resources": len(loaded.resources) + len(loaded.refused),  # (those did not load)
        "context": len(loaded.context),
        "files": len(dict.fromkeys(loaded.files)),
    }
    if args.output == "json":
        doc = {**summary, "diagnostics": [d.to_json() for d in diagnostics]}
        json.dump(json_safe(doc), sys.stdout, indent=2, allow_nan=False)
        print()
    else:
        for d in diagnostics:
            print(d.format())
    if args.strict:
        for note in service_notes(loaded.resources, loaded.context):
            print(note, file=sys.stderr)
    print(summary_line(summary), file=sys.stderr)
    return 0 if errors == 0 else 1


def service_notes(resources: Sequence[Resource], context: Sequence[ContextObject]) -> list[str]:
    """One line per namespace whose TrafficSplits' Services went unchecked: without it,
    `--strict` passed a split whose Services exist nowhere, and one unrelated Service added to
    the namespace turned that pass into errors. A note, not a warning: nothing in the set is
    wrong, and a repository of SMI manifests alone is not flooded."""
    from smi.compiler.checks import services_unchecked

    return [
        escaped_line(
            f"note: no Service of namespace {ns} is in the set: TrafficSplit Services there "
            "are not checked (add the Services to check them)"
        )
        for ns in services_unchecked(resources, context)
    ]


def ordered(diagnostics: Sequence[Diagnostic], *, files: Sequence[str]) -> list[Diagnostic]:
    """By file (in load order), then line; problems without a line first within their file."""
    rank = {name: i for i, name in enumerate(dict.fromkeys(files))}
    return sorted(
        diagnostics,
        key=lambda d: (rank.get(d.file or "", len(rank)), d.line if d.line is not None else 0),
    )


def summary_line(summary: dict[str, Any]) -> str:
    objects = plural(summary["resources"], "SMI object")
    files = plural(summary["files"], "file")
    counts = f"{plural(summary['errors'], 'error')}, {plural(summary['warnings'], 'warning')}"
    verdict = "valid" if summary["valid"] else "INVALID"
    return f"{verdict}: {objects} in {files}; {counts}"


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 error`, `2 errors`: the summaries users read count in words, not `1 errors`."""
    return f"{n} {word}" if n == 1 else f"{n} {words or word + 's'}"
