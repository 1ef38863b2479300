"""`smictl explain --from` takes any SPIFFE ID an IdentityBinding may name, as `compile` grants
it and `access-matrix` shows it: `--from spiffe://federated.trustdomain/boundary/x` was a
usage error (SMI2006), so that source could not be asked about. The answer is the proxy's: it
reads only `spiffe://<trust domain>/ns/<ns>/sa/<sa>` from a caller's certificate, so no caller
is ever seen with such an ID, and the request is denied (`no-identity`); explain answered ALLOW
where the proxy answered 403."""

from __future__ import annotations

from pathlib import Path

import pytest
from compiler_fixtures import RunCli

MESH = """
apiVersion: access.smi-spec.io/v1alpha4
kind: IdentityBinding
metadata: {name: client, namespace: default}
spec:
  schemes:
    spiffeIdentities:
    - "cluster.local/ns/default/sa/client-a"
    - "federated.trustdomain/boundary/boundaryName/identifierType/identifier"
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: tcp, namespace: default}
spec: {matches: {ports: [8300]}}
---
apiVersion: access.smi-spec.io/v1alpha4
kind: TrafficTarget
metadata: {name: t, namespace: default}
spec:
  destination: {kind: ServiceAccount, name: server, namespace: default}
  rules: [{kind: TCPRoute, name: tcp}]
  sources: [{kind: IdentityBinding, group: access.smi-spec.io, name: client, namespace: default}]
"""
FEDERATED = "federated.trustdomain/boundary/boundaryName/identifierType/identifier"


def explain(run_cli: RunCli, tmp_path: Path, source: str) -> tuple[int, str, str]:
    path = tmp_path / "mesh.yaml"
    path.write_text(MESH, encoding="utf-8")
    return run_cli(
        "explain", "-f", str(path), "--from", source, "--to", "default/server",
        "--port", "8300", "--protocol", "tcp",
    )  # fmt: skip


@pytest.mark.parametrize("source", [f"spiffe://{FEDERATED}", FEDERATED])
def test_a_federated_source_is_asked_about(run_cli: RunCli, tmp_path: Path, source: str) -> None:
    code, out, err = explain(run_cli, tmp_path, source)
    assert code == 1, err
    assert out.startswith(f"DENY spiffe://{FEDERATED} -> default/server: tcp to port 8300")
    assert "is never a caller's identity" in out


@pytest.mark.parametrize(
    "source", ["spiffe://other.domain/ns/default/sa/client-a", "spiffe://cluster.local/boundary/x"]
)
def test_what_the_proxy_never_reads_as_a_caller_is_denied_as_it_does(
    run_cli: RunCli, tmp_path: Path, source: str
) -> None:
    """Another trust domain's ServiceAccount, a path that is no ServiceAccount: granted by a
    binding, but a certificate carrying it is no identity to the proxy (`proxy.peercert`)."""
    path = tmp_path / "mesh.yaml"
    path.write_text(MESH.replace(FEDERATED, source.removeprefix("spiffe://")), encoding="utf-8")
    code, out, _ = run_cli(
        "explain", "-f", str(path), "--from", source, "--to", "default/server",
        "--port", "8300", "--protocol", "tcp",
    )  # fmt: skip
    assert code == 1 and out.startswith(f"DENY {source} -> default/server")
    assert "is never a caller's identity" in out


def test_the_bindings_service_account_entry_is_allowed(run_cli: RunCli, tmp_path: Path) -> None:
    code, out, err = explain(run_cli, tmp_path, "default/client-a")
    assert code == 0, err
    assert out.startswith("ALLOW default/client-a -> default/server: tcp to port 8300")


def test_another_federated_source_is_denied(run_cli: RunCli, tmp_path: Path) -> None:
    code, out, _ = explain(run_cli, tmp_path, "spiffe://federated.trustdomain/boundary/other")
    assert code == 1 and out.startswith("DENY spiffe://federated.trustdomain/boundary/other")


@pytest.mark.parametrize("source", ["spiffe://Bad/x", "spiffe://td/a//b", "a/b/../c", "x"])
def test_what_is_no_spiffe_id_is_still_a_usage_error(
    run_cli: RunCli, tmp_path: Path, source: str
) -> None:
    code, _, err = explain(run_cli, tmp_path, source)
    assert code == 2 and "(SMI2006)" in err
