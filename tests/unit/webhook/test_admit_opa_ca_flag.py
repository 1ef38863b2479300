"""`smictl admit --opa-ca FILE` is checked at start-up, as the TLS client will load it: a file
that cannot verify anything is one flag error, not an SSLError per policy at evaluation (each a
denial). The remote engine takes it as its TLS trust, over REQUESTS_CA_BUNDLE. So is
`--opa-token-file`, the bearer token the server is asked with (sent over https only)."""

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


# --- --opa-token-file: the bearer token an https --opa-url is asked with (OPA's token
# authentication; `smictl serve`'s Data API answers workloads and the admin token) ---------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file or directory"),
        ("", "a token is one word of printable ASCII characters"),
        ("two words\n", "a token is one word of printable ASCII characters"),
        ("t\x01k\n", "a token is one word of printable ASCII characters"),
    ],
    ids=["missing", "empty", "two-words", "control"],
)
def test_a_file_that_holds_no_token_is_one_flag_error(
    tmp_path: Path,
    manifest: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    reason: str,
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content, encoding="ascii")
    code, err = run_admit(
        capsys, "-f", str(manifest), "--opa-url", "https://127.0.0.1:1",
        "--opa-token-file", str(path),
    )  # fmt: skip
    assert code == 2
    assert err == [f"smictl admit: error: argument --opa-token-file: {path}: {reason} (SMI7003)"]


def test_a_token_is_never_sent_in_clear(
    tmp_path: Path, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "token"
    path.write_text("smi1.abc.def\n", encoding="ascii")
    for url in ((), ("--opa-url", "http://127.0.0.1:1")):
        code, err = run_admit(capsys, "-f", str(manifest), *url, "--opa-token-file", str(path))
        assert (code, err) == (
            1,
            ["--opa-token-file: needs an https --opa-url (a token is not sent in clear) (SMI7003)"],
        )


def test_the_variable_names_the_file_when_there_is_a_remote(
    tmp_path: Path,
    manifest: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SMICTL_OPA_TOKEN_FILE, set once for a CI job: used with --opa-url, checked like the
    flag; a run on the embedded engine has nothing to send it to and ignores it."""
    monkeypatch.setenv("SMICTL_OPA_TOKEN_FILE", str(tmp_path / "absent"))
    code, err = run_admit(capsys, "-f", str(manifest))
    assert code == 0, err
    code, err = run_admit(capsys, "-f", str(manifest), "--opa-url", "https://127.0.0.1:1")
    assert code == 1
    assert err == [f"--opa-token-file: {tmp_path / 'absent'}: No such file or directory (SMI7003)"]


def test_a_token_from_a_pipe_is_read_once(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--opa-token-file <(cat tok)`: a pipe can be read once. The flag's type reads it and
    keeps the token; reading it again found it empty ("a token is one word...")."""
    import os

    r, w = os.pipe()
    os.write(w, b"smi1.abc.def\n")
    os.close(w)
    try:
        code, err = run_admit(
            capsys, "-f", str(manifest), "--opa-url", "https://127.0.0.1:1",
            "--opa-token-file", f"/dev/fd/{r}",
        )  # fmt: skip
    finally:
        os.close(r)
    assert code != 2 and not any("--opa-token-file" in line for line in err), err
