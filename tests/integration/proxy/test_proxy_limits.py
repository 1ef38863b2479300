"""Real proxies under abuse and in their lifecycle: slow and oversized clients, broken upstreams,
draining on SIGTERM, certificate reload on SIGHUP, audit mode, readiness."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from proxy_harness import EchoApp, Pki, ProxyProc, https, request, wait_for, write_policy
from proxy_mesh import FAST, FRONT, sid

from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy

pytestmark = pytest.mark.integration
WEB = "shop/web"


def _policy(mode: str = "deny", revision: int = 1) -> MeshPolicy:
    everything = HttpMatch(origin="shop/HTTPRouteGroup/all#all", path_regex="/(api|slow|crash|big)")
    rule = AuthzRule(origin="shop/TrafficTarget/all", sources=(sid(FRONT),), http=(everything,))
    return MeshPolicy(revision=revision, mode=mode, destinations={sid(WEB): (rule,)})  # type: ignore[arg-type]


@dataclass
class Single:
    root: Path
    pki: Pki
    app: EchoApp
    policy_file: Path
    dead_port: int

    def start(self, name: str, *extra: str) -> ProxyProc:
        cert, key = self.pki.issue(WEB)
        args = [
            "--identity",
            WEB,
            "--policy",
            str(self.policy_file),
            "--ca",
            str(self.pki.ca_file),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--admin",
            "0",
            "--inbound",
            f"0:{self.app.port}",
            "--inbound",
            f"0:{self.dead_port}",
            *FAST,
            *extra,
        ]
        return ProxyProc(self.root, name, args)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Single]:
    root = tmp_path_factory.mktemp("single")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    app = EchoApp("web")
    policy_file = root / "policy.json"
    write_policy(policy_file, _policy())
    yield Single(root, Pki(root), app, policy_file, dead)
    app.stop()


@pytest.fixture(scope="module")
def proxy(single: Single) -> Iterator[ProxyProc]:
    proc = single.start("web")
    proc.wait_ready()
    yield proc
    proc.stop()


def _rss(proc: ProxyProc) -> float:
    return proc.metrics()["process_resident_memory_bytes"]


def _tls(ctx: ssl.SSLContext, port: int) -> ssl.SSLSocket:
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5))


def test_slowloris_clients_get_408_and_memory_stays_flat(single: Single, proxy: ProxyProc) -> None:
    ctx, port = single.pki.client(FRONT), proxy.inbound(single.app.port)
    rss_before = _rss(proxy)
    socks: list[ssl.SSLSocket] = []
    try:
        for _ in range(150):  # each sends a partial head at once (silence would be idleness)
            socks.append(_tls(ctx, port))
            socks[-1].sendall(b"GET /api/x HTTP/1.1\r\nHost: web\r\nX-Slow: a")
        deadline = time.monotonic() + 3.0
        for s in socks[:20]:  # keep trickling on some of them
            s.sendall(b"b")
        with https(port, ctx) as conn:  # the proxy still serves others meanwhile
            assert request(conn, "GET", "/api/ok")[0] == 200
        replies = []
        for s in socks:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            replies.append(s.recv(200))
        bad = [r for r in replies if not r.startswith(b"HTTP/1.1 408 Request Timeout\r\n")]
        assert not bad, (len(bad), bad[:3])
        assert all(s.recv(10) == b"" for s in socks[:5])  # and closed
    finally:
        for s in socks:
            s.close()
    assert _rss(proxy) - rss_before < 16 * 1024 * 1024
    assert proxy.metrics()['proxy_errors_total{direction="inbound",kind="client-timeout"}'] >= 150
    wait_for(
        lambda: proxy.metrics()['tcp_open_connections{direction="inbound"}'] == 0,
        what="slow connections to be closed",
    )


def test_oversized_and_too_many_headers_are_cut_off(single: Single, proxy: ProxyProc) -> None:
    ctx, port = single.pki.client(FRONT), proxy.inbound(single.app.port)
    rss_before = _rss(proxy)
    for _ in range(3):
        with _tls(ctx, port) as s:
            s.sendall(b"GET /api/x HTTP/1.1\r\nHost: web\r\nX-Big: " + b"a" * 65536)
            assert s.recv(200).startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
            # A client that keeps sending is cut off soon after.
            started = time.monotonic()
            with pytest.raises(OSError):
                while time.monotonic() - started < 8:
                    s.sendall(b"a" * 65536)
                    time.sleep(0.01)
            assert time.monotonic() - started < 5
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    with _tls(ctx, port) as s:
        s.sendall(b"GET /api/x HTTP/1.1\r\nHost: web\r\n" + many + b"\r\n")
        assert s.recv(200).startswith(b"HTTP/1.1 431 ")
    assert _rss(proxy) - rss_before < 16 * 1024 * 1024


def test_broken_upstreams_give_502_503_504_not_a_hang(single: Single, proxy: ProxyProc) -> None:
    ctx = single.pki.client(FRONT)
    with https(proxy.inbound(single.app.port), ctx) as conn:
        status, headers, _ = request(conn, "GET", "/crash")
        assert (status, headers["x-smi-reason"]) == (502, "upstream-reset")
    with https(proxy.inbound(single.dead_port), ctx) as conn:
        status, headers, _ = request(conn, "GET", "/api/x")
        assert (status, headers["x-smi-reason"]) == (503, "connect")
    started = time.monotonic()
    with https(proxy.inbound(single.app.port), ctx, timeout=10) as conn:
        status, headers, _ = request(conn, "GET", "/slow?ms=3000")
    assert (status, headers["x-smi-reason"]) == (504, "upstream-timeout")
    assert time.monotonic() - started < 2.5  # response timeout 1 s, ticker 0.25 s
    errors = proxy.metrics()
    assert errors['proxy_errors_total{direction="inbound",kind="reset"}'] >= 1
    assert errors['proxy_errors_total{direction="inbound",kind="connect"}'] >= 1
    assert errors['proxy_errors_total{direction="inbound",kind="timeout"}'] >= 1


def test_sigterm_drains_in_flight_requests(single: Single) -> None:
    proc = single.start("drain")
    proc.wait_ready()
    port = proc.inbound(single.app.port)
    ctx = single.pki.client(FRONT)
    result: dict[str, object] = {}

    def slow_request() -> None:
        with https(port, ctx, timeout=10) as conn:
            result["status"] = request(conn, "GET", "/slow?ms=800")[0]

    hits = single.app.hits
    worker = threading.Thread(target=slow_request)
    worker.start()
    wait_for(lambda: single.app.hits > hits, what="the app to receive the slow request")
    proc.signal(signal.SIGTERM)
    wait_for(lambda: proc.admin_get("/ready")[0] != 200, what="readiness to drop", timeout=5)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    worker.join(10)
    assert result["status"] == 200  # finished, not cut off
    assert proc.proc.wait(10) == 0
    assert "drained" in proc.log()


def test_sighup_rotates_the_certificate_without_dropping_connections(single: Single) -> None:
    cert_file, key_file = single.pki.issue(WEB)
    args = [
        "--identity",
        WEB,
        "--policy",
        str(single.policy_file),
        "--ca",
        str(single.pki.ca_file),
        "--cert",
        str(cert_file),
        "--key",
        str(key_file),
        "--admin",
        "0",
        "--inbound",
        f"0:{single.app.port}",
        "--watch-interval",
        "3600",
    ]
    proc = ProxyProc(single.root, "rotate", args)
    try:
        proc.wait_ready()
        port, ctx = proc.inbound(single.app.port), single.pki.client(FRONT)
        with https(port, ctx) as conn:
            assert request(conn, "GET", "/api/1")[0] == 200
            first = conn.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
            new_cert, new_key = single.pki.issue(WEB)
            cert_file.write_bytes(new_cert.read_bytes())
            key_file.write_bytes(new_key.read_bytes())
            proc.signal(signal.SIGHUP)
            key = 'identity_cert_refresh_total{result="installed"}'
            wait_for(lambda: proc.metrics().get(key) == 2, what="the new certificate")
            assert request(conn, "GET", "/api/2")[0] == 200  # the old connection lives on
        with https(port, ctx) as conn:
            assert request(conn, "GET", "/api/3")[0] == 200
            second = conn.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
        assert first != second
    finally:
        proc.stop()


def test_audit_mode_passes_and_counts_would_denies(single: Single, tmp_path: Path) -> None:
    policy_file = tmp_path / "audit.json"
    write_policy(policy_file, _policy(mode="audit"))
    cert, key = single.pki.issue(WEB)
    proc = ProxyProc(
        tmp_path,
        "audit",
        [
            "--identity",
            WEB,
            "--policy",
            str(policy_file),
            "--ca",
            str(single.pki.ca_file),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--admin",
            "0",
            "--inbound",
            f"0:{single.app.port}",
        ],
    )
    try:
        proc.wait_ready()
        with https(proc.inbound(single.app.port), single.pki.client("shop/other")) as conn:
            status, _, body = request(conn, "GET", "/admin")
        assert status == 200 and json.loads(body)["identity"] == sid("shop/other")
        key = (
            'inbound_http_authz_would_deny_total{rule="shop/TrafficTarget/all",'
            'reason="source-not-allowed"}'
        )
        assert proc.metrics()[key] == 1
        assert "would deny GET /admin" in proc.log()
    finally:
        proc.stop()


def test_not_ready_until_a_policy_is_loaded(single: Single, tmp_path: Path) -> None:
    policy_file = tmp_path / "late.json"
    cert, key = single.pki.issue(WEB)
    proc = ProxyProc(
        tmp_path,
        "late",
        [
            "--identity",
            WEB,
            "--policy",
            str(policy_file),
            "--ca",
            str(single.pki.ca_file),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--admin",
            "0",
            "--inbound",
            f"0:{single.app.port}",
            "--watch-interval",
            "0.1",
        ],
    )
    try:
        status, body = proc.admin_get("/ready")
        assert (status, body) == (503, "not ready: policy\n")
        with https(proc.inbound(single.app.port), single.pki.client(FRONT)) as conn:
            status, headers, _ = request(conn, "GET", "/api/x")
        assert (status, headers["x-smi-reason"]) == (503, "no-policy")
        write_policy(policy_file, _policy())
        proc.wait_ready()
    finally:
        proc.stop()
