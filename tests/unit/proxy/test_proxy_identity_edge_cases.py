"""Hostile certificates and SPIFFE IDs: a peer's identity is one unambiguous workload SPIFFE ID
in a verified, non-CA certificate, or nothing (no identity → deny).

Certificates are made with `cryptography` and signed by a real mesh CA; handshakes run in
memory between the proxy's own contexts (`proxy.tls`)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proxy.metrics import Metrics
from proxy.peercert import identity_in, is_ca, peer_identity
from proxy.tls import (
    CertificateError,
    WorkloadTLS,
    client_context,
    handshake_in_memory,
    server_context,
)
from smi.identity import Identity, IdentityError, identity_among
from smi.pki import CertificateAuthority, generate_key, identity_of, key_to_pem

FRONT = Identity("shop", "front")
WEB = Identity("shop", "web")
FRONT_ID = FRONT.spiffe_id


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


def _issue(
    signer: CertificateAuthority,
    *,
    uris: tuple[str, ...] = (FRONT_ID,),
    dns: tuple[str, ...] = (),
    ca_true: bool = False,
) -> tuple[bytes, bytes]:
    """(cert PEM, key PEM) for a client/server certificate with exactly these SANs, signed by
    `signer` — what a CA other than smictl's own issuer could have signed."""
    key, now = generate_key(), datetime.now(UTC)
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    names += [x509.DNSName(d) for d in dns]
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hostile")]))
        .issuer_name(signer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca_true, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(signer.key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), key_to_pem(key)


def _context(base: ssl.SSLContext, tmp: Path, material: tuple[bytes, bytes]) -> ssl.SSLContext:
    (tmp / "c.pem").write_bytes(material[0])
    (tmp / "k.pem").write_bytes(material[1])
    base.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    return base


def _caller_identity(
    ca: CertificateAuthority, tmp: Path, material: tuple[bytes, bytes]
) -> Identity | None:
    """The identity the inbound side reads from a caller presenting `material`."""
    inbound = _context(server_context(ca.cert_pem()), tmp, ca.issue_workload(WEB))
    client = _context(client_context(ca.cert_pem()), tmp, material)
    return peer_identity(handshake_in_memory(inbound, client)[0], trust_domain="cluster.local")


# --- the URI SANs of a verified certificate ------------------------------------------------------


@pytest.mark.parametrize(
    "uris",
    [
        # `$` matched before a trailing newline: this was read as shop/front.
        (FRONT_ID + "\n",),
        # Scheme and host are case-insensitive: two SPIFFE IDs, one was picked.
        ("SPIFFE://cluster.local/ns/shop/sa/admin", FRONT_ID),
        ("spiffe://CLUSTER.LOCAL/ns/shop/sa/admin", FRONT_ID),
        # X.509-SVID: more than one URI SAN, reject.
        ("https://shop.example/front", FRONT_ID),
        (FRONT_ID, "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"),
    ],
)
def test_a_certificate_with_an_ambiguous_or_non_canonical_uri_has_no_identity(
    ca: CertificateAuthority, tmp_path: Path, uris: tuple[str, ...]
) -> None:
    assert _caller_identity(ca, tmp_path, _issue(ca, uris=uris)) is None


@pytest.mark.parametrize(
    "uri",
    [
        FRONT_ID + "/",
        FRONT_ID + "/extra",
        "spiffe://cluster.local/ns/shop/sa/front/ns/shop/sa/admin",
        FRONT_ID + "?x=1",
        FRONT_ID + "#x",
        "spiffe://cluster.local/ns/sh%6fp/sa/front",
        "spiffe://cluster.local/ns//sa/front",
        "spiffe://cluster.local/ns/shop/sa/",
        "spiffe://cluster.local/ns/shop/sa/..",
        "spiffe://user@cluster.local/ns/shop/sa/front",
        "spiffe://cluster.local:443/ns/shop/sa/front",
        "spiffe://Cluster.Local/ns/shop/sa/front",
        "spiffe://%63luster.local/ns/shop/sa/front",
        "spiffe:///ns/shop/sa/front",
        "shop/front",  # a relative URI is not the short form of an identity
        "SPIFFE://cluster.local/ns/shop/sa/front",
    ],
)
def test_only_a_canonical_workload_spiffe_id_is_an_identity(uri: str) -> None:
    decoded = {"subjectAltName": (("URI", uri),)}
    assert identity_in(decoded) is None
    assert identity_in(decoded, trust_domain="cluster.local") is None


def test_one_spiffe_uri_beside_dns_names_is_the_identity(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    material = _issue(ca, uris=(FRONT_ID,), dns=("front.shop.svc",))
    assert _caller_identity(ca, tmp_path, material) == FRONT


def test_dns_names_only_or_another_trust_domain_is_no_identity(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    assert _caller_identity(ca, tmp_path, _issue(ca, uris=(), dns=("front",))) is None
    other_td = _issue(ca, uris=("spiffe://other.example/ns/shop/sa/front",))
    assert _caller_identity(ca, tmp_path, other_td) is None


# --- CA certificates and intermediates --------------------------------------------------------


def test_a_ca_certificate_used_as_a_leaf_has_no_identity(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """OpenSSL accepts a CA:TRUE certificate as the peer's own; its SPIFFE URI was trusted."""
    material = _issue(ca, uris=(FRONT_ID,), ca_true=True)
    assert _caller_identity(ca, tmp_path, material) is None
    assert identity_of(x509.load_pem_x509_certificate(material[0])) is None


def test_is_ca_reads_basic_constraints_from_der(ca: CertificateAuthority) -> None:
    def der(pem: bytes) -> bytes:
        return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)

    assert is_ca(der(ca.cert_pem()))
    assert is_ca(der(_issue(ca, ca_true=True)[0]))
    assert not is_ca(der(ca.issue_workload(WEB)[0]))
    assert not is_ca(der(_issue(ca)[0]))
    assert is_ca(b"") and is_ca(b"\x30\x05\x30\x03") and is_ca(der(ca.cert_pem())[:-1])


def test_an_intermediate_under_the_mesh_ca_cannot_vouch_for_a_workload(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """The mesh CA is pathlen:0: a CA:TRUE certificate it signed is not an issuer."""
    inter_pem, inter_key = _issue(ca, uris=(), ca_true=True)
    inter = CertificateAuthority(
        cert=x509.load_pem_x509_certificate(inter_pem),
        key=serialization.load_pem_private_key(inter_key, None),  # type: ignore[arg-type]
    )
    leaf_pem, leaf_key = _issue(inter, uris=(FRONT_ID,))
    with pytest.raises(ssl.SSLError):
        _caller_identity(ca, tmp_path, (leaf_pem + inter_pem, leaf_key))


# --- what the proxy accepts as its own certificate -------------------------------------------


def test_a_ca_certificate_is_refused_as_the_workload_certificate(
    ca: CertificateAuthority,
) -> None:
    tls = WorkloadTLS(identity=FRONT, ca_pem=ca.cert_pem(), metrics=Metrics())
    try:
        with pytest.raises(CertificateError, match="CA certificate"):
            tls.install(*_issue(ca, uris=(FRONT_ID,), ca_true=True))
        assert not tls.ready
        assert tls.install(*ca.issue_workload(FRONT))
    finally:
        tls.cleanup()


@pytest.mark.parametrize("uris", [(FRONT_ID, "https://x"), (FRONT_ID + "\n",)])
def test_an_ambiguous_workload_certificate_is_refused(
    ca: CertificateAuthority, uris: tuple[str, ...]
) -> None:
    tls = WorkloadTLS(identity=FRONT, ca_pem=ca.cert_pem(), metrics=Metrics())
    try:
        with pytest.raises(CertificateError, match="names None"):
            tls.install(*_issue(ca, uris=uris))
    finally:
        tls.cleanup()


# --- parsing and formatting ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        FRONT_ID + "\n",
        "shop/front\n",
        "shop/front-",
        "shop/front.",
        "spiffe://Cluster.Local/ns/shop/sa/front",
        "spiffe://a b/ns/shop/sa/front",
        "spiffe://cluster.local:8443/ns/shop/sa/front",
    ],
)
def test_parse_refuses_what_no_certificate_could_be_read_as(text: str) -> None:
    with pytest.raises(IdentityError):
        Identity.parse(text)


@pytest.mark.parametrize("text", ["shop/front", "shop/front.v2", FRONT_ID, "a/b"])
def test_every_parsed_identity_round_trips_through_its_spiffe_id(text: str) -> None:
    ident = Identity.parse(text)
    assert Identity.parse(ident.spiffe_id) == ident
    assert identity_among([ident.spiffe_id]) == ident
