"""smi.digest: the same SHA-256 as hashlib's, without loading OpenSSL's digests in the proxy."""

from __future__ import annotations

import hashlib
import subprocess
import sys

from smi.digest import _BUILTIN, sha256_hex


def test_both_implementations_give_hashlibs_digest() -> None:
    for data in (b"", b"abc", bytes(range(256)) * 1000):
        expected = hashlib.sha256(data).hexdigest()
        assert sha256_hex(data) == expected
        assert _BUILTIN(data).hexdigest() == expected


def test_the_proxy_loads_and_hashes_a_policy_without_hashlib() -> None:
    # (In a fresh interpreter: hashlib's OpenSSL set-up is ~0.55 MB of the proxy's 30 MB.)
    code = (
        "import sys, proxy.app, proxy.cli\n"
        "from smi.compiler.ir import MeshPolicy\n"
        "from smi.compiler.ir.index import PolicyIndex\n"
        "policy = MeshPolicy.from_json(MeshPolicy(revision=1).to_json())\n"
        "PolicyIndex.build(policy)\n"
        "assert policy.hash.startswith('sha256:'), policy.hash\n"
        "print(sorted(m for m in ('hashlib', '_hashlib') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
