"""The certificate loop in CSR mode: a control plane whose certificates are due for renewal the
moment they arrive must not be asked again in a tight loop (a new key and CSR each time)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace

from proxy.app import Proxy
from proxy.metrics import Metrics
from proxy.tls import CsrCertificates, WorkloadTLS
from smi.identity import Identity
from smi.pki import CertificateAuthority

WEB = Identity("shop", "web")


@contextlib.asynccontextmanager
async def _csr_server(ca: CertificateAuthority, posts: list[float]) -> AsyncIterator[str]:
    """Signs every CSR for 60 s: the CA backdates the start by its clock-skew allowance
    (5 minutes), so two thirds of the lifetime have passed when the certificate is issued."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            csr = json.loads(await reader.readexactly(length))["csr"].encode()
            posts.append(asyncio.get_running_loop().time())
            cert = ca.sign_workload_csr(csr, identity=WEB, ttl=timedelta(seconds=60))
            body = json.dumps({"certificate": cert.decode()}).encode()
            writer.write(
                b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/mesh/v1/certificates"
    finally:
        server.close()


async def test_a_certificate_due_on_arrival_is_not_renewed_in_a_tight_loop() -> None:
    ca = CertificateAuthority.create()
    tls = WorkloadTLS(identity=WEB, ca_pem=ca.cert_pem(), metrics=Metrics())
    posts: list[float] = []
    try:
        async with _csr_server(ca, posts) as url:
            certs = CsrCertificates(tls, url=url, token="t", ssl_context=None)
            app = SimpleNamespace(
                certs=certs,
                tls=tls,
                config=SimpleNamespace(watch_interval=1.0),
                _refresh_certs=lambda force=False: certs.refresh(force=force),
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.5):
                    await Proxy._cert_loop(app)  # type: ignore[arg-type]
        assert tls.ready  # the certificate was installed: it is valid, only due
        # Before: one POST as fast as the control plane answered (hundreds in 2.5 s).
        # Now: at 0.5 s (not ready yet), then backing off 1 s, 2 s.
        assert 1 <= len(posts) <= 3, len(posts)
    finally:
        tls.cleanup()
