"""`smictl version`: the release and every SMI group/version this build serves."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from smi import __version__


def register(sub: Any) -> None:
    p = sub.add_parser("version", help="print the version and the supported SMI versions")
    p.add_argument(
        "-o",
        "--output",
        choices=["text", "json"],
        default="text",
        help="text: a table; json: {version, smi: {group: {kind: [versions]}}} "
        "(default: %(default)s)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from smi.apis.registry import supported_versions

    versions = supported_versions()
    if args.output == "json":
        doc: dict[str, Any] = {"version": __version__, "smi": versions}
        json.dump(doc, sys.stdout, indent=2)
        print()
        return 0
    print(f"smictl {__version__}")
    # Columns as wide as their longest entry: a fixed width let `TrafficMetricsList` run into
    # its versions.
    rows = [(g, k, ", ".join(vs)) for g, kinds in versions.items() for k, vs in kinds.items()]
    group_width = max((len(g) for g, _, _ in rows), default=0)
    kind_width = max((len(k) for _, k, _ in rows), default=0)
    for group, kind, vs in rows:
        print(f"  {group:<{group_width}}  {kind:<{kind_width}}  {vs}")
    return 0
