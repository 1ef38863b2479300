"""proxy.app's lifecycle in one process: the first load, start-up, signals, reloads."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from proxy.app import Proxy
from proxy.cli import register
from proxy.config import from_args
from smi import pki
from smi.compiler.ir import MeshPolicy
from smi.identity import Identity
from smi.pki import CertificateAuthority

WEB = Identity("shop", "web")


def _config(tmp_path: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    argv = ["--identity", "shop/web", "--ca", str(tmp_path / "ca.pem"),
            "--policy", str(tmp_path / "p.json"),
            "--cert", str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem"),
            "--inbound", "0:8080", "--outbound", "0", "--admin", "0",
            "--watch-interval", "0.05", *extra]  # fmt: skip
    return parser.parse_args(["proxy", *argv])


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    authority = CertificateAuthority.create()
    (tmp_path / "ca.pem").write_bytes(authority.cert_pem())
    cert, key = authority.issue_workload(WEB)
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    (tmp_path / "p.json").write_text(MeshPolicy(revision=1).to_json())
    return authority


@pytest.fixture
def proxy(tmp_path: Path, ca: CertificateAuthority) -> Iterator[Proxy]:
    made = Proxy(from_args(_config(tmp_path)))
    yield made
    with contextlib.suppress(FileNotFoundError):  # (shutdown did it)
        made.tls.cleanup()


class _Silent:
    """A policy source that never answers (a control plane that accepts and says nothing)."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()

    async def load(self) -> None:
        self.asked.set()
        await asyncio.Event().wait()


async def test_a_first_policy_load_that_times_out_says_so(
    proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: `exc or "timed out"` took the (truthy) TimeoutError, which prints as nothing:
    # "policy:  (not ready until one loads)".
    proxy.policy_source = _Silent()  # type: ignore[assignment]
    proxy.first_load_timeout = 0.05
    with caplog.at_level(logging.ERROR, logger="smictl.proxy"):
        await proxy._first_load()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["policy: timed out after 0.05s (not ready until one loads)"]
    assert proxy.tls.ready and proxy.holder.index is None


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_certificate_file_not_yet_valid_is_taken_once_it_is(
    tmp_path: Path, ca: CertificateAuthority, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: refused at the first load, the files were never looked at again (until they
    # changed, or SIGHUP), and the proxy stayed unready.
    with pytest.MonkeyPatch.context() as m:
        m.setattr(pki, "_CLOCK_SKEW", timedelta(seconds=-1.5))  # notBefore 1.5 s from now
        cert, key = ca.issue_workload(WEB)
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    with caplog.at_level(logging.INFO, logger="smictl.proxy"):
        await proxy._first_load()
        assert not proxy.tls.ready
        loop = asyncio.ensure_future(proxy._cert_loop())  # every 0.05 s
        try:
            for _ in range(100):
                if proxy.tls.ready:
                    break
                await asyncio.sleep(0.05)
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
    assert proxy.tls.ready and proxy.tls.material is not None
    assert proxy.tls.material.cert_pem == cert
    # Tried about 30 times before it was valid: said once.
    assert len(_errors(caplog)) == 1
    assert "certificate is not valid now" in _errors(caplog)[0]
    assert proxy.metrics.cert_renewals == {"rejected": 1, "installed": 1}


async def test_a_stop_during_start_up_cancels_it_and_opens_no_listener(
    proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: SIGTERM was only looked at once the first load had timed out (a CSR's 15 s and a
    # policy's 5 s, whatever --drain-timeout said), and then the listeners were opened anyway.
    silent = proxy.policy_source = _Silent()  # type: ignore[assignment]
    loop = asyncio.get_running_loop()
    with caplog.at_level(logging.INFO, logger="smictl.proxy"):
        serving = asyncio.ensure_future(proxy.serve())
        await asyncio.wait_for(silent.asked.wait(), 5)
        asked_to_stop = loop.time()
        proxy.stopping.set()  # what SIGTERM does
        await asyncio.wait_for(serving, 5)
    assert loop.time() - asked_to_stop < 1.0
    assert proxy.listeners.servers == [] and proxy.listeners.admin is None
    assert proxy.listeners.ports == {}
    messages = [r.getMessage() for r in caplog.records]
    assert "stopped during start-up: no listener opened" in messages
    assert not any("listening" in m for m in messages)


def test_the_control_plane_clients_follow_a_reloaded_mesh_ca(tmp_path: Path) -> None:
    # With no --control-plane-ca, the control plane is verified against the mesh CA: its
    # policy polls and CSRs (made with contexts handed out at start) follow a new bundle too.
    from proxy.policy import ControlPlaneSource
    from proxy.tls import CsrCertificates

    (tmp_path / "ca.pem").write_bytes(CertificateAuthority.create().cert_pem())
    (tmp_path / "token").write_text("t0k\n")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    argv = ["proxy", "--identity", "shop/web", "--ca", str(tmp_path / "ca.pem"),
            "--policy", "https://cp.example:8443/mesh/v1/policy",
            "--token-file", str(tmp_path / "token"), "--outbound", "0"]  # fmt: skip
    proxy = Proxy(from_args(parser.parse_args(argv)))
    try:
        assert isinstance(proxy.policy_source, ControlPlaneSource)
        assert isinstance(proxy.certs, CsrCertificates)
        before = proxy.tls.control_plane_context()
        assert proxy._reload_ca(force=True) is False  # the same bundle
        new = CertificateAuthority.create()
        (tmp_path / "ca.pem").write_bytes(new.cert_pem())
        assert proxy._reload_ca(force=True) is True
        ctx = proxy.tls.control_plane_context()
        assert ctx is not before
        assert proxy.policy_source.ssl_context is ctx and proxy.certs.ssl_context is ctx
        (tmp_path / "ca.pem").unlink()
        assert proxy._reload_ca(force=True) is False  # unreadable: the one in use stays
        assert proxy.tls.control_plane_context() is ctx and proxy.tls.ca_pem == new.cert_pem()
    finally:
        proxy.tls.cleanup()


def test_the_ports_file_is_not_written_through_a_planted_symlink(tmp_path: Path) -> None:
    """The ports file was staged in a predictable `FILE.tmp`, followed if it was a symlink
    another user had put there: the proxy overwrote the file it pointed to."""
    from proxy.app import _write_atomically

    victim = tmp_path / "victim"
    victim.write_text("important\n")
    (tmp_path / "ports.json.tmp").symlink_to(victim)
    _write_atomically(str(tmp_path / "ports.json"), '{"inbound": 15006}')
    assert victim.read_text() == "important\n"
    assert (tmp_path / "ports.json").read_text() == '{"inbound": 15006}'
