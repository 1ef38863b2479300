"""This workload's certificate: TLS contexts for both listeners, loading and rotating them.

The inbound server context requires a client certificate signed by the mesh CA. The outbound
client context presents this workload's certificate and verifies the peer against the mesh CA
(host names are not checked: workload certificates name a SPIFFE identity, which
`proxy.upstream` compares with the endpoint's instead).

Rotation keeps open connections: the server context is updated in place (`load_cert_chain` on a
live context affects only handshakes that start afterwards; established connections keep the
certificate they were set up with), and a fresh client context replaces the old one for new
upstream connections. A new mesh CA bundle (`--ca` re-read) is used the same way: new
contexts for the handshakes that start afterwards, open connections left alone. A candidate
certificate is checked first (matches its key, issued by the
mesh CA, names this identity, not expired); a bad one is refused and the current one stays.

Certificates come from files (re-read when they change, or on SIGHUP) or from the control
plane's CSR endpoint (`POST /mesh/v1/certificates`), renewed at two thirds of their lifetime.

A candidate is checked by OpenSSL itself, the way a peer will check it: an in-memory TLS
handshake in which it is served to a `CERT_REQUIRED` client that trusts only the mesh CA
(chain, signature, validity now, usable for TLS, key possession), and the identity is read
from the verified certificate (`proxy.peercert`). So this module needs no X.509 parser, and
the proxy never imports `cryptography`: the key and CSR for the control plane are made by a
child process (`proxy.keygen`).

Both contexts are `MeshContext`s, which name a `HandshakeErrors`: `proxy.tlslayer` tells it of
every handshake that fails (a caller with no certificate, one from another CA, an expired
one, a client that does not speak TLS; a peer proxy whose certificate does not verify), which
it counts in `tls_handshake_errors_total{direction,reason}` and logs at most once per
direction and reason every 10 s. The reason is one of a closed set, read from OpenSSL's error
(`handshake_error_reason`): nothing the peer wrote reaches a label or the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from proxy.metrics import Metrics
from proxy.peercert import identity_in, is_ca
from proxy.token import BearerToken, bearer
from smi.identity import Identity

if TYPE_CHECKING:
    from proxy.tlslayer import HandshakeObserver

log = logging.getLogger("smictl.proxy.tls")


class CertificateError(Exception):
    """A certificate or key cannot be used (unreadable, wrong identity, expired, wrong CA)."""

    # Files written since the last refusal were refused: worth a log line even when the reason
    # is the last one's (a refusal repeated at every watch tick is logged once).
    new_files = False


# Renew two thirds into the lifetime (smi.pki.renewal_time's rule, on the decoded dates).
_RENEW_AT = 2 / 3
_HANDSHAKE_STEPS = 8  # an in-memory TLS 1.3 handshake takes 2 or 3


@dataclass(frozen=True, slots=True)
class Material:
    cert_pem: bytes
    key_pem: bytes
    der: bytes  # the leaf certificate, to tell whether a reload changed anything
    not_before: float  # Unix time (seconds): `datetime` is not loaded for two dates
    not_after: float


class MeshContext(ssl.SSLContext):
    """One of the proxy's own contexts: an `ssl.SSLContext` that names who hears of its
    failed handshakes (read by `proxy.tlslayer`, per failed connection only)."""

    handshake_observer: HandshakeObserver | None = None


def server_context(ca_pem: bytes, *, observer: HandshakeObserver | None = None) -> MeshContext:
    ctx = MeshContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.handshake_observer = observer
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    # No TLS 1.3 session tickets: proxies never resume a session (every connection proves its
    # identity with a full handshake), and OpenSSL's two tickets per connection made each
    # handshake ~20 % dearer (measured in memory: 1.7 -> 1.37 ms for both ends), CPU that a
    # single-threaded proxy takes from the requests queued behind it.
    ctx.num_tickets = 0
    ctx.options |= ssl.OP_NO_RENEGOTIATION  # (see client_context)
    ctx.load_verify_locations(cadata=ca_pem.decode())
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def client_context(ca_pem: bytes, *, observer: HandshakeObserver | None = None) -> MeshContext:
    ctx = MeshContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.handshake_observer = observer
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    # TLS 1.2 renegotiation, refused (TLS 1.3 has none): mid-connection, a write would wait for
    # the peer's handshake (proxy.tlslayer aborts such a connection), and a peer that
    # renegotiates over and over spends this proxy's CPU, not its own.
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    ctx.load_verify_locations(cadata=ca_pem.decode())
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class WorkloadTLS:
    """The current certificate of `identity` and the contexts built from it."""

    def __init__(
        self,
        *,
        identity: Identity,
        ca_pem: bytes,
        metrics: Metrics,
        control_plane_ca_pem: bytes | None = None,
    ) -> None:
        self.identity = identity
        self.ca_pem = ca_pem
        self.metrics = metrics
        self.handshake_errors = HandshakeErrors(metrics)
        # The control plane's own CA, if one was given: else it is verified against the mesh
        # CA, and its context follows the mesh CA when that is reloaded (`use_ca`).
        self._control_plane_ca_pem = control_plane_ca_pem
        try:
            # Checked now, not at the first call: a bad one is a start-up error.
            self._control_plane = ssl.create_default_context(
                cadata=(control_plane_ca_pem or ca_pem).decode("ascii")
            )
        except (ssl.SSLError, ValueError) as exc:
            where = "control plane CA" if control_plane_ca_pem else "mesh CA"
            raise CertificateError(f"{where}: cannot read certificate: {exc}") from exc
        # The inbound listeners' context: read for every connection accepted, so that a new
        # one (`use_ca`) takes over for the handshakes that start afterwards.
        self.server = self._server_context(ca_pem)
        self._client: ssl.SSLContext | None = None
        self.material: Material | None = None
        self._dir = _private_dir("smictl-proxy-")

    @property
    def ready(self) -> bool:
        return self.material is not None

    @property
    def client_context(self) -> ssl.SSLContext:
        if self._client is None:
            raise CertificateError("no workload certificate loaded yet")
        return self._client

    @property
    def not_after(self) -> float | None:
        """When the certificate in use expires (Unix time)."""
        return None if self.material is None else self.material.not_after

    def control_plane_context(self) -> ssl.SSLContext:
        """For calls to the control plane: its serving certificate names its host (checked)
        and is signed by the control plane CA given to the proxy, else by the mesh CA (as when
        `smictl certs init` made one CA for both). The Helm chart keeps a serving CA of its
        own, which the injector hands to the proxy (SMI_PROXY_CONTROL_PLANE_CA_PEM)."""
        return self._control_plane

    def _server_context(self, ca_pem: bytes) -> MeshContext:
        try:
            return server_context(ca_pem, observer=self.handshake_errors)
        except (ssl.SSLError, ValueError) as exc:
            raise CertificateError(f"mesh CA: cannot read certificate: {exc}") from exc

    def use_ca(self, ca_pem: bytes) -> bool:
        """Trust the mesh CA bundle `ca_pem` from now on; False if it is the one in use.

        A context's trust store can be added to but not taken from, so new server and client
        contexts (and the control plane's, when it follows the mesh CA) are built with the
        current certificate and replace the old ones: new connections use them, open ones
        keep the contexts they were set up with, as with a certificate rotation. A bundle that
        cannot be read raises CertificateError and the current one stays."""
        if ca_pem == self.ca_pem:
            return False
        server = self._server_context(ca_pem)
        control_plane = self._control_plane
        if self._control_plane_ca_pem is None:
            try:
                control_plane = ssl.create_default_context(cadata=ca_pem.decode("ascii"))
            except (ssl.SSLError, ValueError) as exc:
                raise CertificateError(f"mesh CA: cannot read certificate: {exc}") from exc
        client = None
        if self.material is not None:
            client = client_context(ca_pem, observer=self.handshake_errors)
            pair = self.material.cert_pem, self.material.key_pem
            try:
                cert_file, key_file = self._write_pair(*pair)
                server.load_cert_chain(cert_file, key_file, password=b"")
                client.load_cert_chain(cert_file, key_file, password=b"")
            except OSError as exc:  # ssl.SSLError is one
                raise CertificateError(f"cannot use the certificate with it: {exc}") from exc
            self._warn_if_untrusted(ca_pem, cert_file, key_file)
        self.ca_pem, self.server, self._control_plane = ca_pem, server, control_plane
        if client is not None:
            self._client = client
        return True

    def _warn_if_untrusted(self, ca_pem: bytes, cert_file: str, key_file: str) -> None:
        """The certificate in use is kept under a new bundle (peers may still trust it), but
        one the bundle would refuse is said: peers with the same bundle refuse this workload."""
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        probe.load_cert_chain(cert_file, key_file, password=b"")
        try:
            _verified_by(probe, client_context(ca_pem))
        except ssl.SSLError as exc:
            log.warning(
                "the certificate in use is not trusted by the new mesh CA bundle (%s): peers "
                "with this bundle refuse it until it is replaced",
                exc.verify_message if isinstance(exc, ssl.SSLCertVerificationError) else exc,
            )

    def _write_pair(self, cert_pem: bytes, key_pem: bytes) -> tuple[str, str]:
        """The pair in this process's private files (OpenSSL loads a chain from files)."""
        cert_file = os.path.join(self._dir, "cert.pem")
        key_file = os.path.join(self._dir, "key.pem")
        _write_private(cert_file, cert_pem)
        _write_private(key_file, key_pem)
        return cert_file, key_file

    def install(self, cert_pem: bytes, key_pem: bytes, *, count: bool = True) -> bool:
        """Check and use a new certificate; False (and the old one kept) if it is the same.
        `count=False`: a refusal is not counted (the same files tried again)."""
        der = _leaf_der(cert_pem)
        if self.material is not None and der == self.material.der:
            return False
        client = client_context(self.ca_pem, observer=self.handshake_errors)
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            cert_file, key_file = self._write_pair(cert_pem, key_pem)
            # password=b"": an encrypted key is refused, never prompted for on a terminal.
            client.load_cert_chain(cert_file, key_file, password=b"")
            probe.load_cert_chain(cert_file, key_file, password=b"")
        except OSError as exc:  # ssl.SSLError is one
            if count:
                self.metrics.cert_renewal("rejected")
            raise CertificateError(f"certificate and key do not match: {exc}") from exc
        decoded = self._check(probe, count=count)
        self.server.load_cert_chain(cert_file, key_file, password=b"")
        not_after = _cert_time(decoded["notAfter"])
        self._client = client
        self.material = Material(
            cert_pem, key_pem, der, _cert_time(decoded["notBefore"]), not_after
        )
        self.metrics.cert_expiry = not_after
        self.metrics.cert_renewal("installed")
        log.info("certificate for %s installed, expires %s", self.identity, iso_time(not_after))
        return True

    def _check(self, candidate: ssl.SSLContext, *, count: bool = True) -> dict[str, Any]:
        """The decoded certificate of `candidate` (a server context holding it), as a peer
        trusting only the mesh CA sees it; CertificateError if that peer refuses it or it
        names another identity."""
        problem = None
        try:
            decoded, der = _verified_by(candidate, client_context(self.ca_pem))
        except ssl.SSLCertVerificationError as exc:
            problem = _verify_problem(exc)
            decoded, der = {}, b""
        except ssl.SSLError as exc:
            problem = f"certificate refused in a TLS handshake: {exc}"
            decoded, der = {}, b""
        if problem is None and is_ca(der):
            # Peers read no identity from a CA certificate (proxy.peercert): refuse it here
            # rather than serve with a certificate every peer would treat as anonymous.
            problem = "certificate is a CA certificate (basicConstraints CA:TRUE), not a workload's"
        if problem is None and identity_in(decoded) != self.identity:
            problem = f"certificate names {identity_in(decoded)}, not {self.identity}"
        if problem is not None:
            if count:
                self.metrics.cert_renewal("rejected")
            raise CertificateError(problem)
        return decoded

    def next_renewal(self, *, jitter: float = 0.05) -> float:
        """Seconds until this certificate should be renewed (two thirds of its lifetime)."""
        if self.material is None:
            return 0.0
        start, end = self.material.not_before, self.material.not_after
        import random  # only in the CSR mode (see proxy.routing: memory)

        drawn = random.uniform(-jitter, jitter)  # noqa: S311 - spreading renewals, not secrecy
        at = start + (end - start) * (_RENEW_AT + max(-1 / 3, min(1 / 3 - 1e-6, drawn)))
        return max(0.0, at - time.time())

    def cleanup(self) -> None:
        self.handshake_errors.close()
        for name in ("cert.pem", "key.pem"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self._dir, name))
        os.rmdir(self._dir)


class FileCertificates:
    """Certificate and key files written by someone else (a volume, `smictl certs issue`).

    Files that were refused are tried again at every look, not only once they change: a
    certificate that is not valid yet (written ahead of its notBefore) becomes valid with no
    change to the files, and one from a CA the bundle did not hold may be trusted after the CA
    is reloaded. The refusal of the same files is counted once (`count`) and marked as not
    new, so that the caller logs it once."""

    def __init__(
        self, tls: WorkloadTLS, *, cert: str | os.PathLike[str], key: str | os.PathLike[str]
    ) -> None:
        self.tls, self.cert, self.key = tls, os.fspath(cert), os.fspath(key)
        self._sig: tuple[float, float] | None = None  # of the files taken (installed or same)
        self._refused: tuple[float, float] | None = None  # of the files last refused

    def refresh(self, *, force: bool = False) -> bool:
        try:
            sig = (os.stat(self.cert).st_mtime, os.stat(self.key).st_mtime)
            if sig == self._sig and not force:
                return False
            cert_pem, key_pem = read_file(self.cert), read_file(self.key)
        except OSError as exc:
            raise CertificateError(f"cannot read certificate files: {exc}") from exc
        again = sig == self._refused and not force
        try:
            changed = self.tls.install(cert_pem, key_pem, count=not again)
        except CertificateError as exc:
            exc.new_files = sig != self._refused
            self._refused = sig
            raise
        self._sig, self._refused = sig, None
        return changed


class CsrCertificates:
    """Certificates signed by the control plane for a fresh key each time.

    Request: `POST <url>` with JSON `{"csr": <PEM>}` and `Authorization: Bearer <token>` (the
    token proves the identity; the CSR must name exactly that identity); response: 200/201
    with JSON `{"certificate": <PEM>, ...}` (a bare PEM body is accepted too)."""

    def __init__(
        self,
        tls: WorkloadTLS,
        *,
        url: str,
        token: str | BearerToken,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.tls, self.url, self.ssl_context = tls, url, ssl_context
        self.token = bearer(token)  # read from its file for every CSR (proxy.token)

    async def refresh(self, *, force: bool = False) -> bool:
        # Imported on first use: only this mode makes calls to the control plane.
        from proxy.httpclient import HttpClientError, request
        from proxy.keygen import KeygenError, make_key_and_csr

        try:
            key_pem, csr = await make_key_and_csr(self.tls.identity)
        except KeygenError as exc:
            raise CertificateError(f"cannot make a key: {exc}") from exc
        body = json.dumps({"csr": csr.decode()}).encode()
        headers = {"content-type": "application/json", "authorization": f"Bearer {self.token()}"}
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
        return self.tls.install(_certificate_from(resp.body), key_pem)


def _certificate_from(body: bytes) -> bytes:
    if body.lstrip().startswith(b"-----BEGIN"):
        return body
    try:
        doc = json.loads(body)
        return str(doc.get("certificate") or doc["cert"]).encode()
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise CertificateError("control plane answer holds no certificate") from exc


_PEM_END = "-----END CERTIFICATE-----"


def _leaf_der(cert_pem: bytes) -> bytes:
    """The first certificate of a PEM bundle, DER-encoded."""
    text = cert_pem.decode("ascii", "replace")
    end = text.find(_PEM_END)
    try:
        return ssl.PEM_cert_to_DER_cert(text[: end + len(_PEM_END)] if end >= 0 else text)
    except ValueError as exc:  # no PEM markers, or not base64 between them
        raise CertificateError(f"cannot read certificate: {exc}") from exc


def _verified_by(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[dict[str, Any], bytes]:
    """Run a TLS handshake between the two contexts in memory; the server's certificate as the
    client verified it, decoded and DER (SSLCertVerificationError when it did not)."""
    _, c = handshake_in_memory(server, client)
    cert = c.getpeercert()
    if not cert:
        raise ssl.SSLError("the in-memory handshake did not complete")
    return cert, c.getpeercert(binary_form=True) or b""


def handshake_in_memory(
    server: ssl.SSLContext, client: ssl.SSLContext, bios: list[ssl.MemoryBIO] | None = None
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """(server side, client side) after a TLS handshake run between two contexts in memory;
    ssl.SSLError from whichever side refused, or when it does not complete. `bios` receives the
    client's in/out and the server's in/out."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    if bios is not None:
        bios += (c_in, c_out, s_in, s_out)
    c = client.wrap_bio(c_in, c_out, server_side=False)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {c: False, s: False}
    for _ in range(_HANDSHAKE_STEPS):
        for end, out, peer_in in ((c, c_out, s_in), (s, s_out, c_in)):
            if not done[end]:
                try:
                    end.do_handshake()
                    done[end] = True
                except ssl.SSLWantReadError:
                    pass
            if out.pending:
                peer_in.write(out.read())
        if done[c] and done[s]:
            return s, c
    raise ssl.SSLError("the in-memory handshake did not complete")


# OpenSSL X509_V_ERR_* codes with their own explanation.
_X509_NOT_YET_VALID = 9
_X509_EXPIRED = 10
_X509_INVALID_PURPOSE = 26  # not for TLS servers (extended key usage)


def _verify_problem(exc: ssl.SSLCertVerificationError) -> str:
    code = exc.verify_code
    if code in (_X509_NOT_YET_VALID, _X509_EXPIRED):
        return f"certificate is not valid now ({exc.verify_message})"
    if code == _X509_INVALID_PURPOSE:
        return f"certificate is not usable for TLS ({exc.verify_message})"
    return f"certificate is not issued by the mesh CA ({exc.verify_message})"


# tls_handshake_errors_total's reasons (a closed set).
NO_CERTIFICATE: Final = "no-certificate"
UNTRUSTED_CERTIFICATE: Final = "untrusted-certificate"
EXPIRED_CERTIFICATE: Final = "expired-certificate"
NOT_TLS: Final = "not-tls"
TIMEOUT: Final = "timeout"
OTHER: Final = "other"
# OpenSSL's reasons for a first record that is not TLS: a plaintext HTTP request (or CONNECT),
# bytes whose version field is not TLS's (SSH, HTTP/2's preface, noise), a length no record
# has, an SSLv2-format hello.
_NOT_TLS_REASONS = frozenset(
    {
        "HTTP_REQUEST",
        "HTTPS_PROXY_REQUEST",
        "WRONG_VERSION_NUMBER",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LENGTH_MISMATCH",
        "UNKNOWN_PROTOCOL",
    }
)
LOG_EVERY = 10.0  # seconds between two log lines of one direction and reason


def handshake_error_reason(error: BaseException) -> str:
    """Why a handshake failed, as one of the closed set above. This side's view: a peer that
    refused this proxy's certificate (its alert) or spoke an old TLS version is `other`."""
    if isinstance(error, TimeoutError):
        return TIMEOUT
    if isinstance(error, ssl.SSLCertVerificationError):
        if error.verify_code in (_X509_NOT_YET_VALID, _X509_EXPIRED):
            return EXPIRED_CERTIFICATE
        return UNTRUSTED_CERTIFICATE
    if isinstance(error, ssl.SSLError):
        if error.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return NO_CERTIFICATE
        if error.reason in _NOT_TLS_REASONS:
            return NOT_TLS
    return OTHER


class HandshakeErrors:
    """Failed handshakes of the proxy's contexts (`proxy.tlslayer.HandshakeObserver`):
    counted by direction and reason, and logged at info level at most once per direction and
    reason every `every` seconds, with how many were not logged since the last such line, so
    a flood of them cannot fill the log. Per failed connection only, never per request.

    What a window holds back is logged when the window ends (a timer of the running loop),
    not only with the next failure of that kind: after a burst that then stops, the log would
    otherwise stand at its first line, and the burst's size only be in the counter."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        every: float = LOG_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics, self.every, self.clock = metrics, every, clock
        self._logged: dict[tuple[str, str], float] = {}  # when its last line was written
        self._held: dict[tuple[str, str], int] = {}  # failures not logged since
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}  # the held ones' line

    def handshake_failed(self, *, server_side: bool, error: BaseException, peer: Any) -> None:
        direction = "inbound" if server_side else "outbound"
        reason = handshake_error_reason(error)
        self.metrics.tls_handshake_error(direction, reason)
        key, now = (direction, reason), self.clock()
        last = self._logged.get(key)
        if last is not None and now - last < self.every:
            self._held[key] = self._held.get(key, 0) + 1
            if key not in self._timers:
                self._schedule(key, last + self.every - now)
            return
        self._logged[key] = now
        held = self._held.pop(key, 0)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        log.info(
            "%s TLS handshake %s %s failed: %s%s%s",
            direction,
            "from" if server_side else "with",
            _address(peer),
            reason,
            _openssl_reason(error),
            f"; {held} more since the last such line" if held else "",
        )

    def _schedule(self, key: tuple[str, str], delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # (called outside a loop: the next failure's line says them)
            return
        self._timers[key] = loop.call_later(max(delay, 0.0), self._log_held, key)

    def _log_held(self, key: tuple[str, str]) -> None:
        """The window of `key` ended with failures held back: one line for them, and a new
        window from now (so the lines stay at most one per `every` seconds)."""
        self._timers.pop(key, None)
        held = self._held.pop(key, 0)
        if not held:
            return
        self._logged[key] = self.clock()
        direction, reason = key
        log.info(
            "%d more %s TLS handshakes failed (%s) since the last such line",
            held,
            direction,
            reason,
        )

    def close(self) -> None:
        """Says what is still held back, now (the proxy is stopping: no window will end)."""
        for key in list(self._timers):
            self._timers[key].cancel()
            self._log_held(key)


def _address(peer: Any) -> str:
    """`host:port` (`[host]:port` for IPv6) of a socket address, or `unknown peer`."""
    if not isinstance(peer, tuple) or len(peer) < 2:
        return "unknown peer"
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _openssl_reason(error: BaseException) -> str:
    """OpenSSL's words for the error, e.g. ` (certificate has expired)` or
    ` (TLSV1_ALERT_UNKNOWN_CA)`: its text for a verification code, else its name for the
    error (an alert from the peer is named by its code), never anything the peer wrote."""
    if isinstance(error, ssl.SSLCertVerificationError):
        text = error.verify_message
    elif isinstance(error, ssl.SSLError):
        text = error.reason
    else:
        return ""
    if isinstance(text, str) and text.isascii() and text.isprintable() and len(text) <= 80:
        return f" ({text})"
    return ""


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _cert_time(text: str) -> float:
    """A decoded certificate's time (`'Nov  3 23:08:46 2026 GMT'`, OpenSSL's fixed format), as
    Unix time. (`ssl.cert_time_to_seconds` would load `_strptime` and `calendar`, `datetime`
    its own module: 0.3 MB resident for two dates per certificate.)"""
    try:
        month, day, clock, year, zone = text.split()
        hour, minute, second = (int(part) for part in clock.split(":"))
        m, d, y = _MONTHS.index(month) + 1, int(day), int(year)
        if zone != "GMT" or not (1 <= d <= 31 and hour < 24 and minute < 60 and second < 61):
            raise ValueError(text)
    except ValueError as exc:
        raise CertificateError(f"cannot read the certificate's validity: {text!r}") from exc
    return float(_days_from_civil(y, m, d) * 86400 + hour * 3600 + minute * 60 + second)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def iso_time(seconds: float) -> str:
    """Unix time as ISO 8601 UTC, the way `datetime.isoformat()` writes an aware UTC time."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))


def read_file(path: str) -> bytes:
    """A certificate or key file's bytes (os, not pathlib: see proxy.native)."""
    with open(path, "rb") as f:
        return f.read()


def _private_dir(prefix: str) -> str:
    """A new directory only this user can enter, in $TMPDIR (or /tmp): `tempfile.mkdtemp`
    without importing `tempfile`, which brings `shutil` and with it `bz2`, `lzma` and `zlib`
    (measured: 0.2 MB of a 30 MB budget) into a process that needs none of them."""
    base = os.environ.get("TMPDIR") or "/tmp"  # noqa: S108 - mode 0700, unique name
    for _ in range(100):
        path = os.path.join(base, f"{prefix}{os.urandom(6).hex()}")
        try:
            os.mkdir(path, mode=0o700)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no unused directory name in {base}")


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
