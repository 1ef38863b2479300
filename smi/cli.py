"""`smictl`: the command line.

Subcommands are plugged in through the `smictl.commands` entry-point group (pyproject.toml), so
this module never imports `webhook`, `proxy` or `conformance`. Each entry point is a
`register(subparsers)` function that adds one subparser and sets `func(args) -> int`.

Exit codes: 0 success, 1 the input is invalid or denied, 2 usage error, 70 internal error.
Errors reach the user as one line each, never as a traceback (set SMICTL_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from smi import __version__
from smi.errors import SMIError

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on usage errors already; keep its one-line message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or only `command`'s when it names one: a sidecar
    started as `smictl proxy` must not import the control plane's modules (and their memory)
    just to parse its flags."""
    parser = _Parser(
        prog="smictl",
        description="Zero-trust policy engine for Kubernetes service meshes (SMI).",
    )
    parser.add_argument("--version", action="version", version=f"smictl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands = sorted(entry_points(group="smictl.commands"), key=lambda e: e.name)
    if any(ep.name == command for ep in commands):
        commands = [ep for ep in commands if ep.name == command]
    for ep in commands:
        try:
            register = ep.load()
        except ImportError as exc:
            # A plug-in that cannot load must not take the other commands down with it.
            broken = sub.add_parser(ep.name, help=f"(unavailable: {exc})")
            broken.set_defaults(func=_unavailable(ep.name, exc))
            continue
        register(sub)
    return parser


def _unavailable(name: str, exc: Exception) -> Handler:
    def run(_: argparse.Namespace) -> int:
        print(f"smictl {name}: not available in this installation: {exc}", file=sys.stderr)
        return EXIT_INTERNAL

    return run


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return func(args)
    except SMIError as exc:
        for d in exc.diagnostics:
            print(d.format(), file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # the last line of defence: one line, no traceback
        if os.environ.get("SMICTL_DEBUG"):
            traceback.print_exc()
        print(
            f"smictl: internal error: {type(exc).__name__}: {exc} (set SMICTL_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
