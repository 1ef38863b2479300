"""Real proxies (uvloop, mTLS) in permissive and audit mode, on inbound ports that nothing in
the policy mentions: the caller's first bytes decide between the HTTP path and the L4 relay
(proxy.detect). The auditor's case: a Postgres SSLRequest from an mTLS caller got
`HTTP/1.1 400 malformed-request` and never reached the app, and audit mode recorded nothing.
A caller that sends nothing first gets the HTTP path, never the relay."""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import replace

import pytest
from proxy_harness import wait_for
from proxy_mesh import DB, FRONT, WEB_V1, Mesh, sid

from proxy.detect import DETECT_TIMEOUT
from smi.compiler.ir import MeshPolicy
from smi.compiler.ir.model import Mode

pytestmark = pytest.mark.integration

SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
WOULD_DENY = 'inbound_tcp_authz_would_deny_total{rule="",reason="no-traffic-target"}'
BOUND = 5.0


def _uncovered(mesh: Mesh, mode: Mode, *names: str) -> MeshPolicy:
    """The mesh's policy in `mode`, with no rule at all for the workloads `names`."""
    base = mesh.base_policy()
    drop = {sid(name) for name in names}
    kept = {k: v for k, v in base.destinations.items() if k not in drop}
    return replace(base, mode=mode, destinations=kept)


def _caller(port: int, mesh: Mesh) -> ssl.SSLSocket:
    """An mTLS connection to an inbound listener, as front's proxy would open it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=BOUND)
    return mesh.pki.client(FRONT).wrap_socket(sock)


def _read(sock: ssl.SSLSocket, want: int) -> bytes:
    got = b""
    while len(got) < want:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def _count(mesh: Mesh, key: str) -> float:
    return mesh.procs["db"].metrics().get(key, 0.0)


@pytest.mark.parametrize("mode", ["permissive", "audit"])
def test_a_postgres_client_reaches_the_app_on_a_port_nothing_covers(mesh: Mesh, mode: Mode) -> None:
    mesh.apply(_uncovered(mesh, mode, DB))
    before = _count(mesh, WOULD_DENY)
    with _caller(mesh.procs["db"].inbound(mesh.tcp.port), mesh) as sock:
        sock.sendall(SSL_REQUEST)
        assert _read(sock, 9 + len(SSL_REQUEST)) == b"tcp-echo:" + SSL_REQUEST
    # Audit mode records the would-deny, as for any relay (permissive mode: nothing to record).
    assert _count(mesh, WOULD_DENY) == before + (mode == "audit")


@pytest.mark.parametrize("mode", ["permissive", "audit"])
def test_a_caller_silent_past_the_timeout_gets_the_identity_the_proxy_states(
    mesh: Mesh, mode: Mode
) -> None:
    """It was relayed after DETECT_TIMEOUT, and a plain request it sent then reached the app
    (Python's http.server) with the identity it named itself."""
    mesh.apply(_uncovered(mesh, mode, WEB_V1))
    opened = 'tcp_open_total{direction="inbound"}'
    proc = mesh.procs["web-v1"]
    before = proc.metrics().get(opened, 0.0)
    with _caller(mesh.inbound("web-v1"), mesh) as sock:
        wait_for(
            lambda: proc.metrics().get(opened, 0.0) == before + 1,
            what="detection to end",
            timeout=DETECT_TIMEOUT + BOUND,
        )
        sock.sendall(
            b"GET /api/x HTTP/1.1\r\nhost: web\r\nconnection: close\r\n"
            b"x-smi-source-identity: " + sid("shop/admin").encode() + b"\r\n\r\n"
        )
        answer = _read(sock, 1 << 20)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    doc = json.loads(body)
    assert (doc["identity"], doc["identity_count"]) == (sid(FRONT), 1)


@pytest.mark.parametrize("mode", ["permissive", "audit"])
def test_a_silent_caller_is_closed_by_the_header_timeout(mesh: Mesh, mode: Mode) -> None:
    """Relayed, it held a connection to the app open with no bound at all. (The mesh's
    header timeout is 1 s.)"""
    mesh.apply(_uncovered(mesh, mode, DB))
    before = _count(mesh, WOULD_DENY)
    with _caller(mesh.procs["db"].inbound(mesh.tcp.port), mesh) as sock:
        assert sock.recv(65536) == b""  # (within BOUND: a relay kept it open past that)
    assert _count(mesh, WOULD_DENY) == before  # (no relay was authorized, so none opened)


def test_http_on_such_a_port_gets_the_identity_the_proxy_states(mesh: Mesh) -> None:
    mesh.apply(_uncovered(mesh, "permissive", WEB_V1))
    forged = sid("shop/admin")
    raw = (
        b"\r\nGET /api/x HTTP/1.1\r\nhost: web\r\nconnection: close\r\n"
        b"x-smi-source-identity: " + forged.encode() + b"\r\n\r\n"
    )
    with _caller(mesh.inbound("web-v1"), mesh) as sock:
        sock.sendall(raw)
        answer = _read(sock, 1 << 20)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    doc = json.loads(body)
    assert (doc["identity"], doc["identity_count"]) == (sid(FRONT), 1)


def test_deny_mode_refuses_such_a_port_as_tcp_and_counts_it(mesh: Mesh) -> None:
    """Not the HTTP parser's 400, which decided and counted nothing."""
    mesh.apply(_uncovered(mesh, "deny", DB))
    denied = 'inbound_tcp_authz_deny_total{reason="no-traffic-target"}'
    before = _count(mesh, denied)
    with _caller(mesh.procs["db"].inbound(mesh.tcp.port), mesh) as sock:
        sock.sendall(SSL_REQUEST)
        answer = _read(sock, 1 << 20)
    assert answer == b""
    assert _count(mesh, denied) == before + 1
