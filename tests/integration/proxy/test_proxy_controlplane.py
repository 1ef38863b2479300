"""The proxy against a control plane: policy by long poll, certificates by CSR.

The control plane here is a small stdlib stand-in speaking the contract of DESIGN.md §5 over
HTTPS (`GET /mesh/v1/policy` with `If-None-Match` and `?timeout=`, `POST /mesh/v1/certificates`
with a bearer token), so these tests need nothing but the proxy itself.
"""

from __future__ import annotations

import json
import signal
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from proxy_harness import EchoApp, Pki, ProxyProc, https, request, wait_for
from proxy_mesh import FRONT, sid

from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy
from smi.identity import Identity
from smi.pki import CertificateAuthority

pytestmark = pytest.mark.integration
WEB = "shop/web"
TOKEN = "bootstrap-token-for-shop-web"


def _policy(revision: int, path: str) -> MeshPolicy:
    match = HttpMatch(origin="shop/HTTPRouteGroup/r#m", methods=("GET",), path_regex=path)
    rule = AuthzRule(origin="shop/TrafficTarget/t", sources=(sid(FRONT),), http=(match,))
    return MeshPolicy(revision=revision, destinations={sid(WEB): (rule,)})


class StandIn(ThreadingHTTPServer):
    """Serves one MeshPolicy with long polls, and signs CSRs for shop/web's token."""

    daemon_threads = True

    def __init__(self, pki: Pki, *, serving_ca: CertificateAuthority | None = None) -> None:
        """`serving_ca`: the CA of its serving certificate, when not the mesh CA (the chart)."""
        super().__init__(("127.0.0.1", 0), _Handler)
        issuer = serving_ca or pki.ca
        cert, key = issuer.issue_server(dns_names=["localhost"], ip_addresses=["127.0.0.1"])
        (pki.root / "cp.crt").write_bytes(cert)
        (pki.root / "cp.key").write_bytes(key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.root / "cp.crt", pki.root / "cp.key")
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.pki = pki
        self.port: int = self.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.changed = threading.Condition()
        self.policy = _policy(1, "/v1/")
        self.failing = True
        self.token = TOKEN  # the one bearer token it accepts
        self.polls = 0
        self.poll_tokens: list[str] = []  # the Authorization of every poll, in order
        self.refuse_polls = ""  # when set: every poll is a 401 with this reason
        self.signed = 0
        self.endpoint_calls: list[tuple[str, dict[str, Any]]] = []
        threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def publish(self, policy: MeshPolicy) -> None:
        with self.changed:
            self.policy = policy
            self.changed.notify_all()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StandIn

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if self.server.failing or url.path != "/mesh/v1/policy":
            self._send(503, b"down\n")
            return
        self.server.polls += 1
        # As the control plane: the policy is served to a caller with a bearer token only.
        self.server.poll_tokens.append(self.headers.get("Authorization", ""))
        if self.server.refuse_polls or not self.headers.get("Authorization", "").startswith(
            "Bearer "
        ):
            reason = self.server.refuse_polls or "missing `Authorization: Bearer <token>`"
            self._send(401, json.dumps({"error": reason + "\x1b[2J", "code": 401}).encode())
            return
        wanted = self.headers.get("If-None-Match", "").strip('"')
        timeout = min(2.0, float(parse_qs(url.query).get("timeout", ["0"])[0]))
        with self.server.changed:
            if wanted == self.server.policy.hash:
                self.server.changed.wait(timeout)
            policy = self.server.policy
        if wanted == policy.hash:
            self._send(304, b"")
            return
        self._send(200, policy.to_json().encode(), etag=f'"{policy.hash}"')

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if urlsplit(self.path).path == "/mesh/v1/endpoints":
            self._endpoint("POST", body)
            return
        if self.server.failing:
            self._send(503, b"down\n")
        elif self.headers.get("Authorization") != f"Bearer {self.server.token}":
            self._send(401, b"bad token\n")
        else:
            csr = json.loads(body)["csr"].encode()
            cert = self.server.pki.ca.sign_workload_csr(csr, identity=Identity.parse(WEB))
            self.server.signed += 1
            self._send(201, json.dumps({"certificate": cert.decode()}).encode())

    def do_DELETE(self) -> None:
        self._endpoint("DELETE", self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _endpoint(self, method: str, body: bytes) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, b"bad token\n")
            return
        self.server.endpoint_calls.append((method, json.loads(body)))
        self._send(200, b"{}")

    def _send(self, status: int, body: bytes, *, etag: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if etag:
            self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[tuple[StandIn, EchoApp, Path]]:
    pki = Pki(tmp_path)
    server, app = StandIn(pki), EchoApp("web")
    yield server, app, tmp_path
    server.shutdown()
    server.server_close()
    app.stop()


def test_policy_by_long_poll_and_certificate_by_csr(plane: tuple[StandIn, EchoApp, Path]) -> None:
    server, app, root = plane
    (root / "token").write_text(TOKEN)
    proc = ProxyProc(
        root,
        "web",
        [
            "--identity",
            WEB,
            "--policy",
            f"{server.url}/mesh/v1/policy",
            "--ca",
            str(root / "ca.pem"),
            "--csr-url",
            f"{server.url}/mesh/v1/certificates",
            "--token-file",
            str(root / "token"),
            "--admin",
            "0",
            "--inbound",
            f"0:{app.port}",
        ],
    )
    try:
        assert proc.admin_get("/ready") == (503, "not ready: policy, certificate\n")
        server.failing = False  # the control plane comes up: the proxy gets both
        proc.wait_ready()
        assert server.signed == 1 and proc.config()["policy"]["revision"] == 1
        # The key was made by a child (proxy.keygen): cryptography's ~10 MB never loaded here.
        maps = Path(f"/proc/{proc.proc.pid}/maps").read_text()
        assert "cryptography" not in maps and "_rust.abi3" not in maps
        ctx = server.pki.client(FRONT)
        with https(proc.inbound(app.port), ctx) as conn:
            assert request(conn, "GET", "/v1/x")[0] == 200
            assert request(conn, "GET", "/v2/x")[0] == 403
            wait_for(lambda: server.polls >= 2, what="a long poll to be waiting")
            started = time.monotonic()
            server.publish(_policy(2, "/v2/"))
            proc.wait_revision(2)
            assert time.monotonic() - started < 1.5  # pushed, not polled on a timer
            assert request(conn, "GET", "/v2/x")[0] == 200
            assert request(conn, "GET", "/v1/x")[0] == 403
            server.failing = True  # the control plane goes away: the last policy stays
            failures = 'policy_updates_total{result="unreachable"}'
            wait_for(lambda: proc.metrics().get(failures, 0) >= 1, what="a failed poll")
            assert request(conn, "GET", "/v2/x")[0] == 200
        assert proc.admin_get("/ready")[0] == 200
    finally:
        proc.stop()


def test_a_refused_csr_leaves_the_proxy_unready(plane: tuple[StandIn, EchoApp, Path]) -> None:
    server, app, root = plane
    server.failing = False
    (root / "token").write_text("someone-elses-token")
    proc = ProxyProc(
        root,
        "web",
        [
            "--identity",
            WEB,
            "--policy",
            f"{server.url}/mesh/v1/policy",
            "--ca",
            str(root / "ca.pem"),
            "--csr-url",
            f"{server.url}/mesh/v1/certificates",
            "--token-file",
            str(root / "token"),
            "--admin",
            "0",
            "--inbound",
            f"0:{app.port}",
        ],
    )
    try:
        wait_for(lambda: "refused the CSR (401)" in proc.log(), what="the refusal to be logged")
        assert proc.admin_get("/ready") == (503, "not ready: certificate\n")
        assert server.signed == 0
    finally:
        proc.stop()


def test_the_proxy_registers_its_endpoint_and_withdraws_it_on_shutdown(
    plane: tuple[StandIn, EchoApp, Path],
) -> None:
    server, app, root = plane
    server.failing = False
    (root / "token").write_text(TOKEN)
    cert, key = server.pki.issue(WEB)
    proc = ProxyProc(
        root,
        "web",
        [
            "--identity",
            WEB,
            "--policy",
            f"{server.url}/mesh/v1/policy",
            "--ca",
            str(root / "ca.pem"),
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--token-file",
            str(root / "token"),
            "--admin",
            "0",
            "--inbound",
            f"0:{app.port}",
            "--register",
            f"{app.port}=web,web-v2",
        ],
    )
    try:
        proc.wait_ready()
        wait_for(lambda: server.endpoint_calls, what="the registration")
        inbound = proc.inbound(app.port)
        assert server.endpoint_calls == [
            ("POST", {"address": "127.0.0.1", "port": inbound, "services": ["web", "web-v2"]})
        ]
    finally:
        assert proc.stop() == 0
    assert server.endpoint_calls[-1] == ("DELETE", {"address": "127.0.0.1", "port": inbound})


def test_a_rotated_token_file_is_used_for_the_next_csr(
    plane: tuple[StandIn, EchoApp, Path],
) -> None:
    """The kubelet rewrites a projected token before it expires (hourly); the proxy must send
    the token as the file holds it now, or its renewal 16 h in is refused and its certificate
    lapses at 24 h."""
    server, app, root = plane
    (root / "token").write_text(TOKEN)
    server.failing = False
    proc = ProxyProc(
        root,
        "web",
        [
            "--identity", WEB, "--policy", f"{server.url}/mesh/v1/policy",
            "--ca", str(root / "ca.pem"), "--csr-url", f"{server.url}/mesh/v1/certificates",
            "--token-file", str(root / "token"), "--admin", "0", "--inbound", f"0:{app.port}",
        ],
    )  # fmt: skip
    try:
        proc.wait_ready()
        assert server.signed == 1
        assert set(server.poll_tokens) == {f"Bearer {TOKEN}"}  # every poll proves who it is
        server.token = "rotated-token-for-shop-web"  # the old one is no longer accepted
        (root / "token").write_text(server.token + "\n")
        proc.proc.send_signal(signal.SIGHUP)  # renew now rather than in 16 h
        wait_for(lambda: server.signed == 2, what="a CSR with the rotated token")
        # SIGHUP asks for the policy again too: with the token the file holds now.
        wait_for(
            lambda: server.poll_tokens[-1] == f"Bearer {server.token}",
            what="a poll with the rotated token",
        )
    finally:
        proc.stop()


def test_a_refused_poll_keeps_the_proxy_unready_and_says_why(
    plane: tuple[StandIn, EchoApp, Path],
) -> None:
    """A control plane that refuses the workload's token (expired, another mesh CA): the proxy
    logs the control plane's reason, as one printable line, and does not turn ready."""
    server, app, root = plane
    server.failing = False
    server.refuse_polls = "bootstrap token has expired"
    (root / "token").write_text(TOKEN)
    cert, key = server.pki.issue(WEB)
    proc = ProxyProc(
        root,
        "web",
        [
            "--identity", WEB, "--policy", f"{server.url}/mesh/v1/policy",
            "--ca", str(root / "ca.pem"), "--cert", str(cert), "--key", str(key),
            "--token-file", str(root / "token"), "--admin", "0", "--inbound", f"0:{app.port}",
        ],
    )  # fmt: skip
    try:
        wait_for(
            lambda: "answered 401: bootstrap token has expired?[2J" in proc.log(),
            what="the refusal to be logged with its reason",
        )
        assert "\x1b" not in proc.log()
        assert proc.admin_get("/ready")[0] == 503
        assert server.poll_tokens[0] == f"Bearer {TOKEN}"
    finally:
        proc.stop()
