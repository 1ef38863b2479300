"""TCP steps of the proxy target carry raw bytes, not HTTP. They used to send `GET /tcp-probe`
over the mTLS connection, so a mesh that read a TCPRoute port as HTTP (or could only carry
HTTP) passed every TCP step. The destination's inbound proxy is played here by a small TLS
server: one that relays bytes to a real test app, and one that parses HTTP as smictl's proxy
does on a port it reads as HTTP."""

from __future__ import annotations

import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conformance.assertions import Response
from conformance.model import RequestSpec, Workload
from conformance.targets import mesh as mesh_module
from conformance.targets.mesh import APP_MARK, TCP_PROBE, Slot
from conformance.targets.proxy import Placement, ProxyTarget, _probe_answer
from smi.identity import Identity
from smi.pki import CertificateAuthority

HTTP_REQUEST_LINE = re.compile(rb"^[A-Z]+ \S+ HTTP/\d\.\d\r?\n")
PORT = 8300


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


def _context(ca: CertificateAuthority, identity: str, tmp: Path, *, server: bool) -> ssl.SSLContext:
    cert, key = ca.issue_workload(Identity.parse(identity))
    (tmp / "c.pem").write_bytes(cert)
    (tmp / "k.pem").write_bytes(key)
    purpose = ssl.Purpose.CLIENT_AUTH if server else ssl.Purpose.SERVER_AUTH
    ctx = ssl.create_default_context(purpose, cadata=ca.cert_pem().decode())
    ctx.check_hostname = False
    ctx.load_cert_chain(str(tmp / "c.pem"), str(tmp / "k.pem"))
    if server:
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@pytest.fixture
def app() -> Iterator[tuple[str, int]]:
    """The test app of the mesh, as a workload slot serves it."""
    slot = Slot(identity="shop/catalog", index=0, address="127.0.0.1", ports=(0,), label="catalog")
    server = mesh_module._AppServer(("127.0.0.1", 0), slot)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    yield "127.0.0.1", server.server_address[1]
    server.shutdown()
    server.server_close()


Handler = Callable[[ssl.SSLSocket], None]


@pytest.fixture
def inbound(ca: CertificateAuthority, tmp_path: Path) -> Iterator[Callable[[Handler], int]]:
    """Start a stand-in for a destination's inbound proxy (mTLS) that runs `handler` on each
    connection; returns its port."""
    (tmp_path / "server").mkdir()
    ctx = _context(ca, "shop/catalog", tmp_path / "server", server=True)
    listeners: list[socket.socket] = []

    def start(handler: Handler) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def serve() -> None:
            while True:
                try:
                    raw, _ = listener.accept()
                except OSError:
                    return
                with raw, ctx.wrap_socket(raw, server_side=True) as tls:
                    handler(tls)

        threading.Thread(target=serve, daemon=True).start()
        return int(listener.getsockname()[1])

    yield start
    for listener in listeners:
        listener.close()


def _relay_to(app: tuple[str, int], seen: list[bytes]) -> Handler:
    """An L4 relay: whatever the caller sends goes to the app unread, and back."""

    def handle(tls: ssl.SSLSocket) -> None:
        with socket.create_connection(app, timeout=5) as upstream:
            data = tls.recv(65536)
            seen.append(data)
            upstream.sendall(data)
            upstream.shutdown(socket.SHUT_WR)
            while chunk := upstream.recv(65536):
                tls.sendall(chunk)

    return handle


def _reads_http(tls: ssl.SSLSocket) -> None:
    """A proxy that reads the port as HTTP: a request line gets the app's answer, anything else
    a 400, the way an HTTP parser answers bytes it cannot read."""
    data = tls.recv(65536)
    if HTTP_REQUEST_LINE.match(data):
        body = b'{"workload": "catalog"}'
        tls.sendall(
            b"HTTP/1.1 200 OK\r\n" + APP_MARK.encode() + b": catalog\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
    else:
        tls.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")


def _caller(ca: CertificateAuthority, tmp_path: Path) -> ProxyTarget:
    """A proxy target whose caller `shop/frontend` holds a workload certificate."""
    (tmp_path / "client").mkdir(exist_ok=True)
    target = ProxyTarget()
    target._contexts["shop/frontend", "mesh"] = _context(
        ca, "shop/frontend", tmp_path / "client", server=False
    )
    return target


def _send_tcp(target: ProxyTarget, inbound_port: int) -> Response:
    """One `protocol: tcp` step to `catalog:8300`, whose inbound listener is `inbound_port`."""
    source = Placement(
        Workload(identity="shop/frontend"),
        Slot(identity="shop/frontend", index=0, address="127.0.0.1", ports=(80,)),
    )
    dest = Placement(
        Workload(identity="shop/catalog", services=("catalog",), ports=(PORT,)),
        Slot(
            identity="shop/catalog",
            index=0,
            address="127.0.0.1",
            ports=(PORT,),
            label="catalog",
            listeners={"inbound": {str(PORT): inbound_port}},
        ),
    )
    spec = RequestSpec.model_validate(
        {"from": "shop/frontend", "to": f"catalog:{PORT}", "protocol": "tcp"}
    )
    return target._direct(source, dest, PORT, spec)


def test_a_tcp_step_sends_bytes_that_are_not_http_and_the_app_echoes_them(
    app: tuple[str, int],
    inbound: Callable[[Handler], int],
    ca: CertificateAuthority,
    tmp_path: Path,
) -> None:
    seen: list[bytes] = []
    port = inbound(_relay_to(app, seen))
    response = _send_tcp(_caller(ca, tmp_path), port)
    assert response.allowed and response.backend == "catalog"
    assert response.status is None and response.identity is None
    [sent] = seen
    assert not HTTP_REQUEST_LINE.match(sent)
    assert sent.startswith(TCP_PROBE) and b"\x00" in sent


def test_a_mesh_that_reads_a_tcp_port_as_http_does_not_pass_a_tcp_step(
    inbound: Callable[[Handler], int], ca: CertificateAuthority, tmp_path: Path
) -> None:
    port = inbound(_reads_http)
    response = _send_tcp(_caller(ca, tmp_path), port)
    assert not response.allowed
    assert response.reason.startswith("not the app's answer: b'HTTP/1.1 400 Bad Request")


def test_the_app_still_answers_http_on_the_same_port(app: tuple[str, int]) -> None:
    with socket.create_connection(app, timeout=5) as conn:
        conn.sendall(b"GET /x HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n")
        reply = b"".join(iter(lambda: conn.recv(65536), b""))
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert f"{APP_MARK}: catalog".encode() in reply


@pytest.mark.parametrize(
    ("reply", "allowed", "error"),
    [
        (b"", False, ""),
        (b'{"workload": "catalog", "echo": "%s"}\n', True, ""),
        (b'{"workload": "catalog", "echo": "00"}\n', False, "the app received b'\\x00'"),
        (b"[1, 2]\n", False, ""),
    ],
)
def test_a_probe_counts_as_allowed_only_when_the_app_echoed_it_unchanged(
    reply: bytes, allowed: bool, error: str
) -> None:
    probe = TCP_PROBE + b"abc\n"
    if b"%s" in reply:
        reply = reply % probe.hex().encode()
    response = _probe_answer(reply, probe)
    assert response.allowed is allowed
    assert response.error.startswith(error)
    assert response.denied is (not allowed and not error)
