"""`smictl conformance`: run the SMI conformance scenarios and write the reports.

    smictl conformance run [--target inproc|webhook|proxy|all] [--scenario GLOB]...
                           [--report DIR] [--smi-version v0.6.0|GROUP/VERSION|all]
    smictl conformance list [--scenario GLOB]... [--smi-version ...]

Exit codes: 0 every selected scenario passed (or was skipped with a reason) and every target
passed at least one, 1 a scenario failed, a target could not start, or a scenario file is
broken, 2 usage error, 3 nothing failed but a target verified nothing (every selected scenario
was skipped there), 128+N stopped by signal N (SIGINT, SIGTERM, SIGHUP) after ending every
process the run started.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, TextIO

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Not 0: a CI gate that checked nothing must not go green. Not 1 either, so a pipeline that
# knows a target cannot run a selection (UDP on the proxy target) can tell it from a failure.
EXIT_UNVERIFIED = 3
_EXIT = {"PASS": EXIT_OK, "FAIL": EXIT_FAILED, "NOTHING VERIFIED": EXIT_UNVERIFIED}


_DESCRIPTION = (
    "Run the SMI conformance scenarios (every behaviour of the SMI spec, in every SMI version "
    "that can express it) against smictl's own components, and write JUnit, JSON, Markdown "
    "and HTML reports. Another mesh cannot run them unchanged: docs/conformance.md says what "
    "a target must provide."
)
_TARGETS = (
    "targets: inproc (the compiler and authorize in this process, ~1 s); webhook (a real "
    "control plane: gunicorn over TLS, admission and conversion); proxy (real smictl proxies "
    "and test services on 127.0.0.1, mTLS, ~1 min); all."
)
_EXITS = (
    "exit status: 0 every selected scenario passed (or was skipped with a reason) and every "
    "target passed one; 1 a scenario failed, a target could not start or a scenario file is "
    "broken; 2 usage error; 3 nothing failed but a target verified nothing (every scenario "
    "skipped there); 128+N stopped by signal N. The last line printed is the verdict, after the "
    "paths of the reports --report wrote."
)


def register(sub: Any) -> None:
    from smi.cli import HelpFormatter

    class Paragraphs(HelpFormatter):
        """smictl's formatter, keeping the epilog's paragraphs apart."""

        def _fill_text(self, text: str, width: int, indent: str) -> str:
            fill = super()._fill_text
            return "\n\n".join(fill(part, width, indent) for part in text.split("\n\n"))

    about: dict[str, Any] = {
        "description": _DESCRIPTION,
        "epilog": f"{_TARGETS}\n\n{_EXITS}",
        "formatter_class": Paragraphs,
    }
    p = sub.add_parser("conformance", help="run the SMI conformance suite against smictl", **about)
    inner = p.add_subparsers(dest="conformance_command", metavar="{run,list}")
    run_p = inner.add_parser(
        "run", help="run scenarios and write JUnit, JSON, Markdown, HTML", **about
    )
    run_p.add_argument(
        "--target", default="inproc", help="inproc, webhook, proxy, or all (default: inproc)"
    )
    _selection_args(run_p, verb="run")
    run_p.add_argument(
        "--report", type=_path, default=None, metavar="DIR", help="write the four reports into DIR"
    )
    run_p.add_argument(
        "-q", "--quiet", action="store_true", help="print only failures and the summary"
    )
    run_p.set_defaults(func=run_command)
    list_p = inner.add_parser("list", help="list the scenarios a selection picks")
    _selection_args(list_p, verb="list")
    list_p.set_defaults(func=list_command)
    p.set_defaults(func=lambda _args: _usage(p))


def _selection_args(p: argparse.ArgumentParser, *, verb: str) -> None:
    p.add_argument(
        "--scenario",
        action="append",
        default=None,
        metavar="GLOB",
        help=f"scenario names to {verb}, e.g. 'split/*' (repeatable; default: all)",
    )
    p.add_argument(
        "--dir",
        type=_path,
        default=None,
        metavar="DIR",
        help="read scenarios from DIR (<area>/<behaviour>.yaml) instead of the shipped ones",
    )
    p.add_argument(
        "--smi-version",
        default="all",
        help="an SMI release (v0.4.0, v0.5.0, v0.6.0), a group/version such as "
        "split.smi-spec.io/v1alpha1, or all (default)",
    )


def _path(text: str) -> Path:
    """argparse type of --dir and --report: an empty one is the working directory to the OS,
    so `--dir ''` read it for scenarios and `--report ''` wrote four files into it."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path names no directory")
    return Path(text)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return EXIT_USAGE


def _targets(value: str) -> list[str] | None:
    """The target names of `--target`, each once: naming one twice would run it twice and
    report every scenario of it twice."""
    from conformance.targets import TARGETS

    names = list(TARGETS) if value == "all" else [v.strip() for v in value.split(",")]
    return list(dict.fromkeys(names)) if all(n in TARGETS for n in names) else None


def _report_dir_problem(directory: Path) -> str | None:
    """Why the reports cannot be written into `directory`, checked before the run (which may
    take minutes with real servers) rather than after it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"--report {directory}: exists and is not a directory"
    except OSError as exc:
        return f"--report {directory}: cannot create the directory: {exc.strerror or exc}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"--report {directory}: the directory is not writable"
    return None


def _select(args: argparse.Namespace, err: TextIO) -> list[Any] | int:
    from conformance.catalog import ScenarioError, discover

    if args.dir is not None and not args.dir.is_dir():
        # Otherwise a mistyped --dir reads as "no scenario matches".
        print(f"smictl conformance: --dir {args.dir}: no such directory", file=err)
        return EXIT_USAGE
    try:
        scenarios = discover(
            patterns=args.scenario or ["*"], smi_version=args.smi_version, root=args.dir
        )
    except ValueError as exc:  # an unknown --smi-version
        print(f"smictl conformance: {exc}", file=err)
        return EXIT_USAGE
    except ScenarioError as exc:
        for line in exc.lines:
            print(line, file=err)
        return EXIT_FAILED
    if not scenarios:
        print("smictl conformance: no scenario matches the selection", file=err)
        return EXIT_USAGE
    return scenarios


def list_command(args: argparse.Namespace) -> int:
    from smi.commands.validate import plural

    selected = _select(args, sys.stderr)
    if isinstance(selected, int):
        return selected
    for s in selected:
        print(f"{s.name:<72} {s.capability:<32} {', '.join(s.smi_versions)}")
    print(plural(len(selected), "scenario"))
    return EXIT_OK


def run_command(args: argparse.Namespace) -> int:
    from conformance.console import Console
    from conformance.interrupts import Interrupted, stop_on_signals
    from conformance.reports import write_reports
    from conformance.runner import run
    from conformance.targets import TARGETS, make_target
    from smi import __version__

    names = _targets(args.target)
    if names is None:
        print(
            f"smictl conformance: unknown target {args.target!r}; use {', '.join(TARGETS)} or all",
            file=sys.stderr,
        )
        return EXIT_USAGE
    selected = _select(args, sys.stderr)
    if isinstance(selected, int):
        return selected
    problem = _report_dir_problem(args.report) if args.report is not None else None
    if problem:
        print(f"smictl conformance: {problem}", file=sys.stderr)
        return EXIT_USAGE
    console = Console(sys.stdout, quiet=args.quiet)
    console.intro(targets=names, count=len(selected))
    try:
        with stop_on_signals():
            result = run(
                [make_target(n) for n in names],
                selected,
                progress=console.scenario,
                version=__version__,
                selection={
                    "target": args.target,
                    "scenario": ",".join(args.scenario or ["*"]),
                    "smi-version": args.smi_version,
                },
            )
    except Interrupted as exc:
        print(
            f"smictl conformance: interrupted by {exc}; every process it started was stopped",
            file=sys.stderr,
        )
        return exc.exit_code
    console.summary(result)
    code = _EXIT[result.verdict]
    if args.report is not None:
        # Before the verdict: a CI log's last line is the verdict, as documented.
        try:
            written = write_reports(result, args.report)
        except OSError as exc:
            print(f"smictl conformance: cannot write the reports: {exc}", file=sys.stderr)
            code = EXIT_FAILED
        else:
            for fmt, path in written.items():
                print(f"{fmt:>8}: {path}", flush=True)
    console.verdict(result)
    return code
