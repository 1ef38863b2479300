"""Sidecar proxy benchmark: smictl proxy against nginx, side by side, in one run.

    python bench/bench_proxy.py [--quick] [--rounds N] [--soak N]
    python bench/bench_proxy.py --micro      # in-process: us per request, no servers

Every server is one process with one worker (nginx `master_process off`), all on 127.0.0.1,
and the app is an nginx answering a 12-byte body. Topologies:

    direct            wrk ─► app
    nginx             wrk ─► nginx (reverse proxy, upstream keep-alive) ─► app
    smictl            wrk ─► smictl, one plain hop doing the inbound request path (identity,
                      `authorize` over a MeshPolicy with regex routes), the outbound decision
                      (`pick_backend` over a 90/10 TrafficSplit) and metrics ─► app
    nginx-tls         wrk ─TLS─► nginx ─► app
    nginx-mtls-pair   wrk ─► nginx ─mTLS─► nginx ─► app
    smictl-mtls-pair  wrk ─► smictl outbound (split) ─mTLS─► smictl inbound (authorize) ─► app

The `smictl` hop is this script serving the proxy's own protocol, routers and metrics (the
modules `smictl proxy` runs) on a plain listener whose callers all count as one identity:
a real inbound listener requires mTLS, and the plain comparison with nginx needs a plain hop.
The pair runs two real `smictl proxy` processes. A fourth, `smictl-injected`, runs the way
the injector deploys the sidecar — `smictl proxy` with its policy by long poll and its
certificate by CSR from a real control plane (`smictl serve`) — and is measured idle only
(resident memory). All of them run from a copy of `proxy` and `smi` made at the start of the
run, as an installed package runs: the request path compiled with mypyc as `make install`
built it (setup.py; the JSON's method.request_path says what ran), the rest compiled to
bytecode, started by an interpreter whose site-packages hold no editable-install finder (see
`installed_copy`).

Measured (wrk -t1 -c32, rounds interleaved so that noise from other load hits every topology
alike; medians): throughput, p50/p99, CPU seconds per 1,000 requests of the proxy processes;
added latency at a fixed 1,000 requests/s (bench/constant_rate.py, the topologies taking
one-second turns; hey -q 100 -c 10's bursts beside it);
RSS idle and after load; RSS and open file descriptors across a soak of --soak requests.
Writes bench/results/proxy.json. Targets (issue 5): throughput >= 0.8x nginx on the same
topology; each proxy hop adds no more p50/p99 at 1,000 rps than an nginx hop; RSS <= 30 MB
idle; no growth in RSS or fds across the soak.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# (statistics, platform, shutil and tempfile are imported where the driver uses them: the
# plain hop runs in a process started from this file, and its resident memory is measured.)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench" / "results" / "proxy.json"
PAIRS_RESULTS = REPO / "bench" / "results" / "proxy_pairs.json"
HOST = "app.bench"
PATH = "/api/items"
FRONT = "spiffe://cluster.local/ns/bench/sa/front"
WEB = "spiffe://cluster.local/ns/bench/sa/web"


# --- policy -----------------------------------------------------------------------------------


def bench_policy(*, endpoint: tuple[str, int]) -> Any:
    """A MeshPolicy with a few TrafficTargets (regex routes, a header match) and a 90/10 split
    of bench/app over two backends whose endpoints are `endpoint`."""
    from smi.compiler.ir import (
        AuthzRule,
        Endpoint,
        HttpMatch,
        MeshPolicy,
        Service,
        Split,
        SplitBackend,
    )

    def rule(name: str, sources: tuple[str, ...]) -> Any:
        matches = (
            HttpMatch(
                origin=f"bench/HTTPRouteGroup/{name}#api",
                methods=("GET",),
                path_regex=r"/api/[a-z]+(/[0-9]+)?$",
            ),
            HttpMatch(
                origin=f"bench/HTTPRouteGroup/{name}#write",
                methods=("POST", "PUT"),
                path_regex="/api/.*",
                headers=(("content-type", "application/json"),),
            ),
            HttpMatch(
                origin=f"bench/HTTPRouteGroup/{name}#health",
                methods=("GET",),
                path_regex="/healthz$",
            ),
        )
        return AuthzRule(origin=f"bench/TrafficTarget/{name}", sources=sources, http=matches)

    others = tuple(f"spiffe://cluster.local/ns/bench/sa/client-{i}" for i in range(20))
    ep = Endpoint(endpoint[0], endpoint[1], WEB)
    return MeshPolicy(
        revision=1,
        destinations={WEB: (rule("front", (FRONT,)), rule("others", others))},
        services={
            "bench/app": Service(ports=(80,), endpoints=(ep,)),
            "bench/app-v1": Service(ports=(80,), endpoints=(ep,)),
            "bench/app-v2": Service(ports=(80,), endpoints=(ep,)),
        },
        splits={
            "bench/app": Split(
                origin="bench/TrafficSplit/app",
                backends=(SplitBackend("bench/app-v1", 900), SplitBackend("bench/app-v2", 100)),
            )
        },
    )


# --- the plain smictl hop (run in its own process with --serve-plain) -------------------------


def plain_hop_router(app_port: int) -> tuple[Any, Any]:
    """(metrics, router) of the plain hop: the split of bench/app, then the authorization of
    the one caller, with the proxy's own routers over `bench_policy`."""
    from proxy.metrics import Metrics
    from proxy.policy import PolicyHolder
    from proxy.routing import InboundRouter, OutboundRouter, PeerIdentities, SplitThenAuthorize
    from proxy.upstream import Target
    from smi.compiler.ir.index import PolicyIndex

    class OneCaller(PeerIdentities):
        def of(self, transport: Any) -> str:
            return FRONT

    metrics = Metrics()
    holder = PolicyHolder(metrics)
    holder.index = PolicyIndex.build(bench_policy(endpoint=("127.0.0.1", app_port)))
    inbound = InboundRouter(
        identity=WEB,
        app=Target("127.0.0.1", app_port),
        app_port=80,
        policy=holder,
        metrics=metrics,
        peers=OneCaller(trust_domain=None),
    )
    outbound = OutboundRouter(namespace="bench", policy=holder, tls=None, metrics=metrics)  # type: ignore[arg-type]
    return metrics, SplitThenAuthorize(service="bench/app", outbound=outbound, inbound=inbound)


async def serve_plain(port_file: Path, app_port: int) -> None:
    from proxy.admin import AdminProtocol
    from proxy.exchange import Limits
    from proxy.server import HttpProxy
    from proxy.state import ServerState
    from proxy.upstream import ConnectionPool

    metrics, router = plain_hop_router(app_port)
    state = ServerState()
    pool = ConnectionPool(state=state)
    state.start()
    state.on_tick.append(pool.sweep)
    loop = asyncio.get_running_loop()
    # Bound here, as `smictl proxy` binds an IP literal (no getaddrinfo: no resolver threads).
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.setblocking(False)
    server = await loop.create_server(
        lambda: HttpProxy(router=router, pool=pool, state=state, limits=Limits()),
        sock=listener,
        backlog=1024,
    )
    pages = {"/metrics": lambda: (200, "text/plain", metrics.render().encode())}
    admin_sock = socket.socket()
    admin_sock.bind(("127.0.0.1", 0))
    admin_sock.setblocking(False)
    admin = await loop.create_server(lambda: AdminProtocol(pages), sock=admin_sock)
    from proxy import native

    ports = {
        "port": server.sockets[0].getsockname()[1],
        "admin": admin.sockets[0].getsockname()[1],
        "requestPath": native.state(),
    }
    port_file.write_text(json.dumps(ports))  # noqa: ASYNC240 - once, before serving
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


# --- in-process: the plain hop without sockets (--micro) ---------------------------------------

MICRO_REQUEST = (
    b"GET /api/items HTTP/1.1\r\nHost: app.bench\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
)
MICRO_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 23 Nov 2026 00:00:00 GMT\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 12\r\n"
    b"Connection: keep-alive\r\n\r\nhello world\n"
)


class NullTransport:
    """Just enough of a transport for the protocols; writes go nowhere."""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def micro_hop() -> tuple[Any, Any]:
    """The plain hop's request path on null transports, one request through it: (the
    downstream protocol, its one pooled upstream connection). Also bench_cold.py's."""
    from proxy.exchange import Limits
    from proxy.server import HttpProxy
    from proxy.state import ServerState
    from proxy.upstream import ConnectionPool, Target, UpstreamConnection

    _, router = plain_hop_router(9)
    upstreams: list[UpstreamConnection] = []

    async def connect(pool: ConnectionPool, target: Target) -> UpstreamConnection:
        conn = UpstreamConnection(pool, target)
        conn.connection_made(NullTransport())  # type: ignore[arg-type]
        upstreams.append(conn)
        return conn

    pool = ConnectionPool(connector=connect)
    hop = HttpProxy(router=router, pool=pool, state=ServerState(), limits=Limits())
    hop.connection_made(NullTransport())  # type: ignore[arg-type]
    hop.data_received(MICRO_REQUEST)
    for _ in range(10):  # the first request opens the upstream connection
        await asyncio.sleep(0)
    if len(upstreams) != 1:
        raise SystemExit("the first request opened no upstream connection")
    upstreams[0].data_received(MICRO_RESPONSE)
    return hop, upstreams[0]


async def micro(requests: int, repeats: int) -> float:
    """Best of `repeats` runs, in microseconds per request, of the plain hop's request path
    (the bench's router, the proxy's protocol, one pooled upstream connection) on null
    transports: what the proxy's Python costs per request, without sockets or scheduling.
    Use it to compare variants (interleave runs: the figure moves with the machine's load)."""
    import gc

    hop, upstream = await micro_hop()
    opened = upstream.requests
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        for _ in range(requests):
            hop.data_received(MICRO_REQUEST)
            upstream.data_received(MICRO_RESPONSE)
        best = min(best, (time.perf_counter() - started) / requests * 1e6)
    if upstream.requests != opened + repeats * requests:
        raise SystemExit("the upstream connection was not reused")
    return best


class _Wire(NullTransport):
    """A TCP transport in memory: keeps what is written, for the other end to read."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        # (A C method: what the protocols write is theirs to keep, bytes, never changed; an
        # interpreted write would be counted as the proxy's in bench_cold.py.)
        self.write = self.sent.append  # type: ignore[method-assign,assignment]

    def take(self) -> bytes:
        data = b"".join(self.sent)
        self.sent.clear()
        return data


class _Answer(asyncio.Protocol):
    """The server side's protocol: answers every read with MICRO_RESPONSE."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(MICRO_RESPONSE)


class _Keep(asyncio.Protocol):
    """The client side's protocol: keeps the last read."""

    last = b""

    def data_received(self, data: bytes) -> None:
        self.last = data


def _mesh_contexts() -> list[Any]:
    """The server (WEB) and client (FRONT) TLS contexts of a new mesh CA, as proxies make them."""
    import tempfile

    from proxy.tls import client_context, server_context
    from smi.identity import Identity
    from smi.pki import CertificateAuthority

    ca = CertificateAuthority.create()
    contexts = []
    with tempfile.TemporaryDirectory(prefix="micro-tls-") as tmp:
        for name, make in (("web", server_context), ("front", client_context)):
            cert, key = ca.issue_workload(Identity.parse(WEB if name == "web" else FRONT))
            Path(tmp, f"{name}.crt").write_bytes(cert)
            Path(tmp, f"{name}.key").write_bytes(key)
            context = make(ca.cert_pem())
            context.load_cert_chain(f"{tmp}/{name}.crt", f"{tmp}/{name}.key")
            contexts.append(context)
    return contexts


async def micro_tls(requests: int, repeats: int) -> float:
    """Best of `repeats` runs, in microseconds per round trip, of a request and its response
    through the mesh's mTLS in memory: two proxy.tlslayer layers (client and server side, a
    mesh CA's workload certificates) on in-memory wires, toy protocols above them. The record
    work of one link of a pair, without sockets."""
    from proxy import tlslayer

    contexts = _mesh_contexts()
    answer, keep = _Answer(), _Keep()
    server = tlslayer.TlsLayer(contexts[0], server_side=True, factory=lambda: answer)
    client = tlslayer.TlsLayer(contexts[1], server_side=False)
    server_wire, client_wire = _Wire(), _Wire()
    server.connection_made(server_wire)  # type: ignore[arg-type]
    client.connection_made(client_wire)  # type: ignore[arg-type]
    for _ in range(10):  # the handshake
        server.data_received(client_wire.take())
        client.data_received(server_wire.take())
        if client.done is not None and client.done.done():
            break
    if client.done is None or not client.done.done():
        raise SystemExit("the in-memory TLS handshake did not finish")
    await client.done
    client.attach(keep)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(requests):
            client.write(MICRO_REQUEST)
            server.data_received(client_wire.take())
            client.data_received(server_wire.take())
        best = min(best, (time.perf_counter() - started) / requests * 1e6)
    if keep.last != MICRO_RESPONSE:
        raise SystemExit("the in-memory TLS round trip did not come back")
    return best


class MicroPair:
    """The mTLS pair's request path in memory, as `smictl proxy` wires it (proxy.app): the
    front's outbound listener (`OutboundRouter`: the 90/10 split, an mTLS upstream checked for
    WEB) and the web side's inbound listener (a server `TlsLayer`, `InboundDispatch`, the
    caller's identity from its verified certificate, `authorize`), on in-memory wires, the
    app answering MICRO_RESPONSE. A round trip is four reads, as four wake-ups are with
    sockets: `request`, `tls_request`, `response`, `tls_response`. Also bench_cold.py's."""

    def __init__(self) -> None:
        self.client, self.app = _Wire(), _Wire()
        self.to_web, self.to_front = _Wire(), _Wire()  # front -> web; web -> front
        self.front: Any = None  # the front's HttpProxy (outbound listener)
        self.front_tls: Any = None  # the front's client TlsLayer
        self.web_tls: Any = None  # the web side's server TlsLayer
        self.upstream: Any = None  # the web side's connection to the app

    async def start(self) -> None:
        import itertools

        from proxy import tlslayer
        from proxy.exchange import Limits
        from proxy.metrics import Metrics
        from proxy.policy import PolicyHolder
        from proxy.routing import InboundRouter, OutboundRouter, PeerIdentities
        from proxy.server import HttpProxy
        from proxy.state import ServerState
        from proxy.tcp import InboundDispatch
        from proxy.tls import WorkloadTLS
        from proxy.upstream import ConnectionPool, Target, UpstreamConnection
        from smi.compiler.ir.index import PolicyIndex
        from smi.identity import Identity
        from smi.pki import CertificateAuthority

        ca = CertificateAuthority.create()
        index = PolicyIndex.build(bench_policy(endpoint=("127.0.0.1", 9)))
        side: dict[str, Any] = {}
        for name in (FRONT, WEB):
            metrics = Metrics()
            holder = PolicyHolder(metrics, trust_domain="cluster.local")
            holder.index = index
            identity = Identity.parse(name)
            tls = WorkloadTLS(identity=identity, ca_pem=ca.cert_pem(), metrics=metrics)
            tls.install(*ca.issue_workload(identity))
            tls.cleanup()  # (the contexts hold the certificate and key: no files left behind)
            side[name] = (metrics, holder, tls, ServerState())
        metrics, holder, web_tls, state = side[WEB]
        inbound = InboundRouter(
            identity=WEB,
            app=Target("127.0.0.1", 9),
            app_port=80,
            policy=holder,
            metrics=metrics,
            peers=PeerIdentities(trust_domain="cluster.local"),
        )

        async def to_app(pool: ConnectionPool, target: Target) -> UpstreamConnection:
            conn = self.upstream = UpstreamConnection(pool, target)
            conn.connection_made(self.app)  # type: ignore[arg-type]
            return conn

        web_pool = ConnectionPool(connector=to_app, state=state)

        def http() -> HttpProxy:
            return HttpProxy(
                router=inbound, pool=web_pool, state=state, limits=Limits(), direction="inbound"
            )

        def dispatch() -> InboundDispatch:
            return InboundDispatch(router=inbound, state=state, http=http, tcp=http)

        metrics, holder, front_tls, state = side[FRONT]
        outbound = OutboundRouter(
            namespace="bench",
            policy=holder,
            tls=front_tls,
            metrics=metrics,
            rng=itertools.repeat(0.5).__next__,  # (a C call, as `Random().random` is)
        )

        async def to_web(pool: ConnectionPool, target: Target) -> UpstreamConnection:
            assert target.tls is not None
            layer = self.front_tls = tlslayer.TlsLayer(target.tls.client_context, server_side=False)
            server = self.web_tls = tlslayer.server_factory(
                web_tls.server, dispatch, handshake_timeout=10.0
            )()
            server.connection_made(self.to_front)  # type: ignore[arg-type]
            layer.connection_made(self.to_web)  # type: ignore[arg-type]
            for _ in range(10):  # the handshake
                server.data_received(self.to_web.take())
                layer.data_received(self.to_front.take())
                if layer.done is not None and layer.done.done():
                    break
            assert layer.done is not None
            await layer.done
            conn = UpstreamConnection(pool, target)
            layer.attach(conn)
            await conn.connected
            return conn

        self.front = HttpProxy(
            router=outbound,
            pool=ConnectionPool(connector=to_web, state=state),
            state=state,
            limits=Limits(),
            direction="outbound",
        )
        self.front.connection_made(self.client)
        self.front.data_received(MICRO_REQUEST)
        for _ in range(20):  # the first request opens both upstream connections
            await asyncio.sleep(0)
            if self.to_web.sent:
                self.tls_request()
            if self.upstream is not None and self.app.sent:
                break
        if self.upstream is None or not self.app.sent:
            raise SystemExit("the first request through the pair did not reach the app")
        self.response()
        self.tls_response()
        self.check()

    def request(self) -> None:
        self.front.data_received(MICRO_REQUEST)

    def tls_request(self) -> None:
        self.web_tls.data_received(self.to_web.take())

    def response(self) -> None:
        self.upstream.data_received(self.answer())

    def answer(self) -> bytes:
        """The app's answer to the request it was sent."""
        self.app.sent.clear()
        return MICRO_RESPONSE

    def tls_response(self) -> None:
        self.front_tls.data_received(self.to_front.take())

    def round_trip(self) -> None:
        self.request()
        self.tls_request()
        self.response()
        self.tls_response()

    def check(self) -> None:
        """That the last round trip came back whole and went to the app as authorized."""
        answer = self.client.take()
        if not answer.startswith(b"HTTP/1.1 200 ") or not answer.endswith(b"hello world\n"):
            raise SystemExit(f"the pair answered {answer[:80]!r}")


async def micro_pair(requests: int, repeats: int) -> float:
    """Best of `repeats` runs, in microseconds per request, of the mTLS pair's request path
    in memory (`MicroPair`): both proxies' Python and both TLS layers, without sockets."""
    import gc

    pair = MicroPair()
    await pair.start()
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        for _ in range(requests):
            pair.round_trip()
        best = min(best, (time.perf_counter() - started) / requests * 1e6)
        pair.check()
    return best


# --- processes --------------------------------------------------------------------------------


class Procs:
    """Every process this run starts; all are stopped at the end, whatever happens."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.cleanups: list[Any] = []  # callables, run after the processes are stopped

    def start(
        self, name: str, argv: list[str], *, cwd: Path = REPO, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for cleanup in self.cleanups:
            cleanup()


def wait_for(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


NGINX_HEAD = """daemon off; master_process off; worker_processes 1;
pid {work}/{name}.pid; error_log {work}/{name}.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 10000000; keepalive_timeout 120s;
"""
# location / of an nginx proxy: {scheme}, {upstream}, {extra} directives
PROXY = """upstream {upstream} {{ server 127.0.0.1:{to}; keepalive 64; }}
server {{ listen 127.0.0.1:{port}{ssl}; {server_extra}
  location / {{ proxy_pass {scheme}://{upstream}; proxy_http_version 1.1;
    proxy_set_header Connection ""; {extra} }} }}"""


class Topologies:
    """Starts every server; knows each topology's URL and the pids of its proxy processes."""

    def __init__(self, procs: Procs) -> None:
        from smi.identity import Identity
        from smi.pki import CertificateAuthority

        self.procs, w = procs, procs.work
        ca = CertificateAuthority.create()
        (w / "ca.pem").write_bytes(ca.cert_pem())
        material = {
            "server": ca.issue_server(dns_names=["backend"], ip_addresses=["127.0.0.1"]),
            "front": ca.issue_workload(Identity.parse(FRONT)),
            "web": ca.issue_workload(Identity.parse(WEB)),
        }
        for name, (cert, key) in material.items():
            (w / f"{name}.crt").write_bytes(cert)
            (w / f"{name}.key").write_bytes(key)
        self.urls: dict[str, str] = {}
        self.pids: dict[str, list[int]] = {"direct": []}

    def nginx(self, name: str, body: str) -> None:
        w = self.procs.work
        conf = w / f"{name}.conf"
        conf.write_text(NGINX_HEAD.format(work=w, name=name) + body + "\n}\n")
        self.procs.start(name, ["nginx", "-c", str(conf), "-p", str(w)])

    def start(self) -> None:
        w = self.procs.work
        app, ngx, tls, pair_in, pair_out = (free_port() for _ in range(5))
        cert = f"ssl_certificate {w}/server.crt; ssl_certificate_key {w}/server.key;"
        client = (
            f"proxy_ssl_certificate {w}/front.crt; proxy_ssl_certificate_key {w}/front.key; "
            f"proxy_ssl_trusted_certificate {w}/ca.pem; proxy_ssl_verify on; "
            "proxy_ssl_name backend; proxy_ssl_session_reuse on;"
        )
        plain = {"ssl": "", "server_extra": "", "scheme": "http", "upstream": "app", "extra": ""}
        self.nginx(
            "app",
            f'server {{ listen 127.0.0.1:{app}; location / {{ return 200 "hello world\\n"; }} }}',
        )
        self.nginx("nginx", PROXY.format(**plain, port=ngx, to=app))
        self.nginx(
            "nginx-tls",
            PROXY.format(**plain | {"ssl": " ssl", "server_extra": cert}, port=tls, to=app),
        )
        verify = f"{cert} ssl_client_certificate {w}/ca.pem; ssl_verify_client on;"
        self.nginx(
            "nginx-pair-in",
            PROXY.format(**plain | {"ssl": " ssl", "server_extra": verify}, port=pair_in, to=app),
        )
        self.nginx(
            "nginx-pair-out",
            PROXY.format(
                **plain | {"scheme": "https", "upstream": "backend", "extra": client},
                port=pair_out,
                to=pair_in,
            ),
        )
        for port in (app, ngx, tls, pair_in, pair_out):
            wait_for(lambda p=port: listening(p), f"nginx on {port}")
        base = "http://127.0.0.1:{}" + PATH
        self.urls |= {
            "direct": base.format(app),
            "nginx": base.format(ngx),
            "nginx-tls": base.format(tls).replace("http:", "https:"),
            "nginx-mtls-pair": base.format(pair_out),
        }
        pid = {n: p.pid for n, p in self.procs.procs.items()}
        self.pids |= {
            "nginx": [pid["nginx"]],
            "nginx-tls": [pid["nginx-tls"]],
            "nginx-mtls-pair": [pid["nginx-pair-out"], pid["nginx-pair-in"]],
        }
        self._start_smictl(app)

    def _start_smictl(self, app: int) -> None:
        w = self.procs.work
        site, python = installed_copy(w)
        self.site, self.python = site, python
        env = os.environ | {"PYTHONPATH": str(site)}
        main = f"import sys; sys.path.insert(0, {str(site / 'bench')!r}); import bench_proxy as b; "
        serve = [python, "-c", main + "b.main()", "--serve-plain", str(w / "plain.json")]
        plain = self.procs.start("smictl", [*serve, "--app-port", str(app)], cwd=site, env=env)
        ports = wait_for(lambda: read_json(w / "plain.json"), "the plain smictl hop")
        self.urls["smictl"] = f"http://127.0.0.1:{ports['port']}{PATH}"
        self.pids["smictl"] = [plain.pid]
        policy = w / "policy.json"
        policy.write_text(bench_policy(endpoint=("127.0.0.1", 1)).to_json())
        proxy = [
            python,
            "-m",
            "proxy",
            "--policy",
            str(policy),
            "--ca",
            str(w / "ca.pem"),
            "--admin",
            "0",
            "--log-level",
            "warning",
        ]
        web = self.procs.start(
            "smictl-web",
            [
                *proxy,
                "--identity",
                WEB,
                "--inbound",
                f"0:{app}",
                *f"--cert {w}/web.crt --key {w}/web.key".split(),
                "--ports-file",
                str(w / "web.ports"),
            ],
            cwd=site,
            env=env,
        )
        web_ports = wait_for(lambda: read_json(w / "web.ports"), "smictl inbound")
        tmp = policy.with_suffix(".tmp")  # the endpoints now point at the inbound proxy
        endpoint = ("127.0.0.1", web_ports["inbound"][str(app)])
        tmp.write_text(bench_policy(endpoint=endpoint).with_revision(2).to_json())
        tmp.replace(policy)
        front = self.procs.start(
            "smictl-front",
            [
                *proxy,
                "--identity",
                FRONT,
                "--outbound",
                "0",
                *f"--cert {w}/front.crt --key {w}/front.key".split(),
                "--ports-file",
                str(w / "front.ports"),
            ],
            cwd=site,
            env=env,
        )
        front_ports = wait_for(lambda: read_json(w / "front.ports"), "smictl outbound")
        for p in (web_ports, front_ports):
            wait_for(lambda p=p: _revision(p["admin"]) == 2, "the proxies to load the policy")
        self.urls["smictl-mtls-pair"] = f"http://127.0.0.1:{front_ports['outbound']}{PATH}"
        # Which form of the request path each proxy runs (proxy.native): "compiled" (mypyc)
        # or "pure: <why>".
        self.request_path = {
            "smictl": ports["requestPath"],
            "smictl-front": _config(front_ports["admin"])["requestPath"],
            "smictl-web": _config(web_ports["admin"])["requestPath"],
        }
        print(f"request path: {self.request_path}", flush=True)
        self.pids["smictl-mtls-pair"] = [front.pid, web.pid]
        self._start_injected(app)

    def _start_injected(self, app: int) -> None:
        """The sidecar as the injector runs it (webhook.injection): `smictl proxy` configured by
        SMI_PROXY_* variables, its policy by long poll and its certificate by CSR from a real
        control plane (local mode, bootstrap token), the mesh CA inline. Measured idle."""
        from conformance.targets.controlplane import ControlPlane

        w = self.procs.work
        plane = ControlPlane(w / "plane", workers=1)
        self.procs.cleanups.append(plane.stop)
        plane.start(timeout=90.0)
        token = w / "injected.token"
        token.write_text(plane.token(WEB), encoding="utf-8")
        env = os.environ | {
            "PYTHONPATH": str(self.site),
            "SMI_PROXY_IDENTITY": WEB,
            "SMI_PROXY_POLICY": f"{plane.url}/mesh/v1/policy",
            "SMI_PROXY_CSR_URL": f"{plane.url}/mesh/v1/certificates",
            "SMI_PROXY_TOKEN_FILE": str(token),
            "SMI_PROXY_INBOUND": f"0:{app}",
            "SMI_PROXY_OUTBOUND": "0",
            "SMI_PROXY_ADMIN": "0",
            "SMI_PROXY_CA_PEM": plane.ca_file.read_text(encoding="ascii"),
            "SMI_PROXY_LOG_LEVEL": "warning",
        }
        # What pip's `smictl` console script runs.
        smictl = "import sys; from smi.cli import main; sys.argv[0] = 'smictl'; sys.exit(main())"
        ports_file = w / "injected.ports"
        argv = [self.python, "-c", smictl, "proxy", "--ports-file", str(ports_file)]
        proc = self.procs.start("smictl-injected", argv, cwd=self.site, env=env)
        ports = wait_for(lambda: read_json(ports_file), "the injected sidecar to listen", 60)
        wait_for(lambda: _ready(ports["admin"]), "the injected sidecar to be ready", 60)
        self.request_path["smictl-injected"] = _config(ports["admin"])["requestPath"]
        self.pids["smictl-injected"] = [proc.pid]


def installed_copy(work: Path) -> tuple[Path, str]:
    """A copy of `proxy` and `smi` (and this file, for the plain hop) compiled to bytecode, as
    installing the package leaves them, and the interpreter to run them with; the proxy
    processes run from it. Same code: copied at the start of the run.

    Why not run the checkout: it is an editable install run with PYTHONDONTWRITEBYTECODE=1, so
    every start compiles `proxy` and `smi` from source, which leaves about 0.9 MB more
    resident; and its site-packages hold the editable install's finder, which `site` imports
    at every start with pathlib, urllib.parse and ipaddress (0.6–0.9 MB) — nothing a deployed
    sidecar carries. So the interpreter is a fresh venv (a link to this one) whose
    site-packages hold one `.pth` line naming this venv's site-packages, for the dependencies."""
    import shutil
    import sysconfig

    site = work / "site"
    for package in ("proxy", "smi"):
        shutil.copytree(
            REPO / package, site / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    (site / "bench").mkdir()
    shutil.copy2(Path(__file__).resolve(), site / "bench" / "bench_proxy.py")
    compile_all = [sys.executable, "-m", "compileall", "-q", str(site)]
    subprocess.run(compile_all, check=True, stdout=subprocess.DEVNULL)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", where], check=True, capture_output=True, text=True
    ).stdout.strip()
    Path(purelib, "smictl-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return site, str(venv / "bin" / "python")


def _config(admin: int) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/config", timeout=2) as r:
        return dict(json.load(r))


def _ready(admin: int) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=2) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _revision(admin: int) -> int | None:
    try:
        return int(_config(admin)["policy"]["revision"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --- measuring --------------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1)) / 1024  # type: ignore[union-attr]


def open_fds(pid: int) -> int:
    """Open descriptors once closing connections have gone (two equal looks 100 ms apart)."""
    last, deadline = -1, time.monotonic() + 3
    while time.monotonic() < deadline:
        now = len(os.listdir(f"/proc/{pid}/fd"))
        if now == last:
            return now
        last = now
        time.sleep(0.1)
    return last


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _run(argv: list[str], seconds: float) -> str:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout


def wrk(url: str, seconds: int) -> dict[str, float]:
    out = _run(
        ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-H", f"Host: {HOST}", url], seconds
    )
    pct = {
        p: float(v) * _UNIT_MS[u]
        for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    errors = re.findall(r"(?:Non-2xx or 3xx responses|Socket errors:.*?): (\d+)", out)
    return {
        "rps": float(re.findall(r"Requests/sec:\s+([\d.]+)", out)[0]),
        "p50_ms": pct["50"],
        "p99_ms": pct["99"],
        "requests": int(re.findall(r"(\d+) requests in", out)[0]),
        "errors": sum(int(n) for n in errors),
    }


def hey_fixed_rate(url: str, seconds: int) -> dict[str, float]:
    """1,000 requests/s (10 workers x 100/s); percentiles of per-request times (hey's CSV)."""
    out = _run(
        ["hey", "-z", f"{seconds}s", "-c", "10", "-q", "100", "-host", HOST, "-o", "csv", url],
        seconds,
    )
    rows = [ln.split(",") for ln in out.splitlines()[1:] if ln[:1].isdigit()]
    ok = sorted(float(r[0]) * 1000 for r in rows if r[6] == "200")
    if not ok:
        raise SystemExit(f"hey: no request to {url} succeeded ({len(rows)} sent)")
    at = {q: round(ok[min(len(ok) - 1, int(q * len(ok)))], 3) for q in (0.5, 0.99)}
    return {
        "requests": len(rows),
        "ok": len(ok),
        "rate": round(len(rows) / seconds, 1),
        "p50_ms": at[0.5],
        "p99_ms": at[0.99],
    }


def measure_fixed_rate(
    topo: Topologies, names: list[str], *, slices: int
) -> dict[str, dict[str, Any]]:
    """1,000 requests/s evenly spaced and open-loop (bench/constant_rate.py: request i is due
    at start + i/1000 whatever the responses; its latency counts from when it went out, as far
    as 1 ms timers allow from its due time: `send_lag_*`) over 10 keep-alive connections per
    topology held open throughout; the topologies take turns of one second, `slices` each, the
    order rotated every round. p50/p99 are of all a topology's requests together: each saw the
    same mixture of the shared machine's good and bad seconds."""
    import constant_rate  # bench/, beside this script (not at the top: the plain hop imports
    # this module, and its memory is measured)

    urls = {name: topo.urls[name] for name in names}
    # The CPU each topology's proxies spend per request at this rate, when every request meets
    # an idle proxy whose caches the other processes have emptied: what the added latency is
    # made of. Each topology is loaded only in its own turns (its warm-up turn included, one
    # of `slices + 1`), so the difference over the whole run is its own.
    before = {name: cpu_seconds(topo.pids[name]) for name in names}
    results = constant_rate.measure_interleaved(
        urls, rate=1000, slices=slices, slice_seconds=1.0, host=HOST
    )
    spent = {name: cpu_seconds(topo.pids[name]) - before[name] for name in names}
    return {
        name: {
            "cpu_us_per_request": round(spent[name] / max(r["requests"], 1) * 1e6, 1),
            "requests": r["requests"],
            "ok": r["statuses"].get("200", 0),
            "errors": r["errors"],
            "p50_ms": r["p50_ms"],
            "p90_ms": r["p90_ms"],
            "p99_ms": r["p99_ms"],
            "max_ms": r["max_ms"],
            "send_lag_ms": {q: r[f"send_lag_{q}_ms"] for q in ("p1", "p50", "p99", "max")},
            "slice_p50_ms": r["slice_p50_ms"],
            "slice_latencies_us": r["slice_latencies_us"],  # (for `summarize`; not written)
        }
        for name, r in results.items()
    }


def measure_throughput(
    topo: Topologies, names: list[str], *, rounds: int, seconds: int
) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for _ in range(rounds):
        for name in names:  # interleaved, so that background load hits every topology alike
            before = cpu_seconds(topo.pids[name])
            result = wrk(topo.urls[name], seconds)
            cpu = cpu_seconds(topo.pids[name]) - before
            result["cpu_s_per_1000"] = round(cpu / max(1, result["requests"]) * 1000, 4)
            runs[name].append(result)
            print(
                f"  {name:18s} {result['rps']:9.0f} rps  p50 {result['p50_ms']:.2f} ms  "
                f"p99 {result['p99_ms']:.2f} ms"
                + (f"  ({result['errors']:.0f} errors)" if result["errors"] else ""),
                flush=True,
            )
    return runs


def medians(runs: list[dict[str, float]]) -> dict[str, Any]:
    import statistics

    keys = ("rps", "p50_ms", "p99_ms", "cpu_s_per_1000")
    out: dict[str, Any] = {k: round(statistics.median(r[k] for r in runs), 4) for k in keys}
    out["errors"] = sum(int(r["errors"]) for r in runs)
    out["runs"] = [{k: r[k] for k in keys} for r in runs]
    return out


def paired_ratio(runs: dict[str, list[dict[str, float]]], a: str, b: str) -> float:
    """Median over rounds of rps(a)/rps(b) measured back to back in the same round."""
    import statistics

    return round(
        statistics.median(x["rps"] / y["rps"] for x, y in zip(runs[a], runs[b], strict=True)), 3
    )


def soak(topo: Topologies, name: str, total: int) -> dict[str, Any]:
    """Drive `total` requests through a topology in segments, sampling RSS and fds between."""
    pid = topo.pids[name][0]
    samples = [{"requests": 0, "rss_mb": round(rss_mb(pid), 2), "fds": open_fds(pid)}]
    rate, done = max(1000.0, wrk(topo.urls[name], 1)["rps"]), 0
    while done < total:
        done += int(wrk(topo.urls[name], max(1, min(30, round(total / 10 / rate))))["requests"])
        samples.append({"requests": done, "rss_mb": round(rss_mb(pid), 2), "fds": open_fds(pid)})
    warm = samples[min(1, len(samples) - 1)]  # after warm-up (pools, caches, allocator)
    return {
        "topology": name,
        "requests": done,
        "samples": samples,
        "rss_growth_mb_after_warmup": round(samples[-1]["rss_mb"] - warm["rss_mb"], 2),
        "fd_growth_after_warmup": samples[-1]["fds"] - warm["fds"],
    }


def summarize(
    runs: dict[str, list[dict[str, float]]],
    fixed: dict[str, Any],
    bursts: dict[str, Any],
    per_slice: dict[str, list[list[int]]],
) -> dict[str, Any]:
    import constant_rate

    def added(name: str, at: dict[str, Any] = fixed) -> dict[str, float]:
        return {q: round(at[name][q] - at["direct"][q], 3) for q in ("p50_ms", "p99_ms")}

    def difference(a: str, b: str) -> dict[str, Any]:
        # (The direct path's percentile cancels: both are resampled from the same slices.)
        return {
            q: constant_rate.difference_ci(per_slice[a], per_slice[b], p)
            for q, p in (("p50", 0.5), ("p99", 0.99))
        }

    pairs = {
        "smictl_vs_nginx": ("smictl", "nginx"),
        "smictl_vs_direct": ("smictl", "direct"),
        "nginx_vs_direct": ("nginx", "direct"),
        "smictl_pair_vs_nginx_pair": ("smictl-mtls-pair", "nginx-mtls-pair"),
        "smictl_pair_vs_nginx_tls": ("smictl-mtls-pair", "nginx-tls"),
        "smictl_pair_vs_direct": ("smictl-mtls-pair", "direct"),
    }
    return {
        "throughput_ratios": {k: paired_ratio(runs, a, b) for k, (a, b) in pairs.items()},
        "added_latency_at_1000_rps_ms": {
            "nginx_hop": added("nginx"),
            "smictl_hop": added("smictl"),
            "nginx_mtls_pair": added("nginx-mtls-pair"),
            "smictl_mtls_pair": added("smictl-mtls-pair"),
        },
        # What the targets compare, with how far it moves when the run's slices are drawn
        # again: a difference whose interval spans zero is not one this run can tell.
        "added_latency_differences_ms": {
            "smictl_hop_minus_nginx_hop": difference("smictl", "nginx"),
            "smictl_pair_minus_nginx_pair": difference("smictl-mtls-pair", "nginx-mtls-pair"),
        },
        # hey's ten workers tick together: bursts of 10 requests every 10 ms, where a hop's
        # per-request cost is paid up to ten times over by the last of a burst.
        "added_latency_at_1000_rps_in_bursts_of_10_ms": {
            "nginx_hop": added("nginx", bursts),
            "smictl_hop": added("smictl", bursts),
            "nginx_mtls_pair": added("nginx-mtls-pair", bursts),
            "smictl_mtls_pair": added("smictl-mtls-pair", bursts),
        },
    }


def print_differences(differences: dict[str, Any]) -> None:
    print("added latency at 1,000 requests/s, smictl's less nginx's (90% bootstrap interval):")
    for name, by_q in differences.items():
        print(
            f"  {name:30s}"
            + "".join(
                f"  {q} {d['estimate_ms']:+.3f} ms ({d['ci90_ms'][0]:+.3f} .. "
                f"{d['ci90_ms'][1]:+.3f})"
                for q, d in by_q.items()
            ),
            flush=True,
        )


def targets(
    summary: dict[str, Any], tp: dict[str, Any], rss: dict[str, Any], soaked: dict[str, Any]
) -> dict[str, bool]:
    lat, r = summary["added_latency_at_1000_rps_ms"], summary["throughput_ratios"]
    hop, ngx = lat["smictl_hop"], lat["nginx_hop"]
    pair, npair = lat["smictl_mtls_pair"], lat["nginx_mtls_pair"]
    return {
        "throughput_smictl_ge_0.8x_nginx": r["smictl_vs_nginx"] >= 0.8,
        "throughput_pair_ge_0.8x_nginx_pair": r["smictl_pair_vs_nginx_pair"] >= 0.8,
        "hop_added_p50_le_nginx": hop["p50_ms"] <= ngx["p50_ms"],
        "hop_added_p99_le_nginx": hop["p99_ms"] <= ngx["p99_ms"],
        "pair_added_p50_le_nginx_pair": pair["p50_ms"] <= npair["p50_ms"],
        "pair_added_p99_le_nginx_pair": pair["p99_ms"] <= npair["p99_ms"],
        "rss_idle_le_30mb": max(rss["idle_mb"].values()) <= 30.0,
        "no_rss_growth": soaked["rss_growth_mb_after_warmup"] <= 1.0,
        "no_fd_growth": soaked["fd_growth_after_warmup"] <= 0,
        "no_errors": all(v["errors"] == 0 for v in tp.values()),
    }


def latency_verdicts(differences: dict[str, Any]) -> dict[str, str]:
    """Each latency target as one run can judge it: "met" (smictl's estimate is at most
    nginx's), "over within noise" (above it, but its interval reaches zero: another run may
    as well come out under), or "over" (the whole interval above zero)."""

    def verdict(d: dict[str, Any]) -> str:
        if d["estimate_ms"] <= 0:
            return "met"
        return "over within noise" if d["ci90_ms"][0] <= 0 else "over"

    hop, pair = (
        differences["smictl_hop_minus_nginx_hop"],
        differences["smictl_pair_minus_nginx_pair"],
    )
    return {
        f"{name}_added_{q}": verdict(by_q[q])
        for name, by_q in (("hop", hop), ("pair", pair))
        for q in ("p50", "p99")
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import platform
    import shutil
    import tempfile

    for tool in ("nginx", "wrk", "hey"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install -y nginx-light wrk hey")
    names = ["direct", "nginx", "smictl", "nginx-tls", "nginx-mtls-pair", "smictl-mtls-pair"]
    seconds, hey_seconds = (3, 3) if args.quick else (6, 8)
    rounds = args.rounds or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        procs = Procs(Path(tmp))
        try:
            topo = Topologies(procs)
            topo.start()
            pids = {
                "smictl": topo.pids["smictl"][0],
                "smictl-front": topo.pids["smictl-mtls-pair"][0],
                "smictl-web": topo.pids["smictl-mtls-pair"][1],
                "smictl-injected": topo.pids["smictl-injected"][0],
            }
            rss = {"idle_mb": {k: round(rss_mb(p), 2) for k, p in pids.items()}}
            print(f"throughput (wrk -t1 -c32, {seconds}s x {rounds} rounds):", flush=True)
            runs = measure_throughput(topo, names, rounds=rounds, seconds=seconds)
            slices = rounds * hey_seconds
            print(f"latency at a fixed 1,000 requests/s, evenly spaced (constant_rate.py, "
                  f"{slices} one-second turns each) | in bursts of 10 (hey -c 10 -q 100):",
                  flush=True)  # fmt: skip
            fixed = measure_fixed_rate(topo, names, slices=slices)
            per_slice = {name: fixed[name].pop("slice_latencies_us") for name in names}
            bursts = {}
            for name in names:
                f = fixed[name]
                bursts[name] = b = hey_fixed_rate(topo.urls[name], hey_seconds)
                print(
                    f"  {name:18s} p50 {f['p50_ms']:.3f} ms  p99 {f['p99_ms']:.3f} ms  "
                    f"(CPU {f['cpu_us_per_request']:.1f} us/request)  "
                    f"| p50 {b['p50_ms']:.3f} ms  p99 {b['p99_ms']:.3f} ms",
                    flush=True,
                )
            rss["after_load_mb"] = {k: round(rss_mb(p), 2) for k, p in pids.items()}
            print(f"soak: {args.soak:,} requests through the smictl hop", flush=True)
            soaked = soak(topo, "smictl", args.soak)
            request_path = topo.request_path
        finally:
            procs.stop_all()
    tp = {n: medians(r) for n, r in runs.items()}
    summary = summarize(runs, fixed, bursts, per_slice)
    print_differences(summary["added_latency_differences_ms"])
    return {
        "bench": "proxy",
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "method": {
            "wrk": f"-t1 -c32 -d{seconds}s, {rounds} interleaved rounds; medians; "
            "ratios are medians of same-round ratios",
            "fixed_rate": f"bench/constant_rate.py --interleave --rate 1000 --slices "
            f"{rounds * hey_seconds} --slice-seconds 1: topologies in turns of 1 s, order rotated "
            "each round, after a warm-up turn each; p50/p99 of all a topology's requests "
            "(evenly spaced, open-loop, 10 keep-alive connections each, held open); "
            "cpu_us_per_request: the topology's proxy processes' user+system CPU over the "
            "whole run (its warm-up turn included) per request counted",
            "added_latency_differences": "smictl's percentile less nginx's on the same "
            "topology (the direct path cancels), with the 5th and 95th percentiles of 500 "
            "bootstrap resamples of the run's slices, the same slice numbers for both "
            "(constant_rate.difference_ci)",
            "fixed_rate_bursts": f"hey -c 10 -q 100 -z {hey_seconds}s",
            "soak_requests": args.soak,
            "proxy_code": "a copy of proxy/ and smi/ as built by `make install` (the request "
            "path compiled with mypyc, the rest compiled to bytecode), run by a venv without "
            "the checkout's editable-install finder: installed_copy",
            "rss": "VmRSS in MiB, idle after start-up; smictl-injected is `smictl proxy` as "
            "the injector configures it (policy by long poll and certificate by CSR from "
            "`smictl serve`, SMI_PROXY_* variables)",
            "request_path": request_path,
        },
        "throughput": tp,
        "fixed_rate_1000": fixed,
        "fixed_rate_1000_bursts_of_10": bursts,
        **summary,
        "rss": rss,
        "soak": soaked,
        "targets": targets(summary, tp, rss, soaked),
        "latency_verdicts": latency_verdicts(summary["added_latency_differences_ms"]),
    }


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def run_pairs(slices: int) -> dict[str, Any]:
    """The two mTLS pairs alone (and the direct path), at 1,000 requests/s in `slices`
    one-second turns each: the pair's latency targets with more slices than the full run gives
    them, and the same difference for each half of the run. Why the halves: the full run's
    interval resamples its slices as if they were independent, but the machine's state drifts
    over minutes; when the halves' intervals do not overlap, one run's interval is too narrow,
    and only several runs tell the difference."""
    import platform
    import tempfile

    import constant_rate

    names = ["direct", "nginx-mtls-pair", "smictl-mtls-pair"]
    with tempfile.TemporaryDirectory(prefix="bench-pairs-") as tmp:
        procs = Procs(Path(tmp))
        try:
            topo = Topologies(procs)
            topo.start()
            print(f"the pairs at 1,000 requests/s, {slices} one-second turns each", flush=True)
            fixed = measure_fixed_rate(topo, names, slices=slices)
        finally:
            procs.stop_all()
    per_slice = {name: fixed[name].pop("slice_latencies_us") for name in names}
    smictl, nginx = per_slice["smictl-mtls-pair"], per_slice["nginx-mtls-pair"]
    half = slices // 2

    def differences(a: list[list[int]], b: list[list[int]]) -> dict[str, Any]:
        return {
            f"p{round(q * 100)}": constant_rate.difference_ci(a, b, q)
            for q in (0.5, 0.9, 0.95, 0.99)
        }

    added = {
        name: {
            q: round(fixed[name][q] - fixed["direct"][q], 3) for q in ("p50_ms", "p90_ms", "p99_ms")
        }
        for name in names[1:]
    }
    return {
        "bench": "proxy_pairs",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "method": {
            "fixed_rate": f"constant_rate --interleave --rate 1000 --slices {slices} "
            "--slice-seconds 1, as the full run's (measure_fixed_rate)",
            "differences": "smictl's pair's percentile less nginx's pair's, 90 % interval "
            "from 500 bootstrap resamples of the slices (constant_rate.difference_ci), for the "
            "whole run and for each half",
            "request_path": topo.request_path,
        },
        "fixed_rate_1000": {
            name: {k: v for k, v in fixed[name].items() if k != "slice_p50_ms"} for name in names
        },
        "added_latency_at_1000_rps_ms": added,
        "pair_minus_nginx_pair_ms": differences(smictl, nginx),
        "halves_pair_minus_nginx_pair_ms": [
            differences(smictl[:half], nginx[:half]),
            differences(smictl[half:], nginx[half:]),
        ],
    }


def main() -> int:
    if sys.argv[1:2] == ["--serve-plain"]:  # the plain hop: --serve-plain FILE --app-port N
        # (Not through argparse, which imports shutil, bz2, lzma and zlib to size its help:
        # the hop's resident memory is measured against that of `python -m proxy`.)
        import uvloop

        uvloop.run(serve_plain(Path(sys.argv[2]), int(sys.argv[4])))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one short round (smoke run)")
    parser.add_argument("--rounds", type=int, default=0, help="interleaved wrk rounds (default 3)")
    parser.add_argument(
        "--soak",
        type=int,
        default=0,
        help="requests of the leak check (default 1,000,000; 100,000 quick)",
    )
    parser.add_argument(
        "--micro",
        action="store_true",
        help="in-process only: microseconds per request through the plain hop on null "
        "transports (best of 5 x 40,000), and per mTLS round trip through two TLS layers in "
        "memory (best of 3 x 10,000); no servers started, nothing written",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=0,
        metavar="N",
        help="only the two mTLS pairs (and the direct path) at 1,000 requests/s, N one-second "
        "turns each (60: about 4 minutes), their differences for the whole run and each half; "
        f"writes {PAIRS_RESULTS.relative_to(REPO)}",
    )
    args = parser.parse_args()
    if args.pairs:
        if args.pairs < 4:
            parser.error("--pairs: at least 4 turns (two for each half)")
        signal.signal(signal.SIGTERM, _exit_on_signal)
        pairs = run_pairs(args.pairs)
        PAIRS_RESULTS.parent.mkdir(parents=True, exist_ok=True)
        PAIRS_RESULTS.write_text(json.dumps(pairs, indent=2) + "\n")
        print(
            json.dumps(
                {
                    k: pairs[k]
                    for k in (
                        "fixed_rate_1000",
                        "pair_minus_nginx_pair_ms",
                        "halves_pair_minus_nginx_pair_ms",
                    )
                },
                indent=1,
            )
        )
        print(f"wrote {PAIRS_RESULTS}")
        return 0
    if args.micro:
        import uvloop

        print(f"plain hop, in-process: {uvloop.run(micro(40_000, 5)):.2f} us per request")
        tls = uvloop.run(micro_tls(10_000, 3))
        print(f"mTLS round trip in memory (two TLS layers): {tls:.2f} us per request")
        pair = uvloop.run(micro_pair(10_000, 3))
        print(f"mTLS pair, in-process (both proxies): {pair:.2f} us per request")
        return 0
    args.soak = args.soak or (100_000 if args.quick else 1_000_000)
    signal.signal(signal.SIGTERM, _exit_on_signal)  # so that `finally` stops every process
    result = run(args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                "ratios": result["throughput_ratios"],
                "added_latency_ms": result["added_latency_at_1000_rps_ms"],
                "differences_ms": result["added_latency_differences_ms"],
                "rss": result["rss"],
                "targets": result["targets"],
                "latency_verdicts": result["latency_verdicts"],
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
