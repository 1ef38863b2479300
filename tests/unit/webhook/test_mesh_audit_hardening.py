"""What proxies talk to, after the acceptance audit of `smictl serve`:

- an apply or delete while an endpoint lease has lapsed is written (it failed with 503: the
  lease check inside admission nested a write in the apply's transaction), and the lease
  still expires; a request served while another process writes does not wait for its lock;
- endpoint registration takes IP literals and DNS-1123 service names only;
- the mesh routes' body limit is named as it is, not as SMI_WEBHOOK_MAX_REVIEW_BYTES;
- `If-None-Match: *` is a 304 (RFC 9110), at once;
- unauthenticated certificate requests are counted and logged, without the token.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import pytest
from flask.testing import FlaskClient
from mesh_reader import reader

from smi.identity import Identity
from smi.pki import generate_key, make_csr
from smi.store.base import Change, ObjectKey, Outcome, Snapshot
from webhook.auth import BootstrapTokens, token_key
from webhook.policies import admit_batch


def tokens(client: FlaskClient, **kwargs: Any) -> BootstrapTokens:
    plane = client.application.extensions["smictl"]
    return BootstrapTokens(key=token_key(plane.ca.key), trust_domain="cluster.local", **kwargs)


def bearer(client: FlaskClient, identity: str = "shop/web") -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens(client).issue(Identity.parse(identity))}"}


def service(name: str, ns: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"port": 8080}]},
    }


def endpoints(client: FlaskClient) -> list[Any]:
    services = client.get("/mesh/v1/policy", headers=reader(client)).get_json()["services"]
    return list(services["shop/web"]["endpoints"])


@pytest.fixture
def lapsed(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """shop/web registered once, then the clocks moved past start-up's grace and two TTLs:
    its lease has lapsed and the next lease check drops it."""
    plane = client.application.extensions["smictl"]
    plane.store.apply([service("web")])
    register = {"address": "127.0.0.1", "port": 15006, "services": ["web"]}
    r = client.post("/mesh/v1/endpoints", headers=bearer(client), json=register)
    assert r.status_code == 200
    clock = {"mono": time.monotonic(), "wall": time.time()}
    monkeypatch.setattr("webhook.plane.time.monotonic", lambda: clock["mono"])
    monkeypatch.setattr("webhook.plane.time.time", lambda: clock["wall"])
    ttl = plane.settings.endpoint_ttl_seconds
    clock["mono"] += ttl * 2
    clock["wall"] += ttl * 2
    return clock


# --- 1. lease expiry and writes -----------------------------------------------------------------


def _admitted_write(client: FlaskClient, write: str, payload: Any) -> Outcome:
    """A store write with the admission check `/apis/smictl.io/v1/apply` and `delete` run
    inside the write's transaction (`admit_batch`, which compiles the plane's view)."""
    plane = client.application.extensions["smictl"]

    def check(snap: Snapshot, changes: Sequence[Change]) -> None:
        admit_batch(plane, snap, changes, dry_run=False, username="smictl:test")

    outcome: Outcome = getattr(plane.store, write)(payload, check=check)
    return outcome


def test_an_apply_while_a_lease_has_lapsed_is_written_and_the_lease_expires(
    client: FlaskClient, lapsed: dict[str, float]
) -> None:
    # Before: sqlite3.OperationalError "cannot start a transaction within a transaction"
    # (`smictl apply`: 503 "the store could not write ...; nothing was applied"), and the
    # lapsed endpoint stayed.
    outcome = _admitted_write(client, "apply", [service("api")])
    assert outcome.changed and [a for _, a in outcome.results] == ["created"]
    assert endpoints(client) == []  # the next request expired it
    names = [o.key.name for o in client.application.extensions["smictl"].store.snapshot().objects]
    assert names == ["api", "web"]


def test_a_delete_while_a_lease_has_lapsed_is_written(
    client: FlaskClient, lapsed: dict[str, float]
) -> None:
    client.application.extensions["smictl"].store.apply([service("api")])
    outcome = _admitted_write(client, "delete", [ObjectKey("", "Service", "shop", "api")])
    assert [a for _, a in outcome.results] == ["deleted"]
    assert endpoints(client) == []


def test_a_policy_get_does_not_wait_for_another_process_write_lock_to_expire_leases(
    client: FlaskClient, lapsed: dict[str, float]
) -> None:
    """`view()` runs on the worker's event loop: waiting there for another worker's write
    lock (up to the 30 s busy timeout) would stall every connection of the worker."""
    plane = client.application.extensions["smictl"]
    other = sqlite3.connect(plane.store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another worker's write in progress
        started = time.monotonic()
        assert len(endpoints(client)) == 1  # served from the state before, not expired yet
        assert time.monotonic() - started < 2.0
        other.execute("ROLLBACK")
    finally:
        other.close()
    # The lock is free: the very next request expires it, not a quarter TTL later.
    assert endpoints(client) == []


def test_a_waiting_poll_expires_a_lapsed_lease(
    client: FlaskClient, lapsed: dict[str, float]
) -> None:
    """A parked poll's watcher (here: the poll's own thread) checks leases off the loop."""
    plane = client.application.extensions["smictl"]
    etag = plane.latest_view().etag  # compiled before the lease lapsed: holds the endpoint
    r = client.get("/mesh/v1/policy?timeout=2", headers={**reader(client), "If-None-Match": etag})
    assert r.status_code == 200
    assert r.get_json()["services"]["shop/web"]["endpoints"] == []


# --- 3. what an endpoint may be -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("evil.example.com", "address: 'evil.example.com' is not an IPv4 or IPv6 address"),
        ("127.0.0.1 ; x", "address: '127.0.0.1 ; x' is not an IPv4 or IPv6 address"),
        ("127.0.0.01", "address: '127.0.0.01' is not an IPv4 or IPv6 address"),
        ("[::1]", "address: '[::1]' is not an IPv4 or IPv6 address"),
        ("fe80::1%eth0", "address: 'fe80::1%eth0' has a zone, which means nothing to other hosts"),
    ],
)
def test_an_endpoint_address_must_be_an_ip_literal(
    client: FlaskClient, address: str, reason: str
) -> None:
    body = {"address": address, "port": 15006, "services": ["web"]}
    r = client.post("/mesh/v1/endpoints", headers=bearer(client), json=body)
    assert r.status_code == 400 and r.get_json()["error"] == reason


@pytest.mark.parametrize(
    ("services", "shown"),
    [
        (["shop/"], "services[0]: 'shop/'"),
        (["web", "shop/../x"], "services[1]: 'shop/../x'"),
        (["shop/Bad Name"], "services[0]: 'shop/Bad Name'"),
        (["/web"], "services[0]: '/web'"),
        ([""], "services[0]: ''"),
        (["shop/web/v1"], "services[0]: 'shop/web/v1'"),
        (["a" * 64], "services[0]: '" + "a" * 64 + "'"),
    ],
)
def test_an_endpoint_service_must_be_a_dns_1123_name(
    client: FlaskClient, services: list[str], shown: str
) -> None:
    body = {"address": "127.0.0.1", "port": 15006, "services": services}
    r = client.post("/mesh/v1/endpoints", headers=bearer(client), json=body)
    assert r.status_code == 400
    error = r.get_json()["error"]
    assert error.startswith(f"{shown} is not `name` or `namespace/name` made of DNS-1123 labels")
    assert "\n" not in error
    assert (
        client.get("/mesh/v1/policy", headers=reader(client)).get_json()["services"] == {}
    )  # nothing registered


def test_a_good_registration_is_stored_under_the_canonical_address(client: FlaskClient) -> None:
    client.application.extensions["smictl"].store.apply([service("web")])
    body = {"address": "0:0:0:0:0:0:0:1", "port": 15006, "services": ["web", "shop/web"]}
    r = client.post("/mesh/v1/endpoints", headers=bearer(client), json=body)
    assert r.status_code == 200 and r.get_json()["services"] == ["shop/web"]
    assert [e["address"] for e in endpoints(client)] == ["::1"]
    gone = client.delete(
        "/mesh/v1/endpoints", headers=bearer(client), json={"address": "::1", "port": 15006}
    )
    assert gone.status_code == 200 and endpoints(client) == []


# --- 4. the mesh routes' body limit -------------------------------------------------------------


@pytest.mark.parametrize("path", ["/mesh/v1/certificates", "/mesh/v1/endpoints"])
def test_a_body_over_the_mesh_limit_names_that_limit(client: FlaskClient, path: str) -> None:
    body = json.dumps({"csr": "x" * (64 * 1024)})
    r = client.post(path, headers=bearer(client), data=body, content_type="application/json")
    assert r.status_code == 413
    error = r.get_json()["error"]
    assert error == f"request body exceeds 65536 bytes, the most {path} accepts"
    assert "SMI_WEBHOOK_MAX_REVIEW_BYTES" not in error


# --- 5. If-None-Match: * ------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["*", " * "])
def test_if_none_match_star_is_a_304_at_once(client: FlaskClient, header: str) -> None:
    etag = client.get("/mesh/v1/policy", headers=reader(client)).headers["ETag"]
    started = time.monotonic()
    r = client.get("/mesh/v1/policy?timeout=3", headers={**reader(client), "If-None-Match": header})
    assert r.status_code == 304 and r.get_data() == b""
    assert r.headers["ETag"] == etag and "Retry-After" not in r.headers
    assert time.monotonic() - started < 1.0


# --- 6. unauthenticated certificate requests ----------------------------------------------------


def _expired(client: FlaskClient) -> str:
    old = tokens(client, clock=lambda: time.time() - 7200)
    return old.issue(Identity.parse("shop/web"), ttl_seconds=60)


def _forged(client: FlaskClient) -> str:
    good = tokens(client).issue(Identity.parse("shop/web"))
    prefix, _, mac = good.split(".")
    claims = json.dumps({"sub": "spiffe://cluster.local/ns/shop/sa/db", "iat": 1, "exp": 2**40})
    payload = base64.urlsafe_b64encode(claims.encode()).rstrip(b"=").decode()
    return f"{prefix}.{payload}.{mac}"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (_expired, "bootstrap token has expired"),
        (_forged, "bootstrap token signature is invalid (another mesh CA?)"),
        (None, "missing `Authorization: Bearer <token>` (bootstrap or ServiceAccount token)"),
    ],
    ids=["expired", "forged", "none"],
)
def test_an_unauthenticated_certificate_request_is_counted_and_logged(
    client: FlaskClient, caplog: pytest.LogCaptureFixture, token: Any, reason: str
) -> None:
    csr = make_csr(generate_key(), Identity.parse("shop/web")).decode()
    secret = token(client) if token is not None else ""
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    with caplog.at_level("INFO", logger="smictl.decision"):
        r = client.post("/mesh/v1/certificates", headers=headers, json={"csr": csr})
    assert r.status_code == 401 and r.get_json()["error"] == reason
    lines = [
        getattr(rec, "fields", {})
        for rec in caplog.records
        if rec.name == "smictl.decision"
        and getattr(rec, "fields", {}).get("event") == "certificate_unauthenticated"
    ]
    assert len(lines) == 1 and lines[0]["reason"] == reason
    if secret:
        assert all(secret not in json.dumps(rec.__dict__, default=str) for rec in caplog.records)
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'smictl_certificates_issued_total{result="unauthenticated"} 1.0' in metrics


def test_an_unauthenticated_endpoint_request_is_logged_not_counted_as_a_certificate(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"address": "127.0.0.1", "port": 15006, "services": ["web"]}
    headers = {"Authorization": f"Bearer {_expired(client)}"}
    with caplog.at_level("INFO", logger="smictl.decision"):
        r = client.post("/mesh/v1/endpoints", headers=headers, json=body)
    assert r.status_code == 401
    events = [getattr(rec, "fields", {}).get("event") for rec in caplog.records]
    assert events.count("endpoint_unauthenticated") == 1
    assert 'result="unauthenticated"' not in client.get("/metrics").get_data(as_text=True)
