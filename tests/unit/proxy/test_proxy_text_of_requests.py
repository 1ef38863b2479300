"""Header values are matched as the text a policy is written in: UTF-8 where the
bytes are UTF-8. Read as ISO 8859-1 only, `x-team: grün` was `grÃ¼n` to the proxy, which
passed a rule for `[^äöü]+` that `smictl explain` denies, and `x-user: José` failed a rule
for `José` that explain allows. Requests go through the real protocol and router. (A path
with raw non-ASCII bytes is refused, 400, before any match.)"""

from __future__ import annotations

import asyncio

import pytest
from proxy_fakes import Harness

from proxy import http1
from proxy.exchange import Headers
from proxy.metrics import Metrics
from proxy.policy import PolicyHolder
from proxy.routing import InboundRouter, PeerIdentities
from proxy.upstream import Target
from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy
from smi.compiler.ir.decide import authorize
from smi.compiler.ir.index import PolicyIndex
from smi.compiler.ir.matching import request_headers
from smi.identity import Identity

WEB = Identity("shop", "web").spiffe_id
FRONT = Identity("shop", "front").spiffe_id
RULE = AuthzRule(
    origin="shop/TrafficTarget/front-to-web",
    sources=(FRONT,),
    http=(
        HttpMatch(origin="g#team", path_regex="/team$", headers=(("x-team", "[^äöü]+"),)),
        HttpMatch(origin="g#user", path_regex="/user$", headers=(("x-user", "José"),)),
    ),
)
POLICY = MeshPolicy(revision=1, mode="deny", destinations={WEB: (RULE,)})


class _Front(PeerIdentities):
    def of(self, transport: asyncio.BaseTransport) -> str | None:
        return FRONT


async def _status(request: bytes) -> bytes:
    holder = PolicyHolder(Metrics())
    holder.index = PolicyIndex.build(POLICY)
    router = InboundRouter(
        identity=WEB,
        app=Target("127.0.0.1", 8080),
        app_port=8080,
        policy=holder,
        metrics=Metrics(),
        peers=_Front(trust_domain="cluster.local"),
    )
    h = Harness(router=router)
    h.send(request)
    await h.settle()
    if h.upstreams:
        h.respond(b"HTTP/1.1 204 No Content\r\n\r\n")
        await h.settle()
    return h.down.take()[9:12]


@pytest.mark.parametrize(
    ("target", "header", "status"),
    [
        ("/team", "x-team: blue", b"204"),
        ("/team", "x-team: grün", b"403"),
        ("/user", "x-user: José", b"204"),
        ("/user", "x-user: Jose", b"403"),
    ],
)
async def test_the_proxy_decides_what_explain_decides(
    target: str, header: str, status: bytes
) -> None:
    request = f"GET {target} HTTP/1.1\r\nhost: web\r\n{header}\r\n\r\n".encode()
    assert await _status(request) == status
    name, _, value = header.partition(": ")
    told = authorize(
        PolicyIndex.build(POLICY), FRONT, WEB, 8080, "GET", target,
        request_headers([(name, value)]),
    )  # fmt: skip
    assert told.allowed is (status == b"204")


def test_bytes_that_are_not_utf8_still_read_as_text() -> None:
    assert http1.text("grün".encode()) == "grün"
    assert http1.text(b"gr\xfcn") == "grün"  # ISO 8859-1
    assert Headers([(b"x-team", "grün ".encode())])["x-team"] == "grün"
    assert dict(Headers([(b"x-team", b"gr\xfcn")]).items()) == {"x-team": "grün"}
