"""`smictl apply` and `delete` against a real `smictl serve` while an endpoint lease has
lapsed: they failed with "the store could not write: cannot start a transaction within a
transaction; nothing was applied (SMI7002)" (the lease check in admission nested a write in
the apply's transaction), and the lapsed endpoint stayed (acceptance audit)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from control_plane_harness import Server

pytestmark = pytest.mark.integration

TTL = 2.0
SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {{name: {}, namespace: shop}}\n"


def test_apply_and_delete_while_a_lease_has_lapsed_are_written_and_it_expires(
    fresh_server: Server, tmp_path: Path
) -> None:
    server = fresh_server.start(workers=1, env={"SMI_WEBHOOK_ENDPOINT_TTL_SECONDS": str(TTL)})
    web, api = tmp_path / "web.yaml", tmp_path / "api.yaml"
    web.write_text(SERVICE.format("web"))
    api.write_text(SERVICE.format("api"))
    done = server.smictl("apply", "-f", str(web))
    assert done.returncode == 0, done.stderr
    token = server.smictl("certs", "token", "--identity", "shop/web", "--dir", str(server.certs))
    assert token.returncode == 0, token.stderr
    s = server.workload_session()
    body = {"address": "127.0.0.1", "port": 15006, "services": ["web"]}
    r = s.post(
        f"{server.url}/mesh/v1/endpoints",
        json=body,
        headers={"Authorization": f"Bearer {token.stdout.strip()}"},
    )
    assert r.status_code == 200, r.text
    # The lease lapses TTL after this registration; nothing asks the server anything meanwhile,
    # so the apply below is the first request to check it (as in the audit's repro).
    lapsed = time.monotonic() + TTL * 1.5
    while time.monotonic() < lapsed:
        time.sleep(0.1)

    applied = server.smictl("apply", "-f", str(api))
    assert applied.returncode == 0, applied.stderr
    assert "Service shop/api created" in applied.stdout
    policy = s.get(f"{server.url}/mesh/v1/policy").json()
    assert policy["services"]["shop/web"]["endpoints"] == []  # and the lease expired

    # Again with a delete (a fresh lapsed lease: registered again, left to lapse).
    r = s.post(
        f"{server.url}/mesh/v1/endpoints",
        json=body,
        headers={"Authorization": f"Bearer {token.stdout.strip()}"},
    )
    assert r.status_code == 200, r.text
    lapsed = time.monotonic() + TTL * 1.5
    while time.monotonic() < lapsed:
        time.sleep(0.1)
    deleted = server.smictl("delete", "-f", str(api))
    assert deleted.returncode == 0, deleted.stderr
    assert "Service shop/api deleted" in deleted.stdout
    policy = s.get(f"{server.url}/mesh/v1/policy").json()
    assert policy["services"]["shop/web"]["endpoints"] == []
