"""`python -m conformance.targets.launch COMMAND ARGS...`: run one smictl subcommand.

The targets start `smictl serve` and `smictl proxy` through this, calling the very register
functions the `smictl.commands` entry points name, so a stale editable install (entry-point
metadata older than pyproject.toml) cannot make the suite run something else.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "serve": ("webhook.cli", "register_serve"),
    "proxy": ("proxy.cli", "register"),
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in COMMANDS:
        print(f"usage: launch {{{','.join(COMMANDS)}}} ARGS...", file=sys.stderr)
        return 2
    module, func = COMMANDS[args[0]]
    parser = argparse.ArgumentParser(prog="smictl")
    sub = parser.add_subparsers(dest="command")
    getattr(importlib.import_module(module), func)(sub)
    ns = parser.parse_args(args)
    return int(ns.func(ns))


if __name__ == "__main__":
    sys.exit(main())
