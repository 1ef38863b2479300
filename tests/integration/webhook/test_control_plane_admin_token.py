"""The local store API of a real `smictl serve` against callers without the admin token, and
`smictl apply/get/delete` finding the token without ceremony.

The audit's attack, over TLS to a real server: anyone who could connect rewrote the mesh's
authorization (a TrafficTarget granting `shop/evil` access to `shop/db`, or `web-to-db`
deleted). Now that is 401, the store's revision does not move, and the server's log has a
decision line for it; `smictl` run by the same user finds `admin.token` beside the CA it
verifies the server with, and without it says where the token is expected, in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from control_plane_harness import SMICTL, Server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

APPLY = "/apis/smictl.io/v1/apply"
DELETE = "/apis/smictl.io/v1/delete"
OBJECTS = "/apis/smictl.io/v1/objects"


def grant(source: str) -> dict[str, Any]:
    return {
        "apiVersion": "access.smi-spec.io/v1alpha3",
        "kind": "TrafficTarget",
        "metadata": {"name": "web-to-db", "namespace": "shop"},
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": "db", "namespace": "shop"},
            "sources": [{"kind": "ServiceAccount", "name": source, "namespace": "shop"}],
            "rules": [{"kind": "TCPRoute", "name": "db-port"}],
        },
    }


def smictl(server: Server, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """smictl with only the environment given (no SMICTL_CA_FILE unless given)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SMICTL_")}
    return subprocess.run([*SMICTL, *args, "--server", server.url], capture_output=True,
                          text=True, env={**base, **env}, timeout=60, check=False)  # fmt: skip


def test_without_the_token_nothing_changes_and_the_refusal_is_logged(server: Server) -> None:
    admin = server.admin_session()
    first = admin.post(f"{server.url}{APPLY}", json={"items": [grant("web")]}, timeout=30)
    assert first.status_code == 200, first.text
    revision = admin.get(f"{server.url}{OBJECTS}", timeout=30).json()["revision"]

    anyone = server.session()
    ref = {"kind": "TrafficTarget", "name": "web-to-db", "namespace": "shop"}
    for headers in ({}, {"Authorization": "Bearer " + "A" * 43}):
        attempts = [
            anyone.post(f"{server.url}{APPLY}", json={"items": [grant("evil")]}, headers=headers),
            anyone.post(f"{server.url}{DELETE}", json={"items": [ref]}, headers=headers),
            anyone.get(f"{server.url}{OBJECTS}", headers=headers),
        ]
        for r in attempts:
            assert r.status_code == 401, r.text
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert "\n" not in r.json()["error"]

    listed = admin.get(f"{server.url}{OBJECTS}", timeout=30).json()
    assert listed["revision"] == revision  # nothing changed
    [target] = [i for i in listed["items"] if i["metadata"]["name"] == "web-to-db"]
    assert [s["name"] for s in target["spec"]["sources"]] == ["web"]

    token = (server.certs / "admin.token").read_text().strip()
    log = server.log.read_text()
    assert token not in log
    lines = [json.loads(x) for x in log.splitlines() if x.startswith('{"ts"')]
    decisions = [x for x in lines if x.get("log") == "smictl.decision" and "api" in x]
    assert any(d["user"] == "local-admin" and d["decision"] == "allowed" for d in decisions)
    refused = [d for d in decisions if d["decision"] == "unauthenticated"]
    assert {d["operation"] for d in refused} == {"apply", "delete", "list"}
    metrics = anyone.get(f"{server.url}/metrics", timeout=30).text
    assert 'smictl_local_api_requests_total{operation="apply",result="unauthenticated"}' in metrics


def test_smictl_finds_the_token_beside_the_ca_and_says_where_it_is_missing(
    server: Server, tmp_path: Path
) -> None:
    manifest = tmp_path / "grant.yaml"
    manifest.write_text(yaml.safe_dump(grant("api")))
    ok = smictl(server, "apply", "-f", str(manifest), "--ca", str(server.ca))
    assert ok.returncode == 0, ok.stderr
    assert "TrafficTarget shop/web-to-db" in ok.stdout

    # The same CA, copied where no admin.token is: the request is refused, in one line.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(server.ca, alone / "ca.crt")
    for argv in (("apply", "-f", str(manifest)), ("get", "traffictargets", "-A"),
                 ("delete", "traffictarget", "web-to-db", "-n", "shop")):  # fmt: skip
        r = smictl(server, *argv, "--ca", str(alone / "ca.crt"))
        assert r.returncode == 1, r.stdout
        [line] = r.stderr.splitlines()
        assert line.endswith("(SMI7002)") and "Traceback" not in r.stderr
        assert f"{alone / 'admin.token'} (beside the CA file): no such file" in line

    # SMICTL_ADMIN_TOKEN_FILE names it; a wrong token is refused and named.
    token_file = str(server.certs / "admin.token")
    with_env = smictl(server, "get", "traffictargets", "-n", "shop", "--ca", str(alone / "ca.crt"),
                      SMICTL_ADMIN_TOKEN_FILE=token_file)  # fmt: skip
    assert with_env.returncode == 0, with_env.stderr
    assert "web-to-db" in with_env.stdout
    wrong = tmp_path / "wrong.token"
    wrong.write_text("B" * 43)
    r = smictl(server, "get", "traffictargets", "-A", "--ca", str(server.ca),
               SMICTL_ADMIN_TOKEN_FILE=str(wrong))  # fmt: skip
    [line] = r.stderr.splitlines()
    assert r.returncode == 1 and "is not this control plane's" in line and "B" * 43 not in line

    # SMICTL_CA_FILE works as --ca does (the state directory's layout).
    by_env = smictl(server, "get", "traffictargets", "-n", "shop", SMICTL_CA_FILE=str(server.ca))
    assert by_env.returncode == 0, by_env.stderr
