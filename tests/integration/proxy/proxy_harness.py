"""Real proxies and small apps on 127.0.0.1 for the proxy's integration tests.

- `Pki`: a mesh CA and workload certificates as files;
- `EchoApp`: a threaded HTTP app that answers with what it received (JSON), plus a few
  misbehaving paths (`/crash`, `/slow`, `/big`, an echoing `Upgrade`);
- `TcpEcho`: a TCP echo server;
- `ProxyProc`: one `python -m proxy ...` process (the same code as `smictl proxy`), started on
  port 0, its ports read back from `--ports-file`, ready when `/ready` says so, stopped with
  SIGTERM (then SIGKILL) so no process outlives a test.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from smi.compiler.ir import MeshPolicy
from smi.identity import Identity
from smi.pki import CertificateAuthority

REPO = Path(__file__).resolve().parents[3]


def accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port (within 2 s)."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


def wait_for(check: Callable[[], Any], *, what: str, timeout: float = 15.0) -> Any:
    """Poll `check` until it returns something truthy (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Pki:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = CertificateAuthority.create()
        self.ca_file = root / "ca.pem"
        self.ca_file.write_bytes(self.ca.cert_pem())

    def issue(
        self, name: str, *, ca: CertificateAuthority | None = None, ttl: timedelta | None = None
    ) -> tuple[Path, Path]:
        """Certificate and key files for workload `ns/sa` (file names are unique per call)."""
        authority = ca or self.ca
        kwargs = {} if ttl is None else {"ttl": ttl}
        cert, key = authority.issue_workload(Identity.parse(name), **kwargs)
        stem = name.replace("/", "-") + "-" + hashlib.sha256(cert).hexdigest()[:8]
        cert_file, key_file = self.root / f"{stem}.crt", self.root / f"{stem}.key"
        cert_file.write_bytes(cert)
        key_file.write_bytes(key)
        return cert_file, key_file

    def client(self, name: str | None, **kw: Any) -> ssl.SSLContext:
        """A TLS client context verifying the mesh CA, presenting `name`'s certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(self.ca_file)
        if name is not None:
            cert, key = self.issue(name, **kw)
            ctx.load_cert_chain(cert, key)
        return ctx


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are two writes: no 40 ms delayed-ACK stall
    server: EchoApp

    def _body(self) -> bytes:
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""
        out = b""
        while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
            out += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return out

    def _answer(self) -> None:
        self.server.hits += 1
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/crash":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if url.path == "/slow":
            time.sleep(float(query.get("ms", "500")) / 1000)
        if self.headers.get("Upgrade", "").lower() == "echo":
            self._tunnel()
            return
        body = self._body()
        if url.path == "/big":
            self._send(200, b"x" * int(query.get("n", "1000000")), "application/octet-stream")
            return
        doc = {
            "name": self.server.name,
            "method": self.command,
            "path": self.path,
            "identity": self.headers.get("x-smi-source-identity"),
            "identity_count": len(self.headers.get_all("x-smi-source-identity") or []),
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body_len": len(body),
            "body_sha": hashlib.sha256(body).hexdigest(),
        }
        self._send(200, json.dumps(doc).encode(), "application/json")

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-App", self.server.name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _tunnel(self) -> None:
        self.send_response(101)
        self.send_header("Connection", "Upgrade")
        self.send_header("Upgrade", "echo")
        self.end_headers()
        self.wfile.flush()
        while data := self.connection.recv(65536):
            self.connection.sendall(b"echo:" + data)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return


class EchoApp(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _EchoHandler)
        self.name = name
        self.hits = 0
        self.port: int = self.server_address[1]
        threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _TcpEchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(b"tcp-echo:" + data)
        # The caller ended its side: one answer more after that, which a relay that passes a
        # half-close on (and not a close) lets through.
        with contextlib.suppress(OSError):
            self.request.sendall(b"tcp-echo:eof")


class TcpEcho(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TcpEchoHandler)
        self.port: int = self.server_address[1]
        threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def write_policy(path: Path, policy: MeshPolicy) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(policy.to_json(), encoding="utf-8")
    tmp.replace(path)  # atomic: the proxy never reads half a file


class ProxyProc:
    def __init__(self, workdir: Path, name: str, args: list[str]) -> None:
        self.name = name
        self.ports_file = workdir / f"{name}.ports.json"
        self.log_file = workdir / f"{name}.log"
        argv = [
            sys.executable,
            "-m",
            "proxy",
            *args,
            "--ports-file",
            str(self.ports_file),
            "--log-level",
            "info",
        ]
        with self.log_file.open("wb") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        self.ports: dict[str, Any] = wait_for(self._read_ports, what=f"{name} to listen")

    def _read_ports(self) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log()}")
        try:
            return dict(json.loads(self.ports_file.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    @property
    def admin(self) -> int:
        return int(self.ports["admin"])

    def inbound(self, app_port: int) -> int:
        return int(self.ports["inbound"][str(app_port)])

    def admin_get(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        except OSError:
            return 0, ""
        finally:
            conn.close()

    def wait_ready(self) -> None:
        wait_for(lambda: self.admin_get("/ready")[0] == 200, what=f"{self.name} ready")

    def config(self) -> dict[str, Any]:
        status, body = self.admin_get("/config")
        assert status == 200, body
        return dict(json.loads(body))

    def wait_revision(self, revision: int) -> None:
        def current() -> bool:
            policy = self.config().get("policy") or {}
            return bool(policy.get("revision") == revision)

        wait_for(current, what=f"{self.name} to use policy revision {revision}")

    def metrics(self) -> dict[str, float]:
        status, body = self.admin_get("/metrics")
        assert status == 200
        out: dict[str, float] = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@contextlib.contextmanager
def https(
    port: int, ctx: ssl.SSLContext, timeout: float = 5.0
) -> Iterator[http.client.HTTPSConnection]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    try:
        yield conn
    finally:
        conn.close()


def request(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def raw_exchange(
    port: int, data: bytes, *, ctx: ssl.SSLContext | None = None, timeout: float = 5.0
) -> bytes:
    """Send raw bytes, read until the peer closes (or the timeout)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if ctx is not None:
        sock = ctx.wrap_socket(sock)
    with sock:
        sock.sendall(data)
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError, ssl.SSLError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
