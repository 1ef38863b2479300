"""Why a request is allowed or denied, in sentences (`smictl explain`).

The verdict always comes from `authorize` — the function every proxy runs — so an explanation
can never disagree with enforcement. This module only reads the index to say *why*: which
TrafficTarget and match allowed it, or for a deny, which sources, ports or matches were close
(for a route miss, the match that failed the fewest conditions: "closest match: buy-a-book
(needs method GET)").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from smi.compiler.ir.decide import authorize
from smi.compiler.ir.decision import Decision, Protocol
from smi.compiler.ir.index import HttpEntry, PolicyIndex, PortGrant, SourceView
from smi.compiler.ir.matching import (
    HttpMatcher,
    RegexError,
    compile_regex,
    path_readings,
    request_path,
)
from smi.compiler.ir.model import HttpMatch
from smi.errors import Diagnostic
from smi.identity import identity_among


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
    # What the headline says the verdict is about: `Probe.describe`, except when only some
    # HTTP requests are allowed, where "anything on port N" after ALLOW would claim too much.
    asked: str
    allowed_routes: tuple[str, ...] = ()
    limited: bool = False  # some HTTP requests are allowed, but not any traffic

    @property
    def allowed(self) -> bool:
        """What deny mode would do: audit-mode would-denies count as denies here. A limited
        verdict counts as allowed: asked "what may it do on this port?", the answer is
        "something" (its headline says "some HTTP requests", never "anything")."""
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
    td = index.policy.trust_domain
    # As the proxy reads a caller (`proxy.peercert`): only a workload identity of this trust
    # domain is one. A grant to any other SPIFFE ID an IdentityBinding names
    # (`other.domain/boundary/x`) is in the MeshPolicy, but no caller is ever seen with it:
    # answered ALLOW here, the same request got 403 `no-identity` from the proxy.
    caller = source if identity_among((source,), trust_domain=td) is not None else None
    if probe.is_request:
        decision = authorize(
            index, caller, destination, probe.port, probe.method or "GET", probe.path or "/",
            probe.headers, protocol="http",
        )  # fmt: skip
    else:  # "may it connect at all?": the L4 check, then the HTTP routes it may use
        protocol: Protocol = "tcp" if probe.protocol == "http" else probe.protocol
        decision = authorize(index, caller, destination, probe.port, protocol=protocol)
    dest = index.destination(destination)
    view = dest.by_source.get(source) if dest is not None and caller is not None else None
    routes: tuple[str, ...] = ()
    if view is not None and not probe.is_request and probe.protocol == "http":
        routes = _routes(view, probe.port)
    limited = decision.reason == "protocol-not-allowed" and bool(routes)
    asked = probe.describe()
    if decision.reason == "permissive":
        because: tuple[str, ...] = (
            "permissive mode: policies are inert and every request is allowed",
        )
    elif decision.reason == "allow":
        because = (_allowed_by(decision, probe),)
    elif limited and view is not None:
        asked, only = _http_only(view, probe.port)
        because = (only,)
    else:
        because = _denied(index, decision, source=source, destination=destination, probe=probe)
        because += _notes(skipped, destination, td)
    if decision.would_deny and not limited:
        because += ("audit mode: this would be denied in deny mode; it is not enforced",)
    return Verdict(source, destination, decision, because, asked, routes, limited)


def _http_only(view: SourceView, port: int) -> tuple[str, str]:
    """(headline, reason) when only HTTP may pass on `port`: "anything on port N" after ALLOW
    claimed any traffic, and a script reading the headline took it for an unrestricted allow.
    "any HTTP request" when one match takes every request, "some HTTP requests" otherwise."""
    every = any(
        (e.ports is None or port in e.ports) and _takes_every_request(e.matcher)
        for e in view.entries
    )
    if every:
        return (
            f"any HTTP request on port {port}, no other traffic",
            "any HTTP request, by the matches below; traffic that is not HTTP is denied:",
        )
    return (
        f"some HTTP requests on port {port} (listed below)",
        "only these HTTP requests; any other request, and traffic that is not HTTP, is denied:",
    )


def _takes_every_request(m: HttpMatcher) -> bool:
    return (
        m.any_method and m.path is None and m.prefix in ("", "/") and not m.headers and not m.broken
    )


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
    if decision.reason == "no-identity":
        return (
            f"{src} is never a caller's identity: the proxies read only "
            f"spiffe://{td}/ns/<namespace>/sa/<name> from a caller's certificate (the mesh "
            "CA's), so a TrafficTarget's grant to it allows nothing in this mesh",
        )
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
        return _route_miss(view, probe, tts)
    coverage = f"its rules cover: {_coverage(view)}"
    if decision.reason == "protocol-not-allowed":
        return (_wrong_protocol(view, probe, tts), coverage)
    return (f"source in sources ({tts}) but {decision.detail}", coverage)


def _wrong_protocol(view: SourceView, probe: Probe, tts: str) -> str:
    """Said from the grants, not from `decision.detail`: "port 8080 is open to this source, but
    not for tcp" after "source in sources (...) but" read as two objections."""
    kinds = (("HTTP requests", view.http), ("tcp traffic", view.tcp), ("udp traffic", view.udp))
    open_for = [name for name, grant in kinds if grant.lookup(probe.port) is not None]
    asked = "HTTP" if probe.is_request else f"{'udp' if probe.protocol == 'udp' else 'tcp'} traffic"
    return (
        f"source in sources ({tts}), but on port {probe.port} its rules allow only "
        f"{' and '.join(open_for)}, not {asked}"
    )


def _request(probe: Probe, path: str | None = None) -> str:
    return f"{probe.method or 'GET'} {path or request_path(probe.path or '/')}"


def _route_miss(view: SourceView, probe: Probe, tts: str) -> tuple[str, ...]:
    """No match for the request, or (see `path_readings`) a match for the path as written but
    none for another path an application may read it as: then that reading is the miss, and
    the match that took the written path is named, so the deny does not look like a bug."""
    path = request_path(probe.path or "/")
    taken = _taking(view, probe, path)
    readings = path_readings(probe.path or "/") if taken is not None else ()
    missed = [r for r in readings if r != path and _taking(view, probe, r) is None]
    if taken is None or not missed:
        return (
            f"source in sources ({tts}) but no match for {_request(probe)}"
            f"{_closest(view, probe, path)}",
        )
    # No closest match for the reading: it would be a guess, and the match that took the path
    # as written is the one the author expected to allow.
    return (
        f"source in sources ({tts}) but no match for {_request(probe, missed[0])} (as an "
        f"application may read {path})",
        f"match {match_name(taken.matcher.origin)} takes {path} as written, but a request is "
        "allowed only if every reading of its path is",
    )


def _taking(view: SourceView, probe: Probe, path: str) -> HttpEntry | None:
    """The first entry that allows the probe with `path` (already normalised)."""
    for entry in view.entries:
        if not _failures(entry, probe, path):
            return entry
    return None


def _failures(entry: HttpEntry, probe: Probe, path: str) -> list[str]:
    failures = entry.matcher.failures(probe.method or "GET", path, probe.headers)
    if entry.ports is not None and probe.port not in entry.ports:
        failures.append("port " + ",".join(str(p) for p in sorted(entry.ports)))
    return failures


def _closest(view: SourceView, probe: Probe, path: str) -> str:
    """The match failing the fewest conditions; on a tie, one whose path would match but for
    case (`/API` for `/api/.*`), since that is the likeliest slip, else the first."""
    best: tuple[tuple[int, bool], HttpEntry, list[str], bool] | None = None
    for entry in view.entries:
        failures = _failures(entry, probe, path)
        case_only = _matches_but_for_case(entry, path, failures)
        rank = (len(failures), not case_only)
        if best is None or rank < best[0]:
            best = (rank, entry, failures, case_only)
    if best is None or not best[2]:
        return ""
    _, entry, failures, case_only = best
    return f"; closest match: {match_name(entry.matcher.origin)} ({_needs(failures, case_only)})"


def _needs(failures: list[str], case_only: bool) -> str:
    """ "needs method GET, path /books": the conditions the request fails, as requirements
    (a bare "(path /any)" after a match named `any` read as a description of the request)."""
    text = "needs " + ", ".join(failures)
    return text + ", and paths are case-sensitive" if case_only else text


def _matches_but_for_case(entry: HttpEntry, path: str, failures: list[str]) -> bool:
    regex = entry.matcher.match.path_regex
    if regex is None or f"path {regex}" not in failures:
        return False
    try:
        return compile_regex(f"(?i:{regex})").match(path) is not None
    except RegexError:
        return False


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
