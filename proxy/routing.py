"""Where a request goes: the inbound and outbound routers (decisions only, no I/O).

Inbound: the caller's identity comes from its verified certificate, once per connection; every
request is authorized with `authorize(...)` against this workload's identity and app port; a
deny becomes a canned 403 naming the reason; an allow forwards to the local app with
`x-smi-source-identity` set (the protocol has already dropped any copy the caller sent).
Matches read headers as the app will get them (`sent_headers`), and the few headers a match
reads are made to reach the app as it read them (`MatchedNames`), on both sides.

Outbound: `Host` (or the proxy-form target) names a service; its TrafficSplit, if any, picks a
backend with `pick_backend`; the backend's endpoints (from the MeshPolicy or an endpoints file)
are used round-robin, and the request goes over mTLS to that endpoint's inbound proxy, which
must prove the endpoint's identity.
"""

from __future__ import annotations

import asyncio
import logging
from _random import Random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from mypy_extensions import i64, mypyc_attr

from proxy.exchange import Exchange, Forward, Headers, Router
from proxy.http1 import (
    HOP_BY_HOP,
    MAX_SEPARATORS,
    Reply,
    field_value,
    local_reply,
    same_variable,
    service_key,
    spellings,
)
from proxy.metrics import Count, Metrics
from proxy.peercert import peer_identity
from proxy.policy import PolicyHolder
from proxy.simplehead import name_bits, named_pairs
from proxy.upstream import ClientTLS, Target
from smi.compiler.ir.decide import Decision, Request, authorize, pick_backend
from smi.compiler.ir.decision import denied
from smi.compiler.ir.index import IndexedSplit, PolicyIndex

log = logging.getLogger("smictl.proxy")

_NO_POLICY: Final = local_reply(503, "no-policy")
# Method names as `authorize` takes them, decoded once (others are decoded per request).
_METHODS: Final = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
}
_NO_HOST: Final = local_reply(400, "missing-host")
_UNKNOWN: Final = local_reply(404, "unknown-service")
_NO_ENDPOINTS: Final = local_reply(503, "no-endpoints")
_HOST_CACHE: Final = 1024
# Authorization decisions remembered per router: entries, and the longest path worth a slot
# (longer paths are decided every time, so the cache stays small whatever callers send).
_DECISIONS: Final = 4096
_DECISION_PATH: Final = 512
# Request headers the app never gets as the caller sent them (proxy.server drops them, and
# those a `Connection` header names): a match is not decided on them, or a caller could pass
# one (`x-beta: yes` with `Connection: x-beta`) that the app then never sees.
_UNSENT: Final = HOP_BY_HOP
# Of those, the two the proxy sends on in its own words: `Transfer-Encoding: chunked` for a
# chunked body (the only coding it takes, re-framed), and `Upgrade` for an upgrade it forwards
# as one (`Connection: upgrade`, HTTP/1.1, not to HTTP itself). A match sees them as sent:
# `Upgrade: websocket` without `Connection: upgrade` reaches the app as a plain request with
# no `Upgrade`, so it must not pass a match on `upgrade: websocket`.
_REFRAMED: Final = frozenset({b"upgrade", b"transfer-encoding"})
_CHUNKED: Final = (b"transfer-encoding", b"chunked")


def sent_headers(ex: Exchange) -> list[tuple[bytes, bytes]]:
    """The (name, value) pairs of `ex` that reach the app: what `authorize` may look at."""
    if not ex.hop:  # (no hop-by-hop header, so no `Connection` naming one either)
        return ex.pairs()
    named = ex.connection_names
    sent = [pair for pair in ex.pairs() if pair[0] not in _UNSENT and pair[0] not in named]
    if ex.chunked:
        sent.append(_CHUNKED)
    if ex.upgrade:
        sent.append((b"upgrade", ex.upgrade_value))
    return sent


# What a request needs changed before it goes on (`Exchange.rewrite`): the names of headers
# to drop and of headers whose values to trim; None (the usual answer) when nothing.
Fix = tuple[frozenset[bytes], frozenset[bytes]]


class MatchedNames:
    """The header names some match reads (`names`), and how to find in a request what must
    change before it goes on, so that the app reads those headers as the match did:

    - a header whose name is another spelling of a matched one (`x_env` for `x-env`: `_` and
      `-` exchanged) is dropped. CGI, WSGI, PHP and nginx's FastCGI give the app both as one
      variable (HTTP_X_ENV), so `x-env: canary` could pass the match while the app reads
      `x_env: prod`. Envoy (`headers_with_underscores_action: DROP_HEADER`) and nginx
      (`underscores_in_headers off`) drop every name with `_`; only those that could disguise
      a matched header are dropped here: other names with `_` are some app's own business and
      decide nothing, and looking for them would cost every request a test per header;
    - a matched header whose value ends in SP or HTAB is sent on without them: a match reads
      the value without them (`Headers`, RFC 9110 §5.5), and so do nginx and Envoy, which
      forward it trimmed.

    `table` holds the matched names and all their other spellings, so a request is searched
    with one set lookup per header, as the decision cache already does; a request with no
    such header (the usual one) needs nothing more. Names with more `-`/`_` than
    `http1.MAX_SEPARATORS` have too many spellings to list: their other spellings are found
    by comparing `same_variable` forms (`long`), which only a policy naming one pays for."""

    __slots__ = ("long", "names", "table")

    def __init__(self, names: Iterable[bytes]) -> None:
        self.names = frozenset(names)
        table = set(self.names)
        long: set[bytes] = set()
        for name in self.names:
            if name.count(b"-") + name.count(b"_") > MAX_SEPARATORS:
                long.add(same_variable(name))
            else:
                table |= spellings(name)
        self.table = frozenset(table)
        self.long = frozenset(long)

    def found(self, ex: Exchange) -> tuple[tuple[bytes, bytes], ...]:
        """The pairs of `ex` that reach the app and are matched or another spelling of one,
        in request order (then those of long names)."""
        table = self.table
        named = ex.connection_names
        found: tuple[tuple[bytes, bytes], ...] = ()
        for pair in ex.pairs():
            if pair[0] in table and pair[0] not in named:
                found += (pair,)
        if self.long:
            found += self.long_spellings(ex)
        return found

    def long_spellings(self, ex: Exchange) -> tuple[tuple[bytes, bytes], ...]:
        """The pairs of `ex` that are other spellings of a long matched name."""
        named = ex.connection_names
        return tuple(
            pair
            for pair in ex.pairs()
            if pair[0] not in self.table
            and pair[0] not in named
            and same_variable(pair[0]) in self.long
        )

    def fix(self, found: Iterable[tuple[bytes, bytes]]) -> Fix | None:
        """What to change in a request whose `found` pairs these are; None for nothing."""
        drop: set[bytes] = set()
        trim: set[bytes] = set()
        for name, value in found:
            if name not in self.names:
                drop.add(name)
            elif name not in HOP_BY_HOP and field_value(value) != value:
                trim.add(name)  # (`Upgrade` is sent trimmed by `Exchange.head`)
        if not drop and not trim:
            return None
        return frozenset(drop), frozenset(trim)


_NO_NAMES: Final = MatchedNames(())


@mypyc_attr(allow_interpreted_subclasses=True)
class PeerIdentities:
    """SPIFFE id of a verified peer certificate, read once per distinct certificate (by its
    DER bytes) from the decoded form OpenSSL fills only for a verified one (proxy.peercert)."""

    def __init__(self, *, trust_domain: str | None, size: int = 4096) -> None:
        self.trust_domain = trust_domain
        self.size = size
        self._cache: dict[bytes, str | None] = {}

    def of(self, transport: asyncio.BaseTransport) -> str | None:
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(True) if ssl_object is not None else None
        if not der:
            return None
        if der in self._cache:
            return self._cache[der]
        ident = peer_identity(ssl_object, trust_domain=self.trust_domain)
        if len(self._cache) >= self.size:
            self._cache.clear()
        spiffe = None if ident is None else ident.spiffe_id
        self._cache[der] = spiffe
        return spiffe


@dataclass(frozen=True, slots=True)
class InboundPeer:
    identity: str | None
    forward: Forward


class InboundRouter(Router):
    """Authorizes requests to this workload (`identity`) on `app_port`."""

    def __init__(
        self,
        *,
        identity: str,
        app: Target,
        app_port: int,
        policy: PolicyHolder,
        metrics: Metrics,
        peers: PeerIdentities,
    ) -> None:
        self.identity = identity
        self.app_port = app_port
        self.policy = policy
        self.slot = policy.slot  # (read on every request: a compiled class)
        self.metrics = metrics
        self.stats = metrics.inbound
        self.peers = peers
        self._anonymous = InboundPeer(None, Forward(app))
        self._peers: dict[str, InboundPeer] = {}  # identity -> its peer (see peer_of)
        self.app = app
        # The decision cache: valid for one index (cleared when another is swapped in).
        self._index: PolicyIndex | None = None
        self._matched = _NO_NAMES
        self._names: frozenset[bytes] = frozenset()  # `_matched.table`
        self._bits: i64 = 0  # `simplehead.name_bits(_names)`
        self._long = False  # whether `_matched.long` has names
        self._decisions: dict[tuple[object, ...], tuple[Decision, Count | None, Fix | None]] = {}

    def peer_of(self, transport: asyncio.BaseTransport) -> InboundPeer:
        """The caller of a new connection: one `InboundPeer` per identity, kept (as many as
        `PeerIdentities` keeps certificates), so its forward is one object for every
        connection of that caller."""
        spiffe = self.peers.of(transport)
        if spiffe is None:
            return self._anonymous
        peer = self._peers.get(spiffe)
        if peer is None:
            extra = b"x-smi-source-identity: %s\r\n" % spiffe.encode()
            peer = InboundPeer(spiffe, Forward(self.app, extra))
            if len(self._peers) >= self.peers.size:
                self._peers.clear()
            self._peers[spiffe] = peer
        return peer

    def decide(self, peer: str | None, *, protocol: str, ex: Exchange | None) -> Decision | None:
        """Authorize and count; None when no policy is loaded yet."""
        index = self.policy.index
        if index is None:
            return None
        if ex is None:
            decision = authorize(index, peer, self.identity, self.app_port, protocol="tcp")
        else:
            decision = authorize(
                index,
                peer,
                self.identity,
                self.app_port,
                ex.method.decode("latin-1"),
                ex.url.decode("latin-1"),
                Headers(sent_headers(ex)),
            )
        label = self.metrics.authz(decision, protocol)
        if ex is not None:
            self.stats.request(label)
        if decision.would_deny:
            self._audit(decision, peer, protocol, ex)
        return decision

    def _audit(
        self, decision: Decision, peer: str | None, protocol: str, ex: Exchange | None
    ) -> None:
        what = protocol if ex is None else f"{ex.method_str} {ex.path_str}"
        log.warning(
            "audit: would deny %s from %s: %s (%s) rules=%s",
            what,
            peer or "-",
            decision.reason,
            decision.detail,
            ",".join(decision.rules) or "-",
        )

    def route(self, ex: Exchange, peer: InboundPeer) -> Forward | Reply:  # noqa: PLR0912
        # `decide` inlined for HTTP: this runs once per request (hence the branches).
        index = self.slot.index
        if index is None:
            self.stats.request("no-policy")
            ex.reason = "no-policy"
            return _NO_POLICY
        if index is not self._index:
            self._use(index)
        # The decision cache. `authorize` sees the caller, this destination and port (fixed
        # here), the method, the path without its query (`path_readings` reads past a "#"),
        # and only the headers some match of this destination names that reach the app
        # (`Upgrade` only when forwarded as an upgrade): requests equal in all of these get
        # the same decision, so the key is exactly them. Other spellings of those headers
        # are in the key too: they decide nothing, but whether the request must be changed
        # before it goes on (`MatchedNames`), which is remembered with the decision.
        method = ex.method
        path = ex.url
        cut = _query_at(path)
        if cut >= 0:
            path = path[:cut]
        names = self._names
        found: tuple[tuple[bytes, bytes], ...] = ()
        if self._bits:  # (`names` is not empty: each name sets a bit)
            # (name, value) of the named headers in request order: no less than `authorize`
            # sees of them (a finer key only costs cache hits). `_names` holds no name that
            # never reaches the app; one a `Connection` header names is left out, as
            # `sent_headers` does. (`MatchedNames.found`, inlined: once per request.)
            raw = ex.raw_head
            if ex.fields_at >= 0 and raw is not None and not self._long:
                # A head proxy.simplehead read: no `Connection` header, and its pairs not yet
                # read. Most have none of these names, which its name bits tell; the named
                # ones alone are read from it otherwise.
                if ex.name_bits & self._bits:
                    found = named_pairs(raw, ex.fields_at, names)
            else:
                named = ex.connection_names
                for pair in ex.pairs():
                    if pair[0] in names and pair[0] not in named:
                        found += (pair,)
                if self._matched.long:
                    found += self._matched.long_spellings(ex)
            key: tuple[object, ...] = (peer.identity, method, path, found, ex.upgrade)
        else:
            key = (peer.identity, method, path)
        hit = self._decisions.get(key)
        if hit is None:
            hit = self._authorize(index, ex, peer, key=key, found=found, n=len(path))
        elif hit[2] is not None:
            ex.rewrite(*hit[2])
        decision, allows, _ = hit
        if allows is not None:  # Metrics.authz's first branch, inlined
            allows.n += 1
            self.stats.allowed += 1
            ex.reason = "allow"
            return peer.forward
        label = self.metrics.authz(decision, "http")
        self.stats.request(label)
        ex.reason = decision.reason
        if decision.would_deny:
            self._audit(decision, peer.identity, "http", ex)
        if decision.allowed:
            return peer.forward
        return local_reply(403, decision.reason)

    def _authorize(
        self,
        index: PolicyIndex,
        ex: Exchange,
        peer: InboundPeer,
        *,
        key: tuple[object, ...],
        found: tuple[tuple[bytes, bytes], ...],
        n: int,
    ) -> tuple[Decision, Count | None, Fix | None]:
        """A cache miss: change the request as it will go on (`MatchedNames`), ask
        `authorize`, and remember the answer if the path (`n` bytes) is short enough. With the
        decision go the allow counter of its rule for the usual allow (deny mode, one rule),
        which `route` bumps without `Metrics.authz`, and the change, which every request with
        this key needs (`found`, the key's headers, tells which)."""
        fix = self._matched.fix(found)
        if fix is not None:
            ex.rewrite(*fix)
        decision = self._ask(index, peer.identity, ex)
        usual = decision.reason == "allow" and len(decision.rules) == 1
        allows = self.metrics.allow_count("http", decision.rules[0]) if usual else None
        hit = (decision, allows, fix)
        if n <= _DECISION_PATH:
            if len(self._decisions) >= _DECISIONS:
                self._decisions.clear()
            self._decisions[key] = hit
        return hit

    def _ask(self, index: PolicyIndex, peer: str | None, ex: Exchange) -> Decision:
        """`authorize` on `ex` as it goes on (or went) to the app."""
        method = ex.method
        return authorize(
            index,
            peer,
            self.identity,
            self.app_port,
            _METHODS.get(method) or method.decode("latin-1"),
            ex.url.decode("latin-1"),
            Headers(sent_headers(ex)),
        )

    def reauthorize(self, index: PolicyIndex, peer: str | None, ex: Exchange) -> Decision:
        """The decision under `index` on a request already forwarded (`ex` as it went on:
        `route` made its changes to it), counting nothing: for an upgrade whose tunnel outlives
        the policy that let it in (proxy.tunnels). Besides `authorize`: a header that reached
        the app in another spelling of one `index` matches (`x_env` beside `x-env`, when only
        the new policy reads `x-env`) fails an allow — a request now would lose it on the way
        (`MatchedNames`), and what the app read there need not be what the match read."""
        decision = self._ask(index, peer, ex)
        if not decision.allowed or decision.would_deny or decision.reason == "permissive":
            return decision
        sent = frozenset(header_names(index, self.identity)) - (_UNSENT - _REFRAMED)
        matched = MatchedNames(sent)
        fix = matched.fix(matched.found(ex)) if sent else None
        if fix is None or not fix[0]:
            return decision
        names = ", ".join(sorted(name.decode("latin-1") for name in fix[0]))
        return denied(
            mode=index.mode,
            reason="no-route-match",
            rules=decision.rules,
            detail=f"the app got {names}, another spelling of a header this policy matches",
        )

    def _use(self, index: PolicyIndex) -> None:
        """A new policy: forget every decision, and learn which headers its matches for this
        destination name (a decision depends on no other header)."""
        self._decisions.clear()
        sent = frozenset(header_names(index, self.identity)) - (_UNSENT - _REFRAMED)
        self._matched = MatchedNames(sent) if sent else _NO_NAMES
        self._names = self._matched.table
        self._bits = name_bits(self._names)
        self._long = len(self._matched.long) > 0
        self._index = index

    def protocol_for(self, peer: str | None) -> str:
        """ "tcp" when this port is covered only by TCPRoutes (then a denied caller's connection
        is simply closed), "http" otherwise — for every caller alike. Never per caller: a
        caller whose rules here are only TCPRoutes, on a port HTTP rules cover for others,
        would get its bytes relayed as they are, and its own `x-smi-source-identity` would
        reach an app that reads HTTP there, as a forged identity. Its TCPRoute allows any HTTP
        request instead, and the proxy states the identity.

        "detect" on a port no rule of this workload covers, HTTP or TCP: no rule says what it
        speaks, so the caller's first bytes decide (proxy.detect) — per connection, still never
        per caller. `permissive` and `audit` mode let everything through, which a 400 for
        non-HTTP bytes would not; deny mode refuses whatever comes, but a request still gets
        its 403 and other bytes a decided, counted tcp deny (a closed connection), where the
        HTTP parser's 400 decided nothing and no metric showed it."""
        index = self.policy.index
        if index is None:
            return "http"
        return index.port_speaks(self.identity, self.app_port) or "detect"


def _query_at(target: bytes) -> i64:
    """Where the query of a request target starts (its `?`), -1 if it has none: a loop
    compiled, where `target.find(b"?")` is a method call by name (and `b"?" in target` first
    tries its operand as an int, a TypeError raised and cleared on every request)."""
    i: i64 = 0
    n: i64 = len(target)
    while i < n:
        if target[i] == 63:  # ?
            return i
        i += 1
    return -1


def header_names(index: PolicyIndex, destination: str) -> tuple[bytes, ...]:
    """`PolicyIndex.header_names`, encoded as request header names arrive. A name that cannot
    be encoded can never be present in a request, so it is left out."""
    names: set[bytes] = set()
    for name in index.header_names(destination):
        try:
            names.add(name.encode("latin-1"))
        except UnicodeEncodeError:
            continue
    return tuple(sorted(names))


def split_header_names(split: IndexedSplit) -> tuple[bytes, ...]:
    """The header names the matches of `split` read, encoded as `header_names` encodes them."""
    names: set[bytes] = set()
    for matcher in split.matchers:
        for name, _, _ in matcher.headers:
            try:
                names.add(name.encode("latin-1"))
            except UnicodeEncodeError:
                continue
    return tuple(sorted(names))


# What a service's name may be made of in a Host (DNS labels, lower-cased): anything else names
# no service (`a@web`, `web%2eshop`, an unclosed `[web`).
_HOST_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")


def host_key(host: bytes, *, namespace: str) -> tuple[str, int | None] | None:
    """("ns/name", port or None) of a `Host` (or proxy-form authority), None when it names no
    service: an IP literal, a malformed port (`web:x`, `web:²`, over 65535), characters no DNS
    name has, empty labels (`web..`), or a name `service_key` does not take. One trailing dot
    (a fully qualified name) is allowed; an empty port (`web:`) is the default port."""
    text = host.decode("latin-1").strip().lower()
    name, _, port_text = text.partition(":")
    port: int | None = None
    if port_text:
        if len(port_text) > 5 or not all("0" <= c <= "9" for c in port_text):
            return None
        port = int(port_text)
        if port > 65535:
            return None
    if name.endswith("."):
        name = name[:-1]
    if not name or not _HOST_CHARS.issuperset(name) or "" in name.split("."):
        return None
    key = service_key(name, namespace=namespace)
    return None if key is None else (key, port)


def default_port(ports: tuple[int, ...]) -> int | None:
    """The port a Host without one names, of a Service with `ports`: 80 (RFC 9110 §4.2.1, the
    default port of `http`) when the Service has it, else its only port (`Host: api` for an app
    Service on 9090 alone, as a mesh client may send it); None, for no port in particular, when
    the Service has several and none is 80 (or none is known)."""
    if 80 in ports:
        return 80
    return ports[0] if len(ports) == 1 else None


# The largest total weight `_Plan` picks from itself: up to it, floats hold every cumulative
# weight exactly, so comparing them is comparing the integers `pick_backend` compares.
_EXACT: Final = 2**53


class _Plan:
    """A split as the request path picks from it. Without matches, the pick is
    `pick_backend`'s (bisection over the cumulative weights of `split`, which smi computed),
    made here in compiled code: `pick_backend` is interpreted, and was a fifth of what the
    outbound router cost per request. tests/unit/proxy test it against `pick_backend`."""

    __slots__ = ("cumulative", "matched", "services", "split", "total")

    def __init__(self, split: IndexedSplit) -> None:
        self.split = split
        self.matched = bool(split.matchers)  # (then `pick_backend` decides: see resolve)
        self.total = float(split.total) if 0 < split.total <= _EXACT else 0.0
        self.cumulative = [float(c) for c in split.cumulative]
        self.services = [b.service for b in split.backends]

    def pick(self, r: float) -> str | None:
        total = self.total
        if total <= 0.0:
            # No positive weight, or too large a total to pick in floats: `pick_backend`.
            return pick_backend(self.split, None, r)
        target = (0.0 if r < 0.0 else 1.0 if r > 1.0 else r) * total
        cumulative = self.cumulative
        i = _bisect_right(cumulative, target)
        if i >= len(cumulative):  # r == 1.0: the last backend with a positive weight
            i = _bisect_right(cumulative, total - 1.0)
        return self.services[i]


def _bisect_right(values: list[float], x: float) -> int:
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < values[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


class _Named:
    """What a Host names: `reply` when nothing (404), else service `key` and its split for
    the port the Host names, if any (`plan`, None: no split)."""

    __slots__ = ("key", "plan", "reply")

    def __init__(self, reply: Reply | None, key: str = "", plan: _Plan | None = None) -> None:
        self.reply = reply
        self.key = key
        self.plan = plan


class _Backends:
    """The forwards of one service's endpoints, used round-robin."""

    __slots__ = ("forwards", "n")

    def __init__(self, forwards: tuple[Forward, ...], n: int) -> None:
        self.forwards = forwards
        self.n = n


class OutboundRouter(Router):
    """Host → service → split → endpoint, for requests this workload sends."""

    def __init__(
        self,
        *,
        namespace: str,
        policy: PolicyHolder,
        tls: ClientTLS,
        metrics: Metrics,
        rng: Callable[[], float] | None = None,
    ) -> None:
        self.namespace = namespace
        self.policy = policy
        self.slot = policy.slot  # (read on every request: a compiled class)
        self.tls = tls
        self.stats = metrics.outbound
        # Split picks: the Mersenne Twister `random.random` is, seeded from the OS, without the
        # `random` module around it (0.3 MB resident in a 30 MB budget, for one method).
        self.rng = rng or Random().random
        # service -> its endpoints' forwards (or the reply when it has none), valid for one
        # (index, endpoints file) pair: both are replaced, never changed, so identity tells.
        self._backends: dict[str, _Backends | Reply] = {}
        self._seen: PolicyIndex | None = None
        self._seen_endpoints: object = None
        self._places: dict[str, int] = {}  # each service's place in its rotation, at _renew
        # Host header -> what it names under the policy in use (a handful of hosts per app;
        # bounded all the same); valid for `_seen`
        self._hosts: dict[bytes, _Named] = {}
        # root service -> its split, ready to pick from (None: no split); valid for `_seen`
        self._plans: dict[str, _Plan | None] = {}
        # root service -> the headers its split's matches read; valid for `_seen`
        self._split_names: dict[str, MatchedNames] = {}

    def peer_of(self, transport: asyncio.BaseTransport) -> None:
        return None

    def route(self, ex: Exchange, peer: None) -> Forward | Reply:
        self.stats.unchecked += 1  # (request_total's authz="none")
        index = self.slot.index
        if index is None:
            return _NO_POLICY
        host = ex.authority or ex.host
        if host is None:
            return _NO_HOST
        if index is not self._seen or self.slot.endpoints is not self._seen_endpoints:
            self._renew(index)
        # What a Host names under the policy in use: the service, or a reply when it names
        # none, and the split for the port it names (valid for `_seen`, like `_plans`).
        named = self._hosts.get(host)  # (one lookup: `in` and then `[]` were two)
        if named is None:
            named = self._named(index, host)
        if named.reply is not None:
            return named.reply
        return self._forward(index, named.key, ex, named.plan)

    def _named(self, index: PolicyIndex, host: bytes) -> _Named:
        """What `host` names (see route), remembered for the policy in use."""
        named = _Named(_UNKNOWN)
        found = host_key(host, namespace=self.namespace)
        if found is not None:
            key, port = found
            # A port the Service does not have names nothing (as in Kubernetes): never some
            # other port's app. A Service known without ports (registered endpoints) says
            # nothing about them.
            service = index.services.get(key)
            ports = () if service is None else service.ports
            if port is None:
                port = default_port(ports)
            if not ports or port is None or port in ports:
                named = _Named(None, key, self._plan(index, key, port))
        hosts = self._hosts
        if len(hosts) >= _HOST_CACHE:
            hosts.clear()
        hosts[host] = named
        return named

    def resolve(self, index: PolicyIndex, key: str, ex: Exchange | None) -> Forward | Reply:
        """The forward for service `key`, after its split; the split sees `ex` (None: not an
        HTTP request, as for an L4 relay) only if it has matches."""
        if index is not self._seen or self.slot.endpoints is not self._seen_endpoints:
            self._renew(index)
        plans = self._plans
        if key in plans:
            plan = plans[key]
        else:
            plan = plans[key] = self._plan(index, key, None)
        return self._forward(index, key, ex, plan)

    def _forward(
        self, index: PolicyIndex, key: str, ex: Exchange | None, plan: _Plan | None
    ) -> Forward | Reply:
        """The forward for service `key` after its split (`plan`, None: no split)."""
        if plan is not None:
            if plan.matched:
                split = plan.split
                request = None
                if ex is not None:
                    self._rewrite_for_split(ex, key, split)
                    request = Request(ex.method_str, ex.path_str, Headers(sent_headers(ex)))
                backend = pick_backend(split, request, self.rng())
            else:
                # A split without matches takes every request: no need to build one.
                backend = plan.pick(self.rng())
            if backend is not None:
                key = backend
        backends = self._backends.get(key)
        if backends is None:
            backends = self._backends_of(index, key)
        if not isinstance(backends, _Backends):
            return backends
        n = backends.n
        backends.n = n + 1
        forwards = backends.forwards
        return forwards[n % len(forwards)]

    def _renew(self, index: PolicyIndex) -> None:
        """A new policy or endpoints file: forget the forwards of endpoints that may be gone
        (keeping each service's place in its rotation)."""
        self._seen, self._seen_endpoints = index, self.slot.endpoints
        self._places = {k: b.n for k, b in self._backends.items() if isinstance(b, _Backends)}
        self._backends = {}
        self._plans = {}
        self._hosts = {}
        self._split_names = {}

    def _rewrite_for_split(self, ex: Exchange, root: str, split: IndexedSplit) -> None:
        """Change `ex` as it will go on (`MatchedNames`) for the headers the matches of
        `split` (of service `root`) read, before they read them. Only for splits with matches,
        which look at every request's headers anyway."""
        matched = self._split_names.get(root)
        if matched is None:
            sent = frozenset(split_header_names(split)) - (_UNSENT - _REFRAMED)
            matched = self._split_names[root] = MatchedNames(sent)
        fix = matched.fix(matched.found(ex))
        if fix is not None:
            ex.rewrite(*fix)

    def _plan(self, index: PolicyIndex, key: str, port: int | None) -> _Plan | None:
        """The split of service `key` for requests to `port` (None: any port; else
        `IndexedSplit.on_port`, SPEC.md §TrafficSplit), None when there is none."""
        split = index.splits.get(key)
        if split is not None and port is not None:
            split = split.on_port(key, port, index.services)
        return None if split is None else _Plan(split)

    def _backends_of(self, index: PolicyIndex, key: str) -> _Backends | Reply:
        endpoints = self.policy.endpoints_of(key)
        found: _Backends | Reply
        if endpoints is None:
            found = _UNKNOWN
        elif not endpoints:
            found = _NO_ENDPOINTS
        else:
            # (An endpoint listed twice is still one endpoint: it gets one turn, not two.)
            forwards = tuple(
                Forward(Target(ep.address, ep.port, tls=self.tls, identity=ep.identity))
                for ep in dict.fromkeys(endpoints)
            )
            found = _Backends(forwards, self._places.get(key, 0))
        self._backends[key] = found
        return found


# How many (backend, caller) pairs SplitThenAuthorize keeps: a few backends times a few callers.
_PAIRS: Final = 16


class SplitThenAuthorize(Router):
    """Both decisions of a sidecar pair made in one hop: the split of `service` (as the
    caller's outbound proxy makes it), then the authorization of the caller (as the backend's
    inbound proxy makes it), forwarding to the inbound router's app.

    This is the plain hop of `bench/bench_proxy.py`, which sets one proxy's work beside one
    nginx hop without TLS. It lives here, compiled with the rest of the request path, so that
    what the bench measures is the proxy's code rather than an interpreted adapter."""

    def __init__(self, *, service: str, outbound: OutboundRouter, inbound: InboundRouter) -> None:
        self.service = service
        self.outbound = outbound
        self.inbound = inbound
        self.stats = inbound.stats
        # (backend's forward, caller's forward, the forward to both): built once, as each
        # router of a real pair builds its forwards once.
        self._forwards: list[tuple[Forward, Forward, Forward]] = []

    def peer_of(self, transport: asyncio.BaseTransport) -> InboundPeer:
        return self.inbound.peer_of(transport)

    def route(self, ex: Exchange, peer: InboundPeer) -> Forward | Reply:
        index = self.inbound.slot.index
        if index is None:
            return _NO_POLICY
        backend = self.outbound.resolve(index, self.service, ex)
        if not isinstance(backend, Forward):
            return backend
        caller = self.inbound.route(ex, peer)
        if not isinstance(caller, Forward):
            return caller
        # Both routers hand out forwards they keep, so a pair of them is found by identity:
        # no tuple made and hashed (with the target's fields) per request.
        for seen_backend, seen_caller, both in self._forwards:
            if seen_backend is backend and seen_caller is caller:
                return both
        both = Forward(backend.target, caller.extra)
        if len(self._forwards) >= _PAIRS:
            self._forwards.clear()  # (forwards of policies gone, or many callers)
        self._forwards.append((backend, caller, both))
        return both
