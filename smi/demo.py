"""`make demo` (`python -m smi.demo`): validate and convert the example manifests shipped in
`examples/`, and say plainly what happened.

Until the live demo exists this is the tour of the core: the valid mesh passes with no warning,
the legacy (oldest-version) manifests pass, every broken manifest is rejected with exactly the
codes its `# expect:` line names, and objects convert between versions and back without loss.
Exit 0 when all of that holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from smi.compiler.checks import validate
from smi.conversion import convert_document
from smi.errors import Diagnostic
from smi.loading import LoadResult, load_paths, read_documents

# Latest released version per group (access v1alpha4 is an unreleased draft).
LATEST = {
    "access.smi-spec.io": "v1alpha3",
    "specs.smi-spec.io": "v1alpha4",
    "split.smi-spec.io": "v1alpha4",
}
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
_EXPECT = re.compile(r"^# expect:(.*)$", re.M)


def _check(paths: Sequence[str]) -> tuple[LoadResult, list[Diagnostic]]:
    loaded = load_paths(paths)
    return loaded, loaded.diagnostics + validate(loaded.resources, loaded.context)


def _valid_set(title: str, directory: Path) -> bool:
    loaded, found = _check([_rel(directory)])
    kinds: dict[str, int] = {}
    for r in loaded.resources:
        kinds[f"{r.kind} ({r.api_version.rpartition('/')[2]})"] = kinds.get(r.kind, 0) + 1
    print(f"\n== {title}: smictl validate -f {_rel(directory)}")
    for kind, n in sorted(kinds.items()):
        print(f"   {n} x {kind}")
    print(f"   + {len(loaded.context)} context objects (Services, ServiceAccounts, ...)")
    for d in found:
        print(f"   {d.format()}")
    ok = not found
    print(f"   -> {'valid, no warnings' if ok else f'{len(found)} unexpected problems'}")
    return ok


def _broken_set(directory: Path) -> bool:
    print(f"\n== broken manifests: smictl validate -f {_rel(directory)}")
    all_ok = True
    for path in sorted(directory.glob("*.yaml")):
        expected = set(_EXPECT.search(path.read_text()).group(1).split())  # type: ignore[union-attr]
        _, found = _check([_rel(path)])
        found.sort(key=lambda d: d.line or 0)
        got = {d.code for d in found}
        ok = got == expected
        all_ok &= ok
        verdict = "rejected as expected" if ok else f"UNEXPECTED {sorted(got ^ expected)}"
        print(f"   {path.name:<20} {' '.join(sorted(got)):<40} {verdict}")
        for d in found:
            if d.is_error:
                print(f"      {d.format()}")
    return all_ok


def _round_trip(path: Path) -> bool:
    """Convert every object of `path` to the latest released version of its group and back."""
    ok = True
    for doc in (d.value for d in read_documents(path.read_text(), filename=str(path))):
        origin = doc["apiVersion"]
        group = origin.partition("/")[0]
        target = f"{group}/{LATEST[group]}"
        converted = convert_document(doc, to=target)
        lossless = convert_document(converted, to=origin) == doc
        ok &= lossless
        print(f"\n== smictl convert -f {_rel(path)} --to {target}   ({doc['kind']})")
        for line in yaml.safe_dump(converted, sort_keys=False).splitlines():
            print(f"   {line}")
        print(f"   -> converted back to {origin}: {'identical' if lossless else 'DIFFERENT'}")
    return ok


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smi.demo", description=__doc__)
    parser.add_argument("--examples", type=Path, default=EXAMPLES, help="examples directory")
    args = parser.parse_args(argv)
    examples: Path = args.examples
    if not examples.is_dir():
        print(f"smi.demo: no examples at {examples}", file=sys.stderr)
        return 1
    print("smictl demo: the SMI core on the manifests in examples/")
    results = {
        "the mesh is valid": _valid_set("a valid mesh", examples / "mesh"),
        "legacy versions are valid": _valid_set("legacy versions", examples / "legacy"),
        "broken manifests are rejected": _broken_set(examples / "broken"),
        "legacy objects convert and back losslessly": all(
            [_round_trip(path) for path in sorted((examples / "legacy").glob("*.yaml"))]
        ),
    }
    print("\n== summary")
    for what, ok in results.items():
        print(f"   [{'ok' if ok else 'FAIL'}] {what}")
    failed = [what for what, ok in results.items() if not ok]
    print("\ndemo OK" if not failed else f"\ndemo FAILED: {', '.join(failed)}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
