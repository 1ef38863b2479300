"""`smictl admit --opa-ca FILE` is checked at start-up, as the TLS client will load it: a file
that cannot verify anything is one flag error, not an SSLError per policy at evaluation (each a
denial). The remote engine takes it as its TLS trust, over REQUESTS_CA_BUNDLE."""

from __future__ import annotations

from pathlib import Path

import pytest

from smi.cli import main
from smi.errors import PolicyError
from smi.pki import CertificateAuthority
from smi.policy.remote import RemoteOPA, ca_file_problem


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.create()


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", encoding="utf-8")
    return path


def run_admit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    try:
        code = main(["admit", *args])
    except SystemExit as exc:  # argparse's usage error
        code = int(exc.code or 0)
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no such file"),
        ("dir", "is a directory, not a PEM file"),
        (b"", "not a PEM certificate (or CA bundle)"),
        (b"hello", "not a PEM certificate (or CA bundle)"),
        ("key", "not a PEM certificate (or CA bundle)"),
    ],
    ids=["missing", "directory", "empty", "text", "private-key"],
)
def test_a_file_that_verifies_nothing_is_one_flag_error(
    manifest: Path,
    ca: CertificateAuthority,
    capsys: pytest.CaptureFixture[str],
    content: bytes | str | None,
    reason: str,
) -> None:
    path = manifest.parent / "ca.pem"
    if content == "dir":
        path.mkdir()
    elif content == "key":
        path.write_bytes(ca.key_pem())
    elif isinstance(content, bytes):
        path.write_bytes(content)
    code, err = run_admit(
        capsys, "-f", str(manifest), "--opa-url", "https://127.0.0.1:1", "--opa-ca", str(path)
    )
    assert code == 2
    assert err[-1] == f"smictl admit: error: argument --opa-ca: {path}: {reason} (SMI7003)"


def test_the_ca_needs_an_https_url(
    tmp_path: Path, manifest: Path, ca: CertificateAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ca.crt"
    path.write_bytes(ca.cert_pem())
    for url in ((), ("--opa-url", "http://127.0.0.1:1")):
        code, err = run_admit(capsys, "-f", str(manifest), *url, "--opa-ca", str(path))
        assert (code, err) == (1, ["--opa-ca: needs an https --opa-url to verify (SMI7003)"])


def test_a_ca_bundle_is_accepted(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(
        CertificateAuthority.create().cert_pem() + CertificateAuthority.create().cert_pem()
    )
    assert ca_file_problem(bundle) is None


def test_the_engine_verifies_with_the_file_not_the_environment(
    tmp_path: Path, ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ca.crt"
    path.write_bytes(ca.cert_pem())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "elsewhere.pem"))
    seen: dict[str, object] = {}

    engine = RemoteOPA("https://127.0.0.1:1", ca_file=path)

    def post(url: str, **kwargs: object) -> object:
        seen.update(kwargs)
        raise OSError("stop here")

    monkeypatch.setattr(engine._client._session, "post", post)
    with pytest.raises(OSError):
        engine._post("a/violation", {})
    assert seen["verify"] == str(path)
    engine.close()


def test_the_engine_refuses_a_bad_file_itself(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as refused:
        RemoteOPA("https://127.0.0.1:1", ca_file=tmp_path / "missing.pem")
    assert refused.value.diagnostics[0].format() == (
        f"{tmp_path / 'missing.pem'}: no such file (SMI7003)"
    )
