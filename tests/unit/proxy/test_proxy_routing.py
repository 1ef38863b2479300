"""proxy.routing: inbound authorization and outbound split/endpoint choice over a real index."""

from __future__ import annotations

import functools
import logging
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from proxy_fakes import FakeTransport

from proxy.exchange import Exchange, Forward
from proxy.http1 import Reply, local_reply
from proxy.metrics import Metrics
from proxy.policy import PolicyHolder
from proxy.routing import InboundRouter, OutboundRouter, PeerIdentities, SplitThenAuthorize
from proxy.upstream import Target
from smi.compiler.ir import (
    AuthzRule,
    Endpoint,
    HttpMatch,
    MeshPolicy,
    Service,
    Split,
    SplitBackend,
)
from smi.compiler.ir.index import PolicyIndex
from smi.identity import Identity
from smi.pki import CertificateAuthority

WEB = Identity("shop", "web").spiffe_id
FRONT = Identity("shop", "front").spiffe_id
OTHER = Identity("shop", "other").spiffe_id
RULE = "shop/TrafficTarget/front-to-web"


def _policy(mode: str = "deny") -> MeshPolicy:
    api = HttpMatch(origin="shop/HTTPRouteGroup/api#read", methods=("GET",), path_regex="/api/")
    canary = HttpMatch(origin="shop/HTTPRouteGroup/canary#beta", headers=(("x-beta", "yes"),))
    return MeshPolicy(
        revision=3,
        mode=mode,  # type: ignore[arg-type]
        destinations={
            WEB: (AuthzRule(origin=RULE, sources=(FRONT,), http=(api,)),),
            Identity("shop", "db").spiffe_id: (
                AuthzRule(origin="shop/TrafficTarget/db", sources=(WEB,), tcp_ports=(5432,)),
            ),
        },
        services={
            "shop/web": Service(ports=(80,), endpoints=(Endpoint("10.0.0.1", 15006, WEB),)),
            "shop/web-v1": Service(
                endpoints=(Endpoint("10.0.0.2", 15006, WEB), Endpoint("10.0.0.3", 15006, WEB))
            ),
            "shop/web-v2": Service(endpoints=(Endpoint("10.0.0.4", 15006, WEB),)),
            "shop/empty": Service(),
        },
        splits={
            "shop/web": Split(
                origin="shop/TrafficSplit/web",
                backends=(SplitBackend("shop/web-v1", 750), SplitBackend("shop/web-v2", 250)),
            ),
            "shop/beta": Split(
                origin="shop/TrafficSplit/beta",
                backends=(SplitBackend("shop/web-v2", 1000),),
                matches=(canary,),
            ),
        },
    )


def _holder(policy: MeshPolicy | None) -> PolicyHolder:
    holder = PolicyHolder(Metrics())
    holder.index = None if policy is None else PolicyIndex.build(policy)
    return holder


def _exchange(method: bytes, url: bytes, headers: dict[bytes, bytes] | None = None) -> Exchange:
    ex = Exchange()
    ex.method, ex.url = method, url
    for name, value in (headers or {}).items():
        ex.headers.append((name.lower(), value))
        if name.lower() == b"host":
            ex.host = value
    return ex


class _SSLObject:
    """A verified TLS peer as `ssl.SSLObject` shows it: the DER bytes, and the decoded form
    OpenSSL fills in for a verified certificate (only what proxy.peercert reads)."""

    def __init__(self, der: bytes | None, uris: tuple[str, ...] = ()) -> None:
        self.der = der
        self.uris = uris
        self.decoded = 0

    def getpeercert(self, binary_form: bool = False) -> Any:
        if binary_form or self.der is None:
            return self.der
        self.decoded += 1
        return {"subjectAltName": tuple(("URI", uri) for uri in self.uris)}


def _transport_for(identity: Identity | None, ca: CertificateAuthority) -> FakeTransport:
    if identity is None:
        return FakeTransport({"ssl_object": _SSLObject(None)})
    cert_pem, _ = ca.issue_workload(identity)
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
    der = cert.public_bytes(serialization.Encoding.DER)
    return FakeTransport({"ssl_object": _SSLObject(der, uris)})


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


def _inbound(policy: MeshPolicy | None) -> tuple[InboundRouter, Metrics]:
    metrics = Metrics()
    return _inbound_on(_holder(policy), metrics), metrics


def _inbound_on(
    holder: PolicyHolder, metrics: Metrics, trust_domain: str | None = "cluster.local"
) -> InboundRouter:
    """The inbound router of WEB on app port 8080."""
    return InboundRouter(
        identity=WEB,
        app=Target("127.0.0.1", 8080),
        app_port=8080,
        policy=holder,
        metrics=metrics,
        peers=PeerIdentities(trust_domain=trust_domain),
    )


def test_peer_identity_comes_from_the_certificate_once(ca: CertificateAuthority) -> None:
    router, _ = _inbound(_policy())
    transport = _transport_for(Identity("shop", "front"), ca)
    peer = router.peer_of(transport)
    assert peer.identity == FRONT
    assert peer.forward.extra == f"x-smi-source-identity: {FRONT}\r\n".encode()
    assert router.peer_of(transport).identity == FRONT  # cached by certificate:
    assert transport.extra["ssl_object"].decoded == 1  # decoded once
    assert router.peer_of(_transport_for(None, ca)).identity is None
    foreign = Identity("shop", "front", trust_domain="elsewhere.example")
    assert router.peer_of(_transport_for(foreign, ca)).identity is None
    # Another connection of the same caller (another certificate) gets the same peer, whose
    # forward is then one object for every connection (SplitThenAuthorize finds it by that).
    assert router.peer_of(_transport_for(Identity("shop", "front"), ca)) is peer
    other = router.peer_of(_transport_for(Identity("shop", "other"), ca))
    assert other is not peer and other.identity == Identity("shop", "other").spiffe_id


@pytest.mark.parametrize(
    ("source", "method", "path", "status", "reason"),
    [
        (FRONT, b"GET", b"/api/items?x=1", None, "allow"),
        (FRONT, b"POST", b"/api/items", 403, "no-route-match"),
        (FRONT, b"GET", b"/admin", 403, "no-route-match"),
        (OTHER, b"GET", b"/api/items", 403, "source-not-allowed"),
        (None, b"GET", b"/api/items", 403, "no-identity"),
    ],
)
def test_inbound_allow_deny(
    ca: CertificateAuthority,
    *,
    source: str | None,
    method: bytes,
    path: bytes,
    status: int | None,
    reason: str,
) -> None:
    router, metrics = _inbound(_policy())
    peer = router.peer_of(_transport_for(None if source is None else Identity.parse(source), ca))
    ex = _exchange(method, path, {b"Host": b"web"})
    route = router.route(ex, peer)
    assert ex.reason == reason
    if status is None:
        assert isinstance(route, Forward) and route is peer.forward
        assert metrics.authz_allow["http"] == {RULE: 1}
    else:
        assert isinstance(route, Reply) and route.status == status
        assert route.data.endswith(f"forbidden: {reason}\n".encode())
        assert metrics.authz_deny["http"] == {reason: 1}


def test_audit_mode_allows_but_counts_and_logs_the_would_deny(
    ca: CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    router, metrics = _inbound(_policy("audit"))
    peer = router.peer_of(_transport_for(Identity("shop", "front"), ca))
    with caplog.at_level(logging.WARNING, logger="smictl.proxy"):
        route = router.route(_exchange(b"DELETE", b"/api/x", {b"Host": b"w"}), peer)
    assert isinstance(route, Forward)
    assert metrics.authz_would_deny["http"] == {(RULE, "no-route-match"): 1}
    assert metrics.inbound.requests == {"would_deny": 1}
    assert "would deny DELETE /api/x" in caplog.text and RULE in caplog.text


def test_permissive_mode_allows_anyone(ca: CertificateAuthority) -> None:
    router, metrics = _inbound(_policy("permissive"))
    route = router.route(_exchange(b"GET", b"/x"), router.peer_of(_transport_for(None, ca)))
    assert isinstance(route, Forward)
    assert metrics.inbound.requests == {"permissive": 1}


def test_no_policy_yet_is_503(ca: CertificateAuthority) -> None:
    router, _ = _inbound(None)
    route = router.route(_exchange(b"GET", b"/api/"), router.peer_of(_transport_for(None, ca)))
    assert isinstance(route, Reply) and route.status == 503 and route.reason == "no-policy"


def test_tcp_decisions_and_port_protocols() -> None:
    db = Identity("shop", "db").spiffe_id
    metrics = Metrics()
    router = InboundRouter(
        identity=db,
        app=Target("127.0.0.1", 5432),
        app_port=5432,
        policy=_holder(_policy()),
        metrics=metrics,
        peers=PeerIdentities(trust_domain=None),
    )
    assert router.protocol_for(WEB) == "tcp"
    allowed = router.decide(WEB, protocol="tcp", ex=None)
    denied = router.decide(FRONT, protocol="tcp", ex=None)
    assert allowed is not None and allowed.allowed
    assert denied is not None and not denied.allowed
    assert metrics.authz_allow["tcp"] == {"shop/TrafficTarget/db": 1}
    assert metrics.authz_deny["tcp"] == {"source-not-allowed": 1}


class _Seq:
    def __init__(self, values: list[float]) -> None:
        self.values = iter(values)

    def __call__(self) -> float:
        return next(self.values)


def _outbound(policy: MeshPolicy | None, rng: Any = None) -> OutboundRouter:
    return OutboundRouter(
        namespace="shop",
        policy=_holder(policy),
        tls=None,  # type: ignore[arg-type]
        metrics=Metrics(),
        rng=rng or (lambda: 0.5),
    )


def test_outbound_split_weights_pick_backends() -> None:
    draws = [i / 1000 for i in range(1000)]
    router = _outbound(_policy(), _Seq(draws))
    picked: Counter[str] = Counter()
    for _ in draws:
        route = router.route(
            _exchange(b"GET", b"/", {b"Host": b"web.shop.svc.cluster.local"}), None
        )
        assert isinstance(route, Forward)
        picked[route.target.host] += 1
    assert picked["10.0.0.2"] + picked["10.0.0.3"] == 750  # web-v1, round-robin over two
    assert picked["10.0.0.2"] == picked["10.0.0.3"] == 375
    assert picked["10.0.0.4"] == 250


def test_outbound_target_requires_the_endpoint_identity() -> None:
    route = _outbound(_policy()).route(_exchange(b"GET", b"/", {b"Host": b"web"}), None)
    assert isinstance(route, Forward)
    assert route.target.identity == WEB and route.target.port == 15006


def test_header_matched_split_only_takes_matching_requests() -> None:
    policy = _policy()
    policy.services["shop/beta"] = Service(endpoints=(Endpoint("10.0.0.9", 1, WEB),))
    router = _outbound(policy)
    plain = router.route(_exchange(b"GET", b"/", {b"Host": b"beta"}), None)
    beta = router.route(_exchange(b"GET", b"/", {b"Host": b"beta", b"X-Beta": b"yes"}), None)
    assert isinstance(plain, Forward) and plain.target.host == "10.0.0.9"  # the root service
    assert isinstance(beta, Forward) and beta.target.host == "10.0.0.4"  # web-v2


def test_proxy_form_targets_name_the_service() -> None:
    ex = _exchange(b"GET", b"/api")
    ex.authority = b"web-v2.shop:80"
    route = _outbound(_policy()).route(ex, None)
    assert isinstance(route, Forward) and route.target.host == "10.0.0.4"


@pytest.mark.parametrize(
    ("host", "status", "reason"),
    [
        (b"nowhere", 404, "unknown-service"),
        (b"www.example.com", 404, "unknown-service"),
        (b"empty", 503, "no-endpoints"),
    ],
)
def test_outbound_failures(host: bytes, status: int, reason: str) -> None:
    route = _outbound(_policy()).route(_exchange(b"GET", b"/", {b"Host": host}), None)
    assert isinstance(route, Reply) and (route.status, route.reason) == (status, reason)


def test_host_lookups_are_remembered_without_changing_answers() -> None:
    router = _outbound(_policy())
    hosts = [b"web-v2", b"nowhere", *(b"h%d.example.com" % i for i in range(1500)), b"web-v2"]
    for _ in range(2):  # the second pass answers from the (bounded) cache
        for host in hosts:
            route = router.route(_exchange(b"GET", b"/", {b"Host": host}), None)
            if host == b"web-v2":
                assert isinstance(route, Forward) and route.target.host == "10.0.0.4"
            else:
                assert isinstance(route, Reply) and route.reason == "unknown-service"
    assert len(router._hosts) <= 1024


def test_what_a_host_names_follows_a_new_policy() -> None:
    """Hosts are remembered per policy: a port the new policy's Service no longer has, or a
    split that changed, is answered as the new policy says."""
    router = _outbound(_policy(), rng=lambda: 0.99)
    route = router.route(_exchange(b"GET", b"/", {b"Host": b"web:80"}), None)
    assert isinstance(route, Forward) and route.target.host == "10.0.0.4"  # web-v2 (0.99)
    changed = _policy()
    services = dict(changed.services)
    services["shop/web"] = Service(ports=(8080,), endpoints=services["shop/web"].endpoints)
    router.policy.index = PolicyIndex.build(replace(changed, services=services, revision=4))
    route = router.route(_exchange(b"GET", b"/", {b"Host": b"web:80"}), None)
    assert isinstance(route, Reply) and route.reason == "unknown-service"
    route = router.route(_exchange(b"GET", b"/", {b"Host": b"web:8080"}), None)
    assert isinstance(route, Forward) and route.target.host == "10.0.0.4"
    router.policy.index = PolicyIndex.build(replace(_policy(), splits={}, revision=5))
    route = router.route(_exchange(b"GET", b"/", {b"Host": b"web:80"}), None)
    assert isinstance(route, Forward) and route.target.host == "10.0.0.1"  # no split now


def test_endpoints_file_overrides_the_policy() -> None:
    router = _outbound(_policy())
    router.policy.endpoints = {"shop/web-v2": (Endpoint("192.168.0.7", 9, WEB),)}
    router.rng = lambda: 0.99
    route = router.route(_exchange(b"GET", b"/", {b"Host": b"web"}), None)
    assert isinstance(route, Forward) and route.target.host == "192.168.0.7"


# --- the decision cache ------------------------------------------------------------------------

_IDS = [Identity("shop", n).spiffe_id for n in ("front", "other", "batch", "admin")]
_PATHS = [
    "/api/items",
    "/api/items/7",
    "/api/items?x=1",
    "/api/items#frag",
    "/api/../admin",
    "/api//items",
    "/api/%2e%2e/admin",
    "/admin",
    "/admin?/api/",
    "/healthz",
    "/",
    "",
    "/API/items",
    "/a/b/./c",
]
_REGEXES = ["/api/.*", "/api/[a-z]+(/[0-9]+)?$", "/admin", ".*", "/healthz$", None]
_HEADER_CONDS = [
    ("x-beta", "yes"),
    ("x-beta", "y.*"),
    ("content-type", "application/json"),
    ("x-Tenant", "[a-z]+"),
]
_HEADER_VALUES = {
    b"x-beta": [b"yes", b"no", b"yesyes", b""],
    b"content-type": [b"application/json", b"text/plain"],
    b"x-tenant": [b"acme", b"ACME", b"a1"],
    b"x-other": [b"1"],
}


def _random_policy(rng: Any) -> MeshPolicy:
    rules = []
    for i in range(rng.randint(1, 4)):
        matches = tuple(
            HttpMatch(
                origin=f"shop/HTTPRouteGroup/g{i}#m{j}",
                methods=tuple(rng.sample(["GET", "POST", "PUT", "*"], rng.randint(0, 2))),
                path_regex=rng.choice(_REGEXES),
                headers=tuple(rng.sample(_HEADER_CONDS, rng.randint(0, 2))),
            )
            for j in range(rng.randint(1, 3))
        )
        rules.append(
            AuthzRule(
                origin=f"shop/TrafficTarget/t{i}",
                sources=tuple(rng.sample(_IDS, rng.randint(1, 3))),
                http=matches,
                ports=tuple(rng.sample([8080, 9090], rng.randint(0, 1))),
                tcp_ports=(5432,) if rng.random() < 0.2 else None,
            )
        )
    mode = rng.choice(["deny", "deny", "audit", "permissive"])
    return MeshPolicy(revision=1, mode=mode, destinations={WEB: tuple(rules)})  # type: ignore[arg-type]


class _Recording(Metrics):
    def __init__(self) -> None:
        super().__init__()
        self.decisions: list[Any] = []

    def authz(self, decision: Any, protocol: str) -> str:
        self.decisions.append(decision)
        return super().authz(decision, protocol)


def test_cached_decisions_are_exactly_what_authorize_decides() -> None:
    """Random policies (header-matched rules, audit and permissive modes) and random requests
    (queries, fragments, dot segments, repeated and absent headers), each asked three times so
    that most answers come from the cache: every one equals `authorize` called directly, and
    so do the counters (rules, reasons, outcomes)."""
    import random

    from proxy.exchange import Headers
    from smi.compiler.ir.decide import authorize

    rng = random.Random(5)
    hits = 0
    for _ in range(60):
        metrics, reference = _Recording(), Metrics()
        holder = _holder(_random_policy(rng))
        router = InboundRouter(
            identity=WEB,
            app=Target("127.0.0.1", 8080),
            app_port=8080,
            policy=holder,
            metrics=metrics,
            peers=PeerIdentities(trust_domain="cluster.local"),
        )
        peers = [router._anonymous] + [router.peer_of(_Peer(i)) for i in _IDS]  # type: ignore[arg-type]
        requests = []
        for _ in range(150):
            headers = [
                (name, rng.choice(values))
                for name, values in _HEADER_VALUES.items()
                for _ in range(rng.choice([0, 0, 1, 1, 2]))
            ]
            rng.shuffle(headers)
            method = rng.choice([b"GET", b"POST", b"PUT", b"DELETE", b"BREW"])
            url = rng.choice(_PATHS).encode()
            requests.append((rng.choice(peers), method, url, headers))
        for peer, method, url, headers in requests * 3:
            ex = _exchange(method, url)
            ex.headers = list(headers)
            before = len(router._decisions)
            result = router.route(ex, peer)
            hits += len(router._decisions) == before
            assert holder.index is not None
            direct = authorize(
                holder.index,
                peer.identity,
                WEB,
                8080,
                method.decode(),
                url.decode(),
                Headers(list(headers)),
            )
            usual = direct.reason == "allow" and len(direct.rules) == 1
            if not usual:  # (the usual allow is counted without Metrics.authz)
                assert metrics.decisions[-1] == direct, (peer.identity, method, url, headers)
            assert ex.reason == direct.reason
            assert (result is peer.forward) == direct.allowed
            if not direct.allowed:
                assert result == local_reply(403, direct.reason)
            label = reference.authz(direct, "http")
            reference.inbound.request(label)
        for attr in ("authz_allow", "authz_deny", "authz_would_deny"):
            assert getattr(metrics, attr) == getattr(reference, attr)
        assert metrics.inbound.requests == reference.inbound.requests
    assert hits > 10_000  # the cache was in use


@functools.cache
def _peer_ca() -> CertificateAuthority:
    return CertificateAuthority.create()


class _Peer:
    """A transport whose verified peer is `identity` (for `PeerIdentities.of`), with a real
    certificate: the DER is read too (a CA's certificate is no identity)."""

    def __init__(self, identity: str) -> None:
        self.transport = _transport_for(Identity.parse(identity), _peer_ca())

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)


def test_the_decision_cache_is_cleared_when_the_policy_changes() -> None:
    router, _ = _inbound(_policy())
    peer = router.peer_of(_Peer(FRONT))  # type: ignore[arg-type]
    assert isinstance(router.route(_exchange(b"GET", b"/api/x"), peer), Forward)
    assert router._decisions
    closed = MeshPolicy(revision=4, destinations={})
    router.policy.index = PolicyIndex.build(closed)
    ex = _exchange(b"GET", b"/api/x")
    assert isinstance(router.route(ex, peer), Reply)
    assert ex.reason == "no-traffic-target"
    assert len(router._decisions) == 1


def test_the_decision_cache_is_bounded() -> None:
    router, _ = _inbound(_policy())
    peer = router.peer_of(_Peer(FRONT))  # type: ignore[arg-type]
    for i in range(10_000):
        router.route(_exchange(b"GET", b"/api/%d" % i), peer)
    assert len(router._decisions) <= 4096
    router.route(_exchange(b"GET", b"/api/" + b"x" * 600), peer)
    assert all(len(key[2]) <= 512 for key in router._decisions)  # type: ignore[arg-type]


def test_split_then_authorize_sends_an_allowed_request_to_the_picked_backend(
    ca: CertificateAuthority,
) -> None:
    holder, metrics = _holder(_policy()), Metrics()
    inbound = _inbound_on(holder, metrics)
    outbound = OutboundRouter(
        namespace="shop",
        policy=holder,
        tls=None,  # type: ignore[arg-type]
        metrics=metrics,
        rng=_Seq([0.1, 0.9, 0.1, 0.1, 0.1]),
    )
    hop = SplitThenAuthorize(service="shop/web", outbound=outbound, inbound=inbound)
    assert hop.stats is metrics.inbound
    peer = hop.peer_of(_transport_for(Identity("shop", "front"), ca))
    routes = [hop.route(_exchange(b"GET", b"/api/items"), peer) for _ in range(4)]
    assert all(isinstance(r, Forward) for r in routes)
    forwards = [r for r in routes if isinstance(r, Forward)]
    # web-v1 (two endpoints, in turn), web-v2, web-v1, web-v1: 75/25 at r = 0.1 and 0.9
    assert [f.target.host for f in forwards] == ["10.0.0.2", "10.0.0.4", "10.0.0.3", "10.0.0.2"]
    assert all(f.extra == f"x-smi-source-identity: {FRONT}\r\n".encode() for f in forwards)
    assert forwards[3] is forwards[0]  # one forward per (backend, caller), built once
    denied = hop.route(_exchange(b"DELETE", b"/api/items"), peer)
    assert isinstance(denied, Reply) and denied.status == 403
    assert metrics.authz_allow["http"] == {RULE: 4}


def test_split_then_authorize_without_a_policy_is_503() -> None:
    holder, metrics = _holder(None), Metrics()
    inbound = _inbound_on(holder, metrics, trust_domain=None)
    outbound = OutboundRouter(namespace="shop", policy=holder, tls=None, metrics=metrics)  # type: ignore[arg-type]
    hop = SplitThenAuthorize(service="shop/web", outbound=outbound, inbound=inbound)
    route = hop.route(_exchange(b"GET", b"/api/"), hop.peer_of(FakeTransport()))
    assert isinstance(route, Reply) and route.status == 503 and route.reason == "no-policy"
