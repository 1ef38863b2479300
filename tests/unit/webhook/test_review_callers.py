"""Review routes with a client CA (`webhook.callers`): the certificate's names decide, every
other route is unchanged, and the settings refuse what cannot work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from smi.errors import SMIError
from smi.policy.policyset import PolicySet
from webhook import create_app
from webhook.callers import ReviewCallers, names_of
from webhook.settings import Settings
from webhook.wsgiloop import PEER_CERT

APISERVER = {
    "subject": ((("organizationName", "system:masters"),), (("commonName", "kube-apiserver"),)),
    "subjectAltName": (("DNS", "apiserver.internal"), ("IP Address", "10.0.0.1")),
}
JANE = {"subject": ((("commonName", "jane"),),)}
SPLIT = {
    "apiVersion": "split.smi-spec.io/v1alpha4",
    "kind": "TrafficSplit",
    "metadata": {"name": "s", "namespace": "shop"},
    "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": 1}]},
}


def test_names_are_the_subject_cns_and_dns_sans() -> None:
    assert names_of(APISERVER) == {"kube-apiserver", "apiserver.internal"}
    assert names_of({"subject": ()}) == set()


def test_refusals() -> None:
    callers = ReviewCallers(["kube-apiserver"])
    assert callers.refusal({PEER_CERT: APISERVER}) is None
    assert callers.refusal({}) is not None
    assert callers.refusal({PEER_CERT: None})[0] == "no-certificate"  # type: ignore[index]
    label, reason = callers.refusal({PEER_CERT: JANE})  # type: ignore[misc]
    assert label == "name"
    assert "names jane" in reason
    assert "kube-apiserver" in reason
    # An IP SAN is not a name: only CNs and DNS names count.
    only_ip = {"subject": (), "subjectAltName": (("IP Address", "kube-apiserver"),)}
    assert ReviewCallers(["kube-apiserver"]).refusal({PEER_CERT: only_ip}) is not None
    assert ReviewCallers(["apiserver.internal"]).refusal({PEER_CERT: APISERVER}) is None


def test_gunicorns_own_workers_hand_over_the_socket() -> None:
    class Sock:
        def __init__(self, cert: dict[str, Any] | None) -> None:
            self.cert = cert

        def getpeercert(self) -> dict[str, Any] | None:
            return self.cert

    callers = ReviewCallers(["kube-apiserver"])
    assert callers.refusal({"gunicorn.socket": Sock(APISERVER)}) is None
    assert callers.refusal({"gunicorn.socket": Sock(None)}) is not None
    assert callers.refusal({"gunicorn.socket": object()}) is not None


@pytest.fixture
def guarded(
    settings: Settings, policy_set: PolicySet, ca_files: tuple[Path, Path]
) -> Iterator[Flask]:
    application = create_app(replace(settings, client_ca_file=ca_files[0]), policies=policy_set)
    yield application
    application.extensions["smictl"].store.close()


def test_review_routes_need_the_certificate(
    guarded: Flask, make_review: Callable[..., dict[str, Any]]
) -> None:
    review = make_review(SPLIT)
    client = guarded.test_client()
    for path in ("/validate", "/mutate", "/mutate/namespace-opted-in"):
        refused = client.post(path, json=review)
        assert refused.status_code == 401, path
        assert "sent none" in refused.get_json()["error"]
    answered = client.post("/validate", json=review, environ_base={PEER_CERT: APISERVER})
    assert answered.status_code == 200
    assert answered.get_json()["response"]["allowed"] is True
    named_else = client.post("/validate", json=review, environ_base={PEER_CERT: JANE})
    assert named_else.status_code == 401
    assert client.get("/healthz").status_code == 200
    # CRD conversion calls come without a certificate (kubernetes#131810): never refused here.
    assert client.post("/convert", json={}).status_code != 401


def test_without_a_client_ca_reviews_take_any_caller(
    client: Any, make_review: Callable[..., dict[str, Any]]
) -> None:
    review = make_review(SPLIT)
    assert client.post("/validate", json=review).status_code == 200


def test_client_names_setting() -> None:
    assert Settings.from_env({}).client_names == ("kube-apiserver",)
    env = {"SMI_WEBHOOK_CLIENT_NAMES": " kube-apiserver , apiserver.local "}
    assert Settings.from_env(env).client_names == ("kube-apiserver", "apiserver.local")
    with pytest.raises(SMIError, match="SMI_WEBHOOK_CLIENT_NAMES"):
        Settings.from_env({"SMI_WEBHOOK_CLIENT_NAMES": " , "})
    round_trip = Settings(client_ca_file=Path("/ca.crt"), client_names=("a", "b"))
    assert Settings.from_env(round_trip.to_env()) == round_trip
