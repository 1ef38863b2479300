"""smi.pki: the mesh CA issues what it is asked for, and refuses everything else."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smi.identity import Identity
from smi.pki import (
    CertificateAuthority,
    PKIError,
    generate_key,
    identity_of,
    load_certificate,
    make_csr,
    not_after,
    renewal_time,
)

WEB = Identity("shop", "web")
DB = Identity("shop", "db")


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


def _csr_with_sans(key: ec.EllipticCurvePrivateKey, sans: list[x509.GeneralName]) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_ca_is_a_p256_ca_that_round_trips_through_pem(ca: CertificateAuthority) -> None:
    assert ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.key.curve.name == "secp256r1"
    again = CertificateAuthority.load(ca.cert_pem(), ca.key_pem())
    assert again.cert == ca.cert
    cert_pem, _ = again.issue_workload(WEB)
    assert ca.issued(load_certificate(cert_pem))


def test_load_refuses_a_key_of_another_ca(ca: CertificateAuthority) -> None:
    other = CertificateAuthority.create()
    with pytest.raises(PKIError, match="does not match"):
        CertificateAuthority.load(ca.cert_pem(), other.key_pem())


def test_load_refuses_garbage_and_leaf_certificates(ca: CertificateAuthority) -> None:
    with pytest.raises(PKIError, match="cannot read certificate"):
        CertificateAuthority.load(b"not pem", ca.key_pem())
    leaf, leaf_key = ca.issue_workload(WEB)
    with pytest.raises(PKIError, match="not a CA"):
        CertificateAuthority.load(leaf, leaf_key)


def test_signed_csr_carries_exactly_the_spiffe_id_for_both_directions(
    ca: CertificateAuthority,
) -> None:
    key = generate_key()
    cert = load_certificate(ca.sign_workload_csr(make_csr(key, WEB), identity=WEB))
    assert identity_of(cert) == WEB
    assert cert.public_key() == key.public_key()
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    lifetime = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(hours=23, minutes=59) < lifetime <= timedelta(hours=24)


def test_csr_for_another_identity_is_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(PKIError, match=r"only spiffe://cluster\.local/ns/shop/sa/db"):
        ca.sign_workload_csr(make_csr(generate_key(), WEB), identity=DB)


@pytest.mark.parametrize(
    "sans",
    [
        [],
        [x509.UniformResourceIdentifier(WEB.spiffe_id), x509.DNSName("web.shop")],
        [
            x509.UniformResourceIdentifier(WEB.spiffe_id),
            x509.UniformResourceIdentifier(DB.spiffe_id),
        ],
    ],
    ids=["no-san", "extra-dns", "two-uris"],
)
def test_csr_asking_for_more_or_less_than_the_identity_is_refused(
    ca: CertificateAuthority, sans: list[x509.GeneralName]
) -> None:
    with pytest.raises(PKIError, match="only spiffe://"):
        ca.sign_workload_csr(_csr_with_sans(generate_key(), sans), identity=WEB)


def test_csr_with_a_broken_signature_is_refused(ca: CertificateAuthority) -> None:
    der = bytearray(
        x509.load_pem_x509_csr(make_csr(generate_key(), WEB)).public_bytes(
            serialization.Encoding.DER
        )
    )
    der[-3] ^= 0x55  # inside the signature value
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(PKIError, match="signature"):
        ca.sign_workload_csr(tampered, identity=WEB)


def test_csr_with_an_rsa_key_is_refused(ca: CertificateAuthority) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(WEB.spiffe_id)]),
            critical=False,
        )
        .sign(rsa_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(PKIError, match="P-256"):
        ca.sign_workload_csr(csr, identity=WEB)


def test_garbage_csr_is_a_pki_error(ca: CertificateAuthority) -> None:
    with pytest.raises(PKIError, match="cannot read CSR"):
        ca.sign_workload_csr(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", identity=WEB)


def test_identity_of_rejects_other_trust_domains_and_non_spiffe(ca: CertificateAuthority) -> None:
    cert = load_certificate(ca.issue_workload(WEB)[0])
    assert identity_of(cert, trust_domain="cluster.local") == WEB
    assert identity_of(cert, trust_domain="other.example") is None
    server = load_certificate(ca.issue_server(dns_names=["cp.local"])[0])
    assert identity_of(server) is None


def test_server_certificate_works_in_a_real_tls_context(
    ca: CertificateAuthority, tmp_path: Path
) -> None:

    cert_pem, key_pem = ca.issue_server(dns_names=["cp.local"], ip_addresses=["127.0.0.1"])
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")  # raises if they do not match
    san = load_certificate(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["cp.local"]
    assert [str(a) for a in san.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_server_certificate_needs_a_name(ca: CertificateAuthority) -> None:
    with pytest.raises(PKIError, match="at least one"):
        ca.issue_server(dns_names=[])
    with pytest.raises(PKIError, match="invalid IP"):
        ca.issue_server(dns_names=["a"], ip_addresses=["999.1.1.1"])


def test_workload_certificate_never_outlives_the_ca() -> None:
    short_ca = CertificateAuthority.create(ttl=timedelta(hours=1))
    cert_pem, _ = short_ca.issue_workload(WEB)
    assert not_after(cert_pem) == short_ca.cert.not_valid_after_utc


def test_renewal_is_at_two_thirds_with_bounded_jitter(ca: CertificateAuthority) -> None:
    cert = load_certificate(ca.issue_workload(WEB, ttl=timedelta(hours=24))[0])
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    at = renewal_time(cert, jitter=0.0)
    assert at == start + (end - start) * (2 / 3)
    early, late = renewal_time(cert, jitter=-0.1), renewal_time(cert, jitter=0.1)
    assert early < at < late
    assert start <= renewal_time(cert, jitter=-5) < renewal_time(cert, jitter=5) < end


def test_a_cert_from_another_ca_is_not_ours(ca: CertificateAuthority) -> None:
    other = CertificateAuthority.create()
    assert not ca.issued(load_certificate(other.issue_workload(WEB)[0]))


LONG_SA = "b" * 60  # `shop/bbb...`: 65 characters, past X.509's commonName bound of 64


def test_a_long_identity_gets_its_certificate_and_csr() -> None:
    """A ServiceAccount name of 60 characters (Kubernetes allows 253) was an internal error in
    `certs workload` and a 500 from the CSR endpoint: the identity went whole into the CN."""
    ca = CertificateAuthority.create()
    identity = Identity("shop", LONG_SA)
    cert_pem, _ = ca.issue_workload(identity)
    cert = x509.load_pem_x509_certificate(cert_pem)
    [cn] = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert len(str(cn.value)) == 64 and str(cn.value).endswith("...")
    assert identity_of(cert) == identity  # (the URI SAN is the identity, whole)
    key = generate_key()
    signed = ca.sign_workload_csr(make_csr(key, identity), identity=identity)
    assert identity_of(x509.load_pem_x509_certificate(signed)) == identity


def test_a_long_dns_name_gets_a_serving_certificate() -> None:
    ca = CertificateAuthority.create()
    name = "a" * 63 + ".shop.svc.cluster.local"
    cert = x509.load_pem_x509_certificate(ca.issue_server(dns_names=[name])[0])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [name]
