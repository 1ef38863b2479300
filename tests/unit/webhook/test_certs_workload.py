"""`smictl certs workload`: a workload certificate for a proxy that reads its certificate from
files (`smictl proxy --cert --key`). There was no command for it: `certs issue` makes serving
certificates (DNS and IP names only), so file mode needed the control plane or Python."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from proxy.metrics import Metrics
from proxy.tls import CertificateError, WorkloadTLS
from smi.cli import main
from smi.identity import Identity

Capsys = pytest.CaptureFixture[str]


def run(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def ca_dir(tmp_path: Path, capsys: Capsys) -> Path:
    d = tmp_path / "ca"
    assert main(["certs", "init", "--dir", str(d)]) == 0
    capsys.readouterr()
    return d


def _proxy_tls(ca_dir: Path, identity: Identity) -> WorkloadTLS:
    ca_pem = (ca_dir / "ca.crt").read_bytes()
    return WorkloadTLS(identity=identity, ca_pem=ca_pem, metrics=Metrics())


def test_the_proxy_takes_the_certificate_for_its_identity_and_no_other(
    ca_dir: Path, tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(
        capsys, "certs", "workload", "--identity", "shop/web", "--dir", str(ca_dir)
    )
    assert (code, err) == (0, "")
    assert out == "wrote shop-web.crt, shop-web.key for spiffe://cluster.local/ns/shop/sa/web\n"
    cert, key = (tmp_path / "shop-web.crt").read_bytes(), (tmp_path / "shop-web.key").read_bytes()
    assert os.stat(tmp_path / "shop-web.key").st_mode & 0o077 == 0
    assert _proxy_tls(ca_dir, Identity("shop", "web")).install(cert, key)
    with pytest.raises(CertificateError):
        _proxy_tls(ca_dir, Identity("shop", "api")).install(cert, key)


def test_outputs_trust_domain_and_lifetime_are_flags(
    ca_dir: Path, tmp_path: Path, capsys: Capsys
) -> None:
    cert_out, key_out = tmp_path / "w.crt", tmp_path / "w.key"
    code, out, _ = run(
        capsys, "certs", "workload", "--identity", "shop/web", "--dir", str(ca_dir),
        "--trust-domain", "example.org", "--hours", "2",
        "--cert-out", str(cert_out), "--key-out", str(key_out),
    )  # fmt: skip
    assert code == 0 and "spiffe://example.org/ns/shop/sa/web" in out
    tls = _proxy_tls(ca_dir, Identity("shop", "web", trust_domain="example.org"))
    assert tls.install(cert_out.read_bytes(), key_out.read_bytes())
    assert tls.not_after is not None
    import time

    assert 7000 < tls.not_after - time.time() <= 7200 + 60


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        # Malformed flag values are usage errors (2), named by the identity code: they were
        # `(SMI7003)` "certificate problem", exit 1.
        (["--identity", "web"], 2, "argument --identity: 'web' is not an identity"),
        (["--identity", "shop/web", "--hours", "0"], 2, "argument --hours"),
        (["--identity", "shop/web", "--trust-domain", "bad domain"], 2,
         "argument --trust-domain: invalid trust domain 'bad domain' (SMI2006)"),
        (["--identity", "shop/web", "--cert-out", "x", "--key-out", "x"], 1, "two files"),
    ],
)  # fmt: skip
def test_a_bad_value_is_one_line_and_nothing_is_written(
    ca_dir: Path, tmp_path: Path, capsys: Capsys, *,
    monkeypatch: pytest.MonkeyPatch, argv: list[str], code: int, message: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    got, out, err = run(capsys, "certs", "workload", "--dir", str(ca_dir), *argv)
    assert (got, out) == (code, "")
    lines = err.splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err
    if "--identity" in message:
        assert lines[0].endswith("(SMI2006)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca"]


def test_a_symlink_at_the_staging_name_is_not_followed(
    ca_dir: Path, tmp_path: Path, capsys: Capsys
) -> None:
    """The key was staged in `<key>.tmp`, opened without O_EXCL or O_NOFOLLOW: in a directory
    others can write to, a symlink made there first had smictl overwrite the file it named."""
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("important\n")
    (shared / "web.key.tmp").symlink_to(victim)
    code, _, err = run(
        capsys, "certs", "workload", "--identity", "shop/web", "--dir", str(ca_dir),
        "--cert-out", str(shared / "web.crt"), "--key-out", str(shared / "web.key"),
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert victim.read_text() == "important\n"
    assert b"PRIVATE KEY" in (shared / "web.key").read_bytes()


def test_a_staging_file_made_and_held_by_someone_else_never_receives_the_key(
    ca_dir: Path, tmp_path: Path, capsys: Capsys
) -> None:
    """A `<key>.tmp` created first and kept open by another user received the key (O_TRUNC
    on the existing file), readable through their descriptor after the rename."""
    shared = tmp_path / "shared"
    shared.mkdir()
    planted = shared / "web.key.tmp"
    planted.write_bytes(b"")
    planted.chmod(0o666)
    with planted.open("rb") as held:
        code, _, err = run(
            capsys, "certs", "workload", "--identity", "shop/web", "--dir", str(ca_dir),
            "--cert-out", str(shared / "web.crt"), "--key-out", str(shared / "web.key"),
        )  # fmt: skip
        assert (code, err) == (0, "")
        assert held.read() == b""
    key = shared / "web.key"
    assert b"PRIVATE KEY" in key.read_bytes() and key.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in shared.iterdir()) == ["web.crt", "web.key", "web.key.tmp"]
