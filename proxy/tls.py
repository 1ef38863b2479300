"""This workload's certificate: TLS contexts for both listeners, loading and rotating them.

The inbound server context requires a client certificate signed by the mesh CA. The outbound
client context presents this workload's certificate and verifies the peer against the mesh CA
(host names are not checked: workload certificates name a SPIFFE identity, which
`proxy.upstream` compares with the endpoint's instead).

Rotation keeps open connections: the server context is updated in place (`load_cert_chain` on a
live context affects only handshakes that start afterwards; established connections keep the
certificate they were set up with), and a fresh client context replaces the old one for new
upstream connections. A candidate certificate is checked first (matches its key, issued by the
mesh CA, names this identity, not expired); a bad one is refused and the current one stays.

Certificates come from files (re-read when they change, or on SIGHUP) or from the control
plane's CSR endpoint (`POST /mesh/v1/certificates`), renewed at two thirds of their lifetime.
"""

from __future__ import annotations

import json
import logging
import os
import random
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from proxy.httpclient import HttpClientError, request
from proxy.metrics import Metrics
from smi.identity import Identity
from smi.pki import (
    PKIError,
    generate_key,
    identity_of,
    key_to_pem,
    load_certificate,
    make_csr,
    renewal_time,
)

log = logging.getLogger("smictl.proxy.tls")


class CertificateError(Exception):
    """A certificate or key cannot be used (unreadable, wrong identity, expired, wrong CA)."""


@dataclass(frozen=True, slots=True)
class Material:
    cert_pem: bytes
    key_pem: bytes
    cert: x509.Certificate


def server_context(ca_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca_pem.decode())
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca_pem.decode())
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class WorkloadTLS:
    """The current certificate of `identity` and the contexts built from it."""

    def __init__(self, *, identity: Identity, ca_pem: bytes, metrics: Metrics) -> None:
        self.identity = identity
        self.ca_pem = ca_pem
        self.cas = _load_cas(ca_pem)
        self.metrics = metrics
        self.server = server_context(ca_pem)
        self._client: ssl.SSLContext | None = None
        self.material: Material | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="smictl-proxy-"))

    @property
    def ready(self) -> bool:
        return self.material is not None

    @property
    def client_context(self) -> ssl.SSLContext:
        if self._client is None:
            raise CertificateError("no workload certificate loaded yet")
        return self._client

    @property
    def not_after(self) -> datetime | None:
        return None if self.material is None else self.material.cert.not_valid_after_utc

    def control_plane_context(self) -> ssl.SSLContext:
        """For calls to the control plane: its serving certificate is signed by the mesh CA
        and names its host (checked)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode())

    def install(self, cert_pem: bytes, key_pem: bytes) -> bool:
        """Check and use a new certificate; False (and the old one kept) if it is the same."""
        try:
            cert = load_certificate(cert_pem)
        except PKIError as exc:
            raise CertificateError(str(exc)) from exc
        if self.material is not None and cert == self.material.cert:
            return False
        self._check(cert)
        cert_file, key_file = self._dir / "cert.pem", self._dir / "key.pem"
        _write_private(cert_file, cert_pem)
        _write_private(key_file, key_pem)
        client = client_context(self.ca_pem)
        try:
            client.load_cert_chain(cert_file, key_file)
            self.server.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:
            self.metrics.cert_renewal("rejected")
            raise CertificateError(f"certificate and key do not match: {exc}") from exc
        self._client = client
        self.material = Material(cert_pem, key_pem, cert)
        self.metrics.cert_expiry = cert.not_valid_after_utc.timestamp()
        self.metrics.cert_renewal("installed")
        log.info(
            "certificate for %s installed, expires %s",
            self.identity,
            cert.not_valid_after_utc.isoformat(),
        )
        return True

    def _check(self, cert: x509.Certificate) -> None:
        problem = None
        now = datetime.now(UTC)
        if identity_of(cert) != self.identity:
            problem = f"certificate names {identity_of(cert)}, not {self.identity}"
        elif not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
            problem = f"certificate is not valid now (expires {cert.not_valid_after_utc})"
        elif not any(_issued_by(cert, ca) for ca in self.cas):
            problem = "certificate is not issued by the mesh CA"
        if problem is not None:
            self.metrics.cert_renewal("rejected")
            raise CertificateError(problem)

    def next_renewal(self, *, jitter: float = 0.05) -> float:
        """Seconds until this certificate should be renewed (two thirds of its lifetime)."""
        if self.material is None:
            return 0.0
        at = renewal_time(self.material.cert, jitter=random.uniform(-jitter, jitter))  # noqa: S311
        return max(0.0, (at - datetime.now(UTC)).total_seconds())

    def cleanup(self) -> None:
        for name in ("cert.pem", "key.pem"):
            (self._dir / name).unlink(missing_ok=True)
        self._dir.rmdir()


class FileCertificates:
    """Certificate and key files written by someone else (a volume, `smictl certs issue`)."""

    def __init__(self, tls: WorkloadTLS, *, cert: Path, key: Path) -> None:
        self.tls, self.cert, self.key = tls, cert, key
        self._sig: tuple[float, float] | None = None

    def refresh(self, *, force: bool = False) -> bool:
        try:
            sig = (self.cert.stat().st_mtime, self.key.stat().st_mtime)
            if sig == self._sig and not force:
                return False
            cert_pem, key_pem = self.cert.read_bytes(), self.key.read_bytes()
        except OSError as exc:
            raise CertificateError(f"cannot read certificate files: {exc}") from exc
        self._sig = sig
        return self.tls.install(cert_pem, key_pem)


class CsrCertificates:
    """Certificates signed by the control plane for a fresh key each time.

    Request: `POST <url>` with JSON `{"csr": <PEM>}` and `Authorization: Bearer <token>` (the
    token proves the identity; the CSR must name exactly that identity); response: 200/201
    with JSON `{"certificate": <PEM>, ...}` (a bare PEM body is accepted too)."""

    def __init__(
        self, tls: WorkloadTLS, *, url: str, token: str, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.tls, self.url, self.token, self.ssl_context = tls, url, token, ssl_context

    async def refresh(self, *, force: bool = False) -> bool:
        key = generate_key()
        csr = make_csr(key, self.tls.identity)
        body = json.dumps({"csr": csr.decode()}).encode()
        headers = {"content-type": "application/json", "authorization": f"Bearer {self.token}"}
        try:
            resp = await request(
                "POST",
                self.url,
                headers=headers,
                body=body,
                ssl_context=self.ssl_context,
                deadline=15.0,
            )
        except HttpClientError as exc:
            raise CertificateError(f"control plane {self.url}: {exc}") from exc
        if resp.status not in (200, 201):
            reason = resp.body[:200].decode("utf-8", "replace").strip()
            raise CertificateError(f"control plane refused the CSR ({resp.status}): {reason}")
        return self.tls.install(_certificate_from(resp.body), key_to_pem(key))


def _certificate_from(body: bytes) -> bytes:
    if body.lstrip().startswith(b"-----BEGIN"):
        return body
    try:
        doc = json.loads(body)
        return str(doc.get("certificate") or doc["cert"]).encode()
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise CertificateError("control plane answer holds no certificate") from exc


def _load_cas(ca_pem: bytes) -> list[x509.Certificate]:
    try:
        cas = x509.load_pem_x509_certificates(ca_pem)
    except ValueError as exc:
        raise CertificateError(f"mesh CA: cannot read certificate: {exc}") from exc
    return cas


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
