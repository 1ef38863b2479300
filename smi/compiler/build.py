"""`compile(resources) -> CompileResult`: hub resources to the MeshPolicy (DESIGN.md §4).

The one place SMI objects become enforcement rules; the CLI, the webhook, the control plane
and the conformance suite all call it. Deterministic: equal inputs in any order give equal
MeshPolicies (and byte-equal JSON), because every table is built from sorted keys. Every rule,
match and split carries the origin of the object it came from. What does not resolve is left
out and reported in `CompileResult.skipped` (SMI6001 and friends, all warnings): a dangling
reference never allows anything.

Input: hub objects or `smi.loading.Resource` values (`.obj`); `context` gives Services (their
ports, and which backend Services exist), `endpoints` the addresses behind each Service
("ns/name" -> endpoints), as the control plane knows them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smi.compiler.ir.model import MODES, Endpoint, MeshPolicy, Mode
from smi.compiler.resolve import collect
from smi.compiler.routes import RouteTable
from smi.compiler.splits import SplitCompiler, services
from smi.compiler.targets import TargetCompiler
from smi.errors import Diagnostic
from smi.gcpause import gc_paused
from smi.identity import DEFAULT_TRUST_DOMAIN


@dataclass(frozen=True)
class CompileResult:
    """The MeshPolicy and everything that was left out of it, one warning per reason."""

    policy: MeshPolicy
    skipped: tuple[Diagnostic, ...]


def compile(
    resources: Iterable[Any],
    *,
    context: Iterable[Any] = (),
    mode: Mode = "deny",
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    revision: int = 0,
    endpoints: Mapping[str, Sequence[Endpoint]] | None = None,
) -> CompileResult:
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    with gc_paused():
        inv = collect(resources, context=context, endpoints=endpoints)
        routes = RouteTable(inv)
        destinations = TargetCompiler(inv, routes, trust_domain).compile_all()
        splits = SplitCompiler(inv, routes).compile_all()
    policy = MeshPolicy(
        revision=revision,
        mode=mode,
        trust_domain=trust_domain,
        destinations=destinations,
        services=services(inv),
        splits=splits,
    )
    skipped = sorted(set(inv.diagnostics), key=lambda d: (d.object_ref, d.path, d.code, d.message))
    return CompileResult(policy=policy, skipped=tuple(skipped))
