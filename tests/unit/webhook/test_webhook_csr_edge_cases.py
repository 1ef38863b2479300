"""Hostile CSRs and tokens at `POST /mesh/v1/certificates`: the caller gets a certificate for the
identity it proved and nothing else, and whatever it sends is a 4xx, never a 500.

Some CSRs below cannot be made with `cryptography`'s builder (a SAN extension twice, a SAN that
does not decode, an unknown curve): they are built, then their CertificationRequestInfo is
patched and signed again with the same key, so the signature still verifies."""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtensionOID, NameOID
from flask.testing import FlaskClient

from smi.identity import Identity
from smi.pki import CertificateAuthority, PKIError, generate_key
from webhook.auth import AuthError, BootstrapTokens, TokenReviewer, token_key

WEB = Identity("shop", "web")
ADMIN_ID = "spiffe://cluster.local/ns/shop/sa/admin"
P256 = bytes.fromhex("06082a8648ce3d030107")  # the OID of secp256r1, as DER
# A 512-bit RSA key (cryptography refuses to generate one; it still loads one).
RSA512 = b"""-----BEGIN PRIVATE KEY-----
MIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6AgEAAkEAwEFcc+VzOx+1EYx/
80U3e89dbFDkoszzmpAjM+Z357ZwnlvgjTXBd+WKQu/jBG/3vNNmglfo5sP6Ejh0
q1Cc6QIDAQABAkBh7WkQR6GoTgBHDg/mdC1MzVVC5Plwy4CSDDVCLHSK+4qOCwAt
MXtBRy45BHPpQSrq91VxxAqCKoopeP09K31hAiEA6kbTkGtmSrSbITljCcgDVHN2
HprENlQVSv4nLmA1z/0CIQDSFQwfaxibA9+9tvejIJAgs3+qJhzAlwe7RY2YhF6m
XQIhAL9iML7QHfZ1aC1SFigNbzr0P9BsmlHPir2CtjtaeVt5AiBoYD6qqXoLIoya
ZHp62OXi6WvHbLIiWadkuvTTzwh7nQIgXR9YXPwEkkphCFpsOHA85S0rBd25QuF8
WHdqFYi0LkA=
-----END PRIVATE KEY-----
"""


def bearer(client: FlaskClient, identity: Identity = WEB) -> dict[str, str]:
    plane = client.application.extensions["smictl"]
    tokens = BootstrapTokens(key=token_key(plane.ca.key), trust_domain="cluster.local")
    return {"Authorization": f"Bearer {tokens.issue(identity)}"}


def csr(
    key: Any,
    uris: tuple[str, ...] = (WEB.spiffe_id,),
    *,
    extensions: tuple[x509.ExtensionType, ...] = (),
    algorithm: hashes.HashAlgorithm | None = hashes.SHA256(),  # noqa: B008 - immutable
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop/web")])
    )
    if uris:
        sans = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris])
        builder = builder.add_extension(sans, critical=False)
    for ext in extensions:
        builder = builder.add_extension(ext, critical=True)
    return builder.sign(key, algorithm)


def pem(request: x509.CertificateSigningRequest) -> str:
    return request.public_bytes(serialization.Encoding.PEM).decode()


def _der_pem(der: bytes) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = bytes([n]) if n < 128 else bytes([0x80 | 2]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + body


def _element_end(der: bytes, pos: int) -> tuple[int, int]:
    """(content start, end) of the DER element at `pos`."""
    n = der[pos + 1]
    if n < 128:
        return pos + 2, pos + 2 + n
    count = n & 0x7F
    size = int.from_bytes(der[pos + 2 : pos + 2 + count], "big")
    return pos + 2 + count, pos + 2 + count + size


def patched(
    request: x509.CertificateSigningRequest,
    key: ec.EllipticCurvePrivateKey,
    patch: Callable[[bytes], bytes],
) -> str:
    """`request` with its CertificationRequestInfo patched, signed again with `key`."""
    der = request.public_bytes(serialization.Encoding.DER)
    start, _ = _element_end(der, 0)
    _, info_end = _element_end(der, start)
    _, alg_end = _element_end(der, info_end)
    info = patch(der[start:info_end])
    signature = key.sign(info, ec.ECDSA(hashes.SHA256()))
    return _der_pem(_tlv(0x30, info + der[info_end:alg_end] + _tlv(0x03, b"\0" + signature)))


def post(client: FlaskClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post("/mesh/v1/certificates", json=body, headers=headers or bearer(client))


# --- what the control plane signs ------------------------------------------------------------


def test_the_certificate_carries_only_what_the_control_plane_decided(
    client: FlaskClient,
) -> None:
    """A CSR asking for CA:TRUE, certificate signing and a name constraint gets none of it."""
    key = generate_key()
    asks = (
        x509.BasicConstraints(ca=True, path_length=None),
        x509.KeyUsage(True, False, False, False, False, True, True, False, False),
        x509.NameConstraints(permitted_subtrees=[x509.DNSName("shop")], excluded_subtrees=None),
    )
    r = post(client, {"csr": pem(csr(key, extensions=asks)), "ttlSeconds": 10**30})
    assert r.status_code == 201, r.get_json()
    cert = x509.load_pem_x509_certificate(r.get_json()["certificate"].encode())
    assert {e.oid for e in cert.extensions} == {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.EXTENDED_KEY_USAGE,
    }
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert not usage.key_cert_sign and not usage.crl_sign
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(hours=24, minutes=5)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: pem(csr(rsa.generate_private_key(65537, 2048))), "EC P-256"),
        (
            lambda: pem(csr(serialization.load_pem_private_key(RSA512, password=None))),
            "EC P-256",
        ),
        (lambda: pem(csr(ec.generate_private_key(ec.SECP384R1()))), "EC P-256"),
        (lambda: pem(csr(ec.generate_private_key(ec.SECP256K1()))), "EC P-256"),
        (lambda: pem(csr(ed25519.Ed25519PrivateKey.generate(), algorithm=None)), "EC P-256"),
        (lambda: pem(csr(generate_key(), (WEB.spiffe_id, WEB.spiffe_id))), "only spiffe"),
        (lambda: pem(csr(generate_key(), ())), "no URI SAN"),
        (
            lambda: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
            "",
        ),
    ],
)
def test_bad_csrs_are_400(client: FlaskClient, make: Callable[[], str], reason: str) -> None:
    r = post(client, {"csr": make()})
    assert r.status_code == 400, r.get_json()
    assert reason in r.get_json()["error"]


def test_a_csr_whose_signature_does_not_verify_is_400(client: FlaskClient) -> None:
    der = bytearray(csr(generate_key()).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the signature
    r = post(client, {"csr": _der_pem(bytes(der))})
    assert r.status_code == 400 and "signature is invalid" in r.get_json()["error"]


@pytest.mark.parametrize(
    "hostile",
    [
        # The IssuerAltName OID (2.5.29.18) turned into SubjectAltName (2.5.29.17): two SANs.
        pytest.param(
            lambda d: d.replace(b"\x06\x03\x55\x1d\x12", b"\x06\x03\x55\x1d\x11"),
            id="two-san-extensions",
        ),
        # A URI SAN must be IA5 (ASCII): \xff makes it undecodable.
        pytest.param(lambda d: d.replace(b"sa/web", b"sa/w\xffb"), id="undecodable-san"),
        # A curve OID no one knows in the CSR's public key.
        pytest.param(lambda d: d.replace(P256, P256[:-1] + b"\x08"), id="unknown-curve"),
    ],
)
def test_a_csr_cryptography_chokes_on_is_400_not_500(
    client: FlaskClient, hostile: Callable[[bytes], bytes]
) -> None:
    key = generate_key()
    issuer_alt = x509.IssuerAlternativeName([x509.UniformResourceIdentifier(ADMIN_ID)])
    base = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(WEB.spiffe_id)]), False
        )
        .add_extension(issuer_alt, False)
        .sign(key, hashes.SHA256())
    )
    body = patched(base, key, hostile)
    assert body != pem(base)
    r = post(client, {"csr": body})
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.get_json()["error"].startswith("CSR refused: ")
    assert "\n" not in r.get_json()["error"]


def test_sign_workload_csr_maps_every_hostile_csr_to_pkierror() -> None:
    ca, key = CertificateAuthority.create(), generate_key()
    two_sans = patched(
        csr(key, extensions=(x509.IssuerAlternativeName([x509.UniformResourceIdentifier("a:b")]),)),
        key,
        lambda d: d.replace(b"\x06\x03\x55\x1d\x12", b"\x06\x03\x55\x1d\x11"),
    )
    with pytest.raises(PKIError, match="cannot read CSR"):
        ca.sign_workload_csr(two_sans.encode(), identity=WEB)


@pytest.mark.parametrize(
    ("ttl", "status"),
    [
        (59, 400),
        (0, 400),
        (-1, 400),
        (60.0, 400),
        (True, 400),
        ("3600", 400),
        (60, 201),
        (86401, 201),
    ],
)
def test_ttl_edges(client: FlaskClient, ttl: Any, status: int) -> None:
    r = post(client, {"csr": pem(csr(generate_key())), "ttlSeconds": ttl})
    assert r.status_code == status, r.get_json()


# --- an expired mesh CA --------------------------------------------------------------------------


@pytest.mark.parametrize("expired_for", [timedelta(seconds=1), timedelta(minutes=10)])
def test_an_expired_mesh_ca_is_503_not_an_expired_certificate_or_a_500(
    client: FlaskClient, expired_for: timedelta
) -> None:
    plane = client.application.extensions["smictl"]
    headers = bearer(client)
    ca = _expired_ca(plane.ca, expired_for)
    plane.ca = ca
    r = post(client, {"csr": pem(csr(generate_key()))}, headers)
    assert r.status_code == 503, r.get_data(as_text=True)
    assert "mesh CA expired" in r.get_json()["error"]


def _expired_ca(ca: CertificateAuthority, expired_for: timedelta) -> CertificateAuthority:
    """The same key and name, with a certificate that ended `expired_for` ago."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(ca.cert.subject)
        .issuer_name(ca.cert.subject)
        .public_key(ca.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2))
        .not_valid_after(now - expired_for)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca.key, hashes.SHA256())
    )
    return CertificateAuthority(cert=cert, key=ca.key)


# --- who may ask ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "audiences",
    [None, [], ["https://kubernetes.default.svc.cluster.local"], "smictl", ["smictl-other"]],
)
def test_a_token_review_without_our_audience_proves_nothing(audiences: Any) -> None:
    """An audience-unaware TokenReview says `authenticated` with no audiences for a token valid
    only for the API server; the API reference asks the client to check `status.audiences`."""
    status: dict[str, Any] = {
        "authenticated": True,
        "user": {"username": "system:serviceaccount:shop:web"},
    }
    if audiences is not None:
        status["audiences"] = audiences
    reviewer = TokenReviewer(lambda _: status, trust_domain="cluster.local")
    with pytest.raises(AuthError, match="audience"):
        reviewer.authenticate("tok")
    status["audiences"] = ["other", "smictl"]
    assert reviewer.authenticate("tok2") == WEB


def test_a_token_for_one_identity_never_gets_another(client: FlaskClient) -> None:
    r = post(client, {"csr": pem(csr(generate_key(), (ADMIN_ID,)))})
    assert r.status_code == 403
    newline = pem(csr(generate_key(), (WEB.spiffe_id + "\n",)))
    assert post(client, {"csr": newline}).status_code == 403


@pytest.mark.parametrize(
    ("names", "shown"),
    [
        ((WEB.spiffe_id, ADMIN_ID), ADMIN_ID),
        ((ADMIN_ID, WEB.spiffe_id), ADMIN_ID),
        ((WEB.spiffe_id, "https://x", ADMIN_ID), f"https://x, {ADMIN_ID}"),
        ((WEB.spiffe_id, "dns:web.shop.svc"), "web.shop.svc"),
    ],
)
def test_a_csr_naming_another_identity_beside_the_callers_is_refused_and_logged(
    client: FlaskClient, caplog: pytest.LogCaptureFixture, names: tuple[str, ...], shown: str
) -> None:
    """The CSR must ask for the caller's SPIFFE ID alone (docs/control-plane.md): one that also
    names another workload's was a 400 `invalid` with no decision line, so an attempt to
    claim another identity left no trace in the decision log."""
    sans: list[x509.GeneralName] = [
        x509.DNSName(n[4:]) if n.startswith("dns:") else x509.UniformResourceIdentifier(n)
        for n in names
    ]
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop/web")]))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(generate_key(), hashes.SHA256())
    )
    with caplog.at_level("INFO", logger="smictl.decision"):
        r = post(client, {"csr": pem(request)})
    assert r.status_code == 403, r.get_json()
    assert r.get_json()["error"] == f"CSR asks for {shown}, but the caller proved {WEB.spiffe_id}"
    lines = [rec.fields for rec in caplog.records if rec.name == "smictl.decision"]  # type: ignore[attr-defined]
    assert lines == [{"event": "certificate_refused", "caller": WEB.spiffe_id, "subject": shown}]
