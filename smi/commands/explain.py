"""`smictl explain`: would this call be allowed, and why?

    smictl explain -f PATH... --from NS/SA --to NS/SA|NS/SERVICE [--port N]
                   [--method M --path P --header K=V...] [--protocol http|tcp|udp]

Prints ALLOW or DENY with the TrafficTarget and match that allowed it, or why nothing did
("source in sources but no match for POST /x; closest match: buy-a-book (method GET)").
`--to NS/SERVICE` (when the files hold that Service, or a TrafficSplit for it) follows the
request the way a proxy would: through the service's TrafficSplit when the split takes it, to
the ServiceAccounts of the Pods and workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet,
ReplicationController, Job, CronJob) each Service it lands on selects; each identity gets its
own verdict. A split grants no access (DESIGN.md §3): the backends' proxies
authorize the request, so a backend is judged, never the root it was sent to. A Service no
workload in the files selects is taken as the ServiceAccount of the same name. Without
`--method`, `--path` or `--header` the question is "what may the caller do on that port?": ALLOW
"anything on port N" when any traffic may pass, ALLOW "some HTTP requests on port N (listed
below)" when only the listed requests may, DENY when nothing may.
Headers are read as the proxy reads them: `--header X-Team=red --header X-Team=blue` is one
`x-team: red,blue`.
What the loader warned of (an object it skipped, SMI1008) goes to standard error first.
Exit 0 when every verdict is ALLOW (the caller may send something), 1 when any is DENY (or the
manifests have errors), 2 on a flag smictl cannot use.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from smi.commands.compile import (
    Compiled,
    add_input_arguments,
    load_and_compile,
    print_diagnostics,
)
from smi.errors import escaped_line
from smi.ports import PORT_RANGE, is_port
from smi.validation.names import HTTP_TOKEN

if TYPE_CHECKING:
    from smi.compiler.explain import Probe
    from smi.compiler.ir.index import IndexedSplit, PolicyIndex


class UsageError(Exception):
    """A flag value smictl cannot use; printed as one line, exit 2."""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "explain",
        help="explain whether one workload may call another, and why",
        description="ALLOW or DENY for a caller, a callee and a request, with the "
        "TrafficTarget and match that allowed it or the reason nothing did.",
    )
    add_input_arguments(p)
    p.add_argument("--from", dest="source", required=True, metavar="NS/SA",
                   help="the caller's ServiceAccount (or a SPIFFE id)")  # fmt: skip
    p.add_argument("--to", dest="target", required=True, metavar="NS/SA|NS/SERVICE",
                   help="the callee: a ServiceAccount, or a Service in the files")  # fmt: skip
    p.add_argument("--port", type=int, help="destination port (default: the Service's ports)")
    p.add_argument("--method", help="HTTP method, e.g. GET")
    p.add_argument("--path", help="HTTP path, e.g. /books?page=2")
    p.add_argument("--header", action="append", default=[], metavar="K=V",
                   help="HTTP request header; repeatable")  # fmt: skip
    p.add_argument("--protocol", choices=["http", "tcp", "udp"], default=None)
    p.set_defaults(func=run)


@dataclass(frozen=True)
class Destination:
    """Who `--to` leads to: (identity, app port, Host) to ask about, and how we got there. The
    port is the one the destination's proxy authorizes on: the port of the app it fronts; the
    Host the one a request to the Service carries (None: none assumed, see `_assumed_host`)."""

    asks: tuple[tuple[str, int, str | None], ...]
    route: tuple[str, ...] = ()
    # App ports reached only through Service ports of `protocol: UDP`: asked about as UDP
    # traffic when neither --protocol nor an HTTP request was given (a UDP port carries no
    # HTTP, and a UDPRoute that allows it was reported as a DENY of TCP traffic).
    udp: frozenset[int] = frozenset()


def run(args: argparse.Namespace) -> int:
    # Without --protocol: HTTP, except on a Service port that speaks UDP alone (`_through_service`).
    args.protocol_given = args.protocol is not None
    args.protocol = args.protocol or "http"
    try:
        _check_request_flags(args)
    except UsageError as exc:
        print(f"smictl explain: {exc}", file=sys.stderr)
        return 2
    compiled = load_and_compile(args)
    if compiled is None:
        return 1
    _print_warnings(compiled)
    try:
        return _answer(args, compiled)
    except UsageError as exc:
        print(f"smictl explain: {exc}", file=sys.stderr)
        return 2


def _print_warnings(compiled: Compiled) -> None:
    """The loader's warnings, on standard error as `smictl validate` prints them: a verdict
    rests on what was read, and an object skipped unread (SMI1008: a kind smictl does not
    know) made a Service "select no workload" and turned a DENY into an ALLOW that nothing on
    screen questioned. The compiler's own warnings stay where they were: the notes of a DENY."""
    from smi.commands.validate import ordered

    loaded = compiled.loaded
    warnings = [d for d in loaded.diagnostics if not d.is_error]
    print_diagnostics(ordered(warnings, files=loaded.files))


def _check_request_flags(args: argparse.Namespace) -> None:
    """Refuse, before any file is read, a request no client could send: it was answered
    anyway, about a request nobody asked for (`--method ''` as GET, `--path books` as is,
    `--protocol tcp --method POST` as any TCP traffic)."""
    if args.protocol != "http":
        asked = {"--method": args.method, "--path": args.path, "--header": args.header or None}
        given = [flag for flag, value in asked.items() if value is not None]
        if given:
            raise UsageError(
                f"{', '.join(given)}: ask about an HTTP request, not --protocol {args.protocol}"
                " (SMI2407)"
            )
    if args.method is not None and not HTTP_TOKEN.fullmatch(args.method):
        raise UsageError(f"--method {args.method!r}: not an HTTP method (SMI2203)")
    if args.path is not None and (
        not args.path.startswith("/") or any(c.isspace() or not c.isprintable() for c in args.path)
    ):
        raise UsageError(
            f"--path {args.path!r}: an HTTP path starts with / and has no spaces (SMI2004)"
        )
    if args.port is not None and not is_port(args.port):
        raise UsageError(f"--port {args.port}: ports are {PORT_RANGE} (SMI2301)")
    for item in args.header:
        _header(item)


def _header(item: str) -> tuple[str, str]:
    """`--header NAME=VALUE` as (lower-case name, value as given: see `_probe`)."""
    name, sep, value = item.partition("=")
    name = name.strip()
    if not sep or not HTTP_TOKEN.fullmatch(name) or any(c in value for c in "\r\n\0"):
        raise UsageError(f"--header {item!r}: write it as NAME=VALUE (SMI2205)")
    return name.lower(), value


def _answer(args: argparse.Namespace, compiled: Compiled) -> int:
    from smi.compiler.explain import explain, short
    from smi.compiler.ir.index import PolicyIndex

    index = PolicyIndex.build(compiled.result.policy)
    td = index.policy.trust_domain
    source = _source(args.source, td)
    probe_base = _probe(args, port=0)
    dest = _destination(args, compiled, index, probe_base, source=source)
    asked = [
        (identity, _probe(args, port=port, udp=port in dest.udp, host=host))
        for identity, port, host in dest.asks
    ]
    skipped = compiled.result.skipped
    verdicts = [
        explain(index, source=source, destination=identity, probe=probe, skipped=skipped)
        for identity, probe in asked
    ]
    # Every line quotes manifest text (regexes, names): escaped, so that a pathRegex holding
    # a newline cannot print an ALLOW or DENY line of its own.
    for line in dest.route:
        print(escaped_line(line))
    for verdict in verdicts:
        word = "ALLOW" if verdict.allowed else "DENY"
        print(f"{word} {short(source, td)} -> {short(verdict.destination, td)}: "
              f"{escaped_line(verdict.asked)}")  # fmt: skip
        for line in verdict.because:
            print(f"  {escaped_line(line)}")
        for route in verdict.allowed_routes:
            print(f"    {escaped_line(route)}")
    for line in _MODE_NOTES.get(index.policy.mode, ()):
        print(line)
    denied = sum(1 for v in verdicts if not v.allowed)
    if len(verdicts) > 1:
        print(
            f"{'DENY' if denied else 'ALLOW'}: {len(verdicts) - denied} of {len(verdicts)} allowed"
        )
    return 1 if denied else 0


# What the verdicts mean outside deny mode. Audit verdicts are deny mode's (a would-deny is a
# DENY) though nothing is enforced; permissive ones are all ALLOW, whatever the policies say.
_MODE_NOTES: dict[str, tuple[str, ...]] = {
    "audit": (
        "note: mode audit: nothing is enforced: a request denied above is let through and "
        "recorded as a would-deny",
        "note: mode audit: the verdicts above say what deny mode would do",
    ),
    "permissive": (
        "note: mode permissive: policies are inert and every request is allowed, so the "
        "verdicts above do not say what the TrafficTargets allow (ask without --mode for that)",
    ),
}


def _source(text: str, trust_domain: str) -> str:
    """`--from`: a ServiceAccount (`ns/sa`, or its SPIFFE ID), or any SPIFFE ID an
    IdentityBinding may name (`spiffe://other.domain/boundary/x`), which `compile` grants and
    `access-matrix` shows: it was refused, so that source could not be asked about."""
    from smi.identity import spiffe_path

    try:
        return _identity(text, trust_domain, flag="--from")
    except UsageError:
        # (as a binding writes one too: `federated.domain/boundary/x`, no scheme)
        spiffe = text if text.startswith("spiffe://") else f"spiffe://{text}"
        if (text != spiffe and text.count("/") < 2) or spiffe_path(spiffe) is None:
            raise
        return spiffe


def _identity(text: str, trust_domain: str, *, flag: str) -> str:
    from smi.identity import Identity, IdentityError

    try:
        return Identity.parse(text, trust_domain=trust_domain).spiffe_id
    except IdentityError as exc:
        raise UsageError(f"{flag}: {exc} (SMI2006)") from exc


def _probe(
    args: argparse.Namespace, *, port: int, udp: bool = False, host: str | None = None
) -> Probe:
    from smi.compiler.explain import Probe
    from smi.compiler.ir.matching import request_headers

    # As the proxy reads the request: a repeated --header joins (the last one does not win),
    # and a value loses the whitespace around it.
    headers = request_headers(_header(item) for item in args.header)
    if host is not None and "host" not in headers:
        headers["host"] = host
    return Probe(
        port=port,
        protocol="udp" if udp else args.protocol,
        method=args.method,
        path=args.path,
        headers=headers,
    )


def _destination(
    args: argparse.Namespace, compiled: Compiled, index: PolicyIndex, probe: Probe, *, source: str
) -> Destination:
    from smi.compiler.workloads import find_service

    target = args.target
    if target.count("/") != 1 or target.startswith("spiffe://"):
        identity = _identity(target, index.policy.trust_domain, flag="--to")
        why = "--to names a ServiceAccount, which has no ports"
        return Destination(tuple((identity, p, None) for p in _ports(args, (), missing=why)))
    # SMI manifests without Services (the usual CI input) still name the root of a split: the
    # proxy sends a request for it through the split whether or not the files hold the Service.
    service = find_service(compiled.loaded.context, target)
    if service is None and index.split_for(target) is None:
        identity = _identity(target, index.policy.trust_domain, flag="--to")
        why = (
            f"no Service {target} in the files{_did_you_mean(index, target)}, so --to is taken "
            "as a ServiceAccount, which has no ports"
        )
        return Destination(tuple((identity, p, None) for p in _ports(args, (), missing=why)))
    return _through_service(args, compiled, index, probe, service_key=target, source=source)


def _did_you_mean(index: PolicyIndex, target: str) -> str:
    """ " (did you mean shop/api?)" when `target` is no name the policy knows but close to one:
    a typo in --to is otherwise asked about as a ServiceAccount nobody names (default deny)."""
    from difflib import get_close_matches

    from smi.compiler.explain import short

    td = index.policy.trust_domain
    known = set(index.services) | set(index.splits)
    for identity, dest in index.destinations.items():
        known.add(short(identity, td))
        known.update(short(s, td) for s in dest.by_source)
    if target in known:
        return ""
    close = get_close_matches(target, sorted(known), n=3, cutoff=0.8)
    if not close:
        return ""
    names = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return f" (did you mean {names}?)"


def _ports(
    args: argparse.Namespace, service_ports: Sequence[int], *, missing: str
) -> tuple[int, ...]:
    """`--port`, else the Service's ports; `missing` says why there are none to fall back on."""
    if args.port is not None:
        if not is_port(args.port):
            raise UsageError(f"--port {args.port}: ports are {PORT_RANGE} (SMI2301)")
        return (args.port,)
    if service_ports:
        return tuple(service_ports)
    raise UsageError(f"--port is needed: {missing} (SMI2002)")


def _through_service(
    args: argparse.Namespace,
    compiled: Compiled,
    index: PolicyIndex,
    probe: Probe,
    *,
    service_key: str,
    source: str,
) -> Destination:
    td = index.policy.trust_domain
    context = compiled.loaded.context
    svc = index.service(service_key)
    service_ports = svc.ports if svc is not None else ()
    route: list[str] = []
    hosts: list[str] = []
    asks: dict[tuple[str, int, str | None], None] = {}
    missing = f"no Service {service_key} with ports in the files"
    udp_only = _udp_only_ports(args, context, service_key)
    udp: set[int] = set()
    other: set[int] = set()
    for port in _ports(args, service_ports, missing=missing):
        host = _assumed_host(probe, source=source, service_key=service_key, port=port, td=td)
        sent = replace(probe, headers={**probe.headers, "host": host}) if host else probe
        landed = _landing(
            index, sent, service_key=service_key, port=port, service_ports=service_ports,
            route=route,
        )  # fmt: skip
        for key in landed:
            identities = _serving(context, key, td=td, route=route)
            app_ports = _app_ports(context, key, (port,), service_ports, route)
            asks.update(dict.fromkeys((i, p, host) for i in identities for p in app_ports))
            (udp if port in udp_only else other).update(app_ports)
            if host and _reads_host(index, service_key, identities):
                hosts.append(
                    f"{service_key}: the request carries Host: {host}, as a client of the "
                    "Service sends it (ask with --header Host=... about another)"
                )
    # Ports reached the same way share their lines.
    lines = dict.fromkeys(hosts + route)
    return Destination(tuple(asks), tuple(lines), frozenset(udp - other))


def _assumed_host(probe: Probe, *, source: str, service_key: str, port: int, td: str) -> str | None:
    """The Host a request to Service `service_key` on `port` carries when --header gives none:
    every HTTP/1.1 request has one, and the proxy matches `host` (`:authority`) on it, so a
    request without it was denied by a match the proxy lets it through. The name a client in
    the caller's namespace uses (`api`; `api.shop` from another), the port unless it is 80.
    None when the question is not one request, or --header gave a Host."""
    from smi.compiler.explain import short

    if not probe.is_request or "host" in probe.headers:
        return None
    namespace, _, name = service_key.partition("/")
    caller_ns = short(source, td).partition("/")[0]
    host = name if caller_ns == namespace else f"{name}.{namespace}"
    return host if port == 80 else f"{host}:{port}"


def _reads_host(index: PolicyIndex, service_key: str, identities: Sequence[str]) -> bool:
    """Whether the split of `service_key` or the rules of `identities` match on `host`: then
    the verdict rests on the Host assumed, and the output says which."""
    split = index.split_for(service_key)
    if split is not None and any(n == "host" for m in split.matchers for n, _, _ in m.headers):
        return True
    return any("host" in index.header_names(i) for i in identities)


def _udp_only_ports(args: argparse.Namespace, context: Sequence[Any], key: str) -> frozenset[int]:
    """The Service ports of `key` that carry UDP alone, when the question leaves the protocol
    to the Service: no --protocol, no request."""
    from smi.compiler.workloads import service_udp_only_ports

    if args.protocol_given or args.method or args.path or args.header:
        return frozenset()
    return service_udp_only_ports(context, key)


def _landing(
    index: PolicyIndex,
    probe: Probe,
    *,
    service_key: str,
    port: int,
    service_ports: Sequence[int],
    route: list[str],
) -> tuple[str, ...]:
    """The Services a request for `service_key` on `port` may land on, chosen as the outbound
    proxy chooses (`OutboundRouter.resolve`): through the split, less the backends whose
    Service lacks the port, when its matches take the request; the root otherwise."""
    from smi.compiler.ir.decide import Request, pick_backend

    split = index.split_for(service_key)
    if split is None:
        return (service_key,)
    # The proxy sees a port of the root Service; `--port` given as an app port is not one, and
    # the backends' Service ports say nothing about it.
    here: IndexedSplit | None = split
    if port in service_ports or not service_ports:
        here = split.on_port(service_key, port, index.services)
    on = "" if here is split else f" on port {port}"
    if here is None:
        route.append(
            f"{service_key}: TrafficSplit {split.origin}: no backend that gets traffic has "
            f"port {port}, so it goes to {service_key}"
        )
        return (service_key,)
    if here.matchers and not probe.is_request and probe.protocol == "http":
        # "What may the caller do?" has two answers here: the requests the matches take go to
        # the backends, the rest to the root. Judging the root alone said DENY (exit 1) where
        # the backends allow some requests.
        route.append(
            f"{service_key}: TrafficSplit {split.origin} sends the requests its matches take"
            f"{on} to {_shares(here)}, the rest to {service_key} (ask with --method, --path or "
            "--header for one request)"
        )
        return (service_key, *(b.service for b in here.backends if b.weight > 0))
    request = Request(probe.method or "GET", probe.path or "/", probe.headers)
    if pick_backend(here, request if probe.is_request else None, 0.0) is None:
        route.append(f"{service_key}: TrafficSplit {split.origin} {_not_split(here, probe, on)}")
        return (service_key,)
    route.append(f"{service_key}: TrafficSplit {split.origin} sends this{on} to {_shares(here)}")
    return tuple(b.service for b in here.backends if b.weight > 0)


def _not_split(split: IndexedSplit, probe: Probe, on: str) -> str:
    """Why the split sends what was asked about to its root, in words that say what "this"
    is: the request, a question without one, or non-HTTP traffic."""
    if not split.matchers:  # no backend with a positive weight (the compiler drops such splits)
        return f"gives no backend any traffic{on}"
    if probe.is_request:
        return f"does not apply to this request{on}: none of its matches takes it"
    if probe.protocol == "http":
        return (
            f"does not apply here{on}: it splits only the requests its matches take (ask with "
            "--method, --path or --header)"
        )
    return f"does not apply to {probe.protocol} traffic{on}: it splits only HTTP requests"


def _shares(split: IndexedSplit) -> str:
    """Each backend's share of the traffic; a weight-0 backend is named as getting none, so
    that its absence from the verdicts is not taken for an oversight."""
    text = ", ".join(
        f"{b.service} ({_percent(b.weight, split.total)})" for b in split.backends if b.weight > 0
    )
    idle = [b.service for b in split.backends if b.weight <= 0]
    if idle:
        text += f"; {', '.join(idle)} (weight 0) {'gets' if len(idle) == 1 else 'get'} no traffic"
    return text


def _percent(weight: int, total: int) -> str:
    """`weight`'s share of `total` in whole percent, or with the decimals (up to three) that
    keep a backend that gets some traffic from reading as 0% (weight 1 of 1000 is 0.1%, not
    "gets none", which only weight 0 means) and one that does not get all from reading as 100%."""
    share = Fraction(100 * weight, total)
    for places in range(4):
        shown = round(share, places)
        if 0 < shown < 100 or shown == share:
            return f"{float(shown):.{places}f}%"
    return "<0.001%" if share < 1 else ">99.999%"


def _serving(context: Sequence[Any], key: str, *, td: str, route: list[str]) -> tuple[str, ...]:
    """Who serves Service `key`: the ServiceAccounts of the workloads it selects in the files.
    With none, `ns/name` names, by the usual convention, the ServiceAccount of its workloads
    too: that reading is the one left (and the one SMI manifests without workloads assume)."""
    from smi.compiler.explain import short
    from smi.compiler.workloads import service_identities

    found = service_identities(context, key, trust_domain=td)
    if found:
        route.append(f"{key}: selects ServiceAccount(s) {', '.join(short(i, td) for i in found)}")
    elif found is not None:
        route.append(f"{key}: selects no workload in the files")
    if found:
        return found
    route.append(f"{key}: taken as a ServiceAccount")
    return (_identity(key, td, flag="--to"),)


def _app_ports(
    context: Sequence[Any],
    key: str,
    ports: Sequence[int],
    service_ports: Sequence[int],
    route: list[str],
) -> list[int]:
    """The app ports Service `key`'s `ports` lead to (its targetPorts), noting each mapping
    in `route`. A port that is not one of the Service's (`--port` given as an app port) is
    asked about as is."""
    from smi.compiler.workloads import service_app_ports

    out: list[int] = []
    for port in ports:
        if port not in service_ports:
            out.append(port)
            continue
        targets = service_app_ports(context, key, port)
        if targets is None:
            route.append(
                f"{key}: port {port}: its targetPort names no container port in the files; "
                f"asking about {port}"
            )
            targets = (port,)
        elif targets != (port,):
            shown = ", ".join(str(t) for t in targets)
            route.append(f"{key}: port {port} goes to app port {shown}")
        out.extend(t for t in targets if t not in out)
    return out
