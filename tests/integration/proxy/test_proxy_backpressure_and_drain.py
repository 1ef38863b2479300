"""Real proxies with peers that stop reading, requests the proxy answers itself, and a drain:
timeouts must not cut a stream the proxy itself paused, every answer is counted, and the
admin listener answers (503 `draining`) until the drain ends."""

from __future__ import annotations

import contextlib
import http.client
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
BIG = 20_000_000  # well past what the kernel's socket buffers hold


@dataclass
class Env:
    root: Path
    pki: Pki
    app: EchoApp
    policy_file: Path

    def start(self, name: str, *extra: str) -> ProxyProc:
        cert, key = self.pki.issue(WEB)
        args = [
            *("--identity", WEB, "--policy", str(self.policy_file)),
            *("--ca", str(self.pki.ca_file), "--cert", str(cert), "--key", str(key)),
            *("--admin", "0", "--inbound", f"0:{self.app.port}"),
            *FAST,  # header, body and response timeouts of 1 s
            *extra,
        ]
        proc = ProxyProc(self.root, name, args)
        proc.wait_ready()
        return proc

    def connect(self, proc: ProxyProc, timeout: float = 10.0) -> ssl.SSLSocket:
        sock = socket.create_connection(("127.0.0.1", proc.inbound(self.app.port)), timeout)
        return self.pki.client(FRONT).wrap_socket(sock)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("backpressure")
    app = EchoApp("web")
    everything = HttpMatch(origin="shop/HTTPRouteGroup/all#all", path_regex="/(api|slow|big)")
    rule = AuthzRule(origin="shop/TrafficTarget/all", sources=(sid(FRONT),), http=(everything,))
    policy = MeshPolicy(revision=1, mode="deny", destinations={sid(WEB): (rule,)})
    write_policy(root / "policy.json", policy)
    yield Env(root, Pki(root), app, root / "policy.json")
    app.stop()


def _read_response(sock: ssl.SSLSocket) -> tuple[bytes, int]:
    """The head and the number of body bytes read until the length or the end."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data, 0
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    got = len(body)
    try:
        while got < length:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    except (ConnectionResetError, ssl.SSLError):
        pass
    return head, got


def test_a_client_that_pauses_reading_gets_the_whole_response(env: Env) -> None:
    proc = env.start("slow-reader")
    try:
        with env.connect(proc) as sock:
            sock.sendall(b"GET /big?n=%d HTTP/1.1\r\nHost: web\r\n\r\n" % BIG)
            time.sleep(3)  # the scenario itself: longer than the 1 s response timeout
            head, got = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 ") and got == BIG
        metrics = proc.metrics()
        assert (
            metrics[
                'response_total{direction="inbound",status_code="200",classification="success"}'
            ]
            == 1
        )
        assert not any("kind=" in name and "stalled" in name for name in metrics)
    finally:
        proc.stop()


def test_an_app_that_pauses_reading_gets_the_whole_upload(env: Env) -> None:
    proc = env.start("slow-app")
    try:
        with https(proc.inbound(env.app.port), env.pki.client(FRONT), timeout=20) as conn:
            # The app reads the head, sleeps 3 s (longer than the 1 s body timeout), then the body.
            status, _, body = request(conn, "POST", "/slow?ms=3000", body=b"x" * BIG)
        assert status == 200 and b'"body_len": %d' % BIG in body
    finally:
        proc.stop()


def test_a_client_that_never_reads_again_is_cut_off_after_the_idle_timeout(env: Env) -> None:
    proc = env.start("stuck-reader", "--idle-timeout", "2")
    try:
        with env.connect(proc) as sock:
            sock.sendall(b"GET /big?n=%d HTTP/1.1\r\nHost: web\r\n\r\n" % BIG)
            started = time.monotonic()
            wait_for(
                lambda: proc.metrics().get(
                    'proxy_errors_total{direction="inbound",kind="client-stalled"}'
                ),
                what="the stalled client to be cut off",
                timeout=10,
            )
            assert 1.5 <= time.monotonic() - started < 6  # 2 s, on a 0.25 s clock
            _, got = _read_response(sock)
        assert got < BIG
        aborted = 'response_total{direction="inbound",status_code="0",classification="failure"}'
        assert proc.metrics()[aborted] == 1
    finally:
        proc.stop()


def test_an_app_that_never_reads_the_upload_gets_it_a_504(env: Env) -> None:
    proc = env.start("stuck-app", "--idle-timeout", "2")
    sock = env.connect(proc)
    sender = threading.Thread(target=_send_quietly, args=(sock,), daemon=True)
    try:
        sender.start()
        wait_for(
            lambda: proc.metrics().get(
                'response_total{direction="inbound",status_code="504",classification="failure"}'
            ),
            what="the 504",
            timeout=10,
        )
        errors = proc.metrics()
        assert errors['proxy_errors_total{direction="inbound",kind="upstream-stalled"}'] == 1
    finally:
        sock.close()
        sender.join(10)
        proc.stop()


def _send_quietly(sock: ssl.SSLSocket) -> None:
    head = b"POST /slow?ms=6000 HTTP/1.1\r\nHost: web\r\nContent-Length: %d\r\n\r\n" % BIG
    with contextlib.suppress(OSError, ValueError):  # cut off (or closed by the test)
        sock.sendall(head + b"x" * BIG)


def test_requests_the_proxy_refuses_itself_are_counted(env: Env) -> None:
    proc = env.start("refusals")
    try:
        with env.connect(proc) as sock:
            sock.sendall(b"GET /api HTTP/1.1\r\n\r\n")  # no Host
            assert sock.recv(100).startswith(b"HTTP/1.1 400 ")
        with env.connect(proc) as sock:
            sock.sendall(b"GET /api HTTP/1.1\r\nHo")  # then silence: the 1 s header timeout
            assert sock.recv(100).startswith(b"HTTP/1.1 408 ")
        metrics = proc.metrics()
        assert metrics['request_total{direction="inbound",authz="not-reached"}'] == 2
        prefix = 'response_total{direction="inbound",status_code='
        assert metrics[prefix + '"400",classification="success"}'] == 1
        assert metrics[prefix + '"408",classification="success"}'] == 1
    finally:
        proc.stop()


def test_the_admin_listener_answers_draining_until_the_drain_ends(env: Env) -> None:
    proc = env.start("drain", "--response-timeout", "10", "--drain-timeout", "10")
    port = proc.inbound(env.app.port)
    result: dict[str, int] = {}

    def slow_request() -> None:
        with https(port, env.pki.client(FRONT), timeout=10) as conn:
            result["status"] = request(conn, "GET", "/slow?ms=2000")[0]

    kept = http.client.HTTPConnection("127.0.0.1", proc.admin, timeout=5)  # a probe's keep-alive
    try:
        kept.request("GET", "/ready")
        assert kept.getresponse().read() == b"ready\n"
        hits = env.app.hits
        worker = threading.Thread(target=slow_request)
        worker.start()
        wait_for(lambda: env.app.hits > hits, what="the app to receive the slow request")
        proc.signal(signal.SIGTERM)
        wait_for(lambda: proc.admin_get("/ready")[0] == 503, what="/ready to say 503", timeout=5)
        assert proc.admin_get("/ready") == (503, "not ready: draining\n")  # a new connection
        kept.request("GET", "/ready")
        answer = kept.getresponse()
        assert (answer.status, answer.read()) == (503, b"not ready: draining\n")
        assert proc.admin_get("/metrics")[0] == 200  # the drain can be scraped
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        worker.join(10)
        assert result["status"] == 200
        assert proc.proc.wait(10) == 0
        assert proc.admin_get("/ready") == (0, "")  # closed last, but closed
    finally:
        kept.close()
        proc.stop()
