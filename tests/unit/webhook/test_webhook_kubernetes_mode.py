"""Kubernetes mode without an API server: TokenReview answered from recordings through the
kubernetes client's own layers, the app on a (read-only, not yet synced) watch cache, and the
MeshPolicy's endpoints from recorded EndpointSlices and Pods."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from kubernetes import client
from urllib3.response import HTTPResponse

from smi.identity import Identity
from smi.policy.policyset import PolicySet
from smi.store.kubernetes import WATCHED, KubernetesStore, Watched
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


# --- endpoints from EndpointSlices and Pods -------------------------------------------------


class EndingBody(io.BytesIO):
    """A recorded body that reports closed once read, as a finished response does (urllib3's
    watch stream reads until then)."""

    @property
    def closed(self) -> bool:
        return self.tell() >= len(self.getbuffer())


class RoutedAPI:
    """urllib3's pool manager answering list and watch requests by path from recordings."""

    def __init__(self, routes: dict[tuple[str, bool], str]) -> None:
        self.routes = routes

    def request(self, method: str, url: str, **_: Any) -> HTTPResponse:
        parts = urlsplit(url)
        watch = parse_qs(parts.query).get("watch") == ["true"]
        recording = self.routes[(parts.path, watch)]
        return HTTPResponse(
            body=EndingBody((RECORDINGS / recording).read_bytes()),
            status=200,
            reason="OK",
            headers={"Content-Type": "application/json"},
            preload_content=False,
        )


SLICES_PATH = "/apis/discovery.k8s.io/v1/endpointslices"


@pytest.fixture
def mesh_app(tmp_path: Path, policy_set: PolicySet) -> Flask:
    configuration = client.Configuration()
    configuration.host = "https://kube.test:6443"
    api = client.ApiClient(configuration)
    api.rest_client.pool_manager = RoutedAPI(
        {
            ("/api/v1/services", False): "services-list.json",
            (SLICES_PATH, False): "endpointslices-list.json",
            (SLICES_PATH, True): "endpointslices-watch.jsonl",
            ("/api/v1/pods", False): "pods-list.json",
        }
    )
    watched = [w for w in WATCHED if w.plural in {"services", "endpointslices", "pods"}]
    store = KubernetesStore(api, watched=watched)
    for informer in store.informers:
        informer.relist()
    settings = Settings(kubeconfig=str(tmp_path / "kubeconfig"), trust_domain="prod.example")
    return create_app(settings, store=store, policies=policy_set)


def _endpoint(address: str, sa: str) -> dict[str, Any]:
    return {"address": address, "port": 15006, "identity": f"spiffe://prod.example/ns/shop/sa/{sa}"}


def _sa_token_reviews(plane: Any) -> list[str]:
    """Give the plane a TokenReviewer whose API server knows one token, `sa-token-web`, of
    shop/web (audience smictl); the list records every review it was asked for."""
    asked: list[str] = []

    def review(token: str) -> dict[str, Any]:
        asked.append(token)
        if token != "sa-token-web":
            return {"authenticated": False, "error": "invalid bearer token"}
        return {
            "authenticated": True,
            "audiences": ["smictl"],
            "user": {"username": "system:serviceaccount:shop:web"},
        }

    plane.authenticator = TokenReviewer(review, trust_domain="prod.example")
    return asked


def test_the_mesh_policy_carries_cluster_endpoints_with_identities(mesh_app: Flask) -> None:
    _sa_token_reviews(mesh_app.extensions["smictl"])
    c = mesh_app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = "Bearer sa-token-web"  # the pod's projected token
    assert c.get("/readyz").status_code == 200
    first = c.get("/mesh/v1/policy")
    services = first.get_json()["services"]
    # Ready, injected pods at their proxy's inbound port, named by their ServiceAccount in the
    # control plane's trust domain; the pod without serviceAccountName runs as `default`.
    assert services["shop/web"] == {
        "ports": [8080],
        "endpoints": [_endpoint("10.244.1.5", "web"), _endpoint("10.244.2.6", "web")],
    }
    assert services["shop/api"] == {
        "ports": [9090],
        "endpoints": [_endpoint("10.244.1.9", "default")],
    }

    # The slice changes (10.244.2.6 terminates): a proxy's long poll gets the new endpoints.
    mesh_app.extensions["smictl"].store.informers[1].watch_once()
    second = c.get("/mesh/v1/policy?timeout=1", headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 200 and second.headers["X-Smictl-Revision"] == "52020"
    assert second.get_json()["services"]["shop/web"]["endpoints"] == [
        _endpoint("10.244.1.5", "web")
    ]


def test_the_policy_is_served_to_a_reviewed_service_account_and_parked_from_the_cache(
    mesh_app: Flask,
) -> None:
    """Kubernetes mode: a proxy polls with its projected ServiceAccount token. The first poll
    is reviewed (a call to the API server, so never on the worker's loop); once the review is
    cached, the park hook (on the loop) knows the caller without a call. A token the API
    server refuses is a 401, and the park hook leaves it to the path that can call."""
    from webhook.mesh import PARKED_READER
    from webhook.wsgiloop import PARK_ATTR

    asked = _sa_token_reviews(mesh_app.extensions["smictl"])
    c = mesh_app.test_client()
    refused = c.get("/mesh/v1/policy", headers={"Authorization": "Bearer stolen"})
    assert refused.status_code == 401 and "invalid bearer token" in refused.get_json()["error"]
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="smictl"'
    assert "ETag" not in refused.headers and asked == ["stolen"]

    hook = getattr(mesh_app, PARK_ATTR)
    etag = mesh_app.extensions["smictl"].latest_view().etag
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/mesh/v1/policy",
        "QUERY_STRING": "timeout=5",
        "HTTP_IF_NONE_MATCH": f'"{etag}"',
        "HTTP_AUTHORIZATION": "Bearer sa-token-web",
    }
    assert hook.parks(dict(environ)) is None  # not reviewed yet: no call on the loop
    assert asked == ["stolen"]
    ok = c.get("/mesh/v1/policy", headers={"Authorization": "Bearer sa-token-web"})
    assert ok.status_code == 200 and asked == ["stolen", "sa-token-web"]
    parked_environ = dict(environ)
    assert hook.parks(parked_environ) == (etag, 5.0)
    assert parked_environ[PARKED_READER] == "spiffe://prod.example/ns/shop/sa/web"
    assert asked == ["stolen", "sa-token-web"]  # from the cache
    assert hook.parks({**environ, "HTTP_AUTHORIZATION": "Bearer stolen"}) is None
