"""Kubernetes mode without an API server: TokenReview answered from recordings through the
kubernetes client's own layers, and the app on a (read-only, not yet synced) watch cache."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from kubernetes import client
from urllib3.response import HTTPResponse

from smi.identity import Identity
from smi.policy.policyset import PolicySet
from smi.store.kubernetes import KubernetesStore, Watched
from webhook import create_app
from webhook.auth import AuthError, TokenReviewer, kubernetes_token_review
from webhook.settings import Settings

RECORDINGS = Path(__file__).parent / "recordings"


class RecordedAPI:
    """urllib3's pool manager, answering every request with one recorded body."""

    def __init__(self, recording: str) -> None:
        self.body = (RECORDINGS / recording).read_bytes()
        self.requests: list[tuple[str, str, dict[str, Any]]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> HTTPResponse:
        self.requests.append((method, url, json.loads(kwargs.get("body") or "{}")))
        return HTTPResponse(
            body=io.BytesIO(self.body),
            status=201,
            reason="Created",
            headers={"Content-Type": "application/json"},
            preload_content=False,
        )


def api_client(recording: str) -> tuple[Any, RecordedAPI]:
    configuration = client.Configuration()
    configuration.host = "https://kube.test:6443"
    api = client.ApiClient(configuration)
    recorded = RecordedAPI(recording)
    api.rest_client.pool_manager = recorded
    return api, recorded


def test_a_service_account_token_proves_its_identity() -> None:
    api, recorded = api_client("tokenreview-authenticated.json")
    reviewer = TokenReviewer(
        kubernetes_token_review(api, audience="smictl"), trust_domain="cluster.local"
    )
    assert reviewer.authenticate("eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.redacted.sig") == (
        Identity.parse("shop/web")
    )
    method, url, body = recorded.requests[0]
    assert method == "POST" and url.endswith("/apis/authentication.k8s.io/v1/tokenreviews")
    assert body["spec"] == {
        "audiences": ["smictl"],
        "token": "eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.redacted.sig",
    }


def test_an_invalidated_token_is_refused_with_the_api_servers_reason() -> None:
    api, _ = api_client("tokenreview-rejected.json")
    reviewer = TokenReviewer(
        kubernetes_token_review(api, audience="smictl"), trust_domain="cluster.local"
    )
    with pytest.raises(AuthError, match="service account token has been invalidated"):
        reviewer.authenticate("forged")


@pytest.fixture
def kube_app(tmp_path: Path, policy_set: PolicySet) -> Flask:
    api, _ = api_client("tokenreview-authenticated.json")
    store = KubernetesStore(api, watched=[Watched("v1", "Service", "services")])
    return create_app(
        Settings(kubeconfig=str(tmp_path / "kubeconfig")), store=store, policies=policy_set
    )


def test_kubernetes_mode_has_no_local_store_api_and_waits_for_sync(kube_app: Flask) -> None:
    c = kube_app.test_client()
    assert c.post("/apis/smictl.io/v1/apply", json={"items": []}).status_code == 404
    not_ready = c.get("/readyz")
    assert not_ready.status_code == 503 and "synced" in not_ready.get_json()["reason"]
    store = kube_app.extensions["smictl"].store
    store.replace(store.informers[0].watched, [], "100")
    store.informers[0].synced = True
    ready = c.get("/readyz").get_json()
    assert (ready["status"], ready["revision"]) == ("ready", 100)
