"""A policy change reaches upgraded connections (WebSockets) already open: real sockets on
127.0.0.1, a caller's upgrade through an inbound `HttpProxy` to an app that answers 101 and
echoes, then a new policy installed through `PolicyHolder.install` with the hook
`proxy.app.Proxy` installs (`TunnelChecks`). A tunnel the new policy no longer allows ends on
both sides; others keep relaying."""

from __future__ import annotations

import asyncio
import logging

import pytest

from proxy.exchange import Limits
from proxy.metrics import Metrics
from proxy.policy import PolicyHolder
from proxy.routing import InboundRouter, PeerIdentities
from proxy.server import HttpProxy
from proxy.state import ServerState
from proxy.tunnels import TunnelChecks
from proxy.upstream import ConnectionPool, Target
from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy
from smi.compiler.ir.model import Mode

WEB = "spiffe://cluster.local/ns/shop/sa/web"
FRONT = "spiffe://cluster.local/ns/shop/sa/front"
OTHER = "spiffe://cluster.local/ns/shop/sa/other"
PORT = 8080
TT = "shop/TrafficTarget/front-to-web"
WS = HttpMatch(origin="shop/HTTPRouteGroup/web#ws", methods=("GET",), path_regex="/ws$")
UPGRADE = b"GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
# Within this a closed tunnel must be seen closed by both ends (the close is immediate; the
# abort fallback after a peer that does not read is 2 s).
BOUND = 3.0


def _policy(
    revision: int,
    *,
    sources: tuple[str, ...] = (FRONT,),
    matches: tuple[HttpMatch, ...] = (WS,),
    mode: Mode = "deny",
) -> MeshPolicy:
    rule = AuthzRule(origin=TT, sources=sources, http=matches)
    return MeshPolicy(revision=revision, mode=mode, destinations={WEB: (rule,)})


class _Fixed(PeerIdentities):
    """The caller's identity, as a verified certificate would give it (plain sockets here)."""

    def __init__(self, spiffe: str) -> None:
        super().__init__(trust_domain=None)
        self.spiffe = spiffe

    def of(self, transport: object) -> str:
        return self.spiffe


class _WebSocketApp:
    """Answers an upgrade with 101 (once `switch` is set), then echoes until the connection
    ends; records the heads it got and how the tunnel ended: "eof" or "reset"."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.switch = asyncio.Event()
        self.switch.set()
        self.ended = asyncio.Event()
        self.how = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            self.heads.append(await reader.readuntil(b"\r\n\r\n"))
            await self.switch.wait()
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\n\r\n"
            )
            while data := await reader.read(65536):
                writer.write(b"echo:" + data)
                await writer.drain()
            self.how = "eof"
        except (ConnectionError, asyncio.IncompleteReadError):
            self.how = "reset"
        finally:
            self.ended.set()
            writer.close()


class _Mesh:
    """One inbound HTTP listener (plain TCP: the caller's identity is fixed) in front of the
    WebSocket app, with the tunnel re-check hooked to the holder as `proxy.app.Proxy` does."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.holder = PolicyHolder(self.metrics)
        self.state = ServerState()
        self.app = _WebSocketApp()
        self.servers: list[asyncio.Server] = []
        self.holder.on_change.append(TunnelChecks(self.state))

    async def start(self, policy: MeshPolicy) -> None:
        await self.install(policy)
        app = await asyncio.start_server(self.app.handle, "127.0.0.1", 0)
        router = InboundRouter(
            identity=WEB,
            app=Target("127.0.0.1", app.sockets[0].getsockname()[1]),
            app_port=PORT,
            policy=self.holder,
            metrics=self.metrics,
            peers=_Fixed(FRONT),
        )
        pool = ConnectionPool(connect_timeout=1.0, state=self.state)
        loop = asyncio.get_running_loop()
        proxy = await loop.create_server(
            lambda: HttpProxy(router=router, pool=pool, state=self.state, limits=Limits()),
            "127.0.0.1",
            0,
        )
        self.servers = [app, proxy]
        self.port = proxy.sockets[0].getsockname()[1]

    async def upgrade(
        self, head: bytes = UPGRADE, *, switched: bool = True
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(head + b"\r\n")
        if switched:
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            assert answer.startswith(b"HTTP/1.1 101 ")
            await self.exchange(reader, writer, b"hello")
        return reader, writer

    @staticmethod
    async def exchange(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
    ) -> None:
        writer.write(data)
        answer = await asyncio.wait_for(reader.readexactly(len(data) + 5), 2)
        assert answer == b"echo:" + data

    async def install(self, policy: MeshPolicy) -> None:
        assert await self.holder.install(policy.to_json().encode())

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        await self.state.stop()


async def _closed_by_proxy(mesh: _Mesh, reader: asyncio.StreamReader) -> None:
    """The caller reads EOF and the app sees its connection end, within BOUND seconds; the
    proxy holds no connection any more."""
    assert await asyncio.wait_for(reader.read(), BOUND) == b""
    await asyncio.wait_for(mesh.app.ended.wait(), BOUND)
    await asyncio.sleep(0)
    assert not [c for c in mesh.state.connections if isinstance(c, HttpProxy)]


async def _still_open(
    mesh: _Mesh, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await asyncio.sleep(0.1)
    await mesh.exchange(reader, writer, b"still here")
    assert not mesh.app.ended.is_set()


async def test_a_deleted_grant_closes_the_open_websocket_on_both_sides(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mesh = _Mesh()
    await mesh.start(_policy(1))
    reader, writer = await mesh.upgrade()
    with caplog.at_level(logging.INFO, logger="smictl.proxy.tunnels"):
        await mesh.install(MeshPolicy(revision=2))  # `smictl delete` of the TrafficTarget
        await _closed_by_proxy(mesh, reader)
    assert mesh.app.how == "eof"
    assert mesh.metrics.authz_deny["http"] == {"revoked": 1}
    lines = [r.getMessage() for r in caplog.records if "closing tunnel" in r.getMessage()]
    assert len(lines) == 1
    assert FRONT in lines[0] and "GET /ws" in lines[0] and "revoked (no-traffic-target" in lines[0]
    assert TT in lines[0]
    # and a new upgrade is refused, as before
    fresh_reader, fresh_writer = await asyncio.open_connection("127.0.0.1", mesh.port)
    fresh_writer.write(UPGRADE + b"\r\n")
    assert (await asyncio.wait_for(fresh_reader.read(), 2)).startswith(b"HTTP/1.1 403 ")
    writer.close()
    fresh_writer.close()
    await mesh.stop()


async def test_a_source_removed_from_the_grant_closes_the_tunnel() -> None:
    mesh = _Mesh()
    await mesh.start(_policy(1))
    reader, writer = await mesh.upgrade()
    await mesh.install(_policy(2, sources=(OTHER,)))
    await _closed_by_proxy(mesh, reader)
    assert mesh.metrics.authz_deny["http"] == {"revoked": 1}
    writer.close()
    await mesh.stop()


async def test_a_route_narrowed_past_the_upgrade_request_closes_the_tunnel() -> None:
    """The grant stays, but its HTTPRouteGroup now allows only `GET /api/...`: the upgrade to
    `/ws` would be a 403 now, so its tunnel ends."""
    mesh = _Mesh()
    await mesh.start(_policy(1))
    reader, writer = await mesh.upgrade()
    api = HttpMatch(origin="shop/HTTPRouteGroup/web#api", methods=("GET",), path_regex="/api/")
    await mesh.install(_policy(2, matches=(api,)))
    await _closed_by_proxy(mesh, reader)
    assert mesh.metrics.authz_deny["http"] == {"revoked": 1}
    writer.close()
    await mesh.stop()


async def test_a_header_match_is_decided_on_the_headers_the_upgrade_request_carried() -> None:
    """The new policy allows `/ws` only with `x-team: blue`: the tunnel opened with `x-team:
    blue` stays, the one opened with `x-team: red` ends."""
    mesh = _Mesh()
    await mesh.start(_policy(1))
    blue = await mesh.upgrade(UPGRADE + b"x-team: blue\r\n")
    red = await mesh.upgrade(UPGRADE + b"x-team: red\r\n")
    team = HttpMatch(
        origin="shop/HTTPRouteGroup/web#ws-blue", path_regex="/ws$", headers=(("x-team", "blue"),)
    )
    await mesh.install(_policy(2, matches=(team,)))
    assert await asyncio.wait_for(red[0].read(), BOUND) == b""
    await mesh.exchange(*blue, b"blue stays")
    assert mesh.metrics.authz_deny["http"] == {"revoked": 1}
    blue[1].close()
    red[1].close()
    await mesh.stop()


async def test_another_spelling_of_a_header_the_new_policy_matches_ends_the_tunnel() -> None:
    """`x_team: red` beside `x-team: blue` reached the app (the old policy read no header); a
    request now would lose `x_team` on the way (the app may read both as HTTP_X_TEAM). The
    tunnel's app may have read `red`: it is not left open under a match on `blue`."""
    mesh = _Mesh()
    await mesh.start(_policy(1))
    reader, writer = await mesh.upgrade(UPGRADE + b"x-team: blue\r\nx_team: red\r\n")
    team = HttpMatch(
        origin="shop/HTTPRouteGroup/web#ws-blue", path_regex="/ws$", headers=(("x-team", "blue"),)
    )
    await mesh.install(_policy(2, matches=(team,)))
    await _closed_by_proxy(mesh, reader)
    assert mesh.metrics.authz_deny["http"] == {"revoked": 1}
    writer.close()
    await mesh.stop()


async def test_an_unrelated_change_leaves_the_tunnel_open_and_relaying() -> None:
    mesh = _Mesh()
    await mesh.start(_policy(1))
    reader, writer = await mesh.upgrade()
    other = AuthzRule(origin="shop/TrafficTarget/x", sources=(OTHER,), tcp_ports=())
    rule = AuthzRule(origin=TT, sources=(FRONT, OTHER), http=(WS,))
    await mesh.install(MeshPolicy(revision=2, destinations={WEB: (rule,), FRONT: (other,)}))
    await _still_open(mesh, reader, writer)
    assert mesh.metrics.authz_deny["http"] == {}
    writer.close()
    await mesh.stop()


async def test_audit_mode_counts_a_would_be_closure_once_and_keeps_relaying(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mesh = _Mesh()
    await mesh.start(_policy(1, mode="audit"))
    reader, writer = await mesh.upgrade()
    with caplog.at_level(logging.INFO, logger="smictl.proxy.tunnels"):
        await mesh.install(_policy(2, sources=(OTHER,), mode="audit"))
        await mesh.install(_policy(3, sources=(OTHER,), mode="audit"))  # still would: not again
    await _still_open(mesh, reader, writer)
    assert mesh.metrics.authz_would_deny["http"] == {(TT, "revoked"): 1}
    assert mesh.metrics.authz_deny["http"] == {}
    assert sum("audit: would close" in r.getMessage() for r in caplog.records) == 1
    # Then deny mode: now it is closed.
    await mesh.install(_policy(4, sources=(OTHER,)))
    await _closed_by_proxy(mesh, reader)
    assert mesh.metrics.authz_deny["http"] == {"revoked": 1}
    writer.close()
    await mesh.stop()


async def test_permissive_mode_closes_nothing() -> None:
    mesh = _Mesh()
    await mesh.start(_policy(1))
    reader, writer = await mesh.upgrade()
    await mesh.install(_policy(2, sources=(OTHER,), mode="permissive"))
    await _still_open(mesh, reader, writer)
    assert mesh.metrics.authz_deny["http"] == {}
    assert mesh.metrics.authz_would_deny["http"] == {}
    writer.close()
    await mesh.stop()


async def test_an_upgrade_revoked_while_waiting_for_its_101_never_becomes_a_tunnel() -> None:
    """Authorized and forwarded, then the grant goes before the app answers: the check at
    the swap must not skip it for not being a tunnel yet, or it would become one nobody
    checked. The app's connection is aborted; the caller gets no 101."""
    mesh = _Mesh()
    await mesh.start(_policy(1))
    mesh.app.switch.clear()
    reader, writer = await mesh.upgrade(switched=False)
    for _ in range(100):  # until the app has the request head
        if mesh.app.heads:
            break
        await asyncio.sleep(0.01)
    assert mesh.app.heads
    await mesh.install(MeshPolicy(revision=2))
    mesh.app.switch.set()
    assert await asyncio.wait_for(reader.read(), BOUND) == b""
    await asyncio.wait_for(mesh.app.ended.wait(), BOUND)
    assert mesh.metrics.authz_deny["http"] == {"revoked": 1}
    writer.close()
    await mesh.stop()
