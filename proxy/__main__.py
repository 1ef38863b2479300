"""`python -m proxy ...`: the same as `smictl proxy ...`, without going through entry points."""

from __future__ import annotations

import argparse
import sys

from proxy.cli import register
from smi.cli import HelpFormatter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smictl", formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["proxy", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
