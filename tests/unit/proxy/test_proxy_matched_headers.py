"""Headers a route match or a split match reads reach the app as the match read them: `Upgrade`
only when the request is forwarded as an upgrade, `Transfer-Encoding` as the proxy frames the
body, values without trailing whitespace, and no other spelling of the name (`x_env` for
`x-env`) beside them. Requests go through the real protocol (httptools) and real routers;
what reaches the fake app (or the fake peer proxy) is checked byte for byte."""

from __future__ import annotations

import asyncio
import random

import pytest
from proxy_fakes import Harness

from proxy import http1
from proxy.exchange import Exchange, Headers
from proxy.metrics import Metrics
from proxy.policy import PolicyHolder
from proxy.routing import InboundRouter, OutboundRouter, PeerIdentities, sent_headers
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
from smi.compiler.ir.decide import authorize
from smi.compiler.ir.index import PolicyIndex
from smi.identity import Identity

WEB = Identity("shop", "web").spiffe_id
FRONT = Identity("shop", "front").spiffe_id
ID_LINE = b"x-smi-source-identity: " + FRONT.encode() + b"\r\n"
LONG = b"x-a-b-c-d-e-f-g-h-i"  # more `-` than `http1.MAX_SEPARATORS`: too many spellings to list


def _match(name: str, path: str, *headers: tuple[str, str]) -> HttpMatch:
    return HttpMatch(origin=f"g#{name}", methods=("GET", "POST"), path_regex=path, headers=headers)


def _policy_of(*matches: HttpMatch) -> MeshPolicy:
    """FRONT may call WEB on these matches (deny mode)."""
    rule = AuthzRule(origin="shop/TrafficTarget/front-to-web", sources=(FRONT,), http=matches)
    return MeshPolicy(revision=1, mode="deny", destinations={WEB: (rule,)})


TEAM = _match("team", "/team$", ("x-team", "blue|green"))
ENV = _match("env", "/env$", ("x-env", "canary"))
POLICY = _policy_of(
    _match("chat", "/chat$", ("upgrade", "websocket")),
    TEAM,
    ENV,
    _match("long", "/long$", (LONG.decode(), "yes")),
    _match("chunked", "/upload$", ("transfer-encoding", "chunked")),
    _match("open", "/open$"),
)


class _Front(PeerIdentities):
    """Every connection comes from FRONT's verified certificate."""

    def of(self, transport: asyncio.BaseTransport) -> str | None:
        return FRONT


def _router(policy: MeshPolicy = POLICY) -> InboundRouter:
    holder = PolicyHolder(Metrics())
    holder.index = PolicyIndex.build(policy)
    return InboundRouter(
        identity=WEB,
        app=Target("127.0.0.1", 8080),
        app_port=8080,
        policy=holder,
        metrics=Metrics(),
        peers=_Front(trust_domain="cluster.local"),
    )


async def _send(
    request: bytes, *, router: InboundRouter | None = None, pieces: int = 1
) -> tuple[bytes, bytes]:
    """(what the client got, what the upstream got) for one request on a new connection, sent
    in `pieces` reads (one read: a head the proxy may forward as it came); the upstream
    answers 204 if the request reaches it."""
    h = Harness(router=router or _router())
    size = -(-len(request) // pieces)
    for at in range(0, len(request), size):
        h.send(request[at : at + size])
    await h.settle()
    upstream = b""
    if h.upstreams:
        upstream = h.up().take()
        h.respond(b"HTTP/1.1 204 No Content\r\n\r\n")
        await h.settle()
    return h.down.take(), upstream


def _get(target: bytes, *headers: bytes, version: bytes = b"1.1") -> bytes:
    return b"GET %s HTTP/%s\r\nhost: web\r\n%s\r\n" % (
        target,
        version,
        b"".join(h + b"\r\n" for h in headers),
    )


# --- Upgrade and Transfer-Encoding count only as the app gets them ---------------------------


async def test_an_upgrade_header_without_connection_upgrade_does_not_pass_an_upgrade_match() -> (
    None
):
    # The audit's bypass: this request reaches the app as a plain GET without `Upgrade`, so a
    # rule meant for WebSocket upgrades only must not let it through.
    down, app = await _send(_get(b"/chat", b"Upgrade: websocket"))
    assert down.startswith(b"HTTP/1.1 403 ")
    assert b"x-smi-reason: no-route-match" in down
    assert app == b""


async def test_an_upgrade_of_http_1_0_does_not_pass_an_upgrade_match() -> None:
    request = _get(b"/chat", b"Connection: upgrade", b"Upgrade: websocket", version=b"1.0")
    down, app = await _send(request)
    assert down.startswith(b"HTTP/1.1 403 ")
    assert app == b""


async def test_a_forwarded_upgrade_passes_an_upgrade_match_as_it_is_sent() -> None:
    down, app = await _send(_get(b"/chat", b"Connection: Upgrade", b"Upgrade: websocket \t"))
    assert down.startswith(b"HTTP/1.1 204 ")
    assert app == (
        b"GET /chat HTTP/1.1\r\nhost: web\r\nconnection: upgrade\r\nupgrade: websocket\r\n"
        + ID_LINE
        + b"\r\n"
    )


@pytest.mark.parametrize("upgrade_first", [True, False])
async def test_a_cached_decision_tells_an_upgrade_from_a_plain_request(upgrade_first: bool) -> None:
    router = _router()
    upgrade = _get(b"/chat", b"Connection: upgrade", b"Upgrade: websocket")
    plain = _get(b"/chat", b"Upgrade: websocket")
    first, second = (upgrade, plain) if upgrade_first else (plain, upgrade)
    down_first, _ = await _send(first, router=router)
    down_second, _ = await _send(second, router=router)
    allowed, denied = (down_first, down_second) if upgrade_first else (down_second, down_first)
    assert allowed.startswith(b"HTTP/1.1 204 ")
    assert denied.startswith(b"HTTP/1.1 403 ")


@pytest.mark.parametrize(
    "extra",
    [
        b"Transfer-Encoding: CHUNKED",  # sent on as `transfer-encoding: chunked`
        b"Transfer-Encoding: chunked\r\nConnection: transfer-encoding",  # re-framed all the same
    ],
)
async def test_transfer_encoding_counts_as_the_proxy_frames_the_body(extra: bytes) -> None:
    request = b"POST /upload HTTP/1.1\r\nhost: web\r\n%s\r\n\r\n1\r\na\r\n0\r\n\r\n" % extra
    down, app = await _send(request)
    assert down.startswith(b"HTTP/1.1 204 ")
    assert app.startswith(b"POST /upload HTTP/1.1\r\nhost: web\r\ntransfer-encoding: chunked\r\n")


async def test_a_connection_header_naming_transfer_encoding_cannot_borrow_a_cached_allow() -> None:
    router = _router()
    chunked = (
        b"POST /upload HTTP/1.1\r\nhost: web\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: transfer-encoding\r\n\r\n1\r\na\r\n0\r\n\r\n"
    )
    down, _ = await _send(chunked, router=router)
    assert down.startswith(b"HTTP/1.1 204 ")
    down, app = await _send(
        b"POST /upload HTTP/1.1\r\nhost: web\r\nConnection: transfer-encoding\r\n\r\n",
        router=router,
    )
    assert down.startswith(b"HTTP/1.1 403 ")
    assert app == b""


# --- trailing whitespace ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "sent"),
    [
        (b"x-team: blue  ", b"x-team: blue"),
        (b"x-team:\tblue\t", b"x-team:\tblue"),
        (b"X-Team: green \t ", b"X-Team: green"),
    ],
)
@pytest.mark.parametrize(
    ("pieces", "hop"),
    [(1, b""), (3, b""), (1, b"Connection: keep-alive\r\n")],
    ids=["whole-head", "in-pieces", "with-hop-header"],
)
async def test_trailing_whitespace_is_not_part_of_a_matched_value(
    line: bytes, sent: bytes, pieces: int, hop: bytes
) -> None:
    # The head as it came, one built from httptools' pieces, and one rebuilt without hop-by-hop
    # headers: each is matched, and forwarded, without the whitespace.
    router = _router()
    request = b"GET /team HTTP/1.1\r\nhost: web\r\n%s%s\r\nx-other: 1 \r\n\r\n" % (hop, line)
    if pieces > 1:  # (a head in pieces is rebuilt from httptools' names and values)
        name, _, value = sent.partition(b":")
        sent = b"%s: %s" % (name, value.strip())
    for _ in range(2):  # the second from the decision cache
        down, app = await _send(request, router=router, pieces=pieces)
        assert down.startswith(b"HTTP/1.1 204 ")
        # Unmatched headers go on as they came.
        assert app == b"GET /team HTTP/1.1\r\nhost: web\r\n%s\r\nx-other: 1 \r\n%s\r\n" % (
            sent,
            ID_LINE,
        )


def test_headers_read_values_without_trailing_whitespace() -> None:
    headers = Headers([(b"x-team", b"blue \t"), (b"x-team", b"green\t"), (b"x-a", b" ")])
    assert headers["x-team"] == "blue,green"
    assert headers["x-a"] == ""
    assert dict(headers) == {"x-team": "blue,green", "x-a": ""}


# --- other spellings of a matched name ---------------------------------------------------------


@pytest.mark.parametrize(
    "lines",
    [
        (b"x-env: canary", b"x_env: prod"),
        (b"X_ENV: prod", b"x-env: canary"),
        (b"x-env: canary", b"x_Env: prod", b"x_env: other"),
    ],
)
@pytest.mark.parametrize("pieces", [1, 2])
async def test_another_spelling_of_a_matched_header_never_reaches_the_app(
    lines: tuple[bytes, ...], pieces: int
) -> None:
    router = _router()
    for _ in range(2):  # the second from the decision cache
        down, app = await _send(_get(b"/env", *lines, b"x_other: 1"), router=router, pieces=pieces)
        assert down.startswith(b"HTTP/1.1 204 ")
        assert app == b"GET /env HTTP/1.1\r\nhost: web\r\nx-env: canary\r\nx_other: 1\r\n%s\r\n" % (
            ID_LINE
        )


async def test_another_spelling_of_a_long_matched_name_never_reaches_the_app() -> None:
    other = b"x_a-b_c-d_e-f_g-h_I"
    down, app = await _send(_get(b"/long", LONG + b": yes", other + b": no"))
    assert down.startswith(b"HTTP/1.1 204 ")
    assert other not in app and b": no" not in app
    assert LONG + b": yes\r\n" in app


async def test_names_with_underscores_that_disguise_no_matched_header_go_on() -> None:
    request = _get(b"/open", b"x_user_id: 7", b"x_trace: 1")
    down, app = await _send(request)
    assert down.startswith(b"HTTP/1.1 204 ")
    assert app == request[:-2] + ID_LINE + b"\r\n"


async def test_another_spelling_of_a_matched_name_is_dropped_whatever_the_route() -> None:
    # `x-env` is matched by another route of this destination: the app cannot tell which
    # route let a request in, so no request to it carries a disguised `x-env`.
    down, app = await _send(_get(b"/open", b"x_env: prod"))
    assert down.startswith(b"HTTP/1.1 204 ")
    assert app == b"GET /open HTTP/1.1\r\nhost: web\r\n%s\r\n" % ID_LINE


def test_matched_names_list_every_spelling() -> None:
    from proxy.routing import MatchedNames

    matched = MatchedNames([b"x-a_b", LONG])
    assert matched.table == {b"x-a-b", b"x-a_b", b"x_a-b", b"x_a_b", LONG}
    assert matched.long == {LONG}
    assert http1.spellings(b"abc") == {b"abc"}
    assert len(http1.spellings(b"a-b-c-d-e-f-g-h-i")) == 2**8
    # The identity header's other spellings, as they were listed by hand before.
    assert {
        b"x_smi-source-identity",
        b"x-smi_source-identity",
        b"x-smi-source_identity",
        b"x_smi_source-identity",
        b"x_smi-source_identity",
        b"x-smi_source_identity",
        b"x_smi_source_identity",
    } == http1.SOURCE_IDENTITY_ALIASES


# --- the decision cache stays exact ------------------------------------------------------------


class _Transport:
    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def _exchange(headers: list[tuple[bytes, bytes]], *, url: bytes, upgrade: bool) -> Exchange:
    ex = Exchange()
    ex.method = b"GET"
    ex.url = url
    ex.headers = list(headers)
    ex.host = b"web"
    if any(name in http1.HOP_BY_HOP for name, _ in headers):
        ex.hop = True
    for name, value in headers:
        if name == b"upgrade":
            ex.upgrade_value = value
    ex.upgrade = upgrade and bool(ex.upgrade_value)
    return ex


def test_cached_decisions_equal_authorize_over_what_the_app_gets() -> None:
    """Random requests with upgrades forwarded or not, trailing whitespace and other
    spellings, each routed three times (mostly from the cache): the decision is `authorize`'s
    over the headers that reach the app, and those carry no other spelling of a matched name
    and no trailing whitespace in a matched value."""
    rng = random.Random(7)
    router = _router()
    index = router.policy.index
    assert index is not None
    choices = {
        b"upgrade": [b"websocket", b"websocket ", b"h2"],
        b"x-team": [b"blue", b"blue\t", b"red"],
        b"x_team": [b"red"],
        b"x-env": [b"canary", b"canary "],
        b"x_env": [b"prod"],
    }
    requests = []
    for _ in range(300):
        headers = [
            (name, rng.choice(values))
            for name, values in choices.items()
            for _ in range(rng.choice([0, 0, 1]))
        ]
        rng.shuffle(headers)
        url = rng.choice([b"/chat", b"/team", b"/env"])
        requests.append((headers, url, rng.random() < 0.5))
    peer = router.peer_of(_Transport())  # type: ignore[arg-type]
    for headers, url, upgrade in requests * 3:
        ex = _exchange(headers, url=url, upgrade=upgrade)
        reference = _exchange(headers, url=url, upgrade=upgrade)
        result = router.route(ex, peer)
        direct = authorize(
            index, FRONT, WEB, 8080, "GET", url.decode(), Headers(sent_headers(reference))
        )
        assert ex.reason == direct.reason, (headers, url, upgrade)
        assert (result is peer.forward) == direct.allowed
        sent = sent_headers(ex)
        assert not {b"x_team", b"x_env"} & {name for name, _ in sent}
        assert all(value == value.rstrip(b" \t") for name, value in sent if name != b"upgrade")


# --- the outbound side: header-matched TrafficSplits ----------------------------------------


def _outbound() -> OutboundRouter:
    peer = Identity("shop", "web-v2").spiffe_id
    policy = MeshPolicy(
        revision=1,
        services={
            "shop/web": Service(endpoints=(Endpoint("10.0.0.1", 15006, WEB),)),
            "shop/web-v2": Service(endpoints=(Endpoint("10.0.0.2", 15006, peer),)),
        },
        splits={
            "shop/web": Split(
                origin="shop/TrafficSplit/web",
                backends=(SplitBackend("shop/web-v2", 1000),),
                matches=(
                    HttpMatch(
                        origin="shop/HTTPRouteGroup/canary#yes",
                        headers=(("x-canary", "yes"),),
                    ),
                ),
            )
        },
    )
    holder = PolicyHolder(Metrics())
    holder.index = PolicyIndex.build(policy)
    return OutboundRouter(
        namespace="shop",
        policy=holder,
        tls=None,  # type: ignore[arg-type]
        metrics=Metrics(),
        rng=lambda: 0.5,
    )


@pytest.mark.parametrize("value", [b"yes ", b"yes\t", b"yes \t "])
async def test_a_header_matched_split_reads_values_without_trailing_whitespace(
    value: bytes,
) -> None:
    router = _outbound()
    h = Harness(router=router)
    h.send(_get(b"/", b"x-canary: " + value))
    await h.settle()
    assert h.upstreams[0].target.host == "10.0.0.2"  # the canary
    assert h.up().take() == b"GET / HTTP/1.1\r\nhost: web\r\nx-canary: yes\r\n\r\n"


async def test_a_header_matched_split_drops_other_spellings_of_its_headers() -> None:
    router = _outbound()
    h = Harness(router=router)
    h.send(_get(b"/", b"x-canary: yes", b"X_Canary: no", b"x_other: 1"))
    await h.settle()
    assert h.upstreams[0].target.host == "10.0.0.2"
    assert h.up().take() == b"GET / HTTP/1.1\r\nhost: web\r\nx-canary: yes\r\nx_other: 1\r\n\r\n"


# --- heads read without httptools: the named headers found by their name bits ---------------

# No long matched name: the router finds a plain request's matched headers from the bits of its
# header names (`simplehead.name_bits`) and reads only those from the head.
SHORT_POLICY = _policy_of(TEAM, ENV)


@pytest.mark.parametrize(
    ("target", "lines", "allowed"),
    [
        (b"/team", (b"x-team: blue",), True),
        (b"/team", (b"X-Team: green", b"accept: */*"), True),
        (b"/team", (b"X-TEAM: red",), False),
        (b"/team", (), False),
        (b"/team", (b"accept: */*", b"user-agent: t"), False),  # other names: no bit in common
        (b"/team", (b"x-team: blue", b"x-team: blue"), False),  # `blue,blue`: no match
        (b"/team", (b"x-teams: blue",), False),
        (b"/env", (b"x-env: canary", b"x-team: blue"), True),
        (b"/env", (b"x-team: blue",), False),
    ],
)
async def test_matched_headers_of_a_plain_head_decide_in_any_case(
    target: bytes, lines: tuple[bytes, ...], allowed: bool
) -> None:
    router = _router(SHORT_POLICY)
    for _ in range(2):  # the second from the decision cache
        down, app = await _send(_get(target, *lines), router=router)
        assert down.startswith(b"HTTP/1.1 204 " if allowed else b"HTTP/1.1 403 "), down
        assert bool(app) == allowed
    if allowed:  # forwarded as it came, with the caller's identity
        assert app == _get(target, *lines)[:-2] + ID_LINE + b"\r\n"


async def test_a_cached_decision_never_serves_a_request_whose_matched_header_differs() -> None:
    router = _router(SHORT_POLICY)
    for value, allowed in [(b"blue", True), (b"red", False), (b"green", True), (b"red", False)]:
        down, _ = await _send(_get(b"/team", b"x-team: " + value), router=router)
        assert down.startswith(b"HTTP/1.1 204 " if allowed else b"HTTP/1.1 403 "), value
