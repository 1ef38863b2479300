"""The per-revision index of a MeshPolicy: everything `authorize` and `pick_backend` look up.

Built once per MeshPolicy revision (the proxy swaps it atomically), so the request path does
dictionary lookups and at most a few RE2 matches: rules are pre-grouped by destination, then by
source identity, then by HTTP method; L4 grants are flattened to port -> TrafficTarget tables;
every regex is compiled once; split weights are cumulative for bisection; allow decisions are
pre-built. Rules are walked in origin order, so the TrafficTarget named in a decision is
deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal

from smi.compiler.ir.decision import Decision
from smi.compiler.ir.matching import HttpMatcher, RegexCache, compile_matches
from smi.compiler.ir.model import AuthzRule, HttpMatch, MeshPolicy, Mode, Service, Split
from smi.gcpause import gc_paused

Ports = frozenset[int] | None  # None = every port


def effective_ports(
    ports: tuple[int, ...] | None, restriction: tuple[int, ...]
) -> Ports | Literal[False]:
    """Effective ports of one rule kind: False = the kind is absent; None = every port.
    `restriction` is AuthzRule.ports (access v1alpha1/v1alpha2 destination.port)."""
    if ports is None:
        return False
    if not ports:
        return frozenset(restriction) if restriction else None
    if not restriction:
        return frozenset(ports)
    return frozenset(ports) & frozenset(restriction)


class PortGrant:
    """Which ports some rule kind covers, and the first TrafficTarget (by origin) that covers
    each. Fed rules in origin order."""

    __slots__ = ("all_origin", "ports")

    def __init__(self) -> None:
        self.all_origin: str | None = None
        self.ports: dict[int, str] = {}

    def add(self, ports: Ports, origin: str) -> None:
        if ports is None:
            if self.all_origin is None:
                self.all_origin = origin
            return
        for port in ports:
            self.ports.setdefault(port, origin)

    def lookup(self, port: int | None) -> str | None:
        """The origin that covers `port` (None = any port at all), or None."""
        if port is None:
            return self.all_origin or (min(self.ports.values()) if self.ports else None)
        specific = self.ports.get(port)
        if specific is None or self.all_origin is None:
            return specific or self.all_origin
        return min(specific, self.all_origin)

    def __bool__(self) -> bool:
        return self.all_origin is not None or bool(self.ports)


class HttpEntry:
    """One HTTP match reachable through one TrafficTarget, with its pre-built allow."""

    __slots__ = ("allow", "matcher", "ports", "rule")

    def __init__(self, *, rule: str, ports: Ports, matcher: HttpMatcher, mode: Mode) -> None:
        self.rule = rule
        self.ports = ports
        self.matcher = matcher
        self.allow = Decision(True, mode, "allow", (rule,), False, matcher.origin)


class CompiledRule:
    """One AuthzRule with its effective ports per kind (False = the kind is absent) and its
    HTTP entries; built once and shared by every source the rule names."""

    __slots__ = ("entries", "http", "origin", "rule", "tcp", "udp")

    def __init__(self, rule: AuthzRule, matchers: MatcherCache, mode: Mode) -> None:
        self.rule = rule
        self.origin = rule.origin
        self.tcp = effective_ports(rule.tcp_ports, rule.ports)
        self.udp = effective_ports(rule.udp_ports, rule.ports)
        self.http = effective_ports((), rule.ports) if rule.http else False
        http = self.http
        self.entries = tuple(
            HttpEntry(rule=rule.origin, ports=http, matcher=matchers.get(m), mode=mode)
            for m in rule.http
            if http is not False
        )


class MatcherCache:
    """One `HttpMatcher` per distinct HttpMatch (rules share route groups), one compiled
    regex per distinct pattern."""

    __slots__ = ("_matchers", "regexes")

    def __init__(self) -> None:
        self.regexes = RegexCache()
        self._matchers: dict[HttpMatch, HttpMatcher] = {}

    def get(self, match: HttpMatch) -> HttpMatcher:
        matcher = self._matchers.get(match)
        if matcher is None:
            matcher = self._matchers[match] = HttpMatcher(match, self.regexes)
        return matcher


class SourceView:
    """What one source identity may do to one destination (the union of its rules). Sources
    named by the same set of rules share one view."""

    __slots__ = (
        "by_method",
        "entries",
        "http",
        "http_any",
        "origins",
        "rules",
        "tcp",
        "tcp_allow",
        "udp",
        "udp_allow",
    )

    def __init__(self, rules: tuple[CompiledRule, ...], mode: Mode) -> None:
        self.rules = tuple(r.rule for r in rules)
        self.origins = tuple(r.origin for r in rules)
        self.tcp, self.udp, self.http = PortGrant(), PortGrant(), PortGrant()
        for rule in rules:
            for grant, ports in (
                (self.tcp, rule.tcp),
                (self.udp, rule.udp),
                (self.http, rule.http),
            ):
                if ports is not False:
                    grant.add(ports, rule.origin)
        entries = self.entries = tuple(e for r in rules for e in r.entries)
        self.http_any = tuple(e for e in entries if e.matcher.any_method)
        methods = {m for e in entries for m in e.matcher.methods if m != "*"}
        self.by_method = {
            m: tuple(e for e in entries if e.matcher.any_method or m in e.matcher.methods)
            for m in sorted(methods)
        }
        # Pre-built L4 allows, per TrafficTarget that grants some port.
        self.tcp_allow = {
            o: Decision(True, mode, "allow", (o,), False, "tcp") for o in _origins(self.tcp)
        }
        self.udp_allow = {
            o: Decision(True, mode, "allow", (o,), False, "udp") for o in _origins(self.udp)
        }

    def http_candidates(self, method: str) -> tuple[HttpEntry, ...]:
        """The HTTP entries whose method condition `method` satisfies, in origin order."""
        return self.by_method.get(method, self.http_any)


def _origins(grant: PortGrant) -> set[str]:
    found = set(grant.ports.values())
    if grant.all_origin is not None:
        found.add(grant.all_origin)
    return found


class DestinationIndex:
    """Every rule for one destination identity, grouped by source."""

    __slots__ = ("by_source", "http", "identity", "origins", "rules", "tcp")

    def __init__(
        self, identity: str, rules: Iterable[AuthzRule], matchers: MatcherCache, mode: Mode
    ) -> None:
        self.identity = identity
        self.rules = tuple(sorted(rules, key=lambda r: r.origin))
        self.origins = tuple(r.origin for r in self.rules)
        compiled = [CompiledRule(r, matchers, mode) for r in self.rules]
        grouped: dict[str, list[CompiledRule]] = {}
        for rule in compiled:
            for source in dict.fromkeys(rule.rule.sources):
                grouped.setdefault(source, []).append(rule)
        views: dict[tuple[str, ...], SourceView] = {}
        self.by_source: dict[str, SourceView] = {}
        for source, source_rules in grouped.items():
            key = tuple(r.origin for r in source_rules)
            view = views.get(key)
            if view is None:
                view = views[key] = SourceView(tuple(source_rules), mode)
            self.by_source[source] = view
        self.http, self.tcp = PortGrant(), PortGrant()
        for view in views.values():
            _merge(self.http, view.http)
            _merge(self.tcp, view.tcp)


def _merge(into: PortGrant, grant: PortGrant) -> None:
    if grant.all_origin is not None:
        into.all_origin = min(filter(None, (into.all_origin, grant.all_origin)))
    for port, origin in grant.ports.items():
        into.ports[port] = min(origin, into.ports.get(port, origin))


@dataclass(frozen=True, slots=True, eq=False)
class IndexedSplit(Split):
    """A `Split` with what `pick_backend` needs pre-computed: cumulative weights for bisection
    and compiled matchers. Compares and hashes as the plain `Split` it was built from."""

    cumulative: tuple[int, ...] = ()
    total: int = 0
    matchers: tuple[HttpMatcher, ...] = ()

    @classmethod
    def of(cls, split: Split, cache: RegexCache | None = None) -> IndexedSplit:
        cumulative = tuple(accumulate(max(b.weight, 0) for b in split.backends))
        return cls(
            origin=split.origin,
            backends=split.backends,
            matches=split.matches,
            cumulative=cumulative,
            total=cumulative[-1] if cumulative else 0,
            matchers=compile_matches(split.matches, cache or RegexCache()),
        )

    def plain(self) -> Split:
        return Split(origin=self.origin, backends=self.backends, matches=self.matches)

    def on_port(self, root: str, port: int, services: Mapping[str, Service]) -> IndexedSplit | None:
        """This split (of root service `root`) for requests to `port`. SPEC.md §TrafficSplit: a
        backend whose Service lacks the port gets no traffic on it (a Service known without
        ports, only from registered endpoints, says nothing). Self when every backend stays;
        None when no backend with a positive weight is left (the request goes to the root)."""
        kept = tuple(
            b
            for b in self.backends
            if b.service == root
            or not (ports := services[b.service].ports if b.service in services else ())
            or port in ports
        )
        if len(kept) == len(self.backends):
            return self
        cumulative = tuple(accumulate(max(b.weight, 0) for b in kept))
        if not cumulative or cumulative[-1] <= 0:
            return None
        return IndexedSplit(
            origin=self.origin,
            backends=kept,
            matches=self.matches,
            cumulative=cumulative,
            total=cumulative[-1],
            matchers=self.matchers,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        return (self.origin, self.backends, self.matches) == (
            other.origin,
            other.backends,
            other.matches,
        )

    def __hash__(self) -> int:
        return hash((self.origin, self.backends, self.matches))


class PolicyIndex:
    """A MeshPolicy, indexed for lookups. Immutable after `build`."""

    __slots__ = (
        "destinations",
        "mode",
        "permissive",
        "policy",
        "regex_errors",
        "services",
        "splits",
    )

    def __init__(self, policy: MeshPolicy) -> None:
        matchers = MatcherCache()
        cache = matchers.regexes
        self.policy = policy
        self.mode: Mode = policy.mode
        with gc_paused():
            self.destinations = {
                dest: DestinationIndex(dest, rules, matchers, policy.mode)
                for dest, rules in policy.destinations.items()
                if rules
            }
            self.splits = {k: IndexedSplit.of(s, cache) for k, s in policy.splits.items()}
        self.services: dict[str, Service] = dict(policy.services)
        self.permissive = Decision(True, policy.mode, "permissive", (), False, "")
        # Patterns that are not RE2: their matches never match. The compiler never emits
        # them; a hand-edited MeshPolicy might.
        self.regex_errors: dict[str, str] = dict(cache.errors)

    @classmethod
    def build(cls, policy: MeshPolicy) -> PolicyIndex:
        return cls(policy)

    def destination(self, identity: str) -> DestinationIndex | None:
        return self.destinations.get(identity)

    def header_names(self, destination: str) -> frozenset[str]:
        """The (lower-case) header names some HTTP match of `destination`'s rules looks at:
        `authorize` for that destination reads no other header, so a cache of its decisions
        (the proxy's) may key on these alone."""
        dest = self.destinations.get(destination)
        if dest is None:
            return frozenset()
        return frozenset(
            name
            for view in dest.by_source.values()
            for entry in view.entries
            for name, _, _ in entry.matcher.headers
        )

    def port_speaks(self, destination: str, port: int) -> Literal["http", "tcp"] | None:
        """What `port` speaks for `destination` by the rules that cover it (of any source):
        "tcp" when only TCPRoute rules do (no HTTPRouteGroup rule applies there), so the proxy
        passes bytes through at L4; "http" when an HTTP rule does; None when no rule covers
        it, and nothing says what it speaks (the proxy detects it: `proxy.detect`). The same
        for every caller: see `proxy.routing.InboundRouter.protocol_for`."""
        dest = self.destinations.get(destination)
        if dest is None:
            return None
        if dest.http.lookup(port) is not None:
            return "http"
        return "tcp" if dest.tcp.lookup(port) is not None else None

    def port_protocol(self, destination: str, port: int) -> Literal["http", "tcp"]:
        """`port_speaks`, with "http" where no rule covers the port."""
        return self.port_speaks(destination, port) or "http"

    def port_covered(self, destination: str, port: int) -> bool:
        """Whether some rule (HTTP or TCP, of any source) covers `port` for `destination`."""
        return self.port_speaks(destination, port) is not None

    def split_for(self, service_key: str) -> IndexedSplit | None:
        """The split of root service "ns/name", or None."""
        return self.splits.get(service_key)

    def service(self, service_key: str) -> Service | None:
        return self.services.get(service_key)
