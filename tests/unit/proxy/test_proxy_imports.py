"""What the sidecar process imports: its resident memory is budgeted (30 MB idle, issue 5), and
a few standard modules cost a lot of it. Checked in a fresh interpreter without `site` (whose
editable-install finder would import pathlib itself) on the path a deployed proxy runs."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

# Module -> why the proxy must not load it (measured resident cost on these machines).
HEAVY = {
    "cryptography": "~10 MB with its own OpenSSL: keys are made by proxy.keygen's child",
    "hashlib": "~0.55 MB of OpenSSL set-up: smi.digest uses the built-in SHA-256",
    "pathlib": "~0.2 MB, and it imports urllib.parse: the proxy uses os.path",
    "urllib.parse": "~0.2 MB, and it imports ipaddress: proxy.urls uses httptools' parser",
    "ipaddress": "~0.5 MB",
    "tempfile": "brings shutil, bz2, lzma and zlib (proxy.tls makes its own private directory)",
    "shutil": "brings bz2, lzma and zlib",
}
# Every module of the proxy a running sidecar can import, in every mode (file or control
# plane, certificates from files or by CSR, registration, access log).
MODULES = [
    "proxy.app",
    "proxy.cli",
    "proxy.httpclient",
    "proxy.keygen",
    "proxy.registration",
    "proxy.accesslog",
    "proxy.urls",
]


@pytest.mark.parametrize("pure", ["", "1"])
def test_the_sidecar_loads_none_of_the_heavy_modules(repo_root: Path, pure: str) -> None:
    code = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(repo_root)!r}, {sysconfig.get_paths()['purelib']!r}]\n"
        f"import {', '.join(MODULES)}\n"
        "from proxy.cli import register\n"
        f"print(json.dumps(sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules)))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "SMICTL_PURE_PYTHON": pure}
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    assert loaded == [], {m: HEAVY[m] for m in loaded}


def test_the_smictl_entry_point_adds_no_error_module_to_the_sidecar(repo_root: Path) -> None:
    """The injected sidecar runs `smictl proxy` (smi.cli.main): its last line of defence must
    not import smi.errors (~0.3 MiB of the 30 MiB budget, measured 29.88 -> 29.56 MiB idle)
    just to name an exception the proxy never raises. A config error ends the run here, after
    the command ran, so the handler has been passed through."""
    code = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(repo_root)!r}, {sysconfig.get_paths()['purelib']!r}]\n"
        "from smi.cli import main\n"
        "code = main(['proxy', '--identity', 'shop/web', '--policy', 'p.json', '--ca', 'x',\n"
        "             '--inbound', 'nope'])\n"
        "print(json.dumps([code, 'smi.errors' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SMICTL_PURE_PYTHON": "1"},
        timeout=60,
        check=False,
    )
    assert json.loads(out.stdout) == [2, False], out.stderr
    assert out.stderr == "smictl proxy: --inbound: 'nope' is not PORT:APP_PORT (SMI7101)\n"


def test_an_smi_error_is_still_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The handler still knows an SMIError when the command imported smi.errors."""
    from smi.cli import main

    token = tmp_path / "token"
    token.write_text("smi1.a.b\n")
    manifest = tmp_path / "c.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    assert main(["admit", "-f", str(manifest), "--opa-token-file", str(token)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "--opa-token-file: needs an https --opa-url (a token is not sent in clear) (SMI7003)"
    ]
