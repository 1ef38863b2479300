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
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from smi.commands import flags
from smi.errors import Diagnostic, json_safe


def register(sub: Any) -> None:
    p = sub.add_parser(
        "validate",
        help="check SMI manifests (files, directories, - for stdin)",
        description="Load SMI manifests and report every problem with file:line, field path "
        "and code. Exit 0 when valid, 1 when any error is found.",
    )
    flags.add_filenames(p, help="file, directory (recursive) or - for standard input; repeatable")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    p.add_argument(
        "--strict",
        action="store_true",
        help="treat dangling references (routes, matches, Services) as errors",
    )
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
        "resources": len(loaded.resources),
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
    print(summary_line(summary), file=sys.stderr)
    return 0 if errors == 0 else 1


def ordered(diagnostics: Sequence[Diagnostic], *, files: Sequence[str]) -> list[Diagnostic]:
    """By file (in load order), then line; problems without a line first within their file."""
    rank = {name: i for i, name in enumerate(dict.fromkeys(files))}
    return sorted(
        diagnostics,
        key=lambda d: (rank.get(d.file or "", len(rank)), d.line if d.line is not None else 0),
    )


def summary_line(summary: dict[str, Any]) -> str:
    objects = _plural(summary["resources"], "SMI object")
    files = _plural(summary["files"], "file")
    counts = f"{_plural(summary['errors'], 'error')}, {_plural(summary['warnings'], 'warning')}"
    verdict = "valid" if summary["valid"] else "INVALID"
    return f"{verdict}: {objects} in {files}; {counts}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
