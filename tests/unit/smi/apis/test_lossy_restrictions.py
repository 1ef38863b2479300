"""Restrictions a version cannot show (a match's headers in specs v1alpha1, a destination port
in access v1alpha3/v1alpha4) survive an edit made in that version: they come back on the entry
they belong to for as long as it is there. Before, any edit of the field dropped them ("the
wire wins"), so appending HEAD to one match removed the admin token of another and the
converted object allowed GET /admin without it. Hidden grants (UDPRoute rules) still go with
an edit of the list they hide in."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from smi.apis import registry
from smi.apis.lossy import fingerprint
from smi.apis.meta import LOSSY_ANNOTATION
from smi.conversion import convert_document

SPECS_V1, SPECS_V4 = "specs.smi-spec.io/v1alpha1", "specs.smi-spec.io/v1alpha4"
ACCESS_V1, ACCESS_V2, ACCESS_V3, ACCESS_V4 = (
    f"access.smi-spec.io/v1alpha{n}" for n in (1, 2, 3, 4)
)

TOKEN = [{"x-admin-token": "^s3cret$"}]
GROUP: dict[str, Any] = {
    "apiVersion": SPECS_V4,
    "kind": "HTTPRouteGroup",
    "metadata": {"name": "api-routes", "namespace": "shop"},
    "spec": {
        "matches": [
            {"name": "admin", "pathRegex": "/admin/.*", "methods": ["GET"], "headers": TOKEN},
            {"name": "health", "pathRegex": "/healthz$", "methods": ["GET"]},
        ]
    },
}
TARGET: dict[str, Any] = {
    "apiVersion": ACCESS_V1,
    "kind": "TrafficTarget",
    "metadata": {"name": "metrics", "namespace": "shop"},
    "destination": {"kind": "ServiceAccount", "name": "api", "port": 9102},
    "specs": [{"kind": "TCPRoute", "name": "tcp"}],
    "sources": [{"kind": "ServiceAccount", "name": "prom", "namespace": "shop"}],
}


def _matches(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    body = doc if doc["apiVersion"] == SPECS_V1 else doc["spec"]
    return {m["name"]: m for m in body["matches"]}


def _down_group() -> dict[str, Any]:
    down = convert_document(GROUP, SPECS_V1)
    assert "headers" not in _matches(down)["admin"]
    assert LOSSY_ANNOTATION in down["metadata"]["annotations"]
    return down


def test_appending_a_method_to_another_match_keeps_the_admin_token() -> None:
    down = _down_group()
    down["matches"][1]["methods"].append("HEAD")
    back = convert_document(down, SPECS_V4)
    assert _matches(back)["admin"]["headers"] == TOKEN
    assert _matches(back)["health"]["methods"] == ["GET", "HEAD"]  # the edit is kept too
    assert "annotations" not in back["metadata"]


def test_editing_the_match_itself_keeps_its_headers() -> None:
    down = _down_group()
    down["matches"][0]["pathRegex"] = "/.*"
    down["matches"].reverse()  # order is not identity: the name is
    back = convert_document(down, SPECS_V4)
    assert _matches(back)["admin"] == {
        "name": "admin",
        "pathRegex": "/.*",
        "methods": ["GET"],
        "headers": TOKEN,
    }


def test_headers_go_with_their_match_when_it_is_removed_or_renamed() -> None:
    down = _down_group()
    down["matches"][0]["name"] = "admin-v2"
    back = convert_document(down, SPECS_V4)
    assert {name: m.get("headers") for name, m in _matches(back).items()} == {
        "admin-v2": None,
        "health": None,
    }
    del down["matches"][0]
    assert [m.get("headers") for m in convert_document(down, SPECS_V4)["spec"]["matches"]] == [None]


def _edit_annotation(doc: dict[str, Any], edit: Any) -> None:
    """Change the stored value behind an unchanged fingerprint, as a hand edit would."""
    annotations = doc["metadata"]["annotations"]
    payload = json.loads(annotations[LOSSY_ANNOTATION])
    edit(payload)
    annotations[LOSSY_ANNOTATION] = json.dumps(payload)


def test_a_stored_value_edited_by_hand_still_keeps_the_admin_token() -> None:
    """The annotation's copy of a field the manifest shows was changed (GET to GET and POST),
    the fingerprint left alone: the copy contradicts the wire and went, and with it the
    headers the manifest cannot show, so GET /admin was allowed without the token."""
    down = _down_group()
    _edit_annotation(down, lambda p: p["matches"]["value"][0]["methods"].append("POST"))
    back = convert_document(down, SPECS_V4)
    assert _matches(back)["admin"] == {
        "name": "admin",
        "pathRegex": "/admin/.*",
        "methods": ["GET"],  # the manifest's, not the annotation's
        "headers": TOKEN,
    }
    [admin, _health] = registry.parse(down).matches
    assert admin.methods == ("GET",) and admin.headers == (("x-admin-token", "^s3cret$"),)


def test_a_hand_edited_stored_destination_keeps_the_port_on_the_one_shown() -> None:
    down = convert_document(TARGET, ACCESS_V3)
    _edit_annotation(down, lambda p: p["destination"]["value"].update(namespace="elsewhere"))
    destination = registry.parse(down).destination
    assert (destination.name, destination.namespace, destination.port) == ("api", "", 9102)


def test_the_headers_come_back_in_the_hub_the_compiler_reads() -> None:
    down = _down_group()
    down["matches"][1]["methods"].append("HEAD")
    [admin, health] = registry.parse(down).matches
    assert admin.headers == (("x-admin-token", "^s3cret$"),)
    assert health.methods == ("GET", "HEAD")


@pytest.mark.parametrize("newer", [ACCESS_V3, ACCESS_V4])
def test_writing_the_destination_namespace_keeps_the_port(newer: str) -> None:
    down = convert_document(TARGET, newer)
    assert "port" not in down["spec"]["destination"]
    down["spec"]["destination"]["namespace"] = "shop"
    assert registry.parse(down).destination.port == 9102
    back = convert_document(down, ACCESS_V1)
    assert back["destination"] == {
        "kind": "ServiceAccount",
        "name": "api",
        "namespace": "shop",
        "port": 9102,
    }
    assert "annotations" not in back["metadata"]


def test_the_port_stays_through_edits_elsewhere_and_goes_with_another_destination() -> None:
    down = convert_document(TARGET, ACCESS_V3)
    down["spec"]["sources"].append({"kind": "ServiceAccount", "name": "web", "namespace": "shop"})
    down["spec"]["destination"]["namespace"] = "shop"
    assert registry.parse(down).destination.port == 9102
    other = copy.deepcopy(down)
    other["spec"]["destination"]["name"] = "db"  # a grant for someone else: not api's port
    assert registry.parse(other).destination.port is None


def test_a_port_the_manifest_writes_wins_over_the_annotation() -> None:
    """In a version that shows the port, the annotation cannot change it (it may only add
    what the version cannot hold)."""
    stored = {"kind": "ServiceAccount", "name": "api", "namespace": "", "group": "", "port": 1}
    doc = copy.deepcopy(TARGET)
    doc["apiVersion"] = ACCESS_V2
    doc["spec"] = {k: doc.pop(k) for k in ("destination", "specs", "sources")}
    doc["spec"]["rules"] = doc["spec"].pop("specs")
    doc["metadata"]["annotations"] = {
        LOSSY_ANNOTATION: json.dumps(
            {"destination": {"value": stored, "was": fingerprint("edited since")}}
        )
    }
    assert registry.parse(doc).destination.port == 9102


def test_hidden_udp_rules_still_go_with_an_edit_of_the_rules() -> None:
    """Hidden grants keep the old rule: re-adding them behind an edit would grant what the
    editor never saw."""
    original = {
        "apiVersion": ACCESS_V3,
        "kind": "TrafficTarget",
        "metadata": {"name": "dns", "namespace": "shop"},
        "spec": {
            "destination": {"kind": "ServiceAccount", "name": "dns", "namespace": "shop"},
            "rules": [{"kind": "TCPRoute", "name": "tcp"}, {"kind": "UDPRoute", "name": "udp"}],
            "sources": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}],
        },
    }
    down = convert_document(original, ACCESS_V2)
    down["spec"]["rules"].append({"kind": "TCPRoute", "name": "tcp2"})
    assert [r.kind for r in registry.parse(down).rules] == ["TCPRoute", "TCPRoute"]
