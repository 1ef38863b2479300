"""`smictl compile -f PATH... [-o json|yaml] [--mode deny|audit|permissive]`: the MeshPolicy.

Prints exactly what the control plane would serve to proxies for these manifests, so a change
can be reviewed (and diffed) before it ships. Manifests that do not load or validate are
reported one line each and nothing is printed (exit 1); so is input without an SMI object
(SMI1012: empty, only comments, only Services), whose policy would deny every request. What
the compiler skipped (dangling references and the like) goes to standard error as warnings,
and the policy is still printed.

Also holds the input handling `explain` and `access-matrix` share.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smi.commands import flags
from smi.errors import Diagnostic

if TYPE_CHECKING:  # the compiler is imported when a command runs, not at CLI start-up
    from smi.compiler.build import CompileResult
    from smi.loading import LoadResult


def add_input_arguments(p: argparse.ArgumentParser, *, mode: bool = True) -> None:
    flags.add_filenames(p)
    p.add_argument(
        "-n", "--namespace", default="default", type=flags.namespace,
        help="namespace of objects that name none (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--trust-domain", default="cluster.local", type=_trust_domain,
        help="SPIFFE trust domain of workload identities (default: %(default)s)",
    )  # fmt: skip
    if mode:
        p.add_argument(
            "--mode", choices=["deny", "audit", "permissive"], default="deny",
            help="enforcement mode written into the policy (default: %(default)s)",
        )  # fmt: skip


def _trust_domain(text: str) -> str:
    """argparse type of --trust-domain: a usage error (exit 2) at once, rather than a policy
    printed with SPIFFE IDs no workload has (`spiffe:///ns/...`) and exit 0."""
    problem = flags.trust_domain_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _revision(text: str) -> int:
    """argparse type of --revision: 0 (the default, "no store") up to int64, SQLite's and the
    proxies' (`MAX_REVISION`). A negative one was printed as is, and 10**30 made a policy no
    int64 reader can take."""
    from smi.compiler.ir.model import MAX_REVISION

    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_REVISION:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to {MAX_REVISION}, not {text!r} (SMI6003)"
        )
    return value


def register(sub: Any) -> None:
    p = sub.add_parser(
        "compile",
        help="compile SMI manifests into the MeshPolicy proxies enforce",
        description="Load, validate and compile SMI manifests; print the MeshPolicy. Skipped "
        "references are reported on standard error.",
    )
    add_input_arguments(p)
    p.add_argument("-o", "--output", choices=["json", "yaml"], default="json")
    p.add_argument("--revision", type=_revision, default=0, help="revision number to stamp")
    p.set_defaults(func=run)


NOTHING_COMPILED = "nothing compiled: a policy without SMI objects denies every request"


@dataclass(frozen=True)
class Compiled:
    loaded: LoadResult
    result: CompileResult


def load_and_compile(args: argparse.Namespace) -> Compiled | None:
    """Load, validate and compile `args.paths`; None (problems printed) when the manifests
    have errors or hold no SMI object (SMI1012, one line: the policy of no SMI object denies
    every request, and printing it for an empty input shipped a deny-all policy)."""
    from smi.compiler.build import compile as compile_policy
    from smi.compiler.checks import validate
    from smi.loading import load_paths, nothing_to_do
    from smi.sources import LINKED_DIRECTORY

    loaded = load_paths(args.paths, default_namespace=args.namespace)
    # Other load warnings (kinds skipped) are no news here; manifests not read at all are.
    print_diagnostics([d for d in loaded.diagnostics if d.code == LINKED_DIRECTORY])
    empty = nothing_to_do(loaded, args.paths, smi_only=True, then=NOTHING_COMPILED)
    if empty is not None:
        print_diagnostics([empty])
        return None
    errors = [d for d in loaded.diagnostics if d.is_error]
    if not errors:
        errors = [d for d in validate(loaded.resources, loaded.context) if d.is_error]
    if errors:
        print_diagnostics(errors)
        print(f"smictl: {len(errors)} error(s) in the manifests; nothing compiled", file=sys.stderr)
        return None
    result = compile_policy(
        loaded.resources,
        context=loaded.context,
        mode=getattr(args, "mode", "deny"),
        trust_domain=args.trust_domain,
        revision=getattr(args, "revision", 0),
    )
    return Compiled(loaded=loaded, result=result)


def print_diagnostics(diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]) -> None:
    for d in diagnostics:
        print(d.format(), file=sys.stderr)


def warn_if_inert(mode: str) -> None:
    if mode == "permissive":
        print(
            "smictl: WARNING: mode permissive: policies are inert, every request is allowed",
            file=sys.stderr,
        )
    elif mode == "audit":
        print("smictl: mode audit: denies are recorded, not enforced", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    compiled = load_and_compile(args)
    if compiled is None:
        return 1
    policy = compiled.result.policy
    print_diagnostics(compiled.result.skipped)
    warn_if_inert(policy.mode)
    doc = policy.to_dict()
    if args.output == "yaml":
        import yaml

        from smi.yamlout import Dumper

        sys.stdout.write(yaml.dump(doc, Dumper=Dumper, sort_keys=True, default_flow_style=False))
    else:
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
        print()
    return 0
