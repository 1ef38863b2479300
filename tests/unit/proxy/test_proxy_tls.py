"""proxy.tls: only a valid certificate for this identity from the mesh CA is ever installed."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from proxy.metrics import Metrics
from proxy.tls import (
    CertificateError,
    FileCertificates,
    WorkloadTLS,
    _certificate_from,
    handshake_in_memory,
)
from smi.identity import Identity
from smi.pki import CertificateAuthority

WEB = Identity("shop", "web")


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


@pytest.fixture
def tls(ca: CertificateAuthority) -> Iterator[WorkloadTLS]:
    workload = WorkloadTLS(identity=WEB, ca_pem=ca.cert_pem(), metrics=Metrics())
    yield workload
    workload.cleanup()


def test_a_good_certificate_is_installed_and_its_expiry_exposed(
    ca: CertificateAuthority, tls: WorkloadTLS
) -> None:
    assert not tls.ready
    with pytest.raises(CertificateError, match="no workload certificate"):
        _ = tls.client_context
    cert, key = ca.issue_workload(WEB)
    assert tls.install(cert, key) is True
    assert tls.ready and tls.client_context is not None
    assert tls.not_after is not None
    assert tls.metrics.cert_expiry == pytest.approx(tls.not_after)
    assert tls.install(cert, key) is False  # unchanged
    assert tls.metrics.cert_renewals == {"installed": 1}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("other-identity", "names spiffe://cluster.local/ns/shop/sa/db"),
        ("other-ca", "not issued by the mesh CA"),
        ("expired", "not valid now"),
        ("wrong-key", "do not match"),
        ("garbage", "cannot read certificate"),
    ],
)
def test_bad_certificates_are_refused_and_the_current_one_kept(
    ca: CertificateAuthority, tls: WorkloadTLS, case: str, message: str
) -> None:
    good_cert, good_key = ca.issue_workload(WEB)
    tls.install(good_cert, good_key)
    if case == "other-identity":
        cert, key = ca.issue_workload(Identity("shop", "db"))
    elif case == "other-ca":
        cert, key = CertificateAuthority.create().issue_workload(WEB)
    elif case == "expired":
        cert, key = ca.issue_workload(WEB, ttl=timedelta(seconds=-1))
    elif case == "wrong-key":
        cert, _ = ca.issue_workload(WEB)
        key = good_key
    else:
        cert, key = b"junk", good_key
    with pytest.raises(CertificateError, match=message):
        tls.install(cert, key)
    assert tls.material is not None and tls.material.cert_pem == good_cert


def test_renewal_is_scheduled_at_about_two_thirds(
    ca: CertificateAuthority, tls: WorkloadTLS
) -> None:
    cert, key = ca.issue_workload(WEB, ttl=timedelta(hours=24))
    tls.install(cert, key)
    delay = tls.next_renewal(jitter=0.05)
    lifetime = (24 * 60 + 5) * 60  # plus the five minutes of back-dating
    assert tls.material is not None
    elapsed = time.time() - tls.material.not_before
    assert (2 / 3 - 0.05) * lifetime - elapsed - 5 <= delay <= (2 / 3 + 0.05) * lifetime - elapsed


@pytest.mark.parametrize(
    "text", ["Nov 23 23:08:46 2026 GMT", "Jan  3 01:02:03 2030 GMT", "Feb 29 00:00:00 2028 GMT"]
)
def test_certificate_times_are_read_as_openssl_writes_them(text: str) -> None:
    import ssl

    from proxy.tls import _cert_time

    assert _cert_time(text) == ssl.cert_time_to_seconds(text)


def test_an_unreadable_certificate_time_is_a_certificate_error() -> None:
    from proxy.tls import _cert_time

    with pytest.raises(CertificateError, match="validity"):
        _cert_time("sometime soon")


def test_file_certificates_are_reloaded_when_they_change(
    ca: CertificateAuthority, tls: WorkloadTLS, tmp_path: Path
) -> None:
    cert_file, key_file = tmp_path / "c.pem", tmp_path / "k.pem"
    for f, data in zip((cert_file, key_file), ca.issue_workload(WEB), strict=True):
        f.write_bytes(data)
    files = FileCertificates(tls, cert=cert_file, key=key_file)
    assert files.refresh() is True
    assert files.refresh() is False  # nothing changed
    first = tls.material
    new_cert, new_key = ca.issue_workload(WEB)
    cert_file.write_bytes(new_cert)
    key_file.write_bytes(new_key)
    assert files.refresh(force=True) is True
    assert tls.material is not first and tls.material is not None
    assert tls.material.cert_pem == new_cert
    key_file.unlink()
    with pytest.raises(CertificateError, match="cannot read"):
        files.refresh(force=True)


def test_control_plane_answers_are_read_as_json_or_pem() -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n"
    assert _certificate_from(pem) == pem
    assert _certificate_from(b'{"certificate": "PEM", "caCertificate": "CA"}') == b"PEM"
    with pytest.raises(CertificateError, match="no certificate"):
        _certificate_from(b'{"error": "nope"}')


def test_the_inbound_listener_sends_no_session_tickets(
    ca: CertificateAuthority, tls: WorkloadTLS
) -> None:
    """Proxies never resume TLS sessions (each connection proves its identity in a full
    handshake); tickets nobody uses cost every handshake ~20 % more CPU."""
    tls.install(*ca.issue_workload(WEB))
    server, client = handshake_in_memory(tls.server, tls.client_context)
    with pytest.raises(ssl.SSLWantReadError):
        client.read(1)  # takes in whatever the server sent after the handshake
    assert client.version() == "TLSv1.3"
    assert client.session is not None and not client.session.has_ticket
    assert tls.server.num_tickets == 0
    del server
