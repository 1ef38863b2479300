"""Protocol detection on inbound ports that no rule covers, in permissive and audit mode.

Those modes let everything through (DESIGN.md §3), but such a port was always HTTP: a Postgres
client's first bytes got `400 malformed-request` and never reached the app, and audit mode
recorded nothing. Now the caller's first bytes decide (proxy.detect): what may start an HTTP/1
request takes the HTTP path (which states the caller's identity itself), anything else is
relayed as bytes. A caller silent for DETECT_TIMEOUT gets the HTTP path too, never the relay:
relayed, it could send a request with a forged identity a moment later, or hold an app
connection open for good. Deny mode, and ports some rule covers, are as before.

Real sockets on 127.0.0.1 (plain TCP: the caller's identity is fixed), through the
`InboundDispatch` the proxy puts on every inbound listener."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from proxy_fakes import FakeTransport

from proxy.detect import DETECT_BYTES, DETECT_TIMEOUT, Detect, classify
from proxy.exchange import Limits
from proxy.metrics import Metrics
from proxy.policy import PolicyHolder
from proxy.routing import InboundRouter, PeerIdentities
from proxy.server import HttpProxy
from proxy.state import ServerState
from proxy.tcp import InboundDispatch, InboundTcp
from proxy.upstream import ConnectionPool, Target
from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy
from smi.compiler.ir.index import PolicyIndex
from smi.compiler.ir.model import Mode

DB = "spiffe://cluster.local/ns/shop/sa/db"
WEB = "spiffe://cluster.local/ns/shop/sa/web"
ADMIN = "spiffe://cluster.local/ns/shop/sa/admin"
PORT = 5432
# Postgres' SSLRequest: what a client with sslmode=prefer sends first.
SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"


class _Fixed(PeerIdentities):
    def __init__(self, spiffe: str) -> None:
        super().__init__(trust_domain=None)
        self.spiffe = spiffe

    def of(self, transport: object) -> str:
        return self.spiffe


def _policy(revision: int, mode: Mode, *rules: AuthzRule) -> MeshPolicy:
    return MeshPolicy(revision=revision, mode=mode, destinations={DB: rules} if rules else {})


class _App:
    """The app behind the proxy: records every byte it gets; answers `pong:` and what it
    read, or, for an HTTP request head, a 200 whose body is that head; greets first when
    `greeting` is set (a server-speaks-first protocol)."""

    def __init__(self, greeting: bytes = b"") -> None:
        self.greeting = greeting
        self.received = b""
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.greeting:
            writer.write(self.greeting)
        try:
            while data := await reader.read(65536):
                self.received += data
                if b"\r\n\r\n" in self.received and b"HTTP/1.1" in self.received:
                    head = self.received.split(b"\r\n\r\n")[0]
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(head))
                    writer.write(head)
                else:
                    writer.write(b"pong:" + data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


class _Inbound:
    """One inbound listener as `proxy.app.Proxy` builds it, in front of `_App`."""

    def __init__(self, app: _App | None = None, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.metrics = Metrics()
        self.holder = PolicyHolder(self.metrics)
        self.state = ServerState(tick=0.05)
        self.app = app or _App()
        self.servers: list[asyncio.Server] = []

    async def start(self, policy: MeshPolicy) -> None:
        await self.install(policy)
        self.state.start()
        app = await asyncio.start_server(self.app.handle, "127.0.0.1", 0)
        router = InboundRouter(
            identity=DB,
            app=Target("127.0.0.1", app.sockets[0].getsockname()[1]),
            app_port=PORT,
            policy=self.holder,
            metrics=self.metrics,
            peers=_Fixed(WEB),
        )
        pool = ConnectionPool(connect_timeout=1.0, state=self.state)

        def http() -> HttpProxy:
            return HttpProxy(router=router, pool=pool, state=self.state, limits=self.limits)

        def tcp() -> InboundTcp:
            return InboundTcp(router=router, state=self.state, timeout=1.0)

        listener = await asyncio.get_running_loop().create_server(
            lambda: InboundDispatch(router=router, state=self.state, http=http, tcp=tcp),
            "127.0.0.1",
            0,
        )
        self.servers = [app, listener]
        self.port = listener.sockets[0].getsockname()[1]

    async def install(self, policy: MeshPolicy) -> None:
        assert await self.holder.install(policy.to_json().encode())

    async def send(self, data: bytes, *, want: int) -> bytes:
        """Connect, send `data`, and read until `want` bytes came or the proxy closed."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(data)
        got = await _read(reader, want)
        writer.close()
        return got

    def detecting(self) -> list[Detect]:
        return [c for c in self.state.connections if isinstance(c, Detect)]

    async def detected(self) -> None:
        """Until the one connection being detected was handed over (its deadline passed)."""
        for _ in range(100):
            if self.detecting():
                break
            await asyncio.sleep(0.01)
        assert self.detecting()
        for _ in range(int((DETECT_TIMEOUT + 2) / 0.01)):
            if not self.detecting():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("detection did not end")

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        await self.state.stop()


async def _read(reader: asyncio.StreamReader, want: int) -> bytes:
    got = b""
    while len(got) < want:
        chunk = await asyncio.wait_for(reader.read(65536), DETECT_TIMEOUT + 2)
        if not chunk:
            break
        got += chunk
    return got


# --- what the first bytes say -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        SSL_REQUEST,
        b"\x00\x00\x00\x54\x00\x03\x00\x00user\x00web\x00",  # Postgres StartupMessage
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello (app-level TLS)
        b"*1\r\n$4\r\nPING\r\n",  # Redis
        b"PING\r\n",  # a one-word line: no request line
        b"AMQP\x00\x00\x09\x01",
    ],
)
def test_what_cannot_start_an_http_request_is_relayed(data: bytes) -> None:
    assert classify(data) == "tcp"


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"OPTIONS * HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n",  # (h2c prior knowledge: HTTP's to refuse, never bytes to relay)
        b"\r\n\r\nPOST /x HTTP/1.1\r\n",  # blank lines first (RFC 9112 §2.2)
        b"\x00\x01 GET / HTTP/1.1\r\n",  # controls and spaces first (Netty, http.server)
        b"get / HTTP/1.1\r\n",  # any token is a method to some server (Go's)
        b"GET\t/ HTTP/1.1\r\n",  # a tab for a space (http.server, Netty)
        b"GET\r/ HTTP/1.1\r\n",  # a lone CR for a space (http.server)
    ],
)
def test_whatever_some_http_server_could_read_as_a_request_takes_the_http_path(
    data: bytes,
) -> None:
    assert classify(data) == "http"


@pytest.mark.parametrize("data", [b"", b"\r\n", b"GE", b"GET", b"PING\r", b"\x00\x00\x00"])
def test_a_start_that_more_bytes_could_still_decide_waits(data: bytes) -> None:
    assert classify(data) is None


# --- which ports detect -------------------------------------------------------------------------


def _router(policy: MeshPolicy) -> InboundRouter:
    holder = PolicyHolder(Metrics())
    holder.index = PolicyIndex.build(policy)
    return InboundRouter(
        identity=DB,
        app=Target("127.0.0.1", PORT),
        app_port=PORT,
        policy=holder,
        metrics=holder.metrics,
        peers=_Fixed(WEB),
    )


ELSEWHERE = AuthzRule(origin="shop/TrafficTarget/l4-6379", sources=(WEB,), tcp_ports=(6379,))
L4_HERE = AuthzRule(origin="shop/TrafficTarget/l4", sources=(WEB,), tcp_ports=(PORT,))
HTTP_ANY = AuthzRule(
    origin="shop/TrafficTarget/http", sources=(ADMIN,), http=(HttpMatch(origin="g#all"),)
)


@pytest.mark.parametrize("mode", ["deny", "permissive", "audit"])
def test_a_port_no_rule_covers_detects_in_every_mode(mode: Mode) -> None:
    assert _router(_policy(1, mode)).protocol_for(WEB) == "detect"
    assert _router(_policy(1, mode, ELSEWHERE)).protocol_for(WEB) == "detect"
    assert _router(_policy(1, mode, ELSEWHERE)).protocol_for(ADMIN) == "detect"  # never per caller


@pytest.mark.parametrize("mode", ["deny", "permissive", "audit"])
def test_a_port_some_rule_covers_keeps_the_protocol_its_rules_give(mode: Mode) -> None:
    assert _router(_policy(1, mode, L4_HERE)).protocol_for(WEB) == "tcp"
    assert _router(_policy(1, mode, HTTP_ANY)).protocol_for(WEB) == "http"
    assert _router(_policy(1, mode, L4_HERE, HTTP_ANY)).protocol_for(WEB) == "http"


# --- through real sockets -----------------------------------------------------------------------


async def test_permissive_mode_relays_a_postgres_client_on_a_port_no_rule_covers() -> None:
    inbound = _Inbound()
    await inbound.start(_policy(1, "permissive"))
    got = await inbound.send(SSL_REQUEST, want=5 + len(SSL_REQUEST))
    assert got == b"pong:" + SSL_REQUEST
    assert inbound.app.received == SSL_REQUEST
    await inbound.stop()


async def test_audit_mode_relays_it_and_records_the_would_deny(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbound = _Inbound()
    await inbound.start(_policy(1, "audit", ELSEWHERE))
    with caplog.at_level(logging.WARNING, logger="smictl.proxy"):
        got = await inbound.send(SSL_REQUEST, want=5 + len(SSL_REQUEST))
    assert got == b"pong:" + SSL_REQUEST
    assert inbound.metrics.authz_would_deny["tcp"] == {(ELSEWHERE.origin, "port-not-allowed"): 1}
    assert inbound.metrics.authz_would_deny["http"] == {}
    assert [r.getMessage() for r in caplog.records if "would deny tcp" in r.getMessage()]
    await inbound.stop()


@pytest.mark.parametrize("mode", ["permissive", "audit"])
async def test_a_silent_caller_is_closed_by_the_header_timeout_and_pins_no_app_connection(
    mode: Mode,
) -> None:
    """Relayed, it held an app connection (this one greets first, as SMTP) for as long as it
    liked. A server-speaks-first protocol there needs a TCPRoute (docs/proxy.md)."""
    inbound = _Inbound(_App(greeting=b"220 mail ESMTP\r\n"), Limits(header_timeout=0.5))
    await inbound.start(_policy(1, mode))
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", inbound.port)
    assert await _read(reader, 1) == b""  # (closed, and no greeting: the app saw no connection)
    assert DETECT_TIMEOUT <= time.monotonic() - started < DETECT_TIMEOUT + 0.5 + 1.5
    assert inbound.app.connections == 0
    assert inbound.metrics.authz_would_deny["tcp"] == {}  # (never a relay, so never counted)
    writer.close()
    await inbound.stop()


@pytest.mark.parametrize("mode", ["permissive", "audit"])
async def test_a_caller_silent_past_the_timeout_cannot_forge_its_identity(mode: Mode) -> None:
    """It was relayed after DETECT_TIMEOUT, and what it sent then reached the app as sent."""
    inbound = _Inbound()
    await inbound.start(_policy(1, mode))
    reader, writer = await asyncio.open_connection("127.0.0.1", inbound.port)
    await inbound.detected()
    writer.write(
        b"GET / HTTP/1.1\r\nHost: db\r\nConnection: close\r\n"
        b"x-smi-source-identity: " + ADMIN.encode() + b"\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DETECT_TIMEOUT + 2)
    assert ADMIN.encode() not in inbound.app.received
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"x-smi-source-identity: " + WEB.encode() in inbound.app.received
    writer.close()
    await inbound.stop()


@pytest.mark.parametrize(
    "start",
    [b"GET / HTTP/1.1\r\n", b"\r\n\r\nGET / HTTP/1.1\r\n", b"\x00GET / HTTP/1.1\r\n"],
)
async def test_a_forged_identity_header_never_reaches_the_app_on_a_detected_port(
    start: bytes,
) -> None:
    inbound = _Inbound()
    await inbound.start(_policy(1, "permissive"))
    forged = (
        b"Host: db\r\nConnection: close\r\nx-smi-source-identity: " + ADMIN.encode() + b"\r\n"
        b"x_smi_source_identity: " + ADMIN.encode() + b"\r\n\r\n"
    )
    got = await inbound.send(start + forged, want=10_000)
    assert ADMIN.encode() not in inbound.app.received
    if inbound.app.received:  # (the HTTP path took it: the proxy stated the caller)
        assert got.startswith(b"HTTP/1.1 200 ")
        assert b"x-smi-source-identity: " + WEB.encode() in inbound.app.received
    else:  # (or refused it as HTTP it cannot take)
        assert got.startswith(b"HTTP/1.1 400 ")
    await inbound.stop()


async def test_deny_mode_denies_other_bytes_on_an_uncovered_port_as_tcp_and_counts_it() -> None:
    """The HTTP parser's 400 refused them too, but decided nothing and counted nothing: the
    conformance suite's 'TCP to another port' saw no deny."""
    inbound = _Inbound()
    await inbound.start(_policy(1, "deny", ELSEWHERE))
    got = await inbound.send(SSL_REQUEST, want=10_000)
    assert got == b""  # (closed: an L4 deny)
    assert inbound.app.received == b""
    assert inbound.metrics.authz_deny["tcp"] == {"port-not-allowed": 1}
    await inbound.stop()


async def test_deny_mode_still_answers_a_request_on_an_uncovered_port_with_a_403() -> None:
    inbound = _Inbound()
    await inbound.start(_policy(1, "deny", ELSEWHERE))
    request = b"GET / HTTP/1.1\r\nHost: db\r\nConnection: close\r\n\r\n"
    got = await inbound.send(request, want=10_000)
    assert got.startswith(b"HTTP/1.1 403 ")
    assert inbound.app.received == b""
    await inbound.stop()


async def test_a_swap_to_deny_mode_while_detecting_is_obeyed() -> None:
    """The guess stands (the port is still uncovered); the deny is the new policy's."""
    inbound = _Inbound()
    await inbound.start(_policy(1, "permissive"))
    reader, writer = await asyncio.open_connection("127.0.0.1", inbound.port)
    for _ in range(100):
        if inbound.detecting():
            break
        await asyncio.sleep(0.01)
    assert inbound.detecting()
    await inbound.install(_policy(2, "deny"))
    writer.write(SSL_REQUEST)
    assert await _read(reader, 10_000) == b""
    assert inbound.app.received == b""
    assert sum(inbound.metrics.authz_deny["tcp"].values()) == 1
    writer.close()
    await inbound.stop()


# --- the detector's bounds ----------------------------------------------------------------------


class _Chosen(asyncio.Protocol):
    def __init__(self, kind: str, log: list[tuple[str, Any]]) -> None:
        self.kind, self.log = kind, log

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.log.append((self.kind, "made"))

    def data_received(self, data: bytes) -> None:
        self.log.append((self.kind, data))

    def eof_received(self) -> bool:
        self.log.append((self.kind, "eof"))
        return True


def _detect(log: list[tuple[str, Any]]) -> tuple[Detect, FakeTransport, ServerState]:
    state = ServerState()

    def chosen(kind: str) -> Callable[[], asyncio.BaseProtocol]:
        return lambda: _Chosen(kind, log)

    detect = Detect(
        router=_router(_policy(1, "permissive")),
        state=state,
        http=chosen("http"),
        tcp=chosen("tcp"),
    )
    transport = FakeTransport()
    detect.connection_made(transport)  # type: ignore[arg-type]
    return detect, transport, state


def test_the_bytes_held_while_detecting_are_bounded() -> None:
    log: list[tuple[str, Any]] = []
    detect, transport, state = _detect(log)
    blank = b"\r\n" * (DETECT_BYTES // 2)
    detect.data_received(blank)
    assert log == [] and len(detect.held) == DETECT_BYTES  # still a possible request
    detect.data_received(b"\r\n")
    assert log == [("http", "made"), ("http", blank + b"\r\n")]
    assert transport.protocol is not None and transport.protocol is not detect
    assert detect not in state.connections and len(detect.held) == 0


@pytest.mark.parametrize(
    ("held", "kind"), [(b"", "http"), (b"GE", "http"), (b"\x00\x00\x00\x08\x04\xd2", "tcp")]
)
def test_an_eof_while_detecting_decides_and_reaches_the_chosen_protocol(
    held: bytes, kind: str
) -> None:
    log: list[tuple[str, Any]] = []
    detect, _, _ = _detect(log)
    if held:
        detect.data_received(held)
    if kind == "tcp" and held:  # (decided by the bytes themselves)
        assert log == [("tcp", "made"), ("tcp", held)]
        return
    assert detect.eof_received() is True
    assert log == [(kind, "made"), *([(kind, held)] if held else []), (kind, "eof")]


def test_the_timeout_gives_a_silent_caller_and_a_partial_request_the_http_path() -> None:
    for held, kind in ((b"", "http"), (b"GE", "http")):
        log: list[tuple[str, Any]] = []
        detect, _, state = _detect(log)
        if held:
            detect.data_received(held)
        state.check(detect.deadline - 0.01)
        assert log == []
        state.check(detect.deadline)
        assert log[0] == (kind, "made")
        assert detect not in state.connections
