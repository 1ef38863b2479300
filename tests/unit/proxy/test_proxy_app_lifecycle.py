"""proxy.app's lifecycle in one process: the first load, start-up, signals, reloads."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.app import Proxy
from proxy.cli import register
from proxy.config import from_args
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
    made.tls.cleanup()


class _Silent:
    """A policy source that never answers (a control plane that accepts and says nothing)."""

    async def load(self) -> None:
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
