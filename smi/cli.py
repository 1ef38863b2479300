"""`smictl`: the command line.

Subcommands are plugged in through the `smictl.commands` entry-point group (pyproject.toml), so
this module never imports `webhook`, `proxy` or `conformance`. Each entry point is a
`register(subparsers)` function that adds one subparser and sets `func(args) -> int`.

Running one command of this distribution looks its `register` up in `SHIPPED` (the same table
as pyproject.toml's, kept equal by a test) rather than through `importlib.metadata`, which
alone cost a sidecar started as `smictl proxy` 2.6 MB of memory and start-up time (idle
32.3 -> 29.6 MB with this and `HelpFormatter`). Help and other packages' commands still come
from the entry points.

Exit codes: 0 success, 1 the input is invalid or denied, 2 usage error, 70 internal error.
Errors reach the user as one line each, never as a traceback (set SMICTL_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any, NoReturn

from smi import __version__

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70

Handler = Callable[[argparse.Namespace], int]

SHIPPED = {
    "validate": "smi.commands.validate:register",
    "convert": "smi.commands.convert:register",
    "explain-code": "smi.commands.explain_code:register",
    "version": "smi.commands.version:register",
    "compile": "smi.commands.compile:register",
    "explain": "smi.commands.explain:register",
    "access-matrix": "smi.commands.access_matrix:register",
    "admit": "smi.commands.admit:register",
    "policy": "smi.commands.policy_cmd:register",
    "serve": "webhook.cli:register_serve",
    "apply": "webhook.cli:register_apply",
    "get": "webhook.cli:register_get",
    "delete": "webhook.cli:register_delete",
    "certs": "webhook.cli:register_certs",
    "inject": "webhook.inject_cli:register",
    "proxy": "proxy.cli:register",
    "conformance": "conformance.cli:register",
}


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, but sized without `shutil`: argparse imports `shutil` (and with
    it `bz2`, `lzma` and `zlib`) for the terminal width each time it builds a formatter, which
    it does for every `add_argument`. A sidecar (`smictl proxy`) never prints help; it should
    not carry that."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24) -> None:
        try:
            width = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            try:
                width = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                width = 80
        super().__init__(prog, indent_increment, max_help_position, max(width - 2, 11))


class _Parser(argparse.ArgumentParser):
    """A flag mistake is one line naming the (sub)command, exit 2: the usage block argparse
    printed above it buried the line that says what is wrong (five lines of `smictl inject`'s
    flags) and split a log or CI annotation into pieces. `--help` still prints all of it."""

    def error(self, message: str) -> NoReturn:
        # A value typed with a newline in it (`$'a\nb'`) must not make a second line.
        message = message.replace("\r", "\\r").replace("\n", "\\n")
        if not _refused_value():
            message += f" (see `{self.prog} --help`)"
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _refused_value() -> bool:
    """Whether argparse is reporting a value a flag's own check refused (argparse re-raises
    its ArgumentTypeError). That line says what the flag expects, ending with its code where
    it has one, last as on every diagnostic line; a mistake in the shape of the command line
    (an unknown flag, a missing value or argument, a choice) is what the help answers."""
    reported = sys.exception()
    return reported is not None and isinstance(reported.__context__, argparse.ArgumentTypeError)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or only `command`'s when it names one: a sidecar
    started as `smictl proxy` must not import the control plane's modules (and their memory)
    just to parse its flags."""
    parser = _Parser(
        prog="smictl",
        description="Zero-trust policy engine for Kubernetes service meshes (SMI).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"smictl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    if command in SHIPPED:
        _register(sub, command, SHIPPED[command])
        return parser
    from importlib.metadata import entry_points

    commands = sorted(entry_points(group="smictl.commands"), key=lambda e: e.name)
    if any(ep.name == command for ep in commands):
        commands = [ep for ep in commands if ep.name == command]
    for ep in commands:
        _register(sub, ep.name, ep.value)
    return parser


def _register(sub: argparse._SubParsersAction[Any], name: str, target: str) -> None:
    module, _, attr = target.partition(":")
    try:
        register = getattr(import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        # A plug-in that cannot load must not take the other commands down with it.
        broken = sub.add_parser(name, help=f"(unavailable: {exc})")
        broken.set_defaults(func=_unavailable(name, exc))
        return
    register(sub)


def _unavailable(name: str, exc: Exception) -> Handler:
    def run(_: argparse.Namespace) -> int:
        print(f"smictl {name}: not available in this installation: {exc}", file=sys.stderr)
        return EXIT_INTERNAL

    return run


class OutputError(Exception):
    """Standard output cannot be written (a full disk, `> /dev/full`, an I/O error): the
    user's environment, not a bug, so one line and exit 1 rather than an "internal error"."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause.strerror or type(cause).__name__)


class _ReaderMayLeave:
    """stdout for a command whose reader may go away (`smictl admit -f ... | head -1`): once
    it has (EPIPE), the rest of the output is dropped and the command still returns its
    verdict. Stopping at the first failed write used to exit 0, so a CI gate with
    `set -o pipefail` passed an invalid set."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return int(self._inner.write(text))
            except BrokenPipeError:
                self._left()
            except OSError as exc:
                raise OutputError(exc) from exc
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._inner.flush()
            except BrokenPipeError:
                self._left()
            except OSError as exc:
                raise OutputError(exc) from exc

    def _left(self) -> None:
        self._gone = True
        # What is still buffered goes nowhere, also when the interpreter flushes at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._inner.fileno())
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args, extras = parser.parse_known_args(argv)
    if extras:
        # argparse reports these from the top-level parser (`smictl: error: ...`), which does
        # not say which command's flags to look up.
        _reached(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    func: Handler | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    real_stdout, sys.stdout = sys.stdout, _ReaderMayLeave(sys.stdout)
    try:
        return _run(func, args)
    finally:
        sys.stdout = real_stdout


def _reached(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the deepest (sub)command `args` chose: `smictl certs workload`'s for
    `smictl certs workload --bogus`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            return parser if chosen is None else _reached(chosen, args)
    return parser


def _run(func: Handler, args: argparse.Namespace) -> int:
    """`func(args)`, every way it can fail turned into one line on standard error and the
    documented exit code."""
    try:
        code = func(args)
        sys.stdout.flush()  # here, where a failure is reported, not at interpreter exit
        return code
    except OutputError as exc:
        print(f"smictl: cannot write the output: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # (a binary write, which `_ReaderMayLeave` does not see)
        return EXIT_OK
    except Exception as exc:  # the last line of defence: one line, no traceback
        # SMIError is looked up, not imported: importing smi.errors costs the sidecar
        # (`smictl proxy`, which never raises it) 0.5 MiB of its 30 MiB, and an error of a
        # module never imported cannot have been raised.
        errors = sys.modules.get("smi.errors")
        if errors is not None and isinstance(exc, errors.SMIError):
            for d in exc.diagnostics:
                print(d.format(), file=sys.stderr)
            return EXIT_INVALID
        if os.environ.get("SMICTL_DEBUG"):
            traceback.print_exc()
        print(
            f"smictl: internal error: {type(exc).__name__}: {exc} (set SMICTL_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
