"""`smictl serve --client-ca`: the review routes answer only the API server's client
certificate, over real TLS, while every other route keeps answering callers without one."""

from __future__ import annotations

import datetime as dt
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from control_plane_harness import SMICTL, Server, admission_review, split
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

pytestmark = pytest.mark.integration


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class ClientCA:
    """A CA of API-server client certificates, as a cluster admin would make one."""

    def __init__(self, directory: Path, cn: str = "apiserver-clients") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / f"{cn}.crt"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def client(self, cn: str, *, dns: tuple[str, ...] = ()) -> tuple[str, str]:
        """(cert file, key file) of a client certificate with this CN and DNS SANs."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )
        if dns:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        stem = self.directory / f"{cn}-{len(dns)}-{x509.random_serial_number() % 10**6}"
        cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(cert_file), str(key_file)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("client-ca")
    ca = ClientCA(root)
    server = Server(root).start(
        workers=1,
        extra=("--client-ca", str(ca.path), "--client-names", "kube-apiserver,apiserver.local"),
    )
    try:
        yield server, ca, root
    finally:
        server.stop()


def _validate(server: Server, cert: tuple[str, str] | None) -> requests.Response:
    review = admission_review(split("s", "web"), uid="u-1")
    session = server.session()
    if cert is not None:
        session.cert = cert
    return session.post(f"{server.url}/validate", json=review, timeout=10)


def test_reviews_need_the_api_servers_certificate(setup: Any) -> None:
    server, ca, _ = setup
    refused = _validate(server, None)
    assert refused.status_code == 401
    assert "sent none" in refused.json()["error"]

    answered = _validate(server, ca.client("kube-apiserver"))
    assert answered.status_code == 200
    assert answered.json()["response"]["uid"] == "u-1"

    # A DNS SAN names the client as well as the CN does.
    assert _validate(server, ca.client("someone", dns=("apiserver.local",))).status_code == 200

    other = _validate(server, ca.client("jane"))
    assert other.status_code == 401
    assert "names jane" in other.json()["error"]

    r = server.session().post(f"{server.url}/mutate", json={}, timeout=10)
    assert r.status_code == 401
    # The API server calls conversion webhooks without a certificate (kubernetes#131810).
    conversion = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": "c-1", "desiredAPIVersion": "split.smi-spec.io/v1alpha2",
                    "objects": [split("s", "web")]},
    }  # fmt: skip
    converted = server.session().post(f"{server.url}/convert", json=conversion, timeout=10)
    assert converted.status_code == 200
    assert converted.json()["response"]["result"]["status"] == "Success"


def test_a_certificate_of_another_ca_fails_the_handshake(setup: Any) -> None:
    server, _, root = setup
    stranger = ClientCA(root / "..", cn="stranger-ca").client("kube-apiserver")
    # (Under TLS 1.3 the client learns of it at its first read: a reset, not an SSLError.)
    with pytest.raises(requests.exceptions.ConnectionError):
        _validate(server, stranger)
    assert _validate(server, None).status_code == 401  # and the worker serves on


def test_other_routes_take_callers_without_a_certificate(setup: Any) -> None:
    server, _, _ = setup
    assert server.session().get(f"{server.url}/healthz", timeout=10).status_code == 200
    policy = server.workload_session().get(f"{server.url}/mesh/v1/policy", timeout=10)
    assert policy.status_code == 200
    listed = server.smictl("get", "trafficsplits", "-A")
    assert listed.returncode == 0, listed.stderr


def test_refusals_are_counted_and_logged(setup: Any) -> None:
    server, _, _ = setup
    _validate(server, None)
    metrics = server.session().get(f"{server.url}/metrics", timeout=10).text
    assert 'smictl_review_callers_refused_total{reason="no-certificate"}' in metrics
    assert '"event":"review_caller_refused"' in server.log.read_text()


def test_serve_refuses_a_client_ca_it_cannot_use(tmp_path: Path) -> None:
    empty = tmp_path / "empty.crt"
    empty.write_text("not a certificate\n")
    cases = {  # a file that cannot work: exit 1; a flag value that cannot: a usage error, 2
        ("--client-ca", str(tmp_path / "missing.crt")): ("--client-ca", 1),
        ("--client-ca", str(empty)): ("no PEM CA certificate could be read", 1),
        ("--client-ca", str(empty), "--client-names", ","): ("--client-names", 2),
    }
    for extra, (expected, code) in cases.items():
        done = subprocess.run(
            [*SMICTL, "serve", "--bind", "127.0.0.1:0", "--certs-dir", str(tmp_path / "certs"),
             "--store", str(tmp_path / "store.db"), *extra],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == code, (extra, done.stderr)
        assert expected in done.stderr, (extra, done.stderr)
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_tls_asks_for_a_certificate_only_with_a_client_ca(tmp_path: Path) -> None:
    from webhook.tls import ServingContext

    certs = tmp_path / "certs"
    subprocess.run([*SMICTL, "certs", "init", "--dir", str(certs)], check=True, capture_output=True)
    plain = ServingContext(cert_file=certs / "server.crt", key_file=certs / "server.key").get()
    assert plain.verify_mode == ssl.CERT_NONE
    ca = ClientCA(tmp_path)
    asking = ServingContext(
        cert_file=certs / "server.crt", key_file=certs / "server.key", client_ca_file=ca.path
    ).get()
    assert asking.verify_mode == ssl.CERT_OPTIONAL


def test_no_session_is_resumed_so_a_swapped_ca_holds_on_the_next_connection(setup: Any) -> None:
    """A resumed TLS session skips certificate verification, and each worker keeps its first
    context for resumption: a certificate of a CA since swapped out kept working for a
    ticket's lifetime. With a client CA the control plane issues no ticket (TLS 1.3 only)."""
    import socket
    from urllib.parse import urlsplit

    server, ca, _ = setup
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    assert host is not None and port is not None
    client = ssl.create_default_context(cafile=str(server.ca))
    client.load_cert_chain(*ca.client("kube-apiserver"))

    def handshake(session: Any = None) -> ssl.SSLSocket:
        raw = socket.create_connection((host, port), timeout=10)
        tls = client.wrap_socket(raw, server_hostname=host, session=session)
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert tls.recv(100).startswith(b"HTTP/1.1 200")
        return tls

    first = handshake()
    assert first.version() == "TLSv1.3"
    session = first.session
    first.close()
    again = handshake(session)
    assert not again.session_reused
    again.close()

    old = ssl.create_default_context(cafile=str(server.ca))
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        pytest.raises((ssl.SSLError, OSError)),
    ):
        old.wrap_socket(raw, server_hostname=host).close()
