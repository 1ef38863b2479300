"""The mesh CA bundle (`--ca`) is re-read on SIGHUP and when the file changes: a CA added is
trusted from then on, one taken out is no longer trusted, and a bundle that cannot be read is
refused with the current one kept. (Before, it was read once, at start.)"""

from __future__ import annotations

import http.client
import signal
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_harness import EchoApp, Pki, ProxyProc, https, request, wait_for

from smi.compiler.ir import MeshPolicy
from smi.pki import CertificateAuthority

pytestmark = pytest.mark.integration


def _answers(port: int, ctx: ssl.SSLContext) -> bool:
    """Whether the proxy takes the caller's TLS session (any HTTP answer, a 403 too)."""
    try:
        with https(port, ctx) as conn:
            request(conn, "GET", "/")
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected):
        return False
    return True


class Setup:
    def __init__(self, root: Path, watch_interval: str) -> None:
        self.pki, self.app = Pki(root), EchoApp("web")
        self.other = CertificateAuthority.create()
        self.bundle = root / "bundle.pem"
        self.bundle.write_bytes(self.pki.ca.cert_pem())
        cert, key = self.pki.issue("shop/web")
        policy = root / "policy.json"
        policy.write_text(MeshPolicy(revision=1).to_json())
        self.proc = ProxyProc(
            root,
            "web",
            [
                "--identity", "shop/web", "--policy", str(policy), "--ca", str(self.bundle),
                "--cert", str(cert), "--key", str(key), "--admin", "0",
                "--inbound", f"0:{self.app.port}", "--watch-interval", watch_interval,
            ],
        )  # fmt: skip
        self.proc.wait_ready()
        self.port = self.proc.inbound(self.app.port)
        # Callers with a certificate from the mesh CA, and from another CA (both trusting the
        # mesh CA, which issued the proxy's certificate).
        self.old_caller = self.pki.client("shop/front")
        self.new_caller = self.pki.client("shop/front", ca=self.other)

    def write(self, data: bytes) -> None:
        tmp = self.bundle.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(self.bundle)

    def stop(self) -> None:
        self.proc.stop()
        self.app.stop()


@pytest.fixture
def on_sighup(tmp_path: Path) -> Iterator[Setup]:
    setup = Setup(tmp_path, "60")  # no look at the files before the test is over: SIGHUP only
    yield setup
    setup.stop()


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[Setup]:
    setup = Setup(tmp_path, "0.1")
    yield setup
    setup.stop()


def test_sighup_rereads_the_mesh_ca_bundle(on_sighup: Setup) -> None:
    s = on_sighup
    assert _answers(s.port, s.old_caller) and not _answers(s.port, s.new_caller)

    s.write(s.pki.ca.cert_pem() + s.other.cert_pem())  # a CA added
    s.proc.signal(signal.SIGHUP)
    wait_for(lambda: _answers(s.port, s.new_caller), what="the added CA to be trusted")
    assert _answers(s.port, s.old_caller)

    s.write(s.other.cert_pem())  # the old one taken out
    s.proc.signal(signal.SIGHUP)
    wait_for(lambda: not _answers(s.port, s.old_caller), what="the removed CA to be refused")
    assert _answers(s.port, s.new_caller)
    wait_for(lambda: "not trusted by the new mesh CA bundle" in s.proc.log(), what="a warning")

    s.write(b"not a certificate")  # refused: the bundle in use stays
    s.proc.signal(signal.SIGHUP)
    wait_for(lambda: "keeping the current one" in s.proc.log(), what="the refusal")
    assert _answers(s.port, s.new_caller) and not _answers(s.port, s.old_caller)


def test_a_changed_mesh_ca_file_is_reread_without_a_signal(watched: Setup) -> None:
    s = watched
    assert not _answers(s.port, s.new_caller)
    s.write(s.pki.ca.cert_pem() + s.other.cert_pem())
    wait_for(lambda: _answers(s.port, s.new_caller), what="the added CA to be trusted")
    assert "reloaded: new connections trust this bundle" in s.proc.log()
