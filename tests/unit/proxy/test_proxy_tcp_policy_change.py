"""A policy change reaches L4 relays already open: real sockets on 127.0.0.1, a caller relayed
to an echo app, then a new policy installed through `PolicyHolder.install` (the one place every
source swaps it in). Revoked or turned-HTTP relays end on both sides; others keep relaying."""

from __future__ import annotations

import asyncio
import logging

import pytest

from proxy.metrics import Metrics
from proxy.policy import PolicyHolder
from proxy.routing import InboundRouter, PeerIdentities
from proxy.state import ServerState
from proxy.tcp import CLOSE_GRACE, InboundTcp, recheck, recheck_relays
from proxy.upstream import Target
from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy
from smi.compiler.ir.index import PolicyIndex
from smi.compiler.ir.model import Mode

DB = "spiffe://cluster.local/ns/shop/sa/db"
WEB = "spiffe://cluster.local/ns/shop/sa/web"
OTHER = "spiffe://cluster.local/ns/shop/sa/other"
PORT = 5432
TT = "shop/TrafficTarget/web-to-db"
# Within this a closed relay must be seen closed by both ends (the close is immediate; the
# bound is generous for a loaded machine, and well under CLOSE_GRACE's abort fallback + 1 s).
BOUND = CLOSE_GRACE + 1.0


def _policy(revision: int, *, sources: tuple[str, ...] = (WEB,), mode: Mode = "deny") -> MeshPolicy:
    rule = AuthzRule(origin=TT, sources=sources, tcp_ports=(PORT,))
    return MeshPolicy(revision=revision, mode=mode, destinations={DB: (rule,)})


class _Fixed(PeerIdentities):
    def __init__(self, spiffe: str) -> None:
        super().__init__(trust_domain=None)
        self.spiffe = spiffe

    def of(self, transport: object) -> str:
        return self.spiffe


class _EchoApp:
    """A TCP app that echoes until its connection ends, and records how: "eof" or "reset"."""

    def __init__(self) -> None:
        self.eof = asyncio.Event()  # (set when the connection ended either way)
        self.ended = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(b"echo:" + data)
                await writer.drain()
            self.ended = "eof"
        except ConnectionError:
            self.ended = "reset"
        finally:
            self.eof.set()
            writer.close()


class _Mesh:
    """One inbound L4 listener (plain TCP: the caller's identity is fixed) in front of an echo
    app, with the re-check hooked to the holder as `proxy.app.Proxy` hooks it."""

    def __init__(self, caller: str = WEB) -> None:
        self.metrics = Metrics()
        self.holder = PolicyHolder(self.metrics)
        self.state = ServerState()
        self.caller = caller
        self.app = _EchoApp()
        self.servers: list[asyncio.Server] = []
        self.holder.on_change.append(lambda index: recheck_relays(self.state, index))

    async def start(self, policy: MeshPolicy) -> None:
        await self.holder.install(policy.to_json().encode())
        app = await asyncio.start_server(self.app.handle, "127.0.0.1", 0)
        router = InboundRouter(
            identity=DB,
            app=Target("127.0.0.1", app.sockets[0].getsockname()[1]),
            app_port=PORT,
            policy=self.holder,
            metrics=self.metrics,
            peers=_Fixed(self.caller),
        )
        loop = asyncio.get_running_loop()
        relay = await loop.create_server(
            lambda: InboundTcp(router=router, state=self.state, timeout=1.0), "127.0.0.1", 0
        )
        self.servers = [app, relay]
        self.port = relay.sockets[0].getsockname()[1]

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
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
    """The caller reads EOF and the app sees EOF, within BOUND seconds."""
    assert await asyncio.wait_for(reader.read(), BOUND) == b""
    await asyncio.wait_for(mesh.app.eof.wait(), BOUND)
    assert mesh.app.ended == "eof"
    await asyncio.sleep(0)
    assert not [c for c in mesh.state.connections if isinstance(c, InboundTcp)]


async def test_a_revoked_grant_closes_the_open_relay_on_both_sides(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mesh = _Mesh()
    await mesh.start(_policy(1))
    reader, writer = await mesh.connect()
    with caplog.at_level(logging.INFO, logger="smictl.proxy.tcp"):
        await mesh.install(_policy(2, sources=(OTHER,)))  # the grant to WEB is gone
        await _closed_by_proxy(mesh, reader)
    assert mesh.metrics.authz_deny["tcp"] == {"revoked": 1}
    lines = [r.getMessage() for r in caplog.records if "closing relay" in r.getMessage()]
    assert len(lines) == 1
    assert WEB in lines[0] and "revoked (source-not-allowed" in lines[0] and TT in lines[0]
    # and a fresh connection is refused at connect, as before
    fresh_reader, fresh_writer = await asyncio.open_connection("127.0.0.1", mesh.port)
    assert await asyncio.wait_for(fresh_reader.read(), 2) == b""
    writer.close()
    fresh_writer.close()
    await mesh.stop()


async def test_a_deleted_traffic_target_closes_the_relay() -> None:
    mesh = _Mesh()
    await mesh.start(_policy(1))
    reader, writer = await mesh.connect()
    await mesh.install(MeshPolicy(revision=2))  # `smictl delete` of the only TrafficTarget
    await _closed_by_proxy(mesh, reader)
    assert mesh.metrics.authz_deny["tcp"] == {"revoked": 1}
    writer.close()
    await mesh.stop()


async def test_a_grant_narrowed_to_one_http_route_closes_the_relay() -> None:
    """The auditor's case: the TCPRoute grant replaced by an HTTPRouteGroup allowing only
    `GET /items$`. The relay let anything through (`POST /admin`); now it is closed, and the
    caller's next connection gets HTTP handling and per-request authorization."""
    mesh = _Mesh()
    await mesh.start(_policy(1))
    reader, writer = await mesh.connect()
    items = HttpMatch(origin="shop/HTTPRouteGroup/r#items", methods=("GET",), path_regex="/items$")
    narrowed = MeshPolicy(
        revision=2, destinations={DB: (AuthzRule(origin=TT, sources=(WEB,), http=(items,)),)}
    )
    await mesh.install(narrowed)
    await _closed_by_proxy(mesh, reader)
    assert mesh.metrics.authz_deny["tcp"] == {"revoked": 1}
    assert mesh.holder.index is not None
    assert mesh.holder.index.port_protocol(DB, PORT) == "http"
    writer.close()
    await mesh.stop()


@pytest.mark.parametrize("mode", ["deny", "audit", "permissive"])
async def test_a_port_http_rules_now_cover_closes_the_relay_in_every_mode(mode: Mode) -> None:
    """The caller keeps its TCPRoute, but another caller's HTTP rule now covers the port: new
    connections get HTTP handling (and the app the proxy's identity header), so this relay's
    raw bytes, which could carry a forged `x-smi-source-identity`, must stop too."""
    mesh = _Mesh()
    await mesh.start(_policy(1, mode=mode))
    reader, writer = await mesh.connect()
    http = AuthzRule(
        origin="shop/TrafficTarget/other-to-db",
        sources=(OTHER,),
        http=(HttpMatch(origin="shop/HTTPRouteGroup/r#all"),),
    )
    tcp = AuthzRule(origin=TT, sources=(WEB,), tcp_ports=(PORT,))
    await mesh.install(MeshPolicy(revision=2, mode=mode, destinations={DB: (tcp, http)}))
    await _closed_by_proxy(mesh, reader)
    assert mesh.metrics.authz_deny["tcp"] == {"protocol-changed": 1}
    writer.close()
    await mesh.stop()


async def test_an_unrelated_change_leaves_the_relay_open_and_relaying() -> None:
    mesh = _Mesh()
    await mesh.start(_policy(1))
    reader, writer = await mesh.connect()
    unrelated = MeshPolicy(
        revision=2,
        destinations={
            DB: (AuthzRule(origin=TT, sources=(WEB, OTHER), tcp_ports=(PORT,)),),
            WEB: (AuthzRule(origin="shop/TrafficTarget/x", sources=(OTHER,), tcp_ports=()),),
        },
    )
    await mesh.install(unrelated)
    await asyncio.sleep(0.1)
    await mesh.exchange(reader, writer, b"still here")
    assert not mesh.app.eof.is_set()
    assert mesh.metrics.authz_deny["tcp"] == {}
    writer.close()
    await mesh.stop()


async def test_audit_mode_counts_a_would_be_closure_once_and_keeps_relaying(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mesh = _Mesh()
    await mesh.start(_policy(1, mode="audit"))
    reader, writer = await mesh.connect()
    with caplog.at_level(logging.INFO, logger="smictl.proxy.tcp"):
        await mesh.install(_policy(2, sources=(OTHER,), mode="audit"))
        await mesh.install(_policy(3, sources=(OTHER,), mode="audit"))  # still would: not again
    await asyncio.sleep(0.1)
    await mesh.exchange(reader, writer, b"audited")
    assert mesh.metrics.authz_would_deny["tcp"] == {(TT, "revoked"): 1}
    assert mesh.metrics.authz_deny["tcp"] == {}
    assert sum("audit: would close" in r.getMessage() for r in caplog.records) == 1
    # Nothing covers the port any more: audit still enforces nothing.
    await mesh.install(MeshPolicy(revision=4, mode="audit"))
    await asyncio.sleep(0.1)
    await mesh.exchange(reader, writer, b"still audited")
    assert mesh.metrics.authz_would_deny["tcp"] == {(TT, "revoked"): 1}
    # Then deny mode: now it is closed.
    await mesh.install(_policy(5, sources=(OTHER,)))
    await _closed_by_proxy(mesh, reader)
    assert mesh.metrics.authz_deny["tcp"] == {"revoked": 1}
    writer.close()
    await mesh.stop()


async def test_permissive_mode_closes_nothing() -> None:
    mesh = _Mesh()
    await mesh.start(_policy(1))
    reader, writer = await mesh.connect()
    await mesh.install(_policy(2, sources=(OTHER,), mode="permissive"))
    await asyncio.sleep(0.1)
    await mesh.exchange(reader, writer, b"anything goes")
    assert mesh.metrics.authz_deny["tcp"] == {} and mesh.metrics.authz_would_deny["tcp"] == {}
    writer.close()
    await mesh.stop()


async def test_a_relay_revoked_while_connecting_to_the_app_never_reaches_it() -> None:
    """Cut before the app connection is up: the bytes it was holding are not delivered, even
    when the caller had also sent EOF (which otherwise owes them to the app)."""
    received: list[bytes] = []
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read())
        writer.close()
        done.set()

    app = await asyncio.start_server(handle, "127.0.0.1", 0)
    metrics = Metrics()
    holder = PolicyHolder(metrics)
    await holder.install(_policy(1).to_json().encode())
    router = InboundRouter(
        identity=DB,
        app=Target("127.0.0.1", app.sockets[0].getsockname()[1]),
        app_port=PORT,
        policy=holder,
        metrics=metrics,
        peers=_Fixed(WEB),
    )
    state = ServerState()
    relay = InboundTcp(router=router, state=state, timeout=1.0)
    downstream = _Transport()
    relay.connection_made(downstream)  # type: ignore[arg-type]
    relay.data_received(b"DROP TABLE;")
    relay.eof = True
    assert relay.policy_changed(PolicyIndex.build(_policy(2, sources=(OTHER,))))
    assert downstream.closed
    await asyncio.wait_for(asyncio.gather(*state.tasks), 2)
    await asyncio.wait_for(done.wait(), 2)
    assert received == [b""]
    await state.stop()
    app.close()


class _Transport:
    """Enough of a transport for a relay driven by hand."""

    def __init__(self) -> None:
        self.closed = False

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def test_recheck_is_the_connect_decision_again() -> None:
    grant = PolicyIndex.build(_policy(1))
    assert recheck(grant, source=WEB, destination=DB, port=PORT)[0] == "keep"
    assert recheck(grant, source=OTHER, destination=DB, port=PORT)[0] == "revoked"
    assert recheck(grant, source=None, destination=DB, port=PORT)[0] == "revoked"
    verdict, decision = recheck(
        PolicyIndex.build(_policy(1, sources=(OTHER,), mode="audit")),
        source=WEB,
        destination=DB,
        port=PORT,
    )
    assert verdict == "would-deny" and decision is not None and decision.allowed
    verdict, decision = recheck(
        PolicyIndex.build(MeshPolicy()), source=WEB, destination=DB, port=PORT
    )
    assert (verdict, decision.reason) == ("revoked", "no-traffic-target")


async def test_a_failing_hook_neither_stops_the_others_nor_the_source() -> None:
    """The re-check runs as a `PolicyHolder.on_change` hook: a bug in one must not raise out
    of `install`, which would end the file watch or long poll and freeze the policy."""
    holder = PolicyHolder(Metrics())
    seen: list[int] = []

    def broken(index: PolicyIndex) -> None:
        raise RuntimeError("bug")

    holder.on_change += [broken, lambda index: seen.append(index.policy.revision)]
    assert await holder.install(_policy(1).to_json().encode()) is True
    assert seen == [1] and holder.policy is not None and holder.policy.revision == 1


async def test_a_revoked_relay_whose_caller_stopped_reading_is_cut_after_the_grace() -> None:
    """A caller that reads nothing would keep a closing relay flushing forever: after
    CLOSE_GRACE both ends are aborted, and the relay is gone."""
    mesh = _Mesh()
    await mesh.start(_policy(1))
    _reader, writer = await mesh.connect()
    flood = mesh.app  # the app answers 16 MiB that the caller never reads

    def relays() -> list[InboundTcp]:
        return [c for c in mesh.state.connections if isinstance(c, InboundTcp)]

    def backed_up() -> bool:  # the caller's side holds bytes the kernel would not take
        return any(
            r.transport is not None and r.transport.get_write_buffer_size() for r in relays()
        )

    # (Waited for, not slept on: on a busy machine, or with large socket buffers, a fixed
    # sleep could find nothing queued yet, and the revoked relay would rightly close at once.)
    try:
        writer.write(b"x" * (16 * 1024 * 1024))
        for _ in range(int(BOUND / 0.05)):
            if backed_up():
                break
            await asyncio.sleep(0.05)
        assert backed_up()
        loop = asyncio.get_running_loop()
        revoking = loop.time()
        await mesh.install(_policy(2, sources=(OTHER,)))
        await asyncio.wait_for(flood.eof.wait(), BOUND)  # the app side is closed at once

        # Still flushing to the caller: checkable while the abort cannot have come yet (the
        # cut came after `revoking`, and a timer never fires early). A machine so loaded that
        # the revocation itself took CLOSE_GRACE leaves only the end to check.
        if loop.time() - revoking < CLOSE_GRACE:
            assert relays()
        for _ in range(int(BOUND / 0.05)):
            if not relays():
                break
            await asyncio.sleep(0.05)
        assert not relays()
    finally:  # (a failure above must not leak its sockets into the next test's warnings)
        writer.close()
        await mesh.stop()
