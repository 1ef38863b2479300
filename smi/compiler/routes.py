"""Traffic specs (HTTPRouteGroup, TCPRoute, UDPRoute) as the MeshPolicy holds them.

Each HTTPRouteGroup is turned into `HttpMatch` values once, however many TrafficTargets and
TrafficSplits reference it. Normalisation (DESIGN.md §3): `*` or no methods = any method
(`methods=()`), header conditions sorted by lower-case name (every one kept, `:authority` as
`host`, as the hub names it), every regex checked as RE2 — a match whose regex RE2 cannot run
is dropped and reported, so it allows nothing.
"""

from __future__ import annotations

from smi.apis.specs.hub import HTTPMatch, HTTPRouteGroup, header_name
from smi.compiler.ir.matching import RegexCache
from smi.compiler.ir.model import HttpMatch
from smi.compiler.resolve import NOT_COMPILABLE, Inventory, namespace_of, ref


class RouteTable:
    """HTTPRouteGroups of the inventory, compiled on first use. A group maps match name ->
    HttpMatch, or -> None for a match that was dropped (and already reported)."""

    __slots__ = ("_compiled", "_inv", "_regexes")

    def __init__(self, inv: Inventory) -> None:
        self._inv = inv
        self._regexes = RegexCache()
        self._compiled: dict[str, dict[str, HttpMatch | None]] = {}

    def group(self, key: str) -> dict[str, HttpMatch | None] | None:
        """The matches of HTTPRouteGroup "ns/name", or None if there is no such group."""
        table = self._compiled.get(key)
        if table is None:
            group = self._inv.groups.get(key)
            if group is None:
                return None
            table = self._compiled[key] = self._compile(group)
        return table

    def _compile(self, group: HTTPRouteGroup) -> dict[str, HttpMatch | None]:
        prefix = f"{namespace_of(group.metadata)}/HTTPRouteGroup/{group.metadata.name}#"
        table: dict[str, HttpMatch | None] = {}
        for i, match in enumerate(group.matches):
            if match.name in table:  # duplicate names are an admission error; first wins
                continue
            problem = self._regex_problem(match)
            if problem is not None:
                self._inv.diag(
                    NOT_COMPILABLE,
                    ref("HTTPRouteGroup", group.metadata),
                    f"match {match.name!r} dropped: {problem}",
                    path=f"spec.matches[{i}]",
                )
                table[match.name] = None
                continue
            table[match.name] = http_match(prefix + match.name, match)
        return table

    def _regex_problem(self, match: HTTPMatch) -> str | None:
        regexes = [match.path_regex] if match.path_regex is not None else []
        regexes += [value for _, value in match.headers or ()]
        for regex in regexes:
            problem = self._regexes.problem(regex)
            if problem is not None:
                return problem
        return None


def http_match(origin: str, match: HTTPMatch) -> HttpMatch:
    """Every header condition is kept, even two for one name (`user-agent` and `User-Agent`,
    an admission error): within a match they are AND-ed (DESIGN.md §3), so keeping only one
    would allow requests the other condition refuses. Names go through the hub's
    `header_name` once more: a hub built by other means than the converters (a lossy-fields
    annotation holds hub values) must not put an `:authority` no request carries into the
    MeshPolicy."""
    methods = match.methods or ()
    headers = {(header_name(name), value) for name, value in match.headers or ()}
    return HttpMatch(
        origin=origin,
        methods=() if "*" in methods else tuple(sorted(set(methods))),
        path_regex=match.path_regex,
        headers=tuple(sorted(headers)),
    )
