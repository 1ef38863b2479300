"""The local store API: all-or-nothing apply through admission, list, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from local_admin import admin_client, with_admin_token

from webhook.settings import Settings

APPLY = "/apis/smictl.io/v1/apply"
DELETE = "/apis/smictl.io/v1/delete"
OBJECTS = "/apis/smictl.io/v1/objects"


# The store API answers only the admin token's holder; these tests hold it.
@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return with_admin_token(settings, tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return admin_client(app)


def split(name: str, root: str, weights: tuple[int, int] = (90, 10)) -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": {"name": name, "namespace": "shop", "labels": {"owner": "shop-team"}},
        "spec": {
            "service": root,
            "backends": [
                {"service": f"{root}-v1", "weight": weights[0]},
                {"service": f"{root}-v2", "weight": weights[1]},
            ],
        },
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"ports": [{"port": 8080}]},
    }


def test_apply_creates_then_reports_unchanged_and_configured(client: FlaskClient) -> None:
    r = client.post(APPLY, json={"items": [service("web"), split("a", "web")]})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["revision"] == 1
    assert [(x["kind"], x["action"]) for x in body["results"]] == [
        ("Service", "created"),
        ("TrafficSplit", "created"),
    ]
    r = client.post(APPLY, json={"items": [service("web"), split("a", "web", (80, 20))]})
    assert [x["action"] for x in r.get_json()["results"]] == ["unchanged", "configured"]
    assert r.get_json()["revision"] == 2


def test_a_denied_apply_changes_nothing_and_lists_every_reason(client: FlaskClient) -> None:
    client.post(APPLY, json={"items": [split("a", "web")]})
    before = client.get(OBJECTS).get_json()
    bad = [split("b", "api", (0, 0)), split("c", "web"), split("d", "db")]
    r = client.post(APPLY, json={"items": bad})
    assert r.status_code == 422
    denials = r.get_json()["denials"]
    assert {d["index"] for d in denials} == {0, 1}  # all-zero weights; a second split for web
    codes = {d["code"] for x in denials for d in x["diagnostics"]}
    assert {"SMI2104", "SMI3003"} <= codes
    assert client.get(OBJECTS).get_json() == before  # "d" was fine, but nothing was written


def test_dry_run_admits_without_storing(client: FlaskClient) -> None:
    r = client.post(APPLY, json={"items": [split("a", "web")], "dryRun": True})
    assert r.status_code == 200 and r.get_json()["dryRun"] is True
    assert client.get(OBJECTS).get_json()["items"] == []


def test_objects_are_listed_with_filters_and_default_namespace(client: FlaskClient) -> None:
    nameless = split("x", "web")
    del nameless["metadata"]["namespace"]
    client.post(APPLY, json={"items": [nameless, service("web")]})
    items = client.get(OBJECTS, query_string={"kind": "trafficsplit"}).get_json()["items"]
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items] == [
        ("default", "x")
    ]
    assert items[0]["metadata"]["resourceVersion"] == "1"
    shop = client.get(OBJECTS, query_string={"namespace": "shop"}).get_json()["items"]
    assert [i["kind"] for i in shop] == ["Service"]


def test_delete_by_reference_and_not_found(client: FlaskClient) -> None:
    client.post(APPLY, json={"items": [split("a", "web"), service("web")]})
    r = client.post(
        DELETE, json={"items": [{"kind": "TrafficSplit", "name": "a", "namespace": "shop"}]}
    )
    assert r.status_code == 200 and r.get_json()["results"][0]["action"] == "deleted"
    missing = client.post(
        DELETE, json={"items": [{"kind": "TrafficSplit", "name": "a", "namespace": "shop"}]}
    )
    assert missing.status_code == 404 and "not found" in missing.get_json()["error"]
    ignored = client.post(
        DELETE,
        json={
            "items": [{"kind": "TrafficSplit", "name": "a", "namespace": "shop"}],
            "ignoreNotFound": True,
        },
    )
    assert ignored.status_code == 200 and ignored.get_json()["results"] == []


def test_applied_objects_reach_the_mesh_policy(client: FlaskClient) -> None:
    client.post(
        APPLY,
        json={"items": [service("web"), service("web-v1"), service("web-v2"), split("a", "web")]},
    )
    policy = client.get("/mesh/v1/policy").get_json()
    assert policy["revision"] == 1
    assert [b["service"] for b in policy["splits"]["shop/web"]["backends"]] == [
        "shop/web-v1",
        "shop/web-v2",
    ]


def test_bad_apply_bodies(client: FlaskClient) -> None:
    assert client.post(APPLY, json={"items": []}).status_code == 400
    assert client.post(APPLY, json={"items": [{"kind": "Service"}]}).status_code == 400
    assert client.post(APPLY, data=b"nope").status_code == 400


def test_a_store_that_cannot_write_is_503_with_its_reason_and_nothing_applied(
    client: FlaskClient, monkeypatch: Any
) -> None:
    import sqlite3

    from smi.store.sqlite import SQLiteStore

    def full(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(SQLiteStore, "apply", full)
    r = client.post(APPLY, json={"items": [service("web")]})
    assert r.status_code == 503
    assert r.get_json()["error"] == (
        "the store could not write: database or disk is full; nothing was applied"
    )


def test_a_lone_surrogate_in_a_name_or_label_is_refused_and_nothing_stored(
    client: FlaskClient,
) -> None:
    for svc in (service("web"), service("\udc80")):
        svc["metadata"]["labels"] = {"team": "\udc80"}
        r = client.post(APPLY, json={"items": [svc]})
        assert r.status_code == 400, r.get_json()
    assert client.get(OBJECTS).get_json()["items"] == []
