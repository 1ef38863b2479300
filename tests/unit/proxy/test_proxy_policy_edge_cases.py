"""Edge cases around the request path: where the policy comes from, and the certificate.

- a control plane that answers a long poll at once (a 304 not held, or the same policy again)
  is not asked again in a tight loop;
- a response cut short mid-body is an error, not a short body;
- an encrypted key is refused like any other bad key (it neither prompts on a terminal nor
  escapes as an `OSError` that ends the certificate loop);
- a regex that is not RE2 is reported when its policy is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import pytest
from control_plane_fakes import control_plane, http_response
from cryptography.hazmat.primitives import serialization

from proxy.httpclient import HttpClientError, request
from proxy.metrics import Metrics
from proxy.policy import ControlPlaneSource, FileSource, PolicyHolder, PolicySourceError
from proxy.tls import CertificateError, WorkloadTLS
from smi.compiler.ir import AuthzRule, HttpMatch, MeshPolicy
from smi.identity import Identity
from smi.pki import CertificateAuthority

WEB = "spiffe://cluster.local/ns/shop/sa/web"
FRONT = "spiffe://cluster.local/ns/shop/sa/front"


ETAG = 'etag: "e"\r\n'


def _policy(revision: int, path: str = "/api/") -> MeshPolicy:
    match = HttpMatch(origin="shop/HTTPRouteGroup/r#m", path_regex=path)
    rule = AuthzRule(origin="shop/TrafficTarget/t", sources=(FRONT,), http=(match,))
    return MeshPolicy(revision=revision, destinations={WEB: (rule,)})


async def _polls_in(source: ControlPlaneSource, seconds: float, seen: list[bytes]) -> int:
    task = asyncio.ensure_future(source.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return len(seen)


@pytest.mark.parametrize("status", [304, 200])
async def test_a_poll_answered_at_once_with_nothing_new_is_not_repeated_in_a_tight_loop(
    status: int,
) -> None:
    holder = PolicyHolder(Metrics())
    raw = _policy(1).to_json().encode()
    await holder.install(raw)
    answer = http_response(status, raw if status == 200 else b"", headers=ETAG)
    async with control_plane(lambda _n: answer) as (url, seen):
        source = ControlPlaneSource(url, holder, poll_timeout=1.0, min_interval=0.5)
        source.etag = '"e"'
        polls = await _polls_in(source, 1.2, seen)
    assert 1 <= polls <= 4, polls  # without a floor: hundreds
    assert holder.policy is not None and holder.policy.revision == 1


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_response_cut_short_mid_body_is_an_error(chunked: bool) -> None:
    raw = _policy(1).to_json().encode()
    if chunked:
        cut = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\n" + raw[:16] + b"\r\n"
    else:
        cut = http_response(200, raw[:20], headers=ETAG, length=len(raw))
    async with control_plane(lambda _n: cut) as (url, _seen):
        with pytest.raises(HttpClientError, match="before the end of the response body"):
            await request("GET", url, deadline=5.0)


def test_an_encrypted_key_is_refused_and_the_current_certificate_kept() -> None:
    ca = CertificateAuthority.create()
    web = Identity("shop", "web")
    tls = WorkloadTLS(identity=web, ca_pem=ca.cert_pem(), metrics=Metrics())
    try:
        good_cert, good_key = ca.issue_workload(web)
        tls.install(good_cert, good_key)
        cert, key = ca.issue_workload(web)
        encrypted = serialization.load_pem_private_key(key, None).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        with pytest.raises(CertificateError):
            tls.install(cert, encrypted)
        assert tls.material is not None and tls.material.cert_pem == good_cert
        assert tls.metrics.cert_renewals.get("rejected") == 1
    finally:
        tls.cleanup()


async def test_a_regex_that_is_not_re2_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    holder = PolicyHolder(Metrics())
    with caplog.at_level(logging.WARNING, logger="smictl.proxy.policy"):
        assert await holder.install(_policy(1, "((").to_json().encode()) is True
    assert any("'(('" in r.getMessage() and "never match" in r.getMessage() for r in caplog.records)


async def test_a_policy_file_that_could_not_be_read_is_read_again_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chmod fixes a file without touching mtime, size or inode: the watch must not have
    # marked the failed read as seen.
    path = tmp_path / "policy.json"
    path.write_text(_policy(3).to_json())
    holder = PolicyHolder(Metrics())
    source = FileSource(path, holder)

    def unreadable(self: object) -> bytes:
        raise PolicySourceError(f"{path}: Permission denied")

    with monkeypatch.context() as m:
        m.setattr("proxy.policy._Watched.read", unreadable)
        with pytest.raises(PolicySourceError):
            await source.load()
    await source.load()  # the same file, now readable
    assert holder.policy is not None and holder.policy.revision == 3
