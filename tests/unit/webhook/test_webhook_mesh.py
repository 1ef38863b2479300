"""Policy distribution (ETag long poll), workload certificates and endpoint registration."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from cryptography import x509
from flask.testing import FlaskClient
from mesh_reader import reader

from smi.identity import Identity
from smi.pki import generate_key, make_csr
from webhook.auth import BootstrapTokens, token_key


def tokens(client: FlaskClient) -> BootstrapTokens:
    plane = client.application.extensions["smictl"]
    return BootstrapTokens(key=token_key(plane.ca.key), trust_domain="cluster.local")


def bearer(client: FlaskClient, identity: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens(client).issue(Identity.parse(identity))}"}


def service(name: str, ns: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"port": 8080}]},
    }


# --- policy -------------------------------------------------------------------------------------


def test_policy_carries_etag_and_revision(client: FlaskClient) -> None:
    r = client.get("/mesh/v1/policy", headers=reader(client))
    assert r.status_code == 200
    doc = r.get_json()
    assert r.headers["ETag"] == f'"{doc["hash"]}"'
    assert r.headers["X-Smictl-Revision"] == "0" and doc["revision"] == 0
    assert doc["mode"] == "deny" and doc["schemaVersion"] == 1


def test_unchanged_policy_long_polls_then_304(client: FlaskClient) -> None:
    etag = client.get("/mesh/v1/policy", headers=reader(client)).headers["ETag"]
    started = time.monotonic()
    r = client.get("/mesh/v1/policy?timeout=0.3", headers={**reader(client), "If-None-Match": etag})
    assert r.status_code == 304 and r.headers["ETag"] == etag
    assert 0.25 <= time.monotonic() - started < 3


def test_long_poll_returns_as_soon_as_the_policy_changes(client: FlaskClient) -> None:
    etag = client.get("/mesh/v1/policy", headers=reader(client)).headers["ETag"]
    store = client.application.extensions["smictl"].store
    timer = threading.Timer(0.2, lambda: store.apply([service("web")]))
    timer.start()
    started = time.monotonic()
    r = client.get("/mesh/v1/policy?timeout=5", headers={**reader(client), "If-None-Match": etag})
    elapsed = time.monotonic() - started
    timer.join()
    assert r.status_code == 200 and r.headers["ETag"] != etag
    assert "shop/web" in r.get_json()["services"]
    assert elapsed < 1.0


def test_a_stale_etag_gets_the_policy_at_once(client: FlaskClient) -> None:
    r = client.get("/mesh/v1/policy", headers={**reader(client), "If-None-Match": '"sha256:old"'})
    assert r.status_code == 200 and r.get_json()["revision"] == 0


def test_bad_timeout_is_a_400(client: FlaskClient) -> None:
    etag = client.get("/mesh/v1/policy", headers=reader(client)).headers["ETag"]
    r = client.get(
        "/mesh/v1/policy?timeout=soon", headers={**reader(client), "If-None-Match": etag}
    )
    assert r.status_code == 400 and "timeout" in r.get_json()["error"]


# --- certificates -------------------------------------------------------------------------------


def csr_for(identity: str) -> str:
    return make_csr(generate_key(), Identity.parse(identity)).decode()


def test_a_token_holder_gets_a_certificate_for_its_identity(client: FlaskClient) -> None:
    r = client.post(
        "/mesh/v1/certificates",
        json={"csr": csr_for("shop/web")},
        headers=bearer(client, "shop/web"),
    )
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/shop/sa/web"
    ]
    assert "BEGIN CERTIFICATE" in body["caCertificate"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'smictl_certificates_issued_total{result="issued"} 1.0' in metrics


def test_a_csr_for_someone_else_is_refused(client: FlaskClient) -> None:
    r = client.post(
        "/mesh/v1/certificates",
        json={"csr": csr_for("shop/payments")},
        headers=bearer(client, "shop/web"),
    )
    assert r.status_code == 403
    assert "caller proved spiffe://cluster.local/ns/shop/sa/web" in r.get_json()["error"]


def test_no_or_forged_token_is_401(client: FlaskClient) -> None:
    body = {"csr": csr_for("shop/web")}
    assert client.post("/mesh/v1/certificates", json=body).status_code == 401
    forged = BootstrapTokens(key=b"k" * 32, trust_domain="cluster.local").issue(
        Identity.parse("shop/web")
    )
    r = client.post(
        "/mesh/v1/certificates", json=body, headers={"Authorization": f"Bearer {forged}"}
    )
    assert r.status_code == 401 and "signature" in r.get_json()["error"]


def test_garbage_csr_is_400(client: FlaskClient) -> None:
    r = client.post(
        "/mesh/v1/certificates", json={"csr": "hello"}, headers=bearer(client, "shop/web")
    )
    assert r.status_code == 400


# --- endpoints ----------------------------------------------------------------------------------


def test_registered_endpoints_reach_the_policy(client: FlaskClient) -> None:
    store = client.application.extensions["smictl"].store
    store.apply([service("web")])
    r = client.post(
        "/mesh/v1/endpoints",
        headers=bearer(client, "shop/web"),
        json={"address": "127.0.0.1", "port": 15006, "services": ["web"]},
    )
    assert r.status_code == 200, r.get_json()
    eps = client.get("/mesh/v1/policy", headers=reader(client)).get_json()["services"]["shop/web"][
        "endpoints"
    ]
    assert eps == [
        {"address": "127.0.0.1", "port": 15006, "identity": "spiffe://cluster.local/ns/shop/sa/web"}
    ]
    gone = client.delete(
        "/mesh/v1/endpoints",
        headers=bearer(client, "shop/web"),
        json={"address": "127.0.0.1", "port": 15006},
    )
    assert gone.status_code == 200
    assert (
        client.get("/mesh/v1/policy", headers=reader(client)).get_json()["services"]["shop/web"][
            "endpoints"
        ]
        == []
    )


def test_an_endpoint_whose_proxy_stops_renewing_leaves_the_policy(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    plane = client.application.extensions["smictl"]
    plane.store.apply([service("web")])
    register = {"address": "127.0.0.1", "port": 15006, "services": ["web"]}
    r = client.post("/mesh/v1/endpoints", headers=bearer(client, "shop/web"), json=register)
    assert r.get_json()["ttl_seconds"] == plane.settings.endpoint_ttl_seconds

    def endpoints() -> list[Any]:
        return list(
            client.get("/mesh/v1/policy", headers=reader(client)).get_json()["services"][
                "shop/web"
            ]["endpoints"]
        )

    clock = {"mono": time.monotonic(), "wall": time.time()}
    monkeypatch.setattr("webhook.plane.time.monotonic", lambda: clock["mono"])
    monkeypatch.setattr("webhook.plane.time.time", lambda: clock["wall"])
    ttl = plane.settings.endpoint_ttl_seconds
    clock["mono"] += ttl * 0.5  # still within the start-up grace: nothing is expired
    clock["wall"] += ttl * 2
    assert len(endpoints()) == 1
    clock["mono"] += ttl  # past it: the lease (renewed a real moment ago) is two TTLs old
    assert endpoints() == []
    # The proxy comes back and registers again: the endpoint is back.
    monkeypatch.setattr("smi.store.sqlite.time.time", lambda: clock["wall"])
    client.post("/mesh/v1/endpoints", headers=bearer(client, "shop/web"), json=register)
    clock["mono"] += ttl
    assert len(endpoints()) == 1


def test_endpoints_only_for_own_namespace_and_only_owner_deregisters(client: FlaskClient) -> None:
    r = client.post(
        "/mesh/v1/endpoints",
        headers=bearer(client, "shop/web"),
        json={"address": "10.0.0.1", "port": 1, "services": ["bank/vault"]},
    )
    assert r.status_code == 403 and "namespace shop only" in r.get_json()["error"]
    client.post(
        "/mesh/v1/endpoints",
        headers=bearer(client, "shop/web"),
        json={"address": "10.0.0.1", "port": 1, "services": ["web"]},
    )
    r = client.delete(
        "/mesh/v1/endpoints",
        headers=bearer(client, "shop/intruder"),
        json={"address": "10.0.0.1", "port": 1},
    )
    assert r.status_code == 403


def test_endpoint_validation(client: FlaskClient) -> None:
    h = bearer(client, "shop/web")
    assert client.post("/mesh/v1/endpoints", headers=h, json={"port": 1}).status_code == 400
    bad_port = {"address": "127.0.0.1", "port": 70000}
    assert client.post("/mesh/v1/endpoints", headers=h, json=bad_port).status_code == 400


def test_past_the_waiting_limit_a_poll_is_answered_at_once(client: FlaskClient) -> None:
    plane = client.application.extensions["smictl"]
    etag = client.get("/mesh/v1/policy", headers=reader(client)).headers["ETag"]
    held = 0
    while plane.long_polls.acquire(blocking=False):  # every waiting slot taken
        held += 1
    try:
        started = time.monotonic()
        r = client.get(
            "/mesh/v1/policy?timeout=5", headers={**reader(client), "If-None-Match": etag}
        )
        assert r.status_code == 304 and r.headers["Retry-After"] == "1"
        assert time.monotonic() - started < 1.0
    finally:
        for _ in range(held):
            plane.long_polls.release()
    assert held == plane.settings.threads // 2


def test_a_revision_that_fails_to_compile_keeps_the_last_good_policy(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import smi.compiler.build

    good = client.get("/mesh/v1/policy", headers=reader(client)).get_json()

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("compiler bug")

    monkeypatch.setattr(smi.compiler.build, "compile", broken)
    client.application.extensions["smictl"].store.apply([service("web")])
    with caplog.at_level("ERROR", logger="smictl.server"):
        served = client.get("/mesh/v1/policy", headers=reader(client))
    assert served.status_code == 200 and served.get_json() == good
    assert any("policy compile failed" in r.getMessage() for r in caplog.records)


# --- who may read the policy --------------------------------------------------------------------


def _policy_decisions(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        getattr(rec, "fields", {})
        for rec in caplog.records
        if rec.name == "smictl.decision"
        and getattr(rec, "fields", {}).get("event") == "policy_unauthenticated"
    ]


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing `Authorization: Bearer <token>`"),
        ("Basic c2hvcDp3ZWI=", "missing `Authorization: Bearer <token>`"),
        ("Bearer ", "missing `Authorization: Bearer <token>`"),
        ("Bearer not-a-token", "not a smictl bootstrap token"),
    ],
    ids=["none", "basic", "empty", "garbage"],
)
def test_the_policy_is_not_served_to_a_caller_who_proves_nothing(
    client: FlaskClient, caplog: pytest.LogCaptureFixture, authorization: str | None, reason: str
) -> None:
    """The policy is the mesh's whole authorization graph and every endpoint's address: a
    401, with nothing of it, not even the ETag (which says when it changes)."""
    headers = {} if authorization is None else {"Authorization": authorization}
    with caplog.at_level("INFO", logger="smictl.decision"):
        r = client.get("/mesh/v1/policy", headers=headers)
    assert r.status_code == 401 and reason in r.get_json()["error"]
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="smictl"'
    assert "ETag" not in r.headers and "X-Smictl-Revision" not in r.headers
    assert b"destinations" not in r.data
    assert [d["reason"] for d in _policy_decisions(caplog)] == [r.get_json()["error"]]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'smictl_policy_reads_total{result="unauthenticated"} 1.0' in metrics
    # A long poll is refused the same way, at once (not held, then refused).
    etag = client.get("/mesh/v1/policy", headers=reader(client)).headers["ETag"]
    started = time.monotonic()
    polled = client.get("/mesh/v1/policy?timeout=5", headers={**headers, "If-None-Match": etag})
    assert polled.status_code == 401 and time.monotonic() - started < 1.0


def test_an_expired_or_forged_workload_token_reads_no_policy(client: FlaskClient) -> None:
    plane = client.application.extensions["smictl"]
    expired = BootstrapTokens(
        key=token_key(plane.ca.key), trust_domain="cluster.local", clock=lambda: 1_000.0
    ).issue(Identity.parse("shop/web"), ttl_seconds=60)
    other_ca = BootstrapTokens(key=b"k" * 32, trust_domain="cluster.local")
    forged = other_ca.issue(Identity.parse("shop/web"))
    for token, reason in ((expired, "expired"), (forged, "signature is invalid")):
        r = client.get("/mesh/v1/policy", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and reason in r.get_json()["error"]


def test_any_workload_and_the_admin_token_read_the_policy(
    settings: Any, tmp_path: Any, policy_set: Any
) -> None:
    """Every workload reads all of it (a proxy needs every service it may call); an operator
    reads it with the local admin token, and a wrong admin token says so."""
    from local_admin import ADMIN_TOKEN, with_admin_token

    from webhook import create_app

    app = create_app(with_admin_token(settings, tmp_path), policies=policy_set)
    try:
        c = app.test_client()
        for headers in (reader(c, "shop/web"), reader(c, "billing/ledger")):
            assert c.get("/mesh/v1/policy", headers=headers).status_code == 200
        admin = c.get("/mesh/v1/policy", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert admin.status_code == 200 and admin.get_json()["schemaVersion"] == 1
        wrong = c.get("/mesh/v1/policy", headers={"Authorization": "Bearer " + "x" * 40})
        assert wrong.status_code == 401
        assert wrong.get_json()["error"] == (
            "not a smictl bootstrap token; it is not this control plane's admin token either"
        )
        metrics = c.get("/metrics").get_data(as_text=True)
        assert 'smictl_policy_reads_total{result="workload"} 2.0' in metrics
        assert 'smictl_policy_reads_total{result="local-admin"} 1.0' in metrics
    finally:
        app.extensions["smictl"].store.close()
