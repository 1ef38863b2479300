"""The mesh PKI: the CA, workload certificates with SPIFFE URI SANs, and serving certificates.

Shared by the control plane (signing CSRs, its own serving certificate) and the proxy (its
workload key, CSR and renewal schedule, reading a peer's identity from a verified certificate).
All keys are EC P-256. A workload certificate carries exactly one URI SAN, the workload's SPIFFE
ID (DESIGN.md §3), and is valid for client and server authentication, so one certificate serves
both the inbound and the outbound side of a proxy.

Every failure a caller can cause (bad PEM, a CSR for another identity, a key that does not match
its certificate) is a `PKIError`; cryptography's own exceptions are mapped at this boundary.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smi.identity import Identity, identity_among

WORKLOAD_TTL = timedelta(hours=24)
SERVER_TTL = timedelta(days=90)
CA_TTL = timedelta(days=365)
# Certificates are back-dated a little so that peers with slightly slow clocks accept them.
_CLOCK_SKEW = timedelta(minutes=5)
_RENEW_AT = 2 / 3


# What cryptography raises (outside ValueError) for extensions it cannot take as given.
_HOSTILE_EXTENSIONS = (x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


class PKIError(ValueError):
    """A certificate, key or CSR is unreadable, invalid, or not for the identity it claims."""


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A fresh EC P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key(key_pem: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PKIError(f"cannot read private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError("private key is not an EC key")
    return key


def load_certificate(cert_pem: bytes) -> x509.Certificate:
    """The first certificate of a PEM bundle."""
    try:
        return x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise PKIError(f"cannot read certificate: {exc}") from exc


# X.509's upper bound on a commonName (RFC 5280, ub-common-name).
_MAX_COMMON_NAME = 64


def subject(common_name: str) -> x509.Name:
    """A subject of one commonName, cut to X.509's 64 (bytes, as cryptography counts them;
    `...` at the end). The name is a label for people: the identity is the URI SAN (a SPIFFE
    ID runs to 2,048 bytes) and a serving certificate's names are its DNS SANs, so `ns/sa` of
    a long ServiceAccount, or a DNS name of 253 characters, gets its certificate (it was an
    internal error, and a 500 from the CSR endpoint)."""
    if len(common_name.encode()) > _MAX_COMMON_NAME:
        cut = common_name[: _MAX_COMMON_NAME - 3]
        while len(cut.encode()) > _MAX_COMMON_NAME - 3:
            cut = cut[:-1]
        common_name = cut + "..."
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name or "-")])


def make_csr(key: ec.EllipticCurvePrivateKey, identity: Identity) -> bytes:
    """A PEM CSR whose only SAN is the identity's SPIFFE URI."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject(identity.short))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.spiffe_id)]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def identity_of(cert: x509.Certificate, *, trust_domain: str | None = None) -> Identity | None:
    """The workload identity in a certificate's URI SAN, or None.

    None when the certificate has no URI SAN, more than one (ambiguous, so trusted for
    nothing), one that is not a workload's SPIFFE ID or is from another trust domain than
    `trust_domain` (when given), or when the certificate is a CA's (the rule of
    `proxy.peercert`).
    """
    try:
        extensions = cert.extensions
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError, *_HOSTILE_EXTENSIONS):
        return None
    if is_ca(extensions):
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return identity_among(uris, trust_domain=trust_domain)


def not_after(cert_pem: bytes) -> datetime:
    """When the (first) certificate in `cert_pem` expires, timezone-aware UTC."""
    return load_certificate(cert_pem).not_valid_after_utc


def renewal_time(cert: x509.Certificate, *, jitter: float) -> datetime:
    """When to renew: two thirds into the lifetime, moved by `jitter` × lifetime.

    `jitter` is a signed fraction the caller draws (e.g. `random.uniform(-0.05, 0.05)`), so that
    a fleet issued at one moment does not renew at one moment; it is clamped to ±1/3 so the
    result always falls strictly inside the validity period.
    """
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    fraction = _RENEW_AT + max(-1 / 3, min(1 / 3 - 1e-6, jitter))
    return start + (end - start) * fraction


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """The mesh CA: a self-signed certificate and its key. Issues workload and server certs."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(
        cls, *, common_name: str = "smictl mesh CA", ttl: timedelta = CA_TTL
    ) -> CertificateAuthority:
        key = generate_key()
        name = subject(common_name)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + ttl)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    @classmethod
    def load(cls, cert_pem: bytes, key_pem: bytes) -> CertificateAuthority:
        cert, key = load_certificate(cert_pem), load_key(key_pem)
        if cert.public_key() != key.public_key():
            raise PKIError("the CA key does not match the CA certificate")
        if not is_ca(cert.extensions):
            raise PKIError("the CA certificate is not a CA (basicConstraints CA:TRUE missing)")
        return cls(cert=cert, key=key)

    def check_valid(self) -> None:
        """PKIError when the CA certificate is past its end: whatever it signed now would be
        expired at once (or, past the back-dating margin, not even signable)."""
        end = self.cert.not_valid_after_utc
        if end <= datetime.now(UTC):
            raise PKIError(
                f"the mesh CA expired at {end.isoformat()}; rotate it to issue certificates"
            )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return key_to_pem(self.key)

    def sign_workload_csr(
        self, csr_pem: bytes, *, identity: Identity, ttl: timedelta = WORKLOAD_TTL
    ) -> bytes:
        """Sign a workload CSR for `identity`; refuse one that asks for anything else.

        Only the CSR's key is used: the certificate's names, extensions and lifetime are this
        CA's decision (`_issue`), whatever else the CSR asks for."""
        public, requested = _read_csr(csr_pem)
        if requested != [identity.spiffe_id]:
            raise PKIError(
                f"CSR asks for {requested or 'no URI SAN'}; only {identity.spiffe_id} may be issued"
            )
        return self._issue(public, identity=identity, ttl=ttl)

    def issue_workload(
        self, identity: Identity, *, ttl: timedelta = WORKLOAD_TTL
    ) -> tuple[bytes, bytes]:
        """A fresh key and a workload certificate for it: `(cert_pem, key_pem)`."""
        key = generate_key()
        return self._issue(key.public_key(), identity=identity, ttl=ttl), key_to_pem(key)

    def issue_server(
        self,
        *,
        dns_names: Sequence[str],
        ip_addresses: Sequence[str] = (),
        ttl: timedelta = SERVER_TTL,
    ) -> tuple[bytes, bytes]:
        """A serving certificate (serverAuth) for the given names: `(cert_pem, key_pem)`."""
        if not dns_names and not ip_addresses:
            raise PKIError("a server certificate needs at least one DNS name or IP address")
        try:
            ips = [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        except ValueError as exc:
            raise PKIError(f"invalid IP address: {exc}") from exc
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        key = generate_key()
        cn = dns_names[0] if dns_names else ip_addresses[0]
        builder = self._builder(key.public_key(), common_name=cn, ttl=ttl)
        cert = (
            builder.add_extension(x509.SubjectAlternativeName([*names, *ips]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_to_pem(key)

    def issued(self, cert: x509.Certificate) -> bool:
        """True when `cert` carries a valid signature of this CA (validity dates not checked)."""
        if cert.issuer != self.cert.subject:
            return False
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def _issue(
        self, public: ec.EllipticCurvePublicKey, *, identity: Identity, ttl: timedelta
    ) -> bytes:
        builder = self._builder(public, common_name=identity.short, ttl=ttl)
        san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.spiffe_id)])
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        cert = (
            builder.add_extension(san, critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    def _builder(
        self, public: ec.EllipticCurvePublicKey, *, common_name: str, ttl: timedelta
    ) -> x509.CertificateBuilder:
        self.check_valid()
        now = datetime.now(UTC)
        end = min(now + ttl, self.cert.not_valid_after_utc)
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        return (
            x509.CertificateBuilder()
            .subject_name(subject(common_name))
            .issuer_name(self.cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(aki, critical=False)
        )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def is_ca(extensions: x509.Extensions) -> bool:
    """Whether a certificate with these extensions may sign others (basicConstraints CA:TRUE)."""
    try:
        return bool(extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _read_csr(csr_pem: bytes) -> tuple[ec.EllipticCurvePublicKey, list[str]]:
    """The P-256 key and the SANs (`_csr_uris`) of a CSR whose signature verifies.

    Whatever a hostile CSR makes cryptography raise (a SAN extension twice, a SAN that does
    not decode, a curve it does not know) is a PKIError, so that the caller answers 400, not
    500."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise PKIError("CSR signature is invalid")
        public = csr.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
            raise PKIError("CSR key must be EC P-256")
        return public, _csr_uris(csr)
    except PKIError:
        raise
    except (ValueError, UnsupportedAlgorithm, *_HOSTILE_EXTENSIONS) as exc:
        raise PKIError(f"cannot read CSR: {exc}") from exc


def _csr_uris(csr: x509.CertificateSigningRequest) -> list[str]:
    """Every SAN of the CSR rendered as text; anything but one URI makes the CSR refused."""
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out: list[str] = []
    for name in san:
        if isinstance(name, x509.UniformResourceIdentifier):
            out.append(name.value)
        else:
            out.append(f"{type(name).__name__}:{name.value}")
    return out
