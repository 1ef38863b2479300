"""proxy.metrics: an audit-mode would-deny is counted once, whatever the number of TrafficTargets.

The destination below has three TrafficTargets. A would-denied request used to be counted once
per TrafficTarget the decision considered, so `sum(inbound_*_authz_would_deny_total)` was three
times the requests `request_total{authz="would_deny"}` counted; now each is counted once, under
the rules its decision considered, joined with ",".
"""

from __future__ import annotations

import pytest

from proxy.exchange import Exchange, Forward
from proxy.metrics import Metrics
from proxy.policy import PolicyHolder
from proxy.routing import InboundPeer, InboundRouter, PeerIdentities
from proxy.upstream import Target
from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy
from smi.compiler.ir.index import PolicyIndex
from smi.identity import Identity

WEB = Identity("shop", "web").spiffe_id
FRONT = Identity("shop", "front").spiffe_id
ADMIN = Identity("shop", "admin").spiffe_id
STRANGER = Identity("shop", "stranger").spiffe_id
TT_A, TT_B, TT_C = (f"shop/TrafficTarget/{n}" for n in ("a-front", "b-front", "c-admin"))
APP = Target("127.0.0.1", 8080)


def _router(*, identity: str = WEB) -> tuple[InboundRouter, Metrics]:
    api = HttpMatch(origin="shop/HTTPRouteGroup/api#read", methods=("GET",), path_regex="/api/")
    ops = HttpMatch(origin="shop/HTTPRouteGroup/ops#all", path_regex="/ops/")
    policy = MeshPolicy(
        revision=1,
        mode="audit",
        destinations={
            WEB: (
                AuthzRule(origin=TT_A, sources=(FRONT,), http=(api,)),
                AuthzRule(origin=TT_B, sources=(FRONT,), http=(api,)),
                AuthzRule(origin=TT_C, sources=(ADMIN,), http=(ops,)),
            )
        },
    )
    metrics = Metrics()
    holder = PolicyHolder(metrics)
    holder.index = PolicyIndex.build(policy)
    router = InboundRouter(
        identity=identity,
        app=APP,
        app_port=8080,
        policy=holder,
        metrics=metrics,
        peers=PeerIdentities(trust_domain="cluster.local"),
    )
    return router, metrics


def _get(router: InboundRouter, caller: str | None, path: bytes) -> None:
    ex = Exchange()
    ex.method, ex.url, ex.host = b"GET", path, b"web"
    ex.headers.append((b"host", b"web"))
    assert isinstance(router.route(ex, InboundPeer(caller, Forward(APP))), Forward)  # audit


def _samples(text: str, family: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(family + "{"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_each_would_denied_request_is_counted_once_under_the_rules_it_was_decided_on() -> None:
    router, metrics = _router()
    for _ in range(2):
        _get(router, STRANGER, b"/api/x")  # source-not-allowed: every TrafficTarget of WEB
    _get(router, FRONT, b"/admin")  # no-route-match: the two that name FRONT
    _get(router, None, b"/api/x")  # no-identity: no TrafficTarget at all
    text = metrics.render()
    would = _samples(text, "inbound_http_authz_would_deny_total")
    family = "inbound_http_authz_would_deny_total"
    assert would == {
        f'{family}{{rule="{TT_A},{TT_B},{TT_C}",reason="source-not-allowed"}}': 2,
        f'{family}{{rule="{TT_A},{TT_B}",reason="no-route-match"}}': 1,
        f'{family}{{rule="",reason="no-identity"}}': 1,
    }
    requests = _samples(text, "request_total")
    assert sum(would.values()) == requests['request_total{direction="inbound",authz="would_deny"}']


def test_a_would_denied_tcp_connection_is_counted_once() -> None:
    router, metrics = _router()
    for caller in (STRANGER, FRONT):
        decision = router.decide(caller, protocol="tcp", ex=None)
        assert decision is not None and decision.would_deny
    would = _samples(metrics.render(), "inbound_tcp_authz_would_deny_total")
    family = "inbound_tcp_authz_would_deny_total"
    assert would == {
        f'{family}{{rule="{TT_A},{TT_B},{TT_C}",reason="source-not-allowed"}}': 1,
        f'{family}{{rule="{TT_A},{TT_B}",reason="protocol-not-allowed"}}': 1,
    }


@pytest.mark.parametrize("protocol", ["http", "tcp"])
def test_the_label_values_are_bounded_by_the_policy(protocol: str) -> None:
    """However many requests, the labels are the decision's rule sets: one per reason and
    set of TrafficTargets, never one per request."""
    router, metrics = _router()
    for i in range(300):
        caller = (STRANGER, FRONT, ADMIN, None)[i % 4]
        if protocol == "http":
            _get(router, caller, b"/nowhere/%d" % i)
        else:
            router.decide(caller, protocol="tcp", ex=None)
    would = metrics.authz_would_deny[protocol]
    assert sum(would.values()) == 300
    assert len(would) == 4
    assert {rule for rule, _ in would} == {f"{TT_A},{TT_B},{TT_C}", f"{TT_A},{TT_B}", TT_C, ""}
