"""Real proxies on 127.0.0.1: authorization, identities, splits, policy updates, TCP, upgrades."""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest
from proxy_harness import https, raw_exchange, request, wait_for
from proxy_mesh import FRONT, TT_DB, TT_WEB, WEB_V1, Mesh, sid, web_rules

from smi.compiler.ir import HttpMatch
from smi.pki import CertificateAuthority

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("caller", "method", "path", "status", "reason"),
    [
        (FRONT, "GET", "/api/items?page=2", 200, None),
        (FRONT, "HEAD", "/api/items", 200, None),
        (FRONT, "POST", "/api/submit", 200, None),
        (FRONT, "POST", "/api/submit/more", 403, "no-route-match"),
        (FRONT, "DELETE", "/api/items", 403, "no-route-match"),
        (FRONT, "GET", "/admin", 403, "no-route-match"),
        ("shop/other", "GET", "/api/items", 403, "source-not-allowed"),
        ("prod/front", "GET", "/api/items", 403, "source-not-allowed"),
    ],
)
def test_allow_deny_matrix(
    mesh: Mesh, *, caller: str, method: str, path: str, status: int, reason: str | None
) -> None:
    app = mesh.apps["web-v1"]
    before = app.hits
    with https(mesh.inbound("web-v1"), mesh.pki.client(caller)) as conn:
        got, headers, body = request(conn, method, path, body=b"x" if method == "POST" else None)
    assert got == status
    if reason is None:
        assert headers["x-app"] == "web-v1" and app.hits == before + 1
        if method != "HEAD":
            assert json.loads(body)["identity"] == sid(caller)
    else:
        assert body == f"forbidden: {reason}\n".encode() and headers["x-smi-reason"] == reason
        assert app.hits == before  # the app never saw it


def test_denies_keep_the_connection_and_are_counted(mesh: Mesh) -> None:
    proc = mesh.procs["web-v1"]
    before = proc.metrics()
    with https(mesh.inbound("web-v1"), mesh.pki.client(FRONT)) as conn:
        for _ in range(3):
            assert request(conn, "GET", "/admin")[0] == 403
        assert request(conn, "GET", "/api/ok")[0] == 200  # same connection, still open
    after = proc.metrics()
    key = 'inbound_http_authz_deny_total{reason="no-route-match"}'
    assert after[key] - before.get(key, 0) == 3
    allow = f'inbound_http_authz_allow_total{{rule="{TT_WEB}"}}'
    assert after[allow] - before.get(allow, 0) == 1


def _handshake_refused(port: int, ctx: ssl.SSLContext) -> bool:
    """True when the proxy refuses the TLS session (never answering HTTP)."""
    try:
        with https(port, ctx) as conn:
            request(conn, "GET", "/api/items")
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected):
        return True
    return False


def test_identity_spoofing_is_refused(mesh: Mesh) -> None:
    app, port = mesh.apps["web-v1"], mesh.inbound("web-v1")
    before = app.hits
    assert _handshake_refused(port, mesh.pki.client(None))  # no client certificate
    other_ca = CertificateAuthority.create()
    assert _handshake_refused(port, mesh.pki.client(FRONT, ca=other_ca))  # a stranger's CA
    assert _handshake_refused(port, mesh.pki.client(FRONT, ttl=timedelta(seconds=-1)))  # expired
    assert app.hits == before
    # A caller cannot claim another identity with the header either.
    forged = {"x-smi-source-identity": sid(WEB_V1)}
    with https(port, mesh.pki.client("shop/other")) as conn:
        assert request(conn, "GET", "/api/items", headers=forged)[0] == 403
    with https(port, mesh.pki.client(FRONT)) as conn:
        status, _, body = request(conn, "GET", "/api/items", headers=forged)
    seen = json.loads(body)
    assert status == 200 and seen["identity"] == sid(FRONT) and seen["identity_count"] == 1


def test_refused_handshakes_are_counted_and_logged(mesh: Mesh) -> None:
    """Callers with no certificate or an untrusted one, and clients that do not speak TLS,
    show in /metrics by reason and in the log by address; a burst of them is one line per
    reason at most (every 10 s)."""
    proc, port = mesh.procs["web-v1"], mesh.inbound("web-v1")
    before = proc.metrics()
    no_cert_lines = proc.log().count("failed: no-certificate")
    for _ in range(5):
        assert _handshake_refused(port, mesh.pki.client(None))
    assert _handshake_refused(port, mesh.pki.client(FRONT, ca=CertificateAuthority.create()))
    assert b"HTTP/" not in raw_exchange(port, b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
    want = {"no-certificate": 5, "untrusted-certificate": 1, "not-tls": 1}

    def counted() -> bool:
        after = proc.metrics()
        return all(
            after.get(key, 0) - before.get(key, 0) == n
            for key, n in (
                (f'tls_handshake_errors_total{{direction="inbound",reason="{r}"}}', n)
                for r, n in want.items()
            )
        )

    wait_for(counted, what="the refused handshakes to be counted")
    log = proc.log()
    for reason in want:
        assert re.search(rf"inbound TLS handshake from 127\.0\.0\.1:\d+ failed: {reason}", log)
    assert log.count("failed: no-certificate") - no_cert_lines <= 1


def test_outbound_split_distribution(mesh: Mesh) -> None:
    front = mesh.procs["front"]
    opened = "proxy_upstream_connections_opened_total"
    before = front.metrics()[opened]
    conn = http.client.HTTPConnection("127.0.0.1", front.ports["outbound"], timeout=5)
    seen: Counter[str] = Counter()
    for _ in range(500):
        status, headers, body = request(conn, "GET", "/api/x", headers={"Host": "web.shop"})
        assert status == 200, body
        seen[headers["x-app"]] += 1
    conn.close()
    assert seen["web-v1"] + seen["web-v2"] == 500
    assert 0.74 <= seen["web-v1"] / 500 <= 0.86  # weights 800:200, about 3 sd of slack
    # One request at a time: each backend's connection is kept and reused.
    metrics = front.metrics()
    assert metrics[opened] - before <= 2
    assert metrics["proxy_upstream_waiting_requests"] == 0
    assert metrics["proxy_upstream_idle_connections"] >= 1


def test_outbound_carries_the_workload_identity_and_proxy_form(mesh: Mesh) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", mesh.procs["front"].ports["outbound"], timeout=5)
    try:
        status, headers, body = request(conn, "GET", "http://web-v2.shop.svc.cluster.local/api/z")
        assert status == 200 and headers["x-app"] == "web-v2"
        assert json.loads(body)["identity"] == sid(FRONT)
        status, headers, body = request(conn, "GET", "/", headers={"Host": "nowhere.shop"})
        assert status == 404 and body == b"not found: unknown-service\n"
    finally:
        conn.close()


def test_policy_change_applies_without_restart(mesh: Mesh) -> None:
    pid = mesh.procs["web-v1"].proc.pid
    admin = HttpMatch(origin="shop/HTTPRouteGroup/web#admin", methods=("GET",), path_regex="/admin")
    base = mesh.base_policy()
    ctx = mesh.pki.client(FRONT)
    with https(mesh.inbound("web-v1"), ctx) as conn:
        assert request(conn, "GET", "/admin")[0] == 403
        changed = dict(base.destinations) | {sid(WEB_V1): web_rules((admin,))}
        mesh.apply(replace(base, destinations=changed))
        assert request(conn, "GET", "/admin")[0] == 200  # same connection, new policy
        mesh.apply(base)
        assert request(conn, "GET", "/admin")[0] == 403
    assert mesh.procs["web-v1"].proc.pid == pid


def test_broken_policy_file_keeps_the_last_good_policy(mesh: Mesh) -> None:
    proc = mesh.procs["web-v1"]
    before = proc.metrics().get('policy_updates_total{result="rejected"}', 0)
    mesh.policy_file.write_text("{ not json")
    wait_for(
        lambda: proc.metrics().get('policy_updates_total{result="rejected"}', 0) > before,
        what="the broken policy to be refused",
    )
    with https(mesh.inbound("web-v1"), mesh.pki.client(FRONT)) as conn:
        assert request(conn, "GET", "/api/still")[0] == 200
    assert proc.admin_get("/ready")[0] == 200
    mesh.apply(mesh.base_policy())


def test_tcp_route_port_is_proxied_at_l4_with_identity_checked(mesh: Mesh) -> None:
    v1_tcp = mesh.procs["web-v1"].ports["outbound_tcp"]["shop/db"]
    with socket.create_connection(("127.0.0.1", v1_tcp), timeout=5) as sock:
        sock.sendall(b"ping")
        assert sock.recv(100) == b"tcp-echo:ping"
        sock.sendall(b"again")
        assert sock.recv(100) == b"tcp-echo:again"
    # front is not a source of the TCPRoute TrafficTarget: its connection is closed.
    front_tcp = mesh.procs["front"].ports["outbound_tcp"]["shop/db"]
    with socket.create_connection(("127.0.0.1", front_tcp), timeout=5) as sock:
        sock.sendall(b"ping")
        assert sock.recv(100) == b""
    metrics = mesh.procs["db"].metrics()
    assert metrics[f'inbound_tcp_authz_allow_total{{rule="{TT_DB}"}}'] >= 1
    assert metrics['inbound_tcp_authz_deny_total{reason="source-not-allowed"}'] >= 1
    # Directly, with the right identity, bytes flow; raw HTTP is not parsed on this port.
    db_port = mesh.procs["db"].inbound(mesh.tcp.port)
    with mesh.pki.client(WEB_V1).wrap_socket(socket.create_connection(("127.0.0.1", db_port))) as s:
        s.sendall(b"GARBAGE\r\n\r\n")
        assert s.recv(100) == b"tcp-echo:GARBAGE\r\n\r\n"


def test_upgrade_is_passed_through_after_authorization(mesh: Mesh) -> None:
    port = mesh.inbound("web-v1")
    head = b"GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
    ctx = mesh.pki.client(FRONT)
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)) as sock:
        sock.sendall(head)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(1000)
        assert reply.startswith(b"HTTP/1.1 101 ")
        sock.sendall(b"hello")
        assert sock.recv(100) == b"echo:hello"
    denied = raw_exchange(port, head.replace(b"/ws", b"/admin"), ctx=ctx)
    assert denied.startswith(b"HTTP/1.1 403 Forbidden\r\n")


def test_bodies_stream_chunked_and_with_100_continue(mesh: Mesh) -> None:
    ctx = mesh.pki.client(FRONT)
    port = mesh.inbound("web-v1")
    chunked = (
        b"POST /api/submit HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    reply = raw_exchange(port, chunked, ctx=ctx)
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert body["body_len"] == 11
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)) as sock:
        sock.sendall(
            b"PUT /api/submit HTTP/1.1\r\nHost: web\r\nContent-Length: 4\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        reply = b""
        while b'"body_sha"' not in reply:
            reply += sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    with https(port, ctx) as conn:
        big = b"z" * 3_000_000
        status, _, got = request(conn, "PUT", "/api/submit", body=big)
        assert status == 200 and json.loads(got)["body_len"] == len(big)
        status, _, got = request(conn, "GET", "/big?n=5000000")
        assert status == 200 and len(got) == 5_000_000


def test_admin_reports_revision_hash_and_readiness(mesh: Mesh) -> None:
    cfg = mesh.procs["front"].config()
    assert cfg["policy"]["revision"] == mesh.policy.revision
    assert cfg["policy"]["hash"] == mesh.policy.hash
    assert cfg["identity"] == sid(FRONT) and cfg["ready"] is True
    assert cfg["certificate"]["notAfter"]
    metrics = mesh.procs["front"].metrics()
    assert metrics["identity_cert_expiration_timestamp_seconds"] > 1.7e9
    assert metrics["policy_revision"] == mesh.policy.revision
