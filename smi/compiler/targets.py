"""TrafficTargets (and the IdentityBindings they name) -> `AuthzRule`s per destination identity.

DESIGN.md §3: the destination namespace defaults to, and must equal, the TrafficTarget's own; a
source without a namespace means the TrafficTarget's namespace; rules resolve in the
TrafficTarget's namespace; an HTTPRouteGroup rule without `matches` covers every match; a
TCPRoute/UDPRoute with no ports covers every port; access v1alpha1/v1alpha2
`destination.port` restricts every rule (`AuthzRule.ports`). Whatever does not resolve is
skipped and reported — it never widens access. A TrafficTarget left with no source or no rule,
or whose `destination.port` none of its rules opens, allows nothing and is left out of the
MeshPolicy (SMI6004).

IdentityBinding (access v1alpha4 draft) subjects resolve to SPIFFE ids through their
`serviceAccount` and `spiffeIdentities` schemes; `podLabelSelector` names pods, not identities,
and is reported as skipped. As a destination, a binding may only name identities of the
TrafficTarget's own namespace in this trust domain — the same rule as for ServiceAccounts. As a
source, a ServiceAccount id of this trust domain in another namespace than the binding's is
skipped: a binding describes only workloads of its own namespace (SPEC.md §2.5). That is
reported once, at the binding's entry, however many TrafficTargets name the binding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smi.apis.access.hub import Subject, TrafficTarget
from smi.compiler.ir.model import AuthzRule, HttpMatch
from smi.compiler.resolve import (
    ALLOWS_NOTHING,
    NOT_COMPILABLE,
    UNRESOLVED,
    Inventory,
    namespace_of,
    ref,
)
from smi.compiler.routes import RouteTable
from smi.identity import spiffe_id, spiffe_path


@dataclass(slots=True)
class _Rules:
    """The union of one TrafficTarget's resolved rules."""

    http: dict[str, HttpMatch] = field(default_factory=dict)
    tcp: set[int] | None = None  # None: no TCPRoute rule; empty set after `tcp_all`
    tcp_all: bool = False
    udp: set[int] | None = None
    udp_all: bool = False

    def empty(self) -> bool:
        return not self.http and self.tcp is None and self.udp is None


def _ports(ports: set[int] | None, every: bool) -> tuple[int, ...] | None:
    if ports is None:
        return None
    return () if every else tuple(sorted(ports))


def _service_account_namespace(identity: str, trust_domain: str) -> str | None:
    """The namespace of a ServiceAccount SPIFFE id of `trust_domain` (`ns/<ns>/sa/<sa>`), or
    None for an id of another shape or trust domain."""
    segments = spiffe_path(identity)
    if (
        not identity.startswith(f"spiffe://{trust_domain}/")
        or segments is None
        or len(segments) != 4
        or segments[0] != "ns"
        or segments[2] != "sa"
    ):
        return None
    return segments[1]


def _opens(rules: _Rules, port: int) -> bool:
    """Whether some rule still allows something once restricted to `destination.port`: an
    HTTP rule always does (its matches name no port); an L4 rule if it covers the port."""
    return bool(rules.http) or any(
        ports is not None and (every or port in ports)
        for ports, every in ((rules.tcp, rules.tcp_all), (rules.udp, rules.udp_all))
    )


def _opened(rules: _Rules) -> str:
    """ "TCPRoute 5432; UDPRoute 53": the ports the L4 rules open, for SMI6004."""
    return "; ".join(
        f"{kind} {', '.join(str(p) for p in sorted(ports))}"
        for kind, ports in (("TCPRoute", rules.tcp), ("UDPRoute", rules.udp))
        if ports
    )


class TargetCompiler:
    """Compiles every TrafficTarget of an inventory; diagnostics go to the inventory."""

    __slots__ = ("_bindings", "_inv", "_routes", "_td")

    def __init__(self, inv: Inventory, routes: RouteTable, trust_domain: str) -> None:
        self._inv = inv
        self._routes = routes
        self._td = trust_domain
        self._bindings: dict[str, tuple[str, ...] | None] = {}

    def compile_all(self) -> dict[str, tuple[AuthzRule, ...]]:
        """destination SPIFFE id -> its rules, both sorted."""
        out: dict[str, list[AuthzRule]] = {}
        for key in sorted(self._inv.targets):
            compiled = self._target(self._inv.targets[key])
            if compiled is not None:
                destinations, rule = compiled
                for dest in destinations:
                    out.setdefault(dest, []).append(rule)
        return {d: tuple(sorted(out[d], key=lambda r: r.origin)) for d in sorted(out)}

    def _target(self, tt: TrafficTarget) -> tuple[tuple[str, ...], AuthzRule] | None:
        ns = namespace_of(tt.metadata)
        origin = ref("TrafficTarget", tt.metadata)
        destinations = self._destination(tt, ns, origin)
        if not destinations:
            return None
        sources: set[str] = set()
        for i, subject in enumerate(tt.sources):
            sources.update(self._source(subject, ns, origin, f"spec.sources[{i}]"))
        rules = self._rules(tt, ns, origin)
        if not sources or rules.empty():
            what = "no source" if not sources else "no rule"
            self._inv.diag(
                ALLOWS_NOTHING, origin, f"{what} resolved: it allows nothing and is left out"
            )
            return None
        port = tt.destination.port
        if port is not None and not _opens(rules, port):
            self._inv.diag(
                ALLOWS_NOTHING,
                origin,
                f"destination.port {port} is none of the ports its rules open "
                f"({_opened(rules)}): it allows nothing and is left out",
                path="spec.destination.port",
            )
            return None
        return destinations, AuthzRule(
            origin=origin,
            sources=tuple(sorted(sources)),
            http=tuple(rules.http[o] for o in sorted(rules.http)),
            tcp_ports=_ports(rules.tcp, rules.tcp_all),
            udp_ports=_ports(rules.udp, rules.udp_all),
            ports=(port,) if port is not None else (),
        )

    def _destination(self, tt: TrafficTarget, ns: str, origin: str) -> tuple[str, ...]:
        dest = tt.destination
        if dest.namespace not in ("", ns):
            self._inv.diag(
                NOT_COMPILABLE,
                origin,
                f"destination namespace {dest.namespace!r} differs from the TrafficTarget's "
                f"namespace {ns!r}: skipped",
                path="spec.destination.namespace",
            )
            return ()
        ids = self._subject(dest, ns, origin, "spec.destination")
        own = f"spiffe://{self._td}/ns/{ns}/sa/"
        foreign = [i for i in ids if not i.startswith(own)]
        for identity in foreign:
            self._inv.diag(
                NOT_COMPILABLE,
                origin,
                f"destination identity {identity} is not a workload of namespace {ns!r}: skipped",
                path="spec.destination",
            )
        return tuple(i for i in ids if i.startswith(own))

    def _source(self, subject: Subject, ns: str, origin: str, path: str) -> tuple[str, ...]:
        """A source's identities, less those of an IdentityBinding that name a ServiceAccount
        of another namespace of this trust domain: a binding describes only workloads of its
        own (SPEC.md §2.5), so granting such an entry let a binding in team-x admit
        kube-system/admin. An id of another trust domain (federation: the spec's own example
        lists one) names no namespace of this mesh, and is a source as written."""
        ids = self._subject(subject, ns, origin, path)
        if subject.kind != "IdentityBinding":
            return ids
        own = subject.namespace or ns
        kept = []
        for identity in ids:
            named = _service_account_namespace(identity, self._td)
            if named is None or named == own:
                kept.append(identity)
                continue
            self._foreign_source(f"{own}/{subject.name}", identity, named=named)
        return tuple(kept)

    def _foreign_source(self, key: str, identity: str, *, named: str) -> None:
        """SMI6006 at the binding's entry that names `identity`, a ServiceAccount of namespace
        `named`: the entry is what is at fault, whichever TrafficTargets name the binding, so
        it is said there once (equal diagnostics are one), not at each TrafficTarget's
        source, which named another file and line as many times as the binding was used."""
        binding = self._inv.bindings[key]  # resolved: `identity` came from it
        own = namespace_of(binding.metadata)
        entries = binding.schemes.spiffe_identities
        at = next((i for i, s in enumerate(entries) if identity in (s, f"spiffe://{s}")), None)
        self._inv.diag(
            NOT_COMPILABLE,
            ref("IdentityBinding", binding.metadata),
            f"identity {identity} is a ServiceAccount of namespace {named!r}, and a binding "
            f"describes only workloads of its own ({own!r}): skipped as a source of every "
            "TrafficTarget that names this binding",
            path="spec.schemes" if at is None else f"spec.schemes.spiffeIdentities[{at}]",
        )

    def _subject(self, subject: Subject, ns: str, origin: str, path: str) -> tuple[str, ...]:
        subject_ns = subject.namespace or ns
        if subject.kind == "ServiceAccount":
            return (spiffe_id(subject_ns, subject.name, self._td),)
        if subject.kind == "IdentityBinding":
            key = f"{subject_ns}/{subject.name}"
            ids = self._binding(key)
            if ids is None:
                self._inv.diag(
                    UNRESOLVED, origin, f"IdentityBinding {key} not found: skipped", path=path
                )
                return ()
            return ids
        self._inv.diag(
            NOT_COMPILABLE, origin, f"subject kind {subject.kind!r} is not supported", path=path
        )
        return ()

    def _binding(self, key: str) -> tuple[str, ...] | None:
        if key in self._bindings:
            return self._bindings[key]
        binding = self._inv.bindings.get(key)
        ids: tuple[str, ...] | None = None
        if binding is not None:
            ns = namespace_of(binding.metadata)
            schemes = binding.schemes
            found = {
                s if s.startswith("spiffe://") else f"spiffe://{s}"
                for s in schemes.spiffe_identities
            }
            if schemes.service_account:
                found.add(spiffe_id(ns, schemes.service_account, self._td))
            if schemes.pod_label_selector is not None:
                self._inv.diag(
                    UNRESOLVED,
                    ref("IdentityBinding", binding.metadata),
                    "podLabelSelector names pods, not identities: this scheme is skipped",
                    path="spec.schemes.podLabelSelector",
                )
            ids = tuple(sorted(found))
        self._bindings[key] = ids
        return ids

    def _rules(self, tt: TrafficTarget, ns: str, origin: str) -> _Rules:
        out = _Rules()
        for i, rule in enumerate(tt.rules):
            key, path = f"{ns}/{rule.name}", f"spec.rules[{i}]"
            if rule.kind == "HTTPRouteGroup":
                self._http_rule(out, key, rule.matches, origin, path)
            elif rule.kind in ("TCPRoute", "UDPRoute"):
                self._l4_rule(out, rule.kind, key, origin, path)
            else:
                self._inv.diag(
                    NOT_COMPILABLE, origin, f"rule kind {rule.kind!r} is not supported", path=path
                )
        return out

    def _http_rule(
        self, out: _Rules, key: str, names: tuple[str, ...] | None, origin: str, path: str
    ) -> None:
        table = self._routes.group(key)
        if table is None:
            self._inv.diag(
                UNRESOLVED, origin, f"HTTPRouteGroup {key} not found: rule skipped", path=path
            )
            return
        for name in names or tuple(table):
            if name not in table:
                self._inv.diag(
                    UNRESOLVED,
                    origin,
                    f"match {name!r} is not in HTTPRouteGroup {key}: skipped",
                    path=f"{path}.matches",
                )
                continue
            match = table[name]
            if match is not None:
                out.http[match.origin] = match

    def _l4_rule(self, out: _Rules, kind: str, key: str, origin: str, path: str) -> None:
        routes = self._inv.tcp_routes if kind == "TCPRoute" else self._inv.udp_routes
        route = routes.get(key)
        if route is None:
            self._inv.diag(UNRESOLVED, origin, f"{kind} {key} not found: rule skipped", path=path)
            return
        if kind == "TCPRoute":
            out.tcp = (out.tcp or set()) | set(route.ports)
            out.tcp_all = out.tcp_all or not route.ports
        else:
            out.udp = (out.udp or set()) | set(route.ports)
            out.udp_all = out.udp_all or not route.ports
