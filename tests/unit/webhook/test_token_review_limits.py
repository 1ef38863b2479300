"""What a TokenReview may cost: one with no answer is bounded in time, a worker runs a few at
once, a refused token is remembered, and an API server that cannot answer (throttling, down,
slow) is a 503 to retry — never a 401, and never the end of a cached review."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import urllib3
from flask import Flask
from kubernetes import client
from urllib3.response import HTTPResponse

from smi.identity import Identity
from smi.pki import generate_key, make_csr
from webhook.auth import AuthError, ReviewUnavailable, TokenReviewer, kubernetes_token_review

WEB = Identity.parse("shop/web")
AUTHENTICATED = {
    "kind": "TokenReview",
    "apiVersion": "authentication.k8s.io/v1",
    "spec": {"token": "sa-token", "audiences": ["smictl"]},
    "status": {
        "authenticated": True,
        "audiences": ["smictl"],
        "user": {"username": "system:serviceaccount:shop:web"},
    },
}


class ScriptedAPI:
    """urllib3's pool manager for the kubernetes client: answers with `status` (201 and an
    authenticated TokenReview, or an error status), or raises `error`; records each timeout."""

    def __init__(self) -> None:
        self.status = 201
        self.error: Exception | None = None
        self.timeouts: list[Any] = []

    def request(self, method: str, url: str, **kwargs: Any) -> HTTPResponse:
        self.timeouts.append(kwargs.get("timeout"))
        if self.error is not None:
            raise self.error
        body = AUTHENTICATED if self.status == 201 else {"kind": "Status", "code": self.status}
        return HTTPResponse(
            body=json.dumps(body).encode(),
            status=self.status,
            reason="Created" if self.status == 201 else "Error",
            headers={"Content-Type": "application/json"},
            preload_content=False,
        )


def kube_reviewer(
    api_client: Any, *, timeout: float | None = None, **options: Any
) -> TokenReviewer:
    """The Kubernetes-mode authenticator (`webhook.app`) on `api_client`."""
    limit = {} if timeout is None else {"timeout": timeout}
    review = kubernetes_token_review(api_client, audience="smictl", **limit)
    return TokenReviewer(review, trust_domain="cluster.local", **options)


def api_client(host: str = "https://kube.test:6443") -> Any:
    configuration = client.Configuration()
    configuration.host = host
    return client.ApiClient(configuration)


def scripted_reviewer(**options: Any) -> tuple[TokenReviewer, ScriptedAPI]:
    scripted, api = ScriptedAPI(), api_client()
    api.rest_client.pool_manager = scripted
    return kube_reviewer(api, **options), scripted


# --- the review call -----------------------------------------------------------------------------


def test_the_review_is_sent_with_a_timeout() -> None:
    reviewer, api = scripted_reviewer()
    assert reviewer.authenticate("sa-token") == WEB
    (timeout,) = api.timeouts
    assert isinstance(timeout, urllib3.Timeout) and timeout.total == 5.0


def test_an_api_server_that_never_answers_fails_the_review_in_its_timeout() -> None:
    """A listening socket nobody answers: before, the pool thread waited as long as the
    connection lived (the OS's keepalive, minutes)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        host = f"http://127.0.0.1:{silent.getsockname()[1]}"
        reviewer = kube_reviewer(api_client(host), timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ReviewUnavailable, match=r"no answer within 0\.3 s"):
            reviewer.authenticate("sa-token")
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("status", [429, 500, 503, 403])
def test_an_api_server_error_is_no_refusal(status: int) -> None:
    """429 (throttling), a 5xx, or 403 (the control plane's own RBAC) say nothing about the
    caller's token: it is not refused, and it is asked about again on the next request."""
    reviewer, api = scripted_reviewer()
    api.status = status
    with pytest.raises(ReviewUnavailable, match=f"TokenReview failed: HTTP {status}"):
        reviewer.authenticate("sa-token")
    api.status = 201
    assert reviewer.authenticate("sa-token") == WEB
    assert len(api.timeouts) == 2


def test_an_unreachable_api_server_is_no_refusal() -> None:
    reviewer, api = scripted_reviewer()
    api.error = urllib3.exceptions.MaxRetryError(
        None,  # type: ignore[arg-type]
        "/apis/authentication.k8s.io/v1/tokenreviews",
        urllib3.exceptions.NewConnectionError(None, "Connection refused"),  # type: ignore[arg-type]
    )
    with pytest.raises(ReviewUnavailable, match=r"could not be reached \(NewConnectionError\)"):
        reviewer.authenticate("sa-token")


def test_a_throttling_api_server_does_not_drop_a_cached_review() -> None:
    """The background review of a late cache hit meets a 429: the proxy stays known (on the
    loop) until the entry's own end. Before, any API error was a refusal and dropped it."""
    reviewer, api = scripted_reviewer(cache_seconds=0.6)
    assert reviewer.authenticate("sa-token") == WEB
    api.status = 429
    time.sleep(0.35)  # past half its life
    assert reviewer.peek("sa-token") == WEB  # starts the background review
    _until(lambda: len(api.timeouts) == 2 and not reviewer._refreshing)
    assert reviewer.peek("sa-token") == WEB  # kept
    _until(lambda: reviewer.peek("sa-token") is None)  # ... until it expires: then a review


# --- refusals are remembered ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ({"authenticated": False, "error": "invalid bearer token"}, "invalid bearer token"),
        ({"authenticated": True, "audiences": ["https://kubernetes.default.svc"],
          "user": {"username": "system:serviceaccount:shop:web"}}, "audience"),
        ({"authenticated": True, "audiences": ["smictl"],
          "user": {"username": "kubernetes-admin"}}, "not a ServiceAccount"),
    ],
)  # fmt: skip
def test_a_refused_token_costs_one_review_per_refusal_period(
    status: dict[str, Any], reason: str
) -> None:
    asked: list[str] = []

    def review(token: str) -> dict[str, Any]:
        asked.append(token)
        return status

    reviewer = TokenReviewer(review, trust_domain="cluster.local", refusal_seconds=0.3)
    for _ in range(20):
        with pytest.raises(AuthError, match=reason):
            reviewer.authenticate("bad-token")
    with pytest.raises(AuthError, match=reason):
        reviewer.peek("bad-token")  # refused on the loop too: no pool thread for it
    assert asked == ["bad-token"]
    time.sleep(0.35)
    assert reviewer.peek("bad-token") is None  # forgotten: only a review can tell now
    with pytest.raises(AuthError, match=reason):
        reviewer.authenticate("bad-token")
    assert asked == ["bad-token", "bad-token"]


def test_the_refusal_cache_stays_bounded() -> None:
    reviewer = TokenReviewer(
        lambda _: {"authenticated": False}, trust_domain="cluster.local", max_entries=3
    )
    for i in range(10):
        with pytest.raises(AuthError):
            reviewer.authenticate(f"bad-{i}")
    assert len(reviewer._refused) <= 3


def test_an_unavailable_review_is_not_remembered_as_a_refusal() -> None:
    asked: list[str] = []

    def review(token: str) -> dict[str, Any]:
        asked.append(token)
        if len(asked) == 1:
            raise ReviewUnavailable("TokenReview failed: HTTP 429")
        return dict(AUTHENTICATED["status"])

    reviewer = TokenReviewer(review, trust_domain="cluster.local")
    with pytest.raises(ReviewUnavailable):
        reviewer.authenticate("sa-token")
    assert reviewer.peek("sa-token") is None  # not refused on the loop
    assert reviewer.authenticate("sa-token") == WEB


# --- at most a few reviews at once ---------------------------------------------------------------


def test_a_worker_runs_at_most_max_in_flight_reviews() -> None:
    """Four reviews wait on a slow API server: a fifth caller is told to retry at once instead
    of taking a fifth pool thread (of 4-16) for as long."""
    release, started = threading.Event(), threading.Semaphore(0)

    def review(token: str) -> dict[str, Any]:
        started.release()
        release.wait(5)
        return dict(AUTHENTICATED["status"])

    reviewer = TokenReviewer(review, trust_domain="cluster.local")
    results: list[Identity] = []
    waiting = [
        threading.Thread(target=lambda i=i: results.append(reviewer.authenticate(f"t{i}")))
        for i in range(4)
    ]
    for thread in waiting:
        thread.start()
    try:
        for _ in waiting:
            assert started.acquire(timeout=5)
        before = time.monotonic()
        with pytest.raises(ReviewUnavailable, match="4 TokenReviews in flight"):
            reviewer.authenticate("t5")
        assert time.monotonic() - before < 0.5
    finally:
        release.set()
        for thread in waiting:
            thread.join(5)
    assert results == [WEB] * 4
    assert reviewer.authenticate("t5") == WEB  # a place is free again


# --- what callers see ----------------------------------------------------------------------------


@pytest.fixture
def throttled(app: Flask) -> ScriptedAPI:
    """The app's authenticator is a TokenReviewer whose API server answers 429."""
    reviewer, api = scripted_reviewer()
    api.status = 429
    app.extensions["smictl"].authenticator = reviewer
    return api


def _sa(method: str = "GET", path: str = "/mesh/v1/policy", **kwargs: Any) -> dict[str, Any]:
    return {
        "method": method,
        "path": path,
        "headers": {"Authorization": "Bearer sa-token"},
        **kwargs,
    }


@pytest.mark.parametrize(
    "request_",
    [
        _sa(),
        _sa("POST", "/mesh/v1/certificates",
            json={"csr": make_csr(generate_key(), WEB).decode()}),
        _sa("POST", "/mesh/v1/endpoints",
            json={"address": "10.0.0.5", "port": 15006, "services": ["web"]}),
        _sa("DELETE", "/mesh/v1/endpoints", json={"address": "10.0.0.5", "port": 15006}),
    ],
    ids=["policy", "certificates", "endpoints", "deregister"],
)  # fmt: skip
def test_a_review_the_api_server_cannot_make_is_a_503_to_retry(
    app: Flask, throttled: ScriptedAPI, request_: dict[str, Any]
) -> None:
    response = app.test_client().open(**request_)
    assert response.status_code == 503, response.get_json()
    assert response.headers["Retry-After"] == "1"
    assert "WWW-Authenticate" not in response.headers and "ETag" not in response.headers
    assert response.get_json() == {"error": "TokenReview failed: HTTP 429", "code": 503}
    assert len(throttled.timeouts) == 1
    if request_["path"] == "/mesh/v1/policy":
        metrics = app.test_client().get("/metrics").get_data(as_text=True)
        assert 'smictl_policy_reads_total{result="unavailable"} 1.0' in metrics


def test_the_data_api_answers_a_503_in_opas_shape(app: Flask, throttled: ScriptedAPI) -> None:
    response = app.test_client().post(
        "/v1/data/smictl/authz", json={"input": {}}, headers={"Authorization": "Bearer sa-token"}
    )
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json() == {
        "code": "internal_error",
        "message": "TokenReview failed: HTTP 429",
    }


def test_a_refused_token_is_still_a_401(app: Flask) -> None:
    app.extensions["smictl"].authenticator = TokenReviewer(
        lambda _: {"authenticated": False, "error": "invalid bearer token"},
        trust_domain="cluster.local",
    )
    response = app.test_client().get("/mesh/v1/policy", headers={"Authorization": "Bearer stolen"})
    assert response.status_code == 401 and "Retry-After" not in response.headers
    assert "invalid bearer token" in response.get_json()["error"]


def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_background_reviews_do_not_queue_past_their_cap_or_outlive_their_entries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow API server must not grow a queue of reviews nobody waits for: at most
    MAX_REFRESHING are queued, and one whose entry lapsed while queued is not made."""
    import threading
    import time

    from webhook import auth

    monkeypatch.setattr(auth, "MAX_REFRESHING", 3)
    gate, asked = threading.Event(), []

    def review(token: str) -> dict[str, Any]:
        asked.append(token)
        if len(asked) > 10:  # the ten first reviews fill the cache at once
            gate.wait(5)
        return {"authenticated": True, "audiences": ["smictl"],
                "user": {"username": "system:serviceaccount:shop:web"}}  # fmt: skip

    reviewer = auth.TokenReviewer(review, trust_domain="cluster.local", cache_seconds=0.4)
    tokens = [f"tok-{i}" for i in range(10)]
    for token in tokens:
        reviewer.authenticate(token)
    time.sleep(0.25)  # past half their life
    for token in tokens:
        assert reviewer.peek(token) is not None  # answered from the cache, at once
    time.sleep(0.3)  # every entry has lapsed while the refreshes wait on the gate
    gate.set()
    time.sleep(0.3)
    assert len(asked) == 10 + 2  # two running when the gate opened; the third found it lapsed
