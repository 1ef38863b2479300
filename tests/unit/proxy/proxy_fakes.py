"""Fakes for driving the proxy's protocols without sockets: a transport that records what is
written to it, and a harness wiring one downstream `HttpProxy` to fake upstream connections."""

from __future__ import annotations

import asyncio
from typing import Any

from proxy.exchange import Exchange, Forward, Limits, Router
from proxy.http1 import Reply, local_reply
from proxy.metrics import Metrics
from proxy.server import HttpProxy
from proxy.state import ServerState
from proxy.upstream import ConnectionPool, Target, UpstreamConnection


class FakeTransport:
    def __init__(self, extra: dict[str, Any] | None = None) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.reading = True
        self.eof_written = False
        self.extra = extra or {}
        self.protocol: Any = None
        self.stalled = False  # a peer that reads nothing: every write stays queued

    # what asyncio.Transport offers
    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        assert self.reading, "paused twice"
        self.reading = False

    def resume_reading(self) -> None:
        assert not self.reading, "resumed while reading"
        self.reading = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self.writes)) if self.stalled else 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    @property
    def data(self) -> bytes:
        return b"".join(self.writes)

    def take(self) -> bytes:
        out = self.data
        self.writes.clear()
        return out


APP = Target("app.local", 8080)


class FakeRouter(Router):
    """Forwards everything to APP with one added header, except paths under /deny."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.stats = (metrics or Metrics()).inbound
        self.forward = Forward(APP, b"x-smi-source-identity: spiffe://td/ns/a/sa/b\r\n")
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    def peer_of(self, transport: Any) -> None:
        return None

    def route(self, ex: Exchange, peer: Any) -> Forward | Reply:
        self.seen.append((ex.method_str, ex.path_str, dict(ex.header_map())))
        if ex.path_str.startswith("/deny"):
            return local_reply(403, "no-route-match")
        return self.forward


class Harness:
    """One downstream connection; upstream connections are created on demand with fake
    transports (`connect_mode` "ok", "refuse" or "hang")."""

    def __init__(self, *, limits: Limits | None = None, router: Any = None) -> None:
        self.state = ServerState()
        self.metrics = Metrics()
        self.router = router or FakeRouter(self.metrics)
        self.connect_mode = "ok"
        self.upstreams: list[UpstreamConnection] = []
        self.pool = ConnectionPool(connector=self._connect, connect_timeout=0.2, state=self.state)
        self.proxy = HttpProxy(
            router=self.router, pool=self.pool, state=self.state, limits=limits or Limits()
        )
        self.down = FakeTransport()
        self.proxy.connection_made(self.down)

    async def _connect(self, pool: ConnectionPool, target: Target) -> UpstreamConnection:
        if self.connect_mode == "refuse":
            raise ConnectionRefusedError(111, "Connection refused")
        if self.connect_mode == "hang":
            await asyncio.sleep(5)
        conn = UpstreamConnection(pool, target)
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        self.upstreams.append(conn)
        return conn

    def send(self, data: bytes) -> None:
        self.proxy.data_received(data)

    async def settle(self) -> None:
        for _ in range(10):
            await asyncio.sleep(0)

    def up(self, i: int = -1) -> FakeTransport:
        t = self.upstreams[i].transport
        assert isinstance(t, FakeTransport)
        return t

    def respond(self, data: bytes, i: int = -1) -> None:
        self.upstreams[i].data_received(data)

    def upstream_closes(self, i: int = -1) -> None:
        conn = self.upstreams[i]
        self.up(i).closed = True
        conn.connection_lost(None)
