"""Audit mode counts a long-lived connection as a would-deny once, when it turns so.

An L4 relay that audit mode let in as a would-deny (no rule allowed it) was counted again, as
`reason="revoked"`, at the next unrelated policy change, and logged as "allowed at connect by"
the rules that would have applied. A tunnel (WebSocket) closed by deny mode after it was a
would-deny was logged as "allowed before by" those rules too. Neither was let in by a rule.

Real sockets on 127.0.0.1 (plain TCP: the caller's identity is fixed), a new policy installed
through `PolicyHolder.install` with the hooks `proxy.app.Proxy` installs."""

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
from proxy.tcp import InboundTcp, recheck_relays
from proxy.tunnels import TunnelChecks
from proxy.upstream import ConnectionPool, Target
from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy
from smi.compiler.ir.model import Mode

DB = "spiffe://cluster.local/ns/shop/sa/db"
WEB = "spiffe://cluster.local/ns/shop/sa/web"
OTHER = "spiffe://cluster.local/ns/shop/sa/other"
PORT = 5432
TT = "shop/TrafficTarget/other-to-db"
WS = HttpMatch(origin="shop/HTTPRouteGroup/db#ws", methods=("GET",), path_regex="/ws$")
UPGRADE = b"GET /ws HTTP/1.1\r\nHost: db\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
BOUND = 3.0


class _Fixed(PeerIdentities):
    def __init__(self, spiffe: str) -> None:
        super().__init__(trust_domain=None)
        self.spiffe = spiffe

    def of(self, transport: object) -> str:
        return self.spiffe


def _tcp_policy(revision: int, mode: Mode) -> MeshPolicy:
    """A grant on the port to OTHER only: WEB, the caller, is a would-deny in audit mode."""
    rule = AuthzRule(origin=TT, sources=(OTHER,), tcp_ports=(PORT,))
    return MeshPolicy(revision=revision, mode=mode, destinations={DB: (rule,)})


def _http_policy(revision: int, mode: Mode) -> MeshPolicy:
    rule = AuthzRule(origin=TT, sources=(OTHER,), http=(WS,))
    return MeshPolicy(revision=revision, mode=mode, destinations={DB: (rule,)})


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echoes; answers an upgrade head with 101 first."""
    try:
        while data := await reader.read(65536):
            if data.startswith(b"GET /ws "):
                writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n")
                writer.write(b"Upgrade: websocket\r\n\r\n")
            else:
                writer.write(b"echo:" + data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


class _Inbound:
    def __init__(self) -> None:
        self.metrics = Metrics()
        self.holder = PolicyHolder(self.metrics)
        self.state = ServerState()
        self.holder.on_change.append(lambda index: recheck_relays(self.state, index))
        self.holder.on_change.append(TunnelChecks(self.state))
        self.servers: list[asyncio.Server] = []

    async def start(self, policy: MeshPolicy, *, tcp: bool) -> None:
        await self.install(policy)
        app = await asyncio.start_server(_echo, "127.0.0.1", 0)
        router = InboundRouter(
            identity=DB,
            app=Target("127.0.0.1", app.sockets[0].getsockname()[1]),
            app_port=PORT,
            policy=self.holder,
            metrics=self.metrics,
            peers=_Fixed(WEB),
        )
        pool = ConnectionPool(connect_timeout=1.0, state=self.state)
        listener = await asyncio.get_running_loop().create_server(
            (lambda: InboundTcp(router=router, state=self.state, timeout=1.0))
            if tcp
            else (lambda: HttpProxy(router=router, pool=pool, state=self.state, limits=Limits())),
            "127.0.0.1",
            0,
        )
        self.servers = [app, listener]
        self.port = listener.sockets[0].getsockname()[1]

    async def install(self, policy: MeshPolicy) -> None:
        assert await self.holder.install(policy.to_json().encode())

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        await self.state.stop()


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> None:
    writer.write(data)
    assert await asyncio.wait_for(reader.readexactly(len(data) + 5), BOUND) == b"echo:" + data


def _lines(caplog: pytest.LogCaptureFixture, what: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if what in r.getMessage()]


async def test_a_relay_let_in_as_a_would_deny_is_not_counted_again_at_a_policy_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbound = _Inbound()
    await inbound.start(_tcp_policy(1, "audit"), tcp=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", inbound.port)
    await _exchange(reader, writer, b"let in by audit mode")
    counted = {(TT, "source-not-allowed"): 1}  # at connect
    assert inbound.metrics.authz_would_deny["tcp"] == counted
    with caplog.at_level(logging.INFO, logger="smictl.proxy.tcp"):
        await inbound.install(_tcp_policy(2, "audit"))  # an unrelated change: no news
        await _exchange(reader, writer, b"still audited")
        assert inbound.metrics.authz_would_deny["tcp"] == counted
        assert _lines(caplog, "audit: would close") == []
        # Deny mode closes it, and says no rule had let it in.
        await inbound.install(_tcp_policy(3, "deny"))
        assert await asyncio.wait_for(reader.read(), BOUND) == b""
    assert inbound.metrics.authz_deny["tcp"] == {"revoked": 1}
    [line] = _lines(caplog, "closing relay")
    assert line.endswith("allowed at connect by -"), line
    writer.close()
    await inbound.stop()


async def test_a_tunnel_let_in_as_a_would_deny_is_not_said_to_be_allowed_by_a_rule(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbound = _Inbound()
    await inbound.start(_http_policy(1, "audit"), tcp=False)
    reader, writer = await asyncio.open_connection("127.0.0.1", inbound.port)
    writer.write(UPGRADE)
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)).startswith(
        b"HTTP/1.1 101 "
    )
    await _exchange(reader, writer, b"let in by audit mode")
    counted = dict(inbound.metrics.authz_would_deny["http"])
    assert counted == {(TT, "source-not-allowed"): 1}  # the upgrade request
    with caplog.at_level(logging.INFO, logger="smictl.proxy.tunnels"):
        await inbound.install(_http_policy(2, "audit"))
        await _exchange(reader, writer, b"still audited")
        assert inbound.metrics.authz_would_deny["http"] == counted
        await inbound.install(_http_policy(3, "deny"))
        assert await asyncio.wait_for(reader.read(), BOUND) == b""
    assert inbound.metrics.authz_deny["http"] == {"revoked": 1}
    [line] = _lines(caplog, "closing tunnel")
    assert line.endswith("allowed before by -"), line
    writer.close()
    await inbound.stop()
