"""`smictl policy test|list`: test Rego policies like `opa test`, and show what is loaded.

`smictl policy test [DIR...] [-v] [--coverage] [--threshold PCT]` runs every `test_*` rule of
the modules under the directories (default: the shipped policies) and prints one line per test,
`data.pkg.test_name: PASS (0.6ms)` (with -v; failures always), then `PASS: n/m`. With
--coverage it also measures rule-body coverage (smi.policy.coverage: a body counts when some
test fails with it disabled, because regopy has no coverage API) and, with --threshold, fails
under that percentage. Exit 0 when every test passes (and coverage is high enough), 1
otherwise; a module that does not parse or compile is one line `file:line: message (SMI500x)`
and exit 1.

`smictl policy list [--policies DIR]...` prints each admission policy: name, code,
enforcement, kinds and title (or JSON with -o json), after the checks `admit` and `serve` run
when they load the set: a set they would refuse is refused here too (exit 1). A --policies DIR
that holds no policy is a warning on standard error, in `admit` too, and a list of none says
`no policies` there.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smi.commands import flags

if TYPE_CHECKING:
    from smi.policy.modules import PolicyInfo

RULE = "-" * 80


def register(sub: Any) -> None:
    p = sub.add_parser("policy", help="test and list Rego admission policies")
    actions = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)

    t = actions.add_parser(
        "test",
        help="run the test_* rules of Rego policies (like opa test)",
        description="Run every test_* rule in the .rego files under DIR (default: the "
        "policies that ship with smictl).",
    )
    t.add_argument(
        "dirs",
        nargs="*",
        type=flags.path_text,
        metavar="DIR",
        help="policy directories or .rego files",
    )
    t.add_argument("-v", "--verbose", action="store_true", help="print every test and its output")
    t.add_argument("--coverage", action="store_true", help="measure rule-body coverage")
    t.add_argument(
        "--threshold",
        type=flags.percent,
        metavar="PCT",
        help="fail when coverage is below PCT percent (implies --coverage)",
    )
    t.add_argument(
        "--parameters",
        type=flags.path_text,
        metavar="FILE",
        help="YAML/JSON mapping: data.parameters",
    )
    t.set_defaults(func=run_test)

    ls = actions.add_parser("list", help="list the admission policies that would be loaded")
    ls.add_argument(
        "--policies",
        action="append",
        default=[],
        type=flags.path_text,
        metavar="DIR",
        help="a directory of Rego policies (<area>/<policy>/policy.rego), as admit's; repeatable",
    )
    ls.add_argument(
        "--no-shipped-policies",
        action="store_true",
        help="leave out the policies that ship with smictl",
    )
    ls.add_argument(
        "-o",
        "--output",
        choices=["text", "json"],
        default="text",
        help="text: one line per policy; json: every field of each (default: %(default)s)",
    )
    ls.set_defaults(func=run_list)


def run_test(args: argparse.Namespace) -> int:
    from smi.policy import testing
    from smi.policy.modules import read_modules
    from smi.policy.policyset import read_parameters, shipped_dir

    dirs = args.dirs or [shipped_dir()]
    modules = read_modules(dirs)
    parameters = read_parameters(args.parameters) if args.parameters else {}
    coverage = args.coverage or args.threshold is not None
    report = testing.run(modules, data={"parameters": parameters}, coverage=coverage)
    sys.stdout.write(format_report(report, verbose=args.verbose))
    ok = report.ok
    cov = report.coverage
    if cov is not None and args.threshold is not None and cov.percent < args.threshold:
        print(f"coverage {cov.percent:.1f}% is below the threshold {args.threshold:g}% (SMI5009)")
        ok = False
    if not report.results:
        print("no test_* rules found", file=sys.stderr)
    return 0 if ok else 1


def format_report(report: Any, *, verbose: bool) -> str:
    """`opa test` style: per-file groups of test lines, a rule, then PASS/FAIL/ERROR counts."""
    lines: list[str] = []
    current = None
    for r in report.results:
        if not verbose and r.status in ("PASS", "SKIP"):
            continue
        if r.case.module != current:
            if current is not None:
                lines.append("")
            lines.append(f"{r.case.module}:")
            current = r.case.module
        lines.append(f"{r.case.name}: {r.status} ({_duration(r.seconds)})")
        if r.error:
            lines.append(f"  {r.case.module}:{r.case.line}: {r.error}")
        shown = r.printed.strip()
        if shown and (verbose or r.status != "PASS"):
            lines.extend(f"  {x}" for x in shown.splitlines())
    if lines:
        lines.append("")
    lines.append(RULE)
    total = len(report.results)
    for status in ("PASS", "FAIL", "ERROR", "SKIP"):
        n = report.count(status)
        if n or (status == "PASS" and total):
            lines.append(f"{status}: {n}/{total}")
    if report.coverage is not None:
        lines.extend(_coverage_lines(report.coverage, verbose=verbose))
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f}s"
    if seconds >= 0.001:
        return f"{seconds * 1e3:.1f}ms"
    return f"{seconds * 1e6:.0f}µs"


def _coverage_lines(coverage: Any, *, verbose: bool) -> list[str]:
    out = [
        f"COVERAGE: {len(coverage.covered)}/{coverage.total} rule bodies "
        f"({coverage.percent:.1f}%): a body counts when some test fails with it disabled"
    ]
    for b in coverage.uncovered:
        out.append(f"  not covered: {b.where}: {b.rule}")
    for b in coverage.unmeasured:
        out.append(f"  not measured (the engine crashed on the mutant): {b.where}: {b.rule}")
    if verbose:
        out.extend(f"  covered: {b.where}: {b.rule}" for b in coverage.covered)
    return out


def run_list(args: argparse.Namespace) -> int:
    from smi.policy.engine import check
    from smi.policy.modules import policies_of, read_modules
    from smi.policy.policyset import shipped_dir

    dirs: Sequence[Any] = ([] if args.no_shipped_policies else [shipped_dir()]) + args.policies
    modules = [m for m in read_modules(dirs) if not m.is_test]
    infos = policies_of(modules)
    if infos:
        # "Would be loaded" only if admit and serve would load them: the compile and probe
        # they run (PolicySet.from_modules → EmbeddedEngine), without starting an evaluator.
        check(modules, entrypoints=[p.entrypoint for p in infos], data={"parameters": {}})
    for line in empty_policy_dirs(args.policies, infos):
        print(line, file=sys.stderr)
    if args.output == "json":
        json.dump([p.to_json() for p in infos], sys.stdout, indent=2)
        print()
        return 0
    if not infos:  # not a silent success: `admit` would check nothing but built-in rules
        print("no policies", file=sys.stderr)
    for p in infos:
        kinds = ",".join(p.kinds) or "*"
        print(f"{p.name:<28} {p.code:<9} {p.enforcement:<5} {kinds:<28} {p.title}")
    return 0


def empty_policy_dirs(dirs: Sequence[str], policies: Sequence[PolicyInfo]) -> list[str]:
    """A warning for each `--policies DIR` that gave no policy (`admit` and `policy list`): an
    empty or mistyped directory (`--policies org-polices/` beside `org-policies/`) loaded
    nothing and said nothing, and the gate then ran without the policies it was meant to."""
    from smi.errors import escaped_line

    files = [Path(p.file).resolve() for p in policies]
    out: list[str] = []
    for d in dict.fromkeys(dirs):
        root = Path(d).resolve()
        if not any(f == root or f.is_relative_to(root) for f in files):
            out.append(escaped_line(f"warning: --policies {d}: {_why_no_policy(root)}"))
    return out


def _why_no_policy(root: Path) -> str:
    """What a directory that gave no policy holds: none, or .rego files of which none defines
    `violation` (a conftest or OPA habit, `deny`, loads as a helper and checks nothing)."""
    import re

    try:
        found = [] if root.is_file() else sorted(root.rglob("*.rego"))
    except OSError:
        found = []
    modules = [f for f in found if not f.name.endswith("_test.rego")]
    if not modules:
        return "no .rego policy files"
    defines = re.compile(r"^(deny|warn)\b", re.MULTILINE)
    first = modules[0]
    try:
        rules = sorted(set(defines.findall(first.read_text(errors="replace"))))
    except OSError:
        rules = []
    shown = first.relative_to(root) if first.is_relative_to(root) else first
    what = f"defines {' and '.join(rules)}, not `violation`" if rules else "does not"
    rest = len(modules) - 1
    more = f" (nor {'does' if rest == 1 else 'do'} {rest} more)" if rest else ""
    return (
        f"{len(modules)} .rego file{'s' if len(modules) > 1 else ''} but no policy: a policy's "
        f"package defines `violation`; {shown} {what}{more}"
    )
