"""proxy.peercert: a caller's identity comes only from a certificate OpenSSL verified against the
mesh CA; a proxy on file certificates starts without `cryptography`.

Real TLS handshakes run in memory between the proxy's own contexts (`proxy.tls`)."""

from __future__ import annotations

import ssl
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from proxy.peercert import identity_in, peer_identity
from proxy.tls import client_context, handshake_in_memory, server_context
from smi.identity import Identity
from smi.pki import CertificateAuthority

FRONT = Identity("shop", "front")
WEB = Identity("shop", "web")


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


def _context(
    base: ssl.SSLContext, tmp: Path, material: tuple[bytes, bytes] | None
) -> ssl.SSLContext:
    if material is not None:
        (tmp / "c.pem").write_bytes(material[0])
        (tmp / "k.pem").write_bytes(material[1])
        base.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    return base


def _inbound(ca: CertificateAuthority, tmp: Path) -> ssl.SSLContext:
    return _context(server_context(ca.cert_pem()), tmp, ca.issue_workload(WEB))


def test_the_proxy_contexts_give_uvloop_the_c_read_and_write(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """uvloop calls `read`/`write`/`pending` of the SSL object for every TLS record: the
    proxy's contexts make them the `_ssl` object's own methods (proxy.tls.DirectSSLObject), and
    everything still works: handshake, verified peer, both read forms, write."""
    from proxy.tls import DirectSSLObject

    client = _context(client_context(ca.cert_pem()), tmp_path, ca.issue_workload(FRONT))
    bios: list[ssl.MemoryBIO] = []
    server_side, client_side = handshake_in_memory(_inbound(ca, tmp_path), client, bios)
    c_in, c_out, s_in, s_out = bios
    for end in (server_side, client_side):
        assert isinstance(end, DirectSSLObject)
        for name in ("read", "write", "pending"):
            method = getattr(end, name)
            assert method.__self__ is end._sslobj, name  # not the stdlib's Python wrapper
            assert type(method).__name__ == "builtin_function_or_method"
    assert peer_identity(server_side) == FRONT
    # Data both ways through the BIOs the handshake used.
    assert client_side.write(b"ping") == 4
    s_in.write(c_out.read())
    buf = bytearray(16)
    assert server_side.read(16, buf) == 4 and bytes(buf[:4]) == b"ping"
    assert server_side.pending() == 0
    server_side.write(b"pong")
    c_in.write(s_out.read())
    assert client_side.read(1024) == b"pong"
    # A context made elsewhere keeps the stdlib class.
    assert ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).sslobject_class is ssl.SSLObject


def test_the_caller_identity_is_read_from_its_verified_certificate(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    client = _context(client_context(ca.cert_pem()), tmp_path, ca.issue_workload(FRONT))
    server_side, client_side = handshake_in_memory(_inbound(ca, tmp_path), client)
    assert peer_identity(server_side) == FRONT
    assert peer_identity(client_side) == WEB  # and the server's, for secure naming
    assert peer_identity(server_side, trust_domain="other.example") is None


@pytest.mark.parametrize("caller", ["other-ca", "no-certificate"])
def test_a_caller_the_mesh_ca_did_not_vouch_for_never_completes_the_handshake(
    ca: CertificateAuthority, tmp_path: Path, caller: str
) -> None:
    material = CertificateAuthority.create().issue_workload(FRONT) if caller == "other-ca" else None
    client = _context(client_context(ca.cert_pem()), tmp_path, material)
    with pytest.raises(ssl.SSLError):
        handshake_in_memory(_inbound(ca, tmp_path), client)


def test_an_unverified_certificate_yields_no_identity(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    # A client that does not verify still receives the server's certificate, but the decoded
    # form stays empty: nothing of it is trusted.
    lax = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    plain = _context(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), tmp_path, ca.issue_workload(WEB))
    _, client_side = handshake_in_memory(plain, lax)
    assert client_side.getpeercert(binary_form=True)  # the certificate was sent
    assert client_side.getpeercert() == {}
    assert peer_identity(client_side) is None
    assert peer_identity(None) is None


@pytest.mark.parametrize(
    ("san", "expected"),
    [
        ((("URI", "spiffe://cluster.local/ns/shop/sa/web"),), WEB),
        ((("DNS", "web"), ("URI", "spiffe://cluster.local/ns/shop/sa/web")), WEB),
        ((("URI", "spiffe://cluster.local/ns/shop/sa/web"),) * 2, None),  # ambiguous
        ((("URI", "spiffe://cluster.local/not-a-workload"),), None),
        ((("URI", "https://cluster.local/ns/shop/sa/web"),), None),
        ((), None),
    ],
)
def test_exactly_one_spiffe_uri_is_an_identity(
    san: tuple[tuple[str, str], ...], expected: Identity | None
) -> None:
    assert identity_in({"subjectAltName": san}) == expected


def test_a_proxy_on_file_certificates_does_not_load_cryptography(
    ca: CertificateAuthority, tmp_path: Path, repo_root: Path
) -> None:
    cert, key = ca.issue_workload(WEB)
    for name, data in (("ca.pem", ca.cert_pem()), ("c.pem", cert), ("k.pem", key)):
        (tmp_path / name).write_bytes(data)
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import proxy.app, proxy.cli
        from proxy.metrics import Metrics
        from proxy.tls import FileCertificates, WorkloadTLS
        from smi.identity import Identity
        tmp = Path({str(tmp_path)!r})
        tls = WorkloadTLS(identity=Identity("shop", "web"), ca_pem=(tmp / "ca.pem").read_bytes(),
                          metrics=Metrics())
        assert FileCertificates(tls, cert=tmp / "c.pem", key=tmp / "k.pem").refresh()
        tls.cleanup()
        print(sorted(m for m in sys.modules if m.split(".")[0] == "cryptography"))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=repo_root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_uvloop_reads_tls_into_the_shared_buffer(ca: CertificateAuthority, tmp_path: Path) -> None:
    """With uvloop's TLS layer, the TLS protocols (proxy.readbuf) get their bytes through
    `get_buffer`/`buffer_updated` — not a 256 KiB `SSLObject.read` per record — on both the
    server side (inbound listeners) and the client side (mTLS upstreams)."""
    import asyncio

    import uvloop

    from proxy.tcp import SharedReadBuffer

    calls: list[tuple[str, bytes]] = []

    class Probe(SharedReadBuffer, asyncio.BaseProtocol):
        def __init__(self, side: str) -> None:
            self.side = side
            self.transport: Any = None
            self.buffered = 0

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def buffer_updated(self, nbytes: int) -> None:
            self.buffered += 1
            super().buffer_updated(nbytes)

        def data_received(self, data: bytes) -> None:
            calls.append((self.side, data))
            if self.side == "server":
                self.transport.write(b"pong:" + data)

    server_ctx = _context(server_context(ca.cert_pem()), tmp_path, ca.issue_workload(WEB))
    client_ctx = _context(client_context(ca.cert_pem()), tmp_path, ca.issue_workload(FRONT))
    probes: list[Probe] = []

    def made(side: str) -> Probe:
        probes.append(Probe(side))
        return probes[-1]

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: made("server"), "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(
            lambda: made("client"), "127.0.0.1", port, ssl=client_ctx, server_hostname=""
        )
        transport.write(b"ping")
        for _ in range(200):
            if len(calls) == 2:
                break
            await asyncio.sleep(0.01)
        transport.close()
        server.close()

    uvloop.run(run())
    assert calls == [("server", b"ping"), ("client", b"pong:ping")]
    assert all(p.buffered for p in probes)
