"""Real proxies on 127.0.0.1, the policy file rewritten under open L4 relays: a revoked grant or
a port that turns HTTP ends the relay already open (through the caller's own outbound TCP
listener, as an app sees it, and over a caller's direct mTLS connection, as a pooling proxy
holds it); an unrelated change, and audit mode, leave it relaying."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace

import pytest
from proxy_harness import wait_for
from proxy_mesh import DB, FRONT, TT_DB, WEB_V1, Mesh, sid, web_rules

from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy

pytestmark = pytest.mark.integration

# The relay must be seen closed within this (the proxy closes it as it installs the policy;
# `Mesh.apply` has already waited for every proxy to use it).
BOUND = 5.0
REVOKED = 'inbound_tcp_authz_deny_total{reason="revoked"}'
CHANGED = 'inbound_tcp_authz_deny_total{reason="protocol-changed"}'


@contextlib.contextmanager
def _relay(mesh: Mesh) -> Iterator[socket.socket]:
    """A connection from web-v1's app through its outbound TCP listener to db's echo app,
    checked to relay."""
    port = mesh.procs["web-v1"].ports["outbound_tcp"]["shop/db"]
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as sock:
        _echoes(sock, b"hello")
        yield sock


def _echoes(sock: socket.socket | ssl.SSLSocket, data: bytes) -> None:
    sock.sendall(data)
    want = b"tcp-echo:" + data
    got = b""
    while len(got) < len(want):
        chunk = sock.recv(100)
        assert chunk, "the relay was closed"
        got += chunk
    assert got == want


def _closed(sock: socket.socket | ssl.SSLSocket) -> bool:
    """True when the peer closed the connection (EOF or reset) within BOUND seconds."""
    sock.settimeout(BOUND)
    try:
        return sock.recv(100) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


def _without_db_grant(policy: MeshPolicy) -> MeshPolicy:
    return replace(
        policy,
        destinations={k: v for k, v in policy.destinations.items() if k != sid(DB)},
    )


def _db_rules(mesh: Mesh, *rules: AuthzRule) -> MeshPolicy:
    base = mesh.base_policy()
    return replace(base, destinations=base.destinations | {sid(DB): rules})


def _count(mesh: Mesh, key: str) -> float:
    return mesh.procs["db"].metrics().get(key, 0.0)


def test_deleting_the_traffic_target_closes_the_open_relay(mesh: Mesh) -> None:
    mesh.apply(mesh.base_policy())
    before = _count(mesh, REVOKED)
    with _relay(mesh) as sock:
        mesh.apply(_without_db_grant(mesh.base_policy()))
        assert _closed(sock)
    assert _count(mesh, REVOKED) == before + 1
    log = mesh.procs["db"].log()
    assert f"closing relay from {sid(WEB_V1)}" in log and "revoked (no-traffic-target" in log
    # A fresh connection never reaches the app (the port, covered by nothing now, is answered
    # as HTTP: a 400 for these bytes, then the close).
    port = mesh.procs["web-v1"].ports["outbound_tcp"]["shop/db"]
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as sock:
        sock.sendall(b"hello\r\n\r\n")
        assert b"tcp-echo" not in _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_grant_narrowed_to_http_closes_a_pooled_mtls_connection(mesh: Mesh) -> None:
    """The auditor's case: a caller's proxy holds an mTLS connection to db's TCP-only port and
    reuses it; the grant becomes one HTTP route. The held connection is closed, and the next
    one gets HTTP handling (a 403 for what the route does not allow)."""
    tcp = AuthzRule(origin=TT_DB, sources=(sid(FRONT),), tcp_ports=(mesh.tcp.port,))
    mesh.apply(_db_rules(mesh, tcp))
    port = mesh.procs["db"].inbound(mesh.tcp.port)
    ctx = mesh.pki.client(FRONT)
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=BOUND)) as sock:
        _echoes(sock, b"POST /admin HTTP/1.1\r\n\r\n")
        items = HttpMatch(
            origin="shop/HTTPRouteGroup/db#items", methods=("GET",), path_regex="/items$"
        )
        mesh.apply(_db_rules(mesh, AuthzRule(origin=TT_DB, sources=(sid(FRONT),), http=(items,))))
        assert _closed(sock)
    raw = b"POST /admin HTTP/1.1\r\nhost: db\r\ncontent-length: 0\r\n\r\n"
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=BOUND)) as sock:
        sock.sendall(raw)
        assert sock.recv(200).startswith(b"HTTP/1.1 403")


def test_http_rules_covering_the_port_close_a_relay_whose_grant_stays(mesh: Mesh) -> None:
    tcp = AuthzRule(origin=TT_DB, sources=(sid(WEB_V1),), tcp_ports=(mesh.tcp.port,))
    http = AuthzRule(
        origin="shop/TrafficTarget/front-to-db", sources=(sid(FRONT),), http=web_rules()[0].http
    )
    mesh.apply(_db_rules(mesh, tcp))
    before = _count(mesh, CHANGED)
    with _relay(mesh) as sock:
        mesh.apply(_db_rules(mesh, tcp, http))
        assert _closed(sock)
    assert _count(mesh, CHANGED) == before + 1


def test_an_unrelated_change_keeps_the_relay(mesh: Mesh) -> None:
    mesh.apply(mesh.base_policy())
    before = _count(mesh, REVOKED), _count(mesh, CHANGED)
    with _relay(mesh) as sock:
        extra = HttpMatch(origin="shop/HTTPRouteGroup/web#extra", path_regex="/extra$")
        base = mesh.base_policy()
        mesh.apply(
            replace(
                base,
                destinations=base.destinations
                | {sid(WEB_V1): web_rules((extra,)), sid(FRONT): web_rules()},
            )
        )
        _echoes(sock, b"still relaying")
    assert (_count(mesh, REVOKED), _count(mesh, CHANGED)) == before


def test_audit_mode_counts_and_keeps_the_relay(mesh: Mesh) -> None:
    mesh.apply(replace(mesh.base_policy(), mode="audit"))
    key = f'inbound_tcp_authz_would_deny_total{{rule="{TT_DB}",reason="revoked"}}'
    before = _count(mesh, key), _count(mesh, REVOKED)
    with _relay(mesh) as sock:
        mesh.apply(replace(_without_db_grant(mesh.base_policy()), mode="audit"))
        _echoes(sock, b"audited")
        wait_for(lambda: _count(mesh, key) == before[0] + 1, what="the would-deny counted")
    assert _count(mesh, REVOKED) == before[1]
    mesh.apply(mesh.base_policy())
