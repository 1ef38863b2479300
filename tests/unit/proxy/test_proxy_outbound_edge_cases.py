"""Outbound routing under unusual and hostile requests: Host → service → split → endpoint."""

from __future__ import annotations

from collections import Counter

import pytest
from proxy_fakes import Harness

from proxy.exchange import Exchange, Forward
from proxy.http1 import Reply
from proxy.metrics import Metrics
from proxy.policy import PolicyHolder
from proxy.routing import OutboundRouter, host_key
from smi.compiler.ir import Endpoint, HttpMatch, MeshPolicy, Service, Split, SplitBackend
from smi.compiler.ir.index import PolicyIndex
from smi.identity import Identity

V1 = Identity("shop", "web-v1").spiffe_id
V2 = Identity("shop", "web-v2").spiffe_id
ROOT = Identity("shop", "web").spiffe_id


def _policy(
    splits: dict[str, Split] | None = None, services: dict[str, Service] | None = None
) -> MeshPolicy:
    return MeshPolicy(
        revision=1,
        services=services
        or {
            "shop/web": Service(ports=(80,), endpoints=(Endpoint("10.0.0.1", 15006, ROOT),)),
            "shop/web-v1": Service(ports=(80,), endpoints=(Endpoint("10.0.0.2", 15006, V1),)),
            "shop/web-v2": Service(ports=(80,), endpoints=(Endpoint("10.0.0.3", 15006, V2),)),
            "other/api": Service(ports=(8080,), endpoints=(Endpoint("10.1.0.1", 15006, V2),)),
            "shop/empty": Service(ports=(80,)),
        },
        splits=splits or {},
    )


def _router(policy: MeshPolicy, draws: list[float] | None = None) -> OutboundRouter:
    holder = PolicyHolder(Metrics())
    holder.index = PolicyIndex.build(policy)
    values = iter(draws or [0.5] * 100_000)
    return OutboundRouter(
        namespace="shop",
        policy=holder,
        tls=None,  # type: ignore[arg-type]
        metrics=Metrics(),
        rng=lambda: next(values),
    )


def _ex(host: bytes | None, path: bytes = b"/", **headers: bytes) -> Exchange:
    ex = Exchange()
    ex.method, ex.url, ex.host = b"GET", path, host
    ex.headers = [(k.replace("_", "-").encode(), v) for k, v in headers.items()]
    return ex


def _where(route: Forward | Reply) -> str | tuple[int, str]:
    if isinstance(route, Forward):
        return route.target.host
    return (route.status, route.reason)


# --- Host → service ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (b"web", "10.0.0.1"),
        (b"web:80", "10.0.0.1"),
        (b"web:", "10.0.0.1"),  # an empty port is the default one (RFC 3986)
        (b"web.shop", "10.0.0.1"),
        (b"web.shop.svc", "10.0.0.1"),
        (b"web.shop.svc.cluster.local", "10.0.0.1"),
        (b"web.shop.svc.cluster.local.", "10.0.0.1"),
        (b"WEB.Shop.SVC:80", "10.0.0.1"),
        (b"api.other:8080", "10.1.0.1"),  # another namespace, by name
        (b"api", (404, "unknown-service")),  # a bare name is this namespace's
        (b"nowhere", (404, "unknown-service")),
        (b"empty", (503, "no-endpoints")),
        (b"", (404, "unknown-service")),
        (b"[::1]:80", (404, "unknown-service")),
        (b"10.0.0.1", (404, "unknown-service")),
        (b"10.0.0.1:15006", (404, "unknown-service")),
        (b"a@web", (404, "unknown-service")),
        (b"web%2eshop", (404, "unknown-service")),
        (b".web", (404, "unknown-service")),
    ],
)
def test_hosts_name_services_or_nothing(host: bytes, expected: object) -> None:
    assert _where(_router(_policy()).route(_ex(host), None)) == expected


@pytest.mark.parametrize(
    "host",
    [
        b"[webx",  # an unclosed IPv6 bracket was read as the name `web`
        b"[web]",
        b"web:abc",
        b"web:80:90",
        b"web:99999999",
        b"web:-80",
        b"web..",
        b"web.shop..",
    ],
)
def test_malformed_hosts_name_no_service(host: bytes) -> None:
    assert _where(_router(_policy()).route(_ex(host), None)) == (404, "unknown-service")


@pytest.mark.parametrize("host", [b"web:\xb2", b"web:\xb9\xb2\xb3", b"web:\xd9\xa0"])
def test_a_port_of_non_ascii_digits_is_answered_not_raised(host: bytes) -> None:
    # `"²".isdigit()` is True and `int("²")` raises: the request killed its connection.
    assert _where(_router(_policy()).route(_ex(host), None)) == (404, "unknown-service")


async def test_a_port_of_non_ascii_digits_gets_an_answer_through_the_proxy() -> None:
    h = Harness(router=_router(_policy()))
    h.send(b"GET / HTTP/1.1\r\nHost: web:\xb2\r\n\r\nGET / HTTP/1.1\r\nHost: nowhere\r\n\r\n")
    await h.settle()
    # Not a `uri-host [":" port]` (RFC 9112 §3.2): 400 before routing, and the connection closes.
    assert h.down.data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and h.down.closed
    assert h.down.data.count(b"HTTP/1.1 ") == 1 and not h.upstreams


def test_host_key_parts() -> None:
    assert host_key(b"Web.Shop:8080", namespace="x") == ("shop/web", 8080)
    assert host_key(b"web", namespace="x") == ("x/web", None)
    assert host_key(b"[::1]:9000", namespace="x") is None


@pytest.mark.parametrize("host", [b"web:8080", b"web:9999", b"web.shop.svc.cluster.local:443"])
def test_a_port_the_service_lacks_names_nothing(host: bytes) -> None:
    assert _where(_router(_policy()).route(_ex(host), None)) == (404, "unknown-service")


def test_a_service_known_without_ports_takes_any_port() -> None:
    services = {"shop/reg": Service(endpoints=(Endpoint("10.0.0.9", 15006, V1),))}
    assert _where(_router(_policy(services=services)).route(_ex(b"reg:1234"), None)) == "10.0.0.9"


def test_the_proxy_form_authority_wins_over_the_host_header() -> None:
    ex = _ex(b"web-v2")
    ex.authority = b"web-v1.shop"
    assert _where(_router(_policy()).route(ex, None)) == "10.0.0.2"
    ex = _ex(None)
    assert _where(_router(_policy()).route(ex, None)) == (400, "missing-host")


# --- splits ------------------------------------------------------------------------------------


def _split(*backends: tuple[str, int], matches: tuple[HttpMatch, ...] = ()) -> dict[str, Split]:
    return {
        "shop/web": Split(
            origin="shop/TrafficSplit/web",
            backends=tuple(SplitBackend(s, w) for s, w in backends),
            matches=matches,
        )
    }


def _picks(router: OutboundRouter, n: int, host: bytes = b"web") -> Counter[object]:
    return Counter(_where(router.route(_ex(host), None)) for _ in range(n))


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ((1, 999), {"10.0.0.2": 10, "10.0.0.3": 9990}),
        ((0, 1), {"10.0.0.3": 10_000}),
        ((1, 0), {"10.0.0.2": 10_000}),
    ],
)
def test_split_weights_are_exact_over_evenly_spaced_draws(
    weights: tuple[int, int], expected: dict[str, int]
) -> None:
    draws = [i / 10_000 for i in range(10_000)]
    split = _split(("shop/web-v1", weights[0]), ("shop/web-v2", weights[1]))
    assert _picks(_router(_policy(split), draws), 10_000) == expected


def test_many_backends_share_by_weight() -> None:
    services = {
        f"shop/b{i}": Service(endpoints=(Endpoint(f"10.2.0.{i}", 1, V1),)) for i in range(50)
    }
    services["shop/web"] = Service(endpoints=(Endpoint("10.0.0.1", 1, ROOT),))
    split = _split(*((f"shop/b{i}", i) for i in range(50)))  # b0 has weight 0
    draws = [(i + 0.5) / 12_250 for i in range(12_250)]  # total weight 1225, 10 draws each
    picks = _picks(_router(_policy(split, services), draws), 12_250)
    assert picks == {f"10.2.0.{i}": 10 * i for i in range(1, 50)}


def test_a_backend_may_be_the_root_itself() -> None:
    draws = [i / 100 for i in range(100)]
    split = _split(("shop/web", 1), ("shop/web-v2", 1))
    assert _picks(_router(_policy(split), draws), 100) == {"10.0.0.1": 50, "10.0.0.3": 50}


def test_a_backend_without_endpoints_answers_503_for_its_share() -> None:
    # The root has endpoints; the backend's share is not sent to the root (it selects every
    # version) nor to the other backend: 503 no-endpoints, as for any service without any.
    draws = [i / 100 for i in range(100)]
    split = _split(("shop/empty", 1), ("shop/web-v2", 3))
    picks = _picks(_router(_policy(split), draws), 100)
    assert picks == {(503, "no-endpoints"): 25, "10.0.0.3": 75}


def test_header_matched_split_takes_only_matching_requests() -> None:
    beta = HttpMatch(origin="shop/HTTPRouteGroup/g#beta", headers=(("x-beta", "yes"),))
    router = _router(_policy(_split(("shop/web-v2", 1), matches=(beta,))))
    assert _where(router.route(_ex(b"web", x_beta=b"yes"), None)) == "10.0.0.3"
    assert _where(router.route(_ex(b"web", x_beta=b"no"), None)) == "10.0.0.1"
    assert _where(router.route(_ex(b"web"), None)) == "10.0.0.1"
    # An L4 relay (no HTTP request) goes to the root too.
    assert _where(router.resolve(router.policy.index, "shop/web", None)) == "10.0.0.1"  # type: ignore[arg-type]


def test_a_split_leaves_out_backends_lacking_the_requested_port() -> None:
    # SPEC.md §TrafficSplit: a backend lacking a port of the root is excluded from the split
    # for that port (the compiler keeps it when another port is shared; SMI3005 says "it gets
    # no traffic on it").
    services = {
        "shop/web": Service(ports=(80, 8080), endpoints=(Endpoint("10.0.0.1", 1, ROOT),)),
        "shop/web-v1": Service(ports=(80, 8080), endpoints=(Endpoint("10.0.0.2", 1, V1),)),
        "shop/web-v2": Service(ports=(80,), endpoints=(Endpoint("10.0.0.3", 1, V2),)),
    }
    draws = [i / 100 for i in range(100)] * 3
    router = _router(_policy(_split(("shop/web-v1", 1), ("shop/web-v2", 1)), services), draws)
    assert _picks(router, 100, b"web:8080") == {"10.0.0.2": 100}
    assert _picks(router, 100, b"web:80") == {"10.0.0.2": 50, "10.0.0.3": 50}
    assert _picks(router, 100, b"web") == {"10.0.0.2": 50, "10.0.0.3": 50}


def _ported(root: tuple[int, ...], v1: tuple[int, ...], v2: tuple[int, ...]) -> OutboundRouter:
    services = {
        "shop/web": Service(ports=root, endpoints=(Endpoint("10.0.0.1", 1, ROOT),)),
        "shop/web-v1": Service(ports=v1, endpoints=(Endpoint("10.0.0.2", 1, V1),)),
        "shop/web-v2": Service(ports=v2, endpoints=(Endpoint("10.0.0.3", 1, V2),)),
    }
    draws = [i / 100 for i in range(100)] * 2
    return _router(_policy(_split(("shop/web-v1", 1), ("shop/web-v2", 1)), services), draws)


def test_a_host_without_a_port_is_port_80_of_a_service_that_has_it() -> None:
    # RFC 9110 §4.2.1: no port is the scheme's default. `Host: web` went to both backends,
    # half of it to web-v2, which has no port 80, while `Host: web:80` left web-v2 out.
    router = _ported((80, 8080), (80,), (8080,))
    assert _picks(router, 100, b"web") == {"10.0.0.2": 100}
    assert _picks(router, 100, b"web:80") == {"10.0.0.2": 100}


def test_a_host_without_a_port_is_the_only_port_of_a_service_with_one() -> None:
    # (A Service of one port, 9090, is reached with a bare `Host: api` too.)
    router = _ported((9090,), (9090,), (8080,))
    assert _picks(router, 100, b"web") == {"10.0.0.2": 100}
    assert _where(router.route(_ex(b"web:80"), None)) == (404, "unknown-service")


def test_a_host_without_a_port_of_a_service_with_several_but_not_80_is_not_narrowed() -> None:
    # No port is meant more than another: the split as a whole, as before.
    router = _ported((8080, 9090), (8080,), (9090,))
    assert _picks(router, 100, b"web") == {"10.0.0.2": 50, "10.0.0.3": 50}


def test_a_split_with_no_backend_on_the_port_goes_to_the_root() -> None:
    services = {
        "shop/web": Service(ports=(80, 8080), endpoints=(Endpoint("10.0.0.1", 1, ROOT),)),
        "shop/web-v2": Service(ports=(80,), endpoints=(Endpoint("10.0.0.3", 1, V2),)),
    }
    router = _router(_policy(_split(("shop/web-v2", 1)), services))
    assert _picks(router, 10, b"web:8080") == {"10.0.0.1": 10}


def test_a_policy_update_applies_to_the_next_request_only() -> None:
    router = _router(_policy(_split(("shop/web-v1", 1))))
    first = router.route(_ex(b"web"), None)
    router.policy.index = PolicyIndex.build(_policy(_split(("shop/web-v2", 1))))
    assert _where(first) == "10.0.0.2"  # the route in hand does not change
    assert _where(router.route(_ex(b"web"), None)) == "10.0.0.3"


# --- endpoints ---------------------------------------------------------------------------------


def test_an_endpoint_listed_twice_gets_one_turn() -> None:
    router = _router(_policy())
    a, b = Endpoint("10.9.0.1", 1, V1), Endpoint("10.9.0.2", 1, V1)
    router.policy.endpoints = {"shop/web": (a, a, a, b)}
    assert _picks(router, 100) == {"10.9.0.1": 50, "10.9.0.2": 50}


def test_zero_endpoints_in_the_file_win_over_the_policy() -> None:
    router = _router(_policy())
    router.policy.endpoints = {"shop/web": ()}
    assert _where(router.route(_ex(b"web"), None)) == (503, "no-endpoints")


def test_endpoint_churn_is_seen_at_once_and_keeps_identities() -> None:
    router = _router(_policy())
    assert _where(router.route(_ex(b"web"), None)) == "10.0.0.1"
    router.policy.endpoints = {"shop/web": (Endpoint("10.9.0.1", 7, V2),)}
    route = router.route(_ex(b"web"), None)
    assert isinstance(route, Forward)
    assert (route.target.host, route.target.port, route.target.identity) == ("10.9.0.1", 7, V2)
    router.policy.endpoints = {}
    assert _where(router.route(_ex(b"web"), None)) == "10.0.0.1"


async def test_a_pooled_connection_to_one_backend_never_carries_another_backends_request() -> None:
    draws = [0.1, 0.9, 0.1, 0.9]
    h = Harness(router=_router(_policy(_split(("shop/web-v1", 1), ("shop/web-v2", 1))), draws))
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    for _ in range(4):
        h.send(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
        await h.settle()
        for conn in h.upstreams:
            if conn.sink is not None:
                conn.data_received(ok)
        await h.settle()
    assert len(h.upstreams) == 2
    for conn in h.upstreams:
        assert conn.transport.data.count(b"GET / ") == 2  # type: ignore[union-attr]
    assert {c.target.identity for c in h.upstreams} == {V1, V2}
    assert h.down.data.count(b"200 OK") == 4


def test_a_split_match_header_the_backend_never_gets_does_not_count() -> None:
    # `Connection: x-beta` makes the proxy drop x-beta before the request goes on; the split
    # must not route on a header the backend never receives (as authorize does not).
    beta = HttpMatch(origin="shop/HTTPRouteGroup/g#beta", headers=(("x-beta", "yes"),))
    router = _router(_policy(_split(("shop/web-v2", 1), matches=(beta,))))
    ex = _ex(b"web", x_beta=b"yes", connection=b"x-beta")
    ex.hop, ex.connection_names = True, frozenset({b"x-beta"})
    assert _where(router.route(ex, None)) == "10.0.0.1"
