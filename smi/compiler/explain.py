"""Why a request is allowed or denied, in sentences (`smictl explain`).

The verdict always comes from `authorize` — the function every proxy runs — so an explanation
can never disagree with enforcement. This module only reads the index to say *why*: which
TrafficTarget and match allowed it, or for a deny, which sources, ports or matches were close
(for a route miss, the match that failed the fewest conditions: "closest match: buy-a-book
(method GET)").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from smi.compiler.ir.decide import authorize
from smi.compiler.ir.decision import Decision, Protocol
from smi.compiler.ir.index import HttpEntry, PolicyIndex, PortGrant, SourceView
from smi.compiler.ir.matching import request_path
from smi.compiler.ir.model import HttpMatch
from smi.errors import Diagnostic


@dataclass(frozen=True)
class Probe:
    """The traffic being asked about. Without method, path or headers and with protocol
    "http", the question is "what may the source do on this port?"."""

    port: int
    protocol: Protocol = "http"
    method: str | None = None
    path: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_request(self) -> bool:
        return self.protocol == "http" and (
            self.method is not None or self.path is not None or bool(self.headers)
        )

    def describe(self) -> str:
        if self.is_request:
            return f"{self.method or 'GET'} {self.path or '/'} on port {self.port}"
        if self.protocol == "http":
            return f"anything on port {self.port}"
        return f"{self.protocol} to port {self.port}"


@dataclass(frozen=True)
class Verdict:
    source: str
    destination: str
    decision: Decision
    because: tuple[str, ...]
    allowed_routes: tuple[str, ...] = ()
    limited: bool = False  # some HTTP requests are allowed, but not any traffic

    @property
    def allowed(self) -> bool:
        """What deny mode would do: audit-mode would-denies count as denies here."""
        return self.limited or (self.decision.allowed and not self.decision.would_deny)


def short(identity: str, trust_domain: str) -> str:
    """`ns/sa` for identities of this trust domain, the SPIFFE id otherwise."""
    prefix = f"spiffe://{trust_domain}/ns/"
    if identity.startswith(prefix) and "/sa/" in identity:
        ns, _, sa = identity[len(prefix) :].partition("/sa/")
        return f"{ns}/{sa}"
    return identity


def match_name(origin: str) -> str:
    """ "ns/HTTPRouteGroup/group#match" -> "match"."""
    return origin.rpartition("#")[2]


def describe_match(m: HttpMatch) -> str:
    """`GET|HEAD /path [user-agent=~.*Firefox.*]`, for listings."""
    methods = "|".join(m.methods) if m.methods else "*"
    text = f"{methods} {m.path_regex if m.path_regex is not None else '*'}"
    if m.headers:
        text += " [" + ", ".join(f"{k}=~{v}" for k, v in m.headers) + "]"
    return text


def explain(
    index: PolicyIndex,
    *,
    source: str,
    destination: str,
    probe: Probe,
    skipped: Sequence[Diagnostic] = (),
) -> Verdict:
    if probe.is_request:
        decision = authorize(
            index, source, destination, probe.port, probe.method or "GET", probe.path or "/",
            probe.headers, protocol="http",
        )  # fmt: skip
    else:  # "may it connect at all?": the L4 check, then the HTTP routes it may use
        protocol: Protocol = "tcp" if probe.protocol == "http" else probe.protocol
        decision = authorize(index, source, destination, probe.port, protocol=protocol)
    td = index.policy.trust_domain
    dest = index.destination(destination)
    view = dest.by_source.get(source) if dest is not None else None
    routes: tuple[str, ...] = ()
    if view is not None and not probe.is_request and probe.protocol == "http":
        routes = _routes(view, probe.port)
    limited = decision.reason == "protocol-not-allowed" and bool(routes)
    if decision.reason == "permissive":
        because: tuple[str, ...] = (
            "permissive mode: policies are inert and every request is allowed",
        )
    elif decision.reason == "allow":
        because = (_allowed_by(decision, probe),)
    elif limited:
        because = (f"not any traffic, but these HTTP requests on port {probe.port}:",)
    else:
        because = _denied(index, decision, source=source, destination=destination, probe=probe)
        because += _notes(skipped, destination, td)
    if decision.would_deny and not limited:
        because += ("audit mode: this would be denied in deny mode; it is not enforced",)
    return Verdict(source, destination, decision, because, routes, limited)


def _allowed_by(decision: Decision, probe: Probe) -> str:
    (rule,) = decision.rules
    if decision.detail in ("tcp", "udp"):
        kind = "TCPRoute" if decision.detail == "tcp" else "UDPRoute"
        extra = ", HTTP included" if decision.detail == "tcp" else ""
        return (
            f"allowed by TrafficTarget {rule}: its {kind} rule opens port {probe.port} to any "
            f"{decision.detail} traffic{extra}"
        )
    group = decision.detail.rpartition("/")[2].partition("#")[0]
    return (
        f"allowed by TrafficTarget {rule}, match {match_name(decision.detail)} "
        f"(HTTPRouteGroup {group})"
    )


def _denied(
    index: PolicyIndex, decision: Decision, *, source: str, destination: str, probe: Probe
) -> tuple[str, ...]:
    td = index.policy.trust_domain
    src, dst = short(source, td), short(destination, td)
    dest = index.destination(destination)
    if decision.reason == "no-traffic-target" or dest is None:
        return (f"no TrafficTarget has destination {dst}: default deny",)
    if decision.reason == "source-not-allowed":
        lines = [f"{src} is not in the sources of any TrafficTarget for {dst}:"]
        for rule in dest.rules:
            names = ", ".join(short(s, td) for s in rule.sources)
            lines.append(f"  {rule.origin} allows {names}")
        return tuple(lines)
    view = dest.by_source[source]
    tts = ", ".join(view.origins)
    if decision.reason == "no-route-match":
        return (
            f"source in sources ({tts}) but no match for {_request(probe)}{_closest(view, probe)}",
        )
    return (
        f"source in sources ({tts}) but {decision.detail}",
        f"its rules cover: {_coverage(view)}",
    )


def _request(probe: Probe) -> str:
    return f"{probe.method or 'GET'} {request_path(probe.path or '/')}"


def _closest(view: SourceView, probe: Probe) -> str:
    best: tuple[int, HttpEntry, list[str]] | None = None
    path = request_path(probe.path or "/")
    for entry in view.entries:
        failures = entry.matcher.failures(probe.method or "GET", path, probe.headers)
        if entry.ports is not None and probe.port not in entry.ports:
            failures.append("port " + ",".join(str(p) for p in sorted(entry.ports)))
        if best is None or len(failures) < best[0]:
            best = (len(failures), entry, failures)
    if best is None:
        return ""
    return f"; closest match: {match_name(best[1].matcher.origin)} ({', '.join(best[2])})"


def _grant(name: str, grant: PortGrant) -> str | None:
    if grant.all_origin is not None:
        return f"{name} on every port"
    if grant.ports:
        return f"{name} on port {', '.join(str(p) for p in sorted(grant.ports))}"
    return None


def _coverage(view: SourceView) -> str:
    found = [_grant(n, g) for n, g in (("http", view.http), ("tcp", view.tcp), ("udp", view.udp))]
    return "; ".join(f for f in found if f) or "nothing"


def _routes(view: SourceView, port: int) -> tuple[str, ...]:
    """The HTTP matches this source may use on `port`, for "what may it do?" answers."""
    return tuple(
        f"{describe_match(e.matcher.match)}  ({match_name(e.matcher.origin)}, {e.rule})"
        for e in view.entries
        if e.ports is None or port in e.ports
    )


def _notes(skipped: Sequence[Diagnostic], destination: str, td: str) -> tuple[str, ...]:
    """Compiler warnings about TrafficTargets of the destination's namespace: a skipped
    object is the usual reason a policy someone wrote does not allow."""
    ns = short(destination, td).partition("/")[0]
    return tuple(
        f"note: {d.object_ref}: {d.message} ({d.code})"
        for d in skipped
        if d.object_ref.startswith(f"{ns}/TrafficTarget/")
        or d.object_ref.startswith(f"{ns}/HTTPRouteGroup/")
    )
