"""`proxy.keygen`: the CSR mode's key and CSR come from a child process, so the sidecar never
holds `cryptography` (~10 MB resident); a child that fails, hangs or writes nonsense gives a
CertificateError-worthy KeygenError, never a hang or a key it did not make."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from proxy import keygen
from proxy.keygen import KeygenError, make_key_and_csr
from smi.identity import Identity

WEB = Identity("shop", "web", "mesh.example")


def _check_pair(key_pem: bytes, csr_pem: bytes, identity: Identity) -> None:
    key = serialization.load_pem_private_key(key_pem, password=None)
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.is_signature_valid
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [identity.spiffe_id]


def test_the_child_writes_a_key_and_a_csr_for_the_identity(repo_root: Path) -> None:
    out = subprocess.run(
        keygen.command(WEB), cwd=repo_root, capture_output=True, check=True, timeout=60
    )
    doc = json.loads(out.stdout)
    _check_pair(doc["key"].encode(), doc["csr"].encode(), WEB)


@pytest.mark.parametrize("argv", [[], ["not an identity"], ["a/b", "c/d"]])
def test_the_child_refuses_a_bad_command_line_in_one_line(argv: list[str], repo_root: Path) -> None:
    cmd = [sys.executable, "-P", "-m", "proxy.keygen", *argv]
    out = subprocess.run(
        cmd, cwd=repo_root, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1


async def test_the_proxy_gets_a_fresh_key_each_time_without_loading_cryptography() -> None:
    first = await make_key_and_csr(WEB)
    second = await make_key_and_csr(WEB)
    _check_pair(*first, WEB)
    assert first[0] != second[0]


def test_the_child_runs_this_copy_of_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Started from a directory that is on this process's path only as the working directory
    (`python -m proxy` in an unpacked tree), the child, which runs with `-P`, must still find
    this `proxy`, and not another one installed elsewhere."""
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    env = keygen.child_environment()
    here = os.path.dirname(os.path.dirname(os.path.abspath(keygen.__file__)))
    assert env["PYTHONPATH"].split(os.pathsep) == [here, str(tmp_path)]
    monkeypatch.delenv("PYTHONPATH")
    assert keygen.child_environment()["PYTHONPATH"] == here


def _child(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    monkeypatch.setattr(keygen, "command", lambda identity: [sys.executable, "-c", code])


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("import sys; print('boom', file=sys.stderr); sys.exit(3)", "exited 3: boom"),
        ("print('not json')", "wrote no key and CSR"),
        ("print('{\"key\": 1}')", "wrote no key and CSR"),
        ('print(\'{"key": "k", "csr": "c"}\')', "no PEM key and CSR"),
        ("print('x' * 100000)", "more than a key and a CSR"),
    ],
)
async def test_a_failing_child_is_an_error_naming_what_went_wrong(
    monkeypatch: pytest.MonkeyPatch, code: str, message: str
) -> None:
    _child(monkeypatch, code)
    with pytest.raises(KeygenError, match=message):
        await make_key_and_csr(WEB)


async def test_a_hung_child_is_killed_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    _child(monkeypatch, "import time; time.sleep(60)")
    monkeypatch.setattr(keygen, "TIMEOUT", 0.5)
    started = time.monotonic()
    with pytest.raises(KeygenError, match=r"no key within 0\.5s"):
        await make_key_and_csr(WEB)
    assert time.monotonic() - started < 5


async def test_with_no_child_to_start_the_key_is_made_in_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(keygen, "command", lambda identity: ["/nonexistent/python", "-m", "x"])
    _check_pair(*await make_key_and_csr(WEB), WEB)
    monkeypatch.setattr(keygen, "command", lambda identity: ["", "-m", "x"])
    _check_pair(*await make_key_and_csr(WEB), WEB)
    assert [r.message.split(":")[0] for r in caplog.records] == [
        "cannot start proxy.keygen ([Errno 2] No such file or directory",
        "no interpreter to run proxy.keygen",
    ]
