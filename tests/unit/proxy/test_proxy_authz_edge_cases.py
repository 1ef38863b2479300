"""Inbound authorization at the edges: request targets an application may read otherwise than
`request_path` does, headers the app never gets, and copies of the identity header. Each
request goes through the real protocol (httptools) and a real `InboundRouter`; what reaches the
fake app is checked byte for byte."""

from __future__ import annotations

import asyncio

import pytest
from proxy_fakes import Harness

from proxy.metrics import Metrics
from proxy.policy import PolicyHolder
from proxy.routing import InboundRouter, PeerIdentities
from proxy.upstream import Target
from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy
from smi.compiler.ir.decide import authorize
from smi.compiler.ir.index import PolicyIndex
from smi.identity import Identity

WEB = Identity("shop", "web").spiffe_id
FRONT = Identity("shop", "front").spiffe_id
ID_LINE = b"x-smi-source-identity: " + FRONT.encode() + b"\r\n"

POLICY = MeshPolicy(
    revision=1,
    mode="deny",
    destinations={
        WEB: (
            AuthzRule(
                origin="shop/TrafficTarget/front-to-web",
                sources=(FRONT,),
                http=(
                    HttpMatch(origin="g#public", methods=("GET",), path_regex="/public/.*"),
                    HttpMatch(origin="g#root", methods=("GET",), path_regex="/$"),
                    HttpMatch(
                        origin="g#beta",
                        methods=("GET",),
                        path_regex="/beta/.*",
                        headers=(("x-beta", "yes"),),
                    ),
                ),
            ),
        )
    },
)
INDEX = PolicyIndex.build(POLICY)


class _Front(PeerIdentities):
    """Every connection comes from FRONT's verified certificate."""

    def of(self, transport: asyncio.BaseTransport) -> str | None:
        return FRONT


def _router(index: PolicyIndex = INDEX) -> InboundRouter:
    holder = PolicyHolder(Metrics())
    holder.index = index
    return InboundRouter(
        identity=WEB,
        app=Target("127.0.0.1", 8080),
        app_port=8080,
        policy=holder,
        metrics=Metrics(),
        peers=_Front(trust_domain="cluster.local"),
    )


async def _send(request: bytes, *, router: InboundRouter | None = None) -> tuple[bytes, bytes]:
    """(what the client got, what the app got) for one request on a new connection; the app
    answers 204 if the request reaches it."""
    h = Harness(router=router or _router())
    h.send(request)
    await h.settle()
    app = b""
    if h.upstreams:
        app = h.up().take()
        h.respond(b"HTTP/1.1 204 No Content\r\n\r\n")
        await h.settle()
    return h.down.take(), app


def _get(target: bytes, *headers: bytes) -> bytes:
    return b"GET %s HTTP/1.1\r\nhost: web\r\n%s\r\n" % (
        target,
        b"".join(h + b"\r\n" for h in headers),
    )


# --- paths ---------------------------------------------------------------------------------

# Targets a rule for `/public/.*` (or `/$`) must not let through: each reaches `/admin` (or
# `/admin/`) in some common kind of application.
_ESCAPES = [
    b"/public/..%2fadmin",  # decodes %2F, then resolves dot segments
    b"/public/..%2Fadmin",
    b"/public/%2e%2e%2fadmin",
    b"/public/.%2e%2Fadmin",
    b"/public/..%5cadmin",  # %5C and "\" read as "/" (Windows servers, WHATWG URL parsers)
    b"/public/..%5Cadmin",
    b"/public/..\\admin",
    b"/public/..;/admin",  # drops ";" path parameters before resolving (Tomcat)
    b"/public/..;x=1/admin",
    b"/public/x#/../../admin",  # keeps "#" in the path, then cleans it (Go)
    b"/admin//..",  # RFC 3986 dot segments without merging slashes: /admin/
    b"/public/x//../../admin",  # /public/admin to RFC 3986, /admin with slashes merged first
    b"/public/x%2f%2f..%2f..%2fadmin",  # the same after decoding %2F
    b"http://web/public/..%2fadmin",  # absolute form: the same path once the target is cut
]


@pytest.mark.parametrize("target", _ESCAPES)
async def test_a_path_the_app_may_resolve_elsewhere_is_denied(target: bytes) -> None:
    down, app = await _send(_get(target))
    assert down.startswith(b"HTTP/1.1 403 ")
    assert b"x-smi-reason: no-route-match" in down
    assert app == b""


@pytest.mark.parametrize("target", [t for t in _ESCAPES if t[:1] == b"/"])
def test_authorize_denies_every_reading_of_an_ambiguous_path(target: bytes) -> None:
    decision = authorize(INDEX, FRONT, WEB, 8080, "GET", target.decode("latin-1"), {})
    assert decision.reason == "no-route-match"


@pytest.mark.parametrize(
    "target",
    [
        b"/public/x",
        b"/public/a%2fb",  # an encoded slash that stays under /public whichever way it is read
        b"/public/a;b=1",
        b"/public/x#frag",
        b"/public//x",
        b"//public/x",
        b"/public/x?q=/../../admin",  # a query is a query to every application
        b"/public/%2e/x",
        b"/",
    ],
)
async def test_paths_that_stay_where_the_rule_allows_are_forwarded_as_sent(target: bytes) -> None:
    down, app = await _send(_get(target))
    assert down == b"HTTP/1.1 204 No Content\r\n\r\n"
    assert app == b"GET %s HTTP/1.1\r\nhost: web\r\n%s\r\n" % (target, ID_LINE)


async def test_a_fragment_is_part_of_the_decision_cache_key() -> None:
    # The allowed `/public/x#y` must not answer for `/public/x#/../../admin` from the cache.
    router = _router()
    down, app = await _send(_get(b"/public/x#y"), router=router)
    assert down.startswith(b"HTTP/1.1 204 ")
    down, app = await _send(_get(b"/public/x#/../../admin"), router=router)
    assert down.startswith(b"HTTP/1.1 403 ")
    assert app == b""


# --- headers a match names -----------------------------------------------------------------


async def test_a_match_header_the_connection_header_names_does_not_count() -> None:
    # The proxy drops `x-beta` before the app sees it (Connection names it), so the app would
    # get a request the `x-beta: yes` match does not allow.
    down, app = await _send(_get(b"/beta/x", b"x-beta: yes", b"connection: x-beta"))
    assert down.startswith(b"HTTP/1.1 403 ")
    assert app == b""


async def test_the_decision_cache_tells_a_connection_named_header_apart() -> None:
    router = _router()
    down, app = await _send(_get(b"/beta/x", b"x-beta: yes"), router=router)
    assert down.startswith(b"HTTP/1.1 204 ")
    assert b"x-beta: yes\r\n" in app
    down, app = await _send(_get(b"/beta/x", b"x-beta: yes", b"connection: x-beta"), router=router)
    assert down.startswith(b"HTTP/1.1 403 ")
    assert app == b""


def test_a_match_on_the_identity_header_never_sees_the_callers_copy() -> None:
    spoofable = MeshPolicy(
        revision=1,
        mode="deny",
        destinations={
            WEB: (
                AuthzRule(
                    origin="shop/TrafficTarget/admins",
                    sources=(FRONT,),
                    http=(
                        HttpMatch(
                            origin="g#admin",
                            path_regex="/admin",
                            headers=(("x-smi-source-identity", "spiffe://cluster.local/.*/root"),),
                        ),
                    ),
                ),
            )
        },
    )
    router = _router(PolicyIndex.build(spoofable))
    down, app = asyncio.run(
        _send(
            _get(b"/admin", b"x-smi-source-identity: spiffe://cluster.local/ns/x/sa/root"),
            router=router,
        )
    )
    assert down.startswith(b"HTTP/1.1 403 ")
    assert app == b""


async def test_requests_differing_only_in_unnamed_headers_share_a_decision() -> None:
    router = _router()
    for extra in (b"x-other: 1", b"x-other: 2", b"user-agent: z"):
        down, _ = await _send(_get(b"/public/x", extra), router=router)
        assert down.startswith(b"HTTP/1.1 204 ")
    assert len(router._decisions) == 1


async def test_requests_differing_in_a_named_header_do_not_share_a_decision() -> None:
    router = _router()
    down, _ = await _send(_get(b"/beta/x", b"x-beta: yes"), router=router)
    assert down.startswith(b"HTTP/1.1 204 ")
    down, app = await _send(_get(b"/beta/x", b"x-beta: no"), router=router)
    assert down.startswith(b"HTTP/1.1 403 ")
    assert app == b""
    down, _ = await _send(_get(b"/beta/x", b"x-beta: yes", b"x-beta: no"), router=router)
    assert down.startswith(b"HTTP/1.1 403 ")


# --- the identity header -------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"X-SMI-Source-Identity: spiffe://evil",
        b"x-smi-source-identity: spiffe://evil\r\nx-smi-source-identity: spiffe://evil2",
        b"connection: x-smi-source-identity\r\nx-smi-source-identity: spiffe://evil",
        # CGI and WSGI servers read these as the same header as the proxy's
        b"x_smi_source_identity: spiffe://evil",
        b"X_SMI-Source_Identity: spiffe://evil",
        b"x-smi_source-identity: spiffe://evil",
    ],
)
async def test_no_copy_of_the_identity_header_reaches_the_app(line: bytes) -> None:
    down, app = await _send(_get(b"/public/x", line))
    assert down.startswith(b"HTTP/1.1 204 ")
    assert b"evil" not in app
    assert app == b"GET /public/x HTTP/1.1\r\nhost: web\r\n%s\r\n" % ID_LINE


async def test_an_identity_header_in_a_trailer_never_reaches_the_app() -> None:
    request = (
        b"GET /public/x HTTP/1.1\r\nhost: web\r\ntransfer-encoding: chunked\r\n\r\n"
        b"1\r\na\r\n0\r\nx-smi-source-identity: spiffe://evil\r\n\r\n"
    )
    down, app = await _send(request)
    assert down.startswith(b"HTTP/1.1 204 ")
    assert b"evil" not in app
