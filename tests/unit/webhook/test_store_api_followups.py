"""Local store API details: a delete of several missing objects names each at its index, a
refusal without a field path reads `message (CODE)` (it read `: message`), and a
resourceVersion of non-ASCII digits is refused as not a revision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from local_admin import admin_client, with_admin_token

from smi.errors import Diagnostic
from webhook.apis import _refusal
from webhook.settings import Settings

APPLY = "/apis/smictl.io/v1/apply"
DELETE = "/apis/smictl.io/v1/delete"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return with_admin_token(settings, tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return admin_client(app)


def test_a_refusal_without_a_path_has_no_leading_colon() -> None:
    denial = _refusal(
        0, "shop/x", [Diagnostic("SMI7004", "store/TrafficTarget/x not found")], code=404
    )
    assert denial["messages"] == ["store/TrafficTarget/x not found (SMI7004)"]


def test_every_missing_object_is_named(client: FlaskClient) -> None:
    items = [
        {"kind": "TrafficTarget", "name": "a", "namespace": "shop"},
        {"kind": "TrafficTarget", "name": "b", "namespace": "shop"},
    ]
    r = client.post(DELETE, json={"items": items})
    assert r.status_code == 404
    body: Any = r.get_json()
    assert sorted(d["index"] for d in body["denials"]) == [0, 1]


def test_a_resource_version_of_non_ascii_digits_is_not_a_revision(
    client: FlaskClient,
) -> None:
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "١"}}  # fmt: skip
    r = client.post(APPLY, json={"items": [svc]})
    assert r.status_code == 422, r.get_json()
