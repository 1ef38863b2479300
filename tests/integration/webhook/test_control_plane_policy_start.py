"""A real `smictl serve`: what its policies need to start (compiling Rego, parameters), and
being the remote OPA of `smictl admit --opa-url` over TLS with `--opa-ca`.

Seen before: a policy that does not compile started gunicorn, wrote the address file, and every
worker died with a 50-line traceback (exit 3); the webhook's policies always saw
`data.parameters` as `{}`; and `--opa-url https://...` against serve's own Data API failed
with an SSLError, for want of a way to give the mesh CA."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from control_plane_harness import SMICTL, Server

BROKEN = """# METADATA
# title: syn
# custom:
#   code: B0001
#   enforcement: deny
package b.syn

import rego.v1

violation contains msg if {
\tmsg := "x"
\tx := [1, 2
}
"""
TARGET = """apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: metrics, namespace: shop, labels: {owner: me}}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  sources: [{kind: ServiceAccount, name: prom, namespace: monitoring}]
  rules: [{kind: TCPRoute, name: all}]
"""
UNTRUSTED = "source monitoring/prom is in namespace monitoring"


def clean_env() -> dict[str, str]:
    """The environment without what would change TLS verification or the server's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMI_WEBHOOK_")}
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    return env


def broken_policies(root: Path) -> Path:
    (root / "x" / "syn").mkdir(parents=True)
    (root / "x" / "syn" / "policy.rego").write_text(BROKEN, encoding="utf-8")
    return root / "x" / "syn" / "policy.rego"


def test_serve_with_a_broken_policy_fails_in_one_line_before_listening(tmp_path: Path) -> None:
    policy = broken_policies(tmp_path / "pol")
    address = tmp_path / "address"
    done = subprocess.run(
        [*SMICTL, "serve", "--certs-dir", str(tmp_path / "certs"), "--store",
         str(tmp_path / "store.db"), "--bind", "127.0.0.1:0", "--address-file", str(address),
         "--policies", str(tmp_path / "pol"), "--no-shipped-policies", "--workers", "1"],
        capture_output=True, text=True, timeout=60, env=clean_env(), check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"{policy}:12: this is unclosed (SMI5001)"]
    assert not address.exists()


def test_a_worker_that_cannot_build_the_app_logs_one_line_and_halts(tmp_path: Path) -> None:
    """gunicorn started without smictl's preflight (or a policy broken after it)."""
    policy = broken_policies(tmp_path / "pol")
    env = {
        **clean_env(),
        "SMI_WEBHOOK_BIND": "127.0.0.1:0",
        "SMI_WEBHOOK_WORKERS": "1",
        "SMI_WEBHOOK_POLICIES": str(tmp_path / "pol"),
        "SMI_WEBHOOK_SHIPPED_POLICIES": "false",
        "SMI_WEBHOOK_STORE": str(tmp_path / "store.db"),
    }
    conf = Path(__file__).resolve().parents[3] / "webhook" / "gunicorn.conf.py"
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(conf), "webhook:create_app()"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr  # APP_LOAD_ERROR: "App failed to load."
    assert "Traceback" not in done.stderr
    assert "Worker failed to boot" not in done.stderr
    ours = [line for line in done.stderr.splitlines() if '"boot_failed"' in line]
    assert len(ours) == 1
    assert f"{policy}:12: this is unclosed (SMI5001)" in ours[0]


def admit(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    manifest = tmp_path / "target.yaml"
    manifest.write_text(TARGET, encoding="utf-8")
    return subprocess.run(
        [*SMICTL, "admit", "-f", str(manifest), *args],
        capture_output=True, text=True, timeout=60, env=clean_env(), check=False,
    )  # fmt: skip


def test_admit_asks_serve_over_tls_with_its_ca(server: Server, tmp_path: Path) -> None:
    unverified = admit("--opa-url", server.url, tmp_path=tmp_path)
    assert unverified.returncode == 1
    assert "certificate verify failed" in unverified.stdout
    assert UNTRUSTED not in unverified.stdout

    # The Data API answers callers that prove who they are: without a token, every policy
    # is a failed evaluation (a denial, fail closed), saying why.
    anonymous = admit("--opa-url", server.url, "--opa-ca", str(server.ca), tmp_path=tmp_path)
    assert anonymous.returncode == 1
    assert "HTTP 401" in anonymous.stdout or "HTTP 401" in anonymous.stderr
    assert UNTRUSTED not in anonymous.stdout

    verified = admit(
        "--opa-url", server.url, "--opa-ca", str(server.ca),
        "--opa-token-file", str(server.certs / "admin.token"), tmp_path=tmp_path,
    )  # fmt: skip
    assert verified.returncode == 1  # denied by the policy, as evaluated by the server
    assert UNTRUSTED in verified.stdout
    assert "certificate verify failed" not in verified.stdout
    assert "policy evaluation failed" not in verified.stdout


def test_a_ca_that_did_not_sign_the_server_is_refused(server: Server, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run([*SMICTL, "certs", "init", "--dir", str(other)], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    done = admit("--opa-url", server.url, "--opa-ca", str(other / "ca.crt"), tmp_path=tmp_path)
    assert done.returncode == 1 and "certificate verify failed" in done.stdout


@pytest.fixture
def trusting_server(tmp_path: Path) -> Server:
    return Server(tmp_path / "server")


def test_the_server_decides_with_its_parameters_as_ci_does(
    trusting_server: Server, tmp_path: Path
) -> None:
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text("allowedSourceNamespaces:\n  '*': [monitoring]\n", encoding="utf-8")
    (tmp_path / "server").mkdir()
    trusting_server.start(workers=1, extra=("--parameters", str(parameters)))
    try:
        ci = admit("--parameters", str(parameters), tmp_path=tmp_path)
        token = tmp_path / "workload.token"  # a workload's token: the Data API answers it too
        token.write_text(trusting_server.workload_token("ci/admit") + "\n", encoding="ascii")
        cluster = admit(
            "--opa-url", trusting_server.url, "--opa-ca", str(trusting_server.ca),
            "--opa-token-file", str(token), tmp_path=tmp_path,
        )  # fmt: skip
    finally:
        trusting_server.stop()
    assert ci.returncode == 0, ci.stdout + ci.stderr
    assert cluster.returncode == 0, cluster.stdout + cluster.stderr
    assert UNTRUSTED not in cluster.stdout
