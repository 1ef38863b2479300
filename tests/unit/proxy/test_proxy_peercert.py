"""proxy.peercert: a caller's identity comes only from a certificate OpenSSL verified against the
mesh CA; a proxy on file certificates starts without `cryptography`.

Real TLS handshakes run in memory between the proxy's own contexts (`proxy.tls`)."""

from __future__ import annotations

import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

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


def test_the_identity_reads_from_the_c_ssl_object_too(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """proxy.tlslayer hands out the `_ssl` object inside `ssl.SSLObject` as `ssl_object`,
    whose `getpeercert` takes its flag only by position."""
    client = _context(client_context(ca.cert_pem()), tmp_path, ca.issue_workload(FRONT))
    server_side, client_side = handshake_in_memory(_inbound(ca, tmp_path), client)
    inner = server_side._sslobj  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        inner.getpeercert(binary_form=True)
    assert peer_identity(inner) == FRONT
    assert peer_identity(client_side._sslobj) == WEB  # type: ignore[attr-defined]


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
