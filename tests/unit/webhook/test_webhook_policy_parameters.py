"""The control plane's policies see `data.parameters` from SMI_WEBHOOK_PARAMETERS (`serve
--parameters`), in admission and in the Data API alike. They always saw `{}`: a policy set
gated in CI with `smictl admit --parameters` decided differently in the cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from mesh_reader import reader_client

from webhook import create_app
from webhook.settings import Settings

POLICY = "/v1/data/smi/admission/access/allowed_source_namespaces"
TARGET = {
    "apiVersion": "access.smi-spec.io/v1alpha3",
    "kind": "TrafficTarget",
    "metadata": {"name": "metrics", "namespace": "shop", "labels": {"owner": "me"}},
    "spec": {
        "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "shop"},
        "sources": [{"kind": "ServiceAccount", "name": "prom", "namespace": "monitoring"}],
        "rules": [{"kind": "TCPRoute", "name": "all"}],
    },
}


@pytest.fixture
def client_with(
    settings: Settings, tmp_path: Path
) -> Iterator[Callable[[str | None], FlaskClient]]:
    """A client of an app built from the settings alone (its policies loaded as a worker
    loads them), with a parameters file of this text, or none."""
    apps = []

    def make(parameters: str | None) -> FlaskClient:
        chosen = settings
        if parameters is not None:
            path = tmp_path / "parameters.yaml"
            path.write_text(parameters, encoding="utf-8")
            chosen = replace(settings, parameters=path)
        app = create_app(chosen)
        apps.append(app)
        return reader_client(app)  # the Data API answers callers that prove who they are

    yield make
    for app in apps:
        app.extensions["smictl"].store.close()


TRUST_MONITORING = "allowedSourceNamespaces:\n  '*': [monitoring]\n"


def decision(client: FlaskClient, review: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/validate", json=review)
    assert answer.status_code == 200
    response: dict[str, Any] = answer.get_json()["response"]
    return response


def test_admission_reads_the_parameters(
    client_with: Callable[[str | None], FlaskClient], make_review: Callable[..., dict[str, Any]]
) -> None:
    denied = decision(client_with(None), make_review(TARGET))
    assert denied["allowed"] is False
    assert "monitoring/prom is in namespace monitoring" in denied["status"]["message"]
    allowed = decision(client_with(TRUST_MONITORING), make_review(TARGET))
    assert allowed["allowed"] is True, allowed


def test_the_data_api_reads_the_parameters(
    client_with: Callable[[str | None], FlaskClient],
) -> None:
    doc = {
        "hub": {
            "kind": "TrafficTarget",
            "metadata": {"name": "metrics", "namespace": "shop"},
            "sources": [{"name": "prom", "namespace": "monitoring"}],
        },
        "request": {"object": TARGET},
    }
    without = client_with(None).post(f"{POLICY}/violation", json={"input": doc}).get_json()
    assert [v["path"] for v in without["result"]] == ["spec.sources[0].namespace"]
    with_them = client_with(TRUST_MONITORING).post(f"{POLICY}/violation", json={"input": doc})
    assert with_them.get_json() == {"result": []}


def test_the_variable_is_read_into_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    settings = Settings.from_env({"SMI_WEBHOOK_PARAMETERS": str(path)})
    assert settings.parameters == path
    assert Settings.from_env(settings.to_env()) == settings
