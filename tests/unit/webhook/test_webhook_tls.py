"""The serving context picks up a renewed certificate and survives a half-written one."""

from __future__ import annotations

import contextlib
import os
import ssl
from pathlib import Path

from smi.pki import CertificateAuthority
from webhook.tls import ServingContext


def write_pair(directory: Path, ca: CertificateAuthority, name: str) -> tuple[Path, Path]:
    cert, key = ca.issue_server(dns_names=[name])
    (directory / "tls.key").write_bytes(key)
    (directory / "tls.crt").write_bytes(cert)
    return directory / "tls.crt", directory / "tls.key"


def served_name(context: ssl.SSLContext, ca: CertificateAuthority) -> str:
    """Handshake in memory and return the server certificate's common name."""
    client = ssl.create_default_context(cadata=ca.cert_pem().decode())
    client.check_hostname = False
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    cli = client.wrap_bio(c_in, c_out, server_hostname="x")
    srv = context.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (cli, srv):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    cert = cli.getpeercert()
    assert cert is not None
    return str(dict(x[0] for x in cert["subject"])["commonName"])


def bump_mtime(*paths: Path) -> None:
    for p in paths:
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def test_renewed_certificate_is_served_on_the_next_connection(tmp_path: Path) -> None:
    ca = CertificateAuthority.create()
    cert, key = write_pair(tmp_path, ca, "old.example")
    serving = ServingContext(cert_file=cert, key_file=key, check_interval=0.0)
    assert served_name(serving.get(), ca) == "old.example"
    write_pair(tmp_path, ca, "new.example")
    bump_mtime(cert, key)
    assert served_name(serving.get(), ca) == "new.example"


def test_a_mismatched_pair_keeps_the_old_context(tmp_path: Path) -> None:
    ca = CertificateAuthority.create()
    cert, key = write_pair(tmp_path, ca, "old.example")
    serving = ServingContext(cert_file=cert, key_file=key, check_interval=0.0)
    before = serving.get()
    _, other_key = ca.issue_server(dns_names=["x"])
    key.write_bytes(other_key)  # the key landed, the certificate not yet
    bump_mtime(key)
    assert serving.get() is before
    assert served_name(serving.get(), ca) == "old.example"
