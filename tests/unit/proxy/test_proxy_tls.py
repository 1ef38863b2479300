"""proxy.tls: only a valid certificate for this identity from the mesh CA is ever installed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
    HandshakeErrors,
    WorkloadTLS,
    _certificate_from,
    handshake_error_reason,
    handshake_in_memory,
    server_context,
)
from smi import pki
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


def _not_yet_valid(ca: CertificateAuthority, seconds: float) -> tuple[bytes, bytes]:
    """A certificate for WEB valid from `seconds` from now (its notBefore is not back-dated
    by the clock skew allowance but put ahead by this much)."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(pki, "_CLOCK_SKEW", timedelta(seconds=-seconds))
        return ca.issue_workload(WEB)


def test_files_refused_are_tried_again_until_their_certificate_is_valid(
    ca: CertificateAuthority, tls: WorkloadTLS, tmp_path: Path
) -> None:
    # Before: the files were remembered as seen before the certificate was refused, and never
    # looked at again unless they changed (or SIGHUP): the proxy stayed unready for good.
    cert_file, key_file = tmp_path / "c.pem", tmp_path / "k.pem"
    for f, data in zip((cert_file, key_file), _not_yet_valid(ca, 1.5), strict=True):
        f.write_bytes(data)
    files = FileCertificates(tls, cert=cert_file, key=key_file)
    with pytest.raises(CertificateError, match="not valid now") as first:
        files.refresh(force=True)
    assert first.value.new_files
    with pytest.raises(CertificateError, match="not valid now") as again:
        files.refresh()  # tried again, the same files: not new, not counted again
    assert not again.value.new_files
    deadline = time.monotonic() + 5
    while not tls.ready and time.monotonic() < deadline:
        with contextlib.suppress(CertificateError):
            files.refresh()
        time.sleep(0.05)
    assert tls.ready
    assert tls.metrics.cert_renewals == {"rejected": 1, "installed": 1}
    assert files.refresh() is False  # taken: not read again until the files change


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


def test_the_workload_contexts_count_their_failed_handshakes(
    ca: CertificateAuthority, tls: WorkloadTLS
) -> None:
    """The listener's context, and every client context a new certificate brings, report to
    the workload's counters (`proxy.tlslayer` reads `handshake_observer`)."""
    assert tls.server.handshake_observer is tls.handshake_errors
    tls.install(*ca.issue_workload(WEB))
    first = tls.client_context
    tls.install(*ca.issue_workload(WEB))
    assert tls.client_context is not first
    for ctx in (first, tls.client_context):
        assert getattr(ctx, "handshake_observer", None) is tls.handshake_errors
    assert tls.handshake_errors.metrics is tls.metrics


def _load_into(ctx: ssl.SSLContext, tmp_path: Path, material: tuple[bytes, bytes]) -> None:
    cert, key = tmp_path / "w.crt", tmp_path / "w.key"
    cert.write_bytes(material[0])
    key.write_bytes(material[1])
    ctx.load_cert_chain(cert, key)


def _server_refusal(server: ssl.SSLContext, first_bytes: bytes) -> ssl.SSLError:
    """The error of a server-side handshake that reads `first_bytes` from its client."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = server.wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(first_bytes)
    with pytest.raises(ssl.SSLError) as caught:
        obj.do_handshake()
    return caught.value


@pytest.mark.parametrize(
    ("first_bytes", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: web\r\n\r\n", "not-tls"),
        (b"CONNECT web:80 HTTP/1.1\r\n\r\n", "not-tls"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "not-tls"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "not-tls"),
        (b"\x16\x03\x03\xff\xff" + b"\x00" * 16, "not-tls"),  # no record is that long
        (b"\x17\x03\x03\x00\x05hello", "other"),  # a TLS record, but not a handshake
    ],
)
def test_what_a_client_sent_gives_the_reason_of_its_refusal(
    ca: CertificateAuthority, tmp_path: Path, first_bytes: bytes, reason: str
) -> None:
    server = server_context(ca.cert_pem())
    _load_into(server, tmp_path, ca.issue_workload(WEB))
    assert handshake_error_reason(_server_refusal(server, first_bytes)) == reason


def test_a_client_refusing_this_workloads_certificate_is_other_not_untrusted(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    """The reasons say what was wrong with the peer; a peer's alert about this proxy's own
    certificate is `other` (with OpenSSL's name of the alert in the log line)."""
    server = server_context(ca.cert_pem())
    _load_into(server, tmp_path, ca.issue_workload(WEB))
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.load_verify_locations(cadata=CertificateAuthority.create().cert_pem().decode())
    client.maximum_version = ssl.TLSVersion.TLSv1_2  # (the server reads the alert mid-handshake)
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_side=False)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    refusal: ssl.SSLError | None = None
    for _ in range(4):
        with contextlib.suppress(ssl.SSLError):  # (the client's refusal: its alert is out)
            c.do_handshake()
        s_in.write(c_out.read())
        try:
            s.do_handshake()
        except ssl.SSLWantReadError:
            c_in.write(s_out.read())
        except ssl.SSLError as exc:
            refusal = exc
            break
    assert refusal is not None and refusal.reason == "TLSV1_ALERT_UNKNOWN_CA"
    assert handshake_error_reason(refusal) == "other"


def test_handshake_errors_are_logged_once_per_reason_every_ten_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A flood of refused callers is every one counted, and a line per direction and reason
    every 10 s at most in the log, saying how many it stands for."""
    now = [100.0]
    metrics = Metrics()
    errors = HandshakeErrors(metrics, clock=lambda: now[0])
    no_cert = ssl.SSLError(1, "peer did not return a certificate")
    no_cert.reason = "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    with caplog.at_level(logging.INFO, logger="smictl.proxy.tls"):
        for at in range(20):  # 20 in 9.5 s: one line
            now[0] = 100.0 + at / 2
            errors.handshake_failed(server_side=True, error=no_cert, peer=("10.0.0.7", 4000 + at))
        errors.handshake_failed(server_side=True, error=TimeoutError(), peer=("::1", 5000, 0, 0))
        errors.handshake_failed(server_side=False, error=TimeoutError(), peer=None)
        now[0] = 110.0
        errors.handshake_failed(server_side=True, error=no_cert, peer=("10.0.0.8", 4100))
    assert [r.getMessage() for r in caplog.records] == [
        "inbound TLS handshake from 10.0.0.7:4000 failed: no-certificate"
        " (PEER_DID_NOT_RETURN_A_CERTIFICATE)",
        "inbound TLS handshake from [::1]:5000 failed: timeout",
        "outbound TLS handshake with unknown peer failed: timeout",
        "inbound TLS handshake from 10.0.0.8:4100 failed: no-certificate"
        " (PEER_DID_NOT_RETURN_A_CERTIFICATE); 19 more since the last such line",
    ]
    assert {r.levelno for r in caplog.records} == {logging.INFO}
    assert metrics.tls_handshake_errors == {
        ("inbound", "no-certificate"): 21,
        ("inbound", "timeout"): 1,
        ("outbound", "timeout"): 1,
    }


def test_what_a_window_held_back_is_logged_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    """A burst of refused callers that then stops: its size reaches the log when the window
    ends (a timer), not only with a next failure that may never come; and at shutdown, what
    is still held is said at once."""
    now = [100.0]
    errors = HandshakeErrors(Metrics(), every=0.2, clock=lambda: now[0])

    async def burst() -> None:
        for at in range(5):
            now[0] = 100.0 + at / 100
            errors.handshake_failed(server_side=True, error=TimeoutError(), peer=("10.0.0.7", at))
        now[0] = 100.2
        await asyncio.sleep(0.4)  # the window's end
        now[0] = 100.3  # a new window, opened by the held line
        errors.handshake_failed(server_side=True, error=TimeoutError(), peer=("10.0.0.7", 9))
        errors.handshake_failed(server_side=False, error=TimeoutError(), peer=None)
        errors.handshake_failed(server_side=False, error=TimeoutError(), peer=None)
        errors.close()  # stopping: no window will end

    with caplog.at_level(logging.INFO, logger="smictl.proxy.tls"):
        asyncio.run(burst())
    assert [r.getMessage() for r in caplog.records] == [
        "inbound TLS handshake from 10.0.0.7:0 failed: timeout",
        "4 more inbound TLS handshakes failed (timeout) since the last such line",
        "outbound TLS handshake with unknown peer failed: timeout",
        "1 more inbound TLS handshakes failed (timeout) since the last such line",
        "1 more outbound TLS handshakes failed (timeout) since the last such line",
    ]


def _peer(tmp_path: Path, authority: CertificateAuthority, trusts: bytes) -> ssl.SSLContext:
    """A peer proxy's client context: a certificate from `authority`, trusting `trusts`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=trusts.decode())
    _load_into(ctx, tmp_path, authority.issue_workload(Identity("shop", "front")))
    return ctx


def _accepts(tls: WorkloadTLS, peer: ssl.SSLContext) -> bool:
    try:
        handshake_in_memory(tls.server, peer)
    except ssl.SSLError:
        return False
    return True


def test_a_new_mesh_ca_bundle_is_trusted_from_then_on(
    ca: CertificateAuthority,
    tls: WorkloadTLS,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Before: the bundle was read once, at start: a CA taken out of it stayed trusted and one
    # added was never trusted.
    tls.install(*ca.issue_workload(WEB))
    new = CertificateAuthority.create()
    old_peer = _peer(tmp_path, ca, ca.cert_pem())
    new_peer = _peer(tmp_path, new, ca.cert_pem())
    old_server, old_client = tls.server, tls.client_context
    assert _accepts(tls, old_peer) and not _accepts(tls, new_peer)

    assert tls.use_ca(ca.cert_pem() + new.cert_pem()) is True
    assert _accepts(tls, old_peer) and _accepts(tls, new_peer)
    assert tls.server is not old_server and tls.client_context is not old_client
    assert tls.use_ca(ca.cert_pem() + new.cert_pem()) is False  # the one in use

    with caplog.at_level(logging.WARNING, logger="smictl.proxy.tls"):
        assert tls.use_ca(new.cert_pem()) is True
    assert not _accepts(tls, old_peer) and _accepts(tls, new_peer)
    # This workload's own certificate (from the old CA) is kept, and said to be untrusted.
    assert "not trusted by the new mesh CA bundle" in caplog.text
    # The control plane is verified against the mesh CA here: it follows.
    trusted = tls.control_plane_context().get_ca_certs(binary_form=True)
    assert trusted == [ssl.PEM_cert_to_DER_cert(new.cert_pem().decode())]


@pytest.mark.parametrize("bundle", [b"", b"junk", b"-----BEGIN CERTIFICATE-----\nAA\n"])
def test_a_mesh_ca_bundle_that_cannot_be_read_is_refused_and_the_current_one_kept(
    ca: CertificateAuthority, tls: WorkloadTLS, tmp_path: Path, bundle: bytes
) -> None:
    tls.install(*ca.issue_workload(WEB))
    server, control_plane = tls.server, tls.control_plane_context()
    with pytest.raises(CertificateError, match="mesh CA"):
        tls.use_ca(bundle)
    assert tls.ca_pem == ca.cert_pem()
    assert tls.server is server and tls.control_plane_context() is control_plane
    assert _accepts(tls, _peer(tmp_path, ca, ca.cert_pem()))


def test_a_control_plane_ca_of_its_own_does_not_follow_the_mesh_ca(
    ca: CertificateAuthority,
) -> None:
    own = CertificateAuthority.create()
    tls = WorkloadTLS(
        identity=WEB, ca_pem=ca.cert_pem(), metrics=Metrics(), control_plane_ca_pem=own.cert_pem()
    )
    try:
        before = tls.control_plane_context()
        assert tls.use_ca(CertificateAuthority.create().cert_pem()) is True
        assert tls.control_plane_context() is before
    finally:
        tls.cleanup()
