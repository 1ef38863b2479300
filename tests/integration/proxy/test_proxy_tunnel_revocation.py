"""Real proxies on 127.0.0.1, upgraded connections (an echoing `Upgrade: echo`, as a WebSocket
would be) held open while the policy file is rewritten: a grant deleted or narrowed ends the
tunnel (over a caller's direct mTLS connection, and through the caller's own outbound listener,
as an app sees it); an unrelated change leaves it relaying. And a tunnel silent both ways for
`--tunnel-idle-timeout` is closed."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace

import pytest
from proxy_harness import wait_for
from proxy_mesh import FRONT, TT_WEB, WEB_V1, WEB_V2, Mesh, sid, web_rules

from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy

pytestmark = pytest.mark.integration

BOUND = 5.0
UPGRADE = b"GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
REVOKED = 'inbound_http_authz_deny_total{reason="revoked"}'


def _switched(sock: socket.socket | ssl.SSLSocket) -> None:
    sock.sendall(UPGRADE)
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(1000)
        assert chunk, "closed before the 101"
        reply += chunk
    assert reply.startswith(b"HTTP/1.1 101 "), reply
    _echoes(sock, b"hello")


def _echoes(sock: socket.socket | ssl.SSLSocket, data: bytes) -> None:
    sock.sendall(data)
    want = b"echo:" + data
    got = b""
    while len(got) < len(want):
        chunk = sock.recv(100)
        assert chunk, "the tunnel was closed"
        got += chunk
    assert got == want


def _closed(sock: socket.socket | ssl.SSLSocket, within: float = BOUND) -> bool:
    """True when the peer closed the connection (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(100) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


@contextlib.contextmanager
def _direct(mesh: Mesh, name: str = "web-v1") -> Iterator[ssl.SSLSocket]:
    """A tunnel from front's identity straight to `name`'s inbound listener (mTLS)."""
    port = mesh.procs[name].inbound(mesh.apps["web-v1"].port)
    ctx = mesh.pki.client(FRONT)
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=BOUND)) as sock:
        _switched(sock)
        yield sock


def _without_web_grants(policy: MeshPolicy) -> MeshPolicy:
    gone = {sid(WEB_V1), sid(WEB_V2)}
    return replace(
        policy, destinations={k: v for k, v in policy.destinations.items() if k not in gone}
    )


def _web_rules(policy: MeshPolicy, rules: tuple[AuthzRule, ...]) -> MeshPolicy:
    return replace(
        policy, destinations=policy.destinations | {sid(WEB_V1): rules, sid(WEB_V2): rules}
    )


def _revoked(mesh: Mesh) -> float:
    return sum(mesh.procs[n].metrics().get(REVOKED, 0.0) for n in ("web-v1", "web-v2"))


def test_deleting_the_traffic_target_closes_an_open_websocket(mesh: Mesh) -> None:
    mesh.apply(mesh.base_policy())
    before = _revoked(mesh)
    with _direct(mesh) as sock:
        mesh.apply(_without_web_grants(mesh.base_policy()))
        assert _closed(sock)
    assert _revoked(mesh) == before + 1
    log = mesh.procs["web-v1"].log()
    assert "tunnel: closing tunnel from " + sid(FRONT) in log and TT_WEB in log
    mesh.apply(mesh.base_policy())


def test_a_route_narrowed_past_the_upgrade_closes_the_tunnel_the_app_holds(mesh: Mesh) -> None:
    """Through front's outbound listener, as front's app holds a WebSocket: the inbound proxy
    closes its end, and the outbound one closes the app's connection with it (it needs no
    check of its own)."""
    mesh.apply(mesh.base_policy())
    port = mesh.procs["front"].ports["outbound"]
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as sock:
        _switched(sock)
        api = HttpMatch(origin="shop/HTTPRouteGroup/web#api", methods=("GET",), path_regex="/api/")
        narrowed = (AuthzRule(origin=TT_WEB, sources=(sid(FRONT),), http=(api,)),)
        mesh.apply(_web_rules(mesh.base_policy(), narrowed))
        assert _closed(sock)
    mesh.apply(mesh.base_policy())


def test_an_unrelated_change_keeps_the_tunnel(mesh: Mesh) -> None:
    mesh.apply(mesh.base_policy())
    before = _revoked(mesh)
    with _direct(mesh) as sock:
        extra = HttpMatch(origin="shop/HTTPRouteGroup/web#extra", path_regex="/extra$")
        mesh.apply(_web_rules(mesh.base_policy(), web_rules((extra,))))
        _echoes(sock, b"still relaying")
    assert _revoked(mesh) == before


def test_a_tunnel_silent_both_ways_is_closed_after_the_tunnel_idle_timeout(mesh: Mesh) -> None:
    app = mesh.apps["web-v1"].port
    proc = mesh.start("web-idle", WEB_V1, ["--inbound", f"0:{app}", "--tunnel-idle-timeout", "1"])
    proc.wait_ready()
    with _direct(mesh, "web-idle") as sock:
        assert not _closed(sock, within=0.5)
        _echoes(sock, b"in use")
        assert _closed(sock, within=BOUND)
    wait_for(
        lambda: proc.metrics().get('proxy_errors_total{direction="inbound",kind="tunnel-idle"}'),
        what="the idle tunnel counted",
    )
