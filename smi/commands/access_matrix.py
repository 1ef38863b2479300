"""`smictl access-matrix -f PATH... [-o md|dot|svg|png]`: who may call whom, on which routes.

Reads the compiled MeshPolicy (what proxies enforce), not the manifests, so skipped references
and unresolved subjects are already gone and every listed edge really is allowed. `md` gives a
per-edge table (caller, callee, what, which TrafficTarget) and a caller-by-callee grid; `dot` a
Graphviz graph with one box per identity grouped by namespace; `svg` and `png` render that
graph with Graphviz's `dot`, which must be on PATH (Debian package `graphviz`).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smi.commands.compile import add_input_arguments, load_and_compile, print_diagnostics
from smi.errors import escaped_line

if TYPE_CHECKING:
    from smi.compiler.ir.model import AuthzRule, MeshPolicy

RENDER_TIMEOUT_S = 60


class RenderError(Exception):
    """Graphviz is missing or failed; one line for the user."""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "access-matrix",
        help="who may call whom on which routes, as a table or a graph",
        description="Compile the manifests and list every allowed caller -> callee edge with "
        "its routes. Everything not listed is denied.",
    )
    add_input_arguments(p, mode=False)
    p.add_argument(
        "-o",
        "--output",
        choices=["md", "dot", "svg", "png"],
        default="md",
        help="md: a Markdown table and grid; dot: a Graphviz graph; svg, png: that graph drawn "
        "by Graphviz's dot (default: %(default)s)",
    )
    p.set_defaults(func=run)


@dataclass(frozen=True)
class Edge:
    source: str
    destination: str
    allows: tuple[str, ...]
    via: str


def run(args: argparse.Namespace) -> int:
    compiled = load_and_compile(args)
    if compiled is None:
        return 1
    print_diagnostics(compiled.result.skipped)
    policy = compiled.result.policy
    edges = edges_of(policy)
    if args.output == "md":
        sys.stdout.write(to_markdown(policy, edges))
        return 0
    graph = to_dot(policy, edges)
    if args.output == "dot":
        sys.stdout.write(graph)
        return 0
    try:
        sys.stdout.buffer.write(render(graph, args.output))
    except RenderError as exc:
        print(f"smictl access-matrix: {exc}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    return 0


def edges_of(policy: MeshPolicy) -> list[Edge]:
    """One edge per (source, destination, TrafficTarget), sorted."""
    from smi.compiler.explain import describe_match, short

    td = policy.trust_domain
    edges = [
        Edge(short(source, td), short(dest, td), _allows(rule, describe_match), rule.origin)
        for dest, rules in policy.destinations.items()
        for rule in rules
        for source in rule.sources
    ]
    return sorted(edges, key=lambda e: (e.source, e.destination, e.via))


def _allows(rule: AuthzRule, describe: Any) -> tuple[str, ...]:
    """What the rule lets through, one entry per match or L4 route. A destination port (access
    v1alpha1/v1alpha2 `destination.port`) narrows each: an HTTP match is followed by it, and
    an L4 route's ports are met with it as the proxy's index meets them (`effective_ports`)."""
    from smi.compiler.ir.index import effective_ports

    only = ", ".join(map(str, rule.ports))
    out = [f"{describe(m)} (port {only} only)" if only else str(describe(m)) for m in rule.http]
    for name, route_ports in (("tcp", rule.tcp_ports), ("udp", rule.udp_ports)):
        ports = effective_ports(route_ports, rule.ports)
        if ports is False:
            continue
        if ports is not None and not ports:
            out.append(f"{name}: no port (its ports are not the destination's port {only})")
            continue
        where = "every port" if ports is None else "port " + ", ".join(map(str, sorted(ports)))
        out.append(f"{name}: {where}" + (" (any traffic, HTTP included)" if name == "tcp" else ""))
    return tuple(out)


def _cell(text: str) -> str:
    """A table cell of manifest text: a regex's newline or `|` would end the row or the cell
    and let a manifest write rows of its own, and its `*`, `_`, `<b>` would be read as
    emphasis or HTML (`/api/.*/v*` in italics, a tag rendered). Each is escaped with a
    backslash, which CommonMark allows before any ASCII punctuation."""
    return _MARKDOWN.sub(r"\\\g<0>", escaped_line(text))


_MARKDOWN = re.compile(r"[\\`*_\[\]<>|~&]")


def to_markdown(policy: MeshPolicy, edges: Sequence[Edge]) -> str:
    callers = sorted({e.source for e in edges})
    callees = sorted({e.destination for e in edges})
    lines = [
        "# Access matrix",
        "",
        f"mode: {policy.mode} · trust domain: {policy.trust_domain} · "
        f"{len(callees)} callee(s) · {len(edges)} allowed edge(s). "
        "Anything not listed is denied.",
        "",
    ]
    if policy.mode == "permissive":
        lines += ["**Mode permissive: policies are inert, every request is allowed.**", ""]
    lines += ["| caller | callee | may | via |", "|---|---|---|---|"]
    for e in edges:
        may = "<br>".join(_cell(a) for a in e.allows)
        lines.append(f"| {e.source} | {e.destination} | {may} | {e.via} |")
    if edges:
        allowed = {(e.source, e.destination) for e in edges}
        lines += ["", "| caller \\ callee | " + " | ".join(callees) + " |"]
        lines.append("|---" * (len(callees) + 1) + "|")
        for caller in callers:
            marks = ["✓" if (caller, callee) in allowed else "" for callee in callees]
            lines.append(f"| {caller} | " + " | ".join(marks) + " |")
    return "\n".join(lines) + "\n"


def _quote(*lines: str) -> str:
    """A DOT string; several lines are joined with DOT's own line-break escape."""
    escaped = (escaped_line(line).replace("\\", "\\\\").replace('"', '\\"') for line in lines)
    return '"' + "\\n".join(escaped) + '"'


def to_dot(policy: MeshPolicy, edges: Sequence[Edge]) -> str:
    nodes = sorted({e.source for e in edges} | {e.destination for e in edges})
    by_ns: dict[str, list[str]] = {}
    for node in nodes:
        ns = node.partition("/")[0] if not node.startswith("spiffe://") else ""
        by_ns.setdefault(ns, []).append(node)
    out = [
        "digraph access {",
        "  rankdir=LR;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
        f"  label={_quote(f'SMI access, mode {policy.mode}; anything not drawn is denied')};",
    ]
    for ns in sorted(by_ns):
        indent = "  "
        if ns:
            out.append(f"  subgraph {_quote('cluster_' + ns)} {{")
            out.append(f"    label={_quote('namespace ' + ns)};")
            indent = "    "
        for node in by_ns[ns]:
            out.append(f"{indent}{_quote(node)} [label={_quote(node.rpartition('/')[2])}];")
        if ns:
            out.append("  }")
    for e in edges:
        label = _quote(*e.allows)
        out.append(f"  {_quote(e.source)} -> {_quote(e.destination)} [label={label}];")
    out.append("}")
    return "\n".join(out) + "\n"


def render(graph: str, fmt: str) -> bytes:
    """The graph rendered by Graphviz `dot` as `fmt` (svg or png)."""
    dot = shutil.which("dot")
    if dot is None:
        raise RenderError(
            f"-o {fmt} needs Graphviz's `dot` on PATH: install the Debian package `graphviz` "
            "(apt-get install graphviz), or use -o dot"
        )
    try:
        done = subprocess.run(
            [dot, f"-T{fmt}"],
            input=graph.encode(),
            capture_output=True,
            timeout=RENDER_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RenderError(f"running {dot} failed: {exc}") from exc
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise RenderError(f"dot -T{fmt} failed: {reason[0] if reason else done.returncode}")
    return done.stdout
