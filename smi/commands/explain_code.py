"""`smictl explain-code SMI2103`: what a problem code means and how to fix it.

Codes are stable (smi.codes); every diagnostic smictl prints ends with one. `--list` prints the
whole table, one code a line.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "explain-code",
        help="explain a problem code (e.g. SMI2103)",
        description="Print what a problem code means and how to fix it.",
    )
    p.add_argument("code", nargs="?", help="a code such as SMI2103")
    p.add_argument("--list", action="store_true", help="list every code with its title")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from smi.codes import CODES, lookup

    if args.list and args.code:
        print("smictl explain-code: give a code or --list, not both", file=sys.stderr)
        return 2
    if args.list:
        for code in sorted(CODES.values(), key=lambda c: c.code):
            print(f"{code.code}  {code.title}")
        return 0
    if not args.code:
        print("smictl explain-code: give a code (e.g. SMI2103) or --list", file=sys.stderr)
        return 2
    found = lookup(args.code)
    if found is None:
        print(
            f"smictl explain-code: unknown code {args.code!r} (see `smictl explain-code --list`)",
            file=sys.stderr,
        )
        return 2
    print(f"{found.code}: {found.title}")
    print()
    print(textwrap.fill(found.explanation, width=80))
    print()
    print(textwrap.fill(f"Fix: {found.fix}", width=80, subsequent_indent="     "))
    return 0
