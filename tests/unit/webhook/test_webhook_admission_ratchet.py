"""/validate on UPDATEs of objects that already break a rule: finalizers can always be removed
from an object being deleted, and a metadata-only update keeps the object's old problems as
warnings (validation ratcheting); a spec change, or a problem the update brings, is refused.

Such objects exist: created before the webhook was installed, two CREATEs racing past SMI3003,
a policy rolled out after them. Refusing their finalizer removal kept them (and namespace
deletion) Terminating forever.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from local_admin import admin_client, with_admin_token

from smi.policy.policyset import PolicySet
from webhook import create_app
from webhook.settings import Settings

Review = Callable[..., dict[str, Any]]
APPLY = "/apis/smictl.io/v1/apply"
DELETING = {"deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["example.com/cleanup"]}


# The store API answers only the admin token's holder; these tests hold it.
@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return with_admin_token(settings, tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return admin_client(app)


def route_group(regex: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": "legacy", "namespace": "shop", "labels": {"owner": "x"}, **meta},
        "spec": {"matches": [{"name": "m", "pathRegex": regex}]},
    }


def split(name: str, weights: tuple[int, int] = (90, 10), **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": {"name": name, "namespace": "shop", "labels": {"owner": "x"}, **meta},
        "spec": {
            "service": "web",
            "backends": [
                {"service": "web-v1", "weight": weights[0]},
                {"service": "web-v2", "weight": weights[1]},
            ],
        },
    }


def without_finalizers(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"]["finalizers"] = []
    return out


def answer(client: FlaskClient, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/validate", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    return dict(r.get_json()["response"])


@pytest.fixture
def second_split(client: FlaskClient) -> None:
    """The store already has a TrafficSplit for `web`: another one for it breaks SMI3003."""
    r = client.post(APPLY, json={"items": [split("web-split")]})
    assert r.status_code == 200, r.get_json()


def test_finalizers_come_off_a_terminating_object_with_a_regex_re2_refuses(
    client: FlaskClient, make_review: Review
) -> None:
    old = route_group(r"(a)\1", **DELETING)
    response = answer(client, make_review(without_finalizers(old), old=old, operation="UPDATE"))
    assert response["allowed"] is True
    assert "deletionTimestamp" in response["status"]["message"]


@pytest.mark.usefixtures("second_split")
def test_finalizers_come_off_a_terminating_second_split_for_a_root(
    client: FlaskClient, make_review: Review
) -> None:
    old = split("legacy", **DELETING)
    assert answer(client, make_review(old))["allowed"] is False  # SMI3003, as a CREATE
    response = answer(client, make_review(without_finalizers(old), old=old, operation="UPDATE"))
    assert response["allowed"] is True


def test_a_spec_change_of_a_terminating_object_is_still_checked(
    client: FlaskClient, make_review: Review
) -> None:
    # The control plane enforces an object until it is gone: a stuck finalizer must not be a
    # way to change it unchecked.
    old = route_group("/api/", **DELETING)
    new = route_group(r"(b)\1", **DELETING)
    response = answer(client, make_review(new, old=old, operation="UPDATE"))
    assert response["allowed"] is False and response["status"]["code"] == 422
    assert "SMI2204" in response["status"]["message"]


@pytest.mark.usefixtures("second_split")
def test_a_metadata_only_update_keeps_old_problems_as_warnings(
    client: FlaskClient, make_review: Review
) -> None:
    old = split("legacy")
    new = copy.deepcopy(old)
    new["metadata"]["labels"]["team"] = "payments"
    new["metadata"]["annotations"] = {"note": "owned by payments now"}
    new["metadata"]["resourceVersion"] = "43"
    response = answer(client, make_review(new, old=old, operation="UPDATE"))
    assert response["allowed"] is True
    [kept] = [w for w in response["warnings"] if "SMI3003" in w]
    assert kept.startswith("pre-existing, not enforced on a metadata-only update: ")


@pytest.mark.usefixtures("second_split")
def test_a_spec_change_is_fully_checked(client: FlaskClient, make_review: Review) -> None:
    old = split("legacy")
    new = split("legacy", weights=(80, 20))
    response = answer(client, make_review(new, old=old, operation="UPDATE"))
    assert response["allowed"] is False and response["status"]["code"] == 422
    assert "SMI3003" in response["status"]["message"]


POLICIES = {
    "needs-team": 'violation contains "no team label" if not input.hub.metadata.labels.team\n',
    "not-blocked": (
        'violation contains "blocked" if input.hub.metadata.annotations["example.com/blocked"]\n'
    ),
}


@pytest.fixture
def strict_app(settings: Settings, tmp_path: Path) -> Iterator[Flask]:
    """The app with two deny policies on metadata (and none of the shipped ones)."""
    for i, (name, body) in enumerate(POLICIES.items()):
        d = tmp_path / "org-policies" / "org" / name
        d.mkdir(parents=True)
        head = f"# METADATA\n# title: {name}\n# custom:\n#   code: ORG{i}\n#   enforcement: deny\n"
        package = f"package org.{name.replace('-', '_')}\n\nimport rego.v1\n\n"
        (d / "policy.rego").write_text(head + package + body)
    policies = PolicySet.load([tmp_path / "org-policies"], include_shipped=False)
    application = create_app(settings, policies=policies)
    yield application
    application.extensions["smictl"].store.close()


def test_a_policy_rolled_out_after_the_object_does_not_block_relabelling(
    strict_app: Flask, make_review: Review
) -> None:
    old = split("web-split")
    new = copy.deepcopy(old)
    new["metadata"]["labels"]["tier"] = "gold"
    response = answer(strict_app.test_client(), make_review(new, old=old, operation="UPDATE"))
    assert response["allowed"] is True
    assert any(w.endswith("[needs-team] no team label") for w in response["warnings"])


def test_a_problem_the_metadata_update_brings_is_refused_alone(
    strict_app: Flask, make_review: Review
) -> None:
    old = split("web-split")
    new = copy.deepcopy(old)
    new["metadata"]["annotations"] = {"example.com/blocked": "yes"}
    response = answer(strict_app.test_client(), make_review(new, old=old, operation="UPDATE"))
    assert response["allowed"] is False and response["status"]["code"] == 403
    assert response["status"]["message"] == "[not-blocked] blocked"
    assert any(w.endswith("[needs-team] no team label") for w in response["warnings"])


def test_a_create_gets_every_check(strict_app: Flask, make_review: Review) -> None:
    response = answer(strict_app.test_client(), make_review(split("web-split")))
    assert response["allowed"] is False
    assert response["status"]["message"] == "[needs-team] no team label"


def test_a_terminating_object_is_not_judged_on_its_metadata_at_all(
    strict_app: Flask, make_review: Review
) -> None:
    # A controller's cleanup may drop labels with the finalizer: the object is on its way out.
    old = split("web-split", **DELETING)
    old["metadata"]["labels"]["team"] = "payments"
    new = without_finalizers(old)
    del new["metadata"]["labels"]["team"]
    client = strict_app.test_client()
    assert answer(client, make_review(new, old=old, operation="UPDATE"))["allowed"] is True
    del old["metadata"]["deletionTimestamp"]  # the same update of a live object is judged
    response = answer(client, make_review(new, old=old, operation="UPDATE"))
    assert response["allowed"] is False
    assert response["status"]["message"] == "[needs-team] no team label"


def test_a_problem_swapped_behind_the_bound_of_the_answer_is_still_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The 422 answer shows at most 50 lines then '... and N more': the ratchet compares every
    problem, not the shown lines, or an update trading a hidden old problem for a new one
    would look like the stored object's own problems and be let through."""
    from smi.errors import Diagnostic
    from smi.policy.admission import _invalid
    from webhook import policies

    def refusal(numbers: range) -> Any:
        found = [Diagnostic("SMI2103", f"problem {n}", path=f"spec.backends[{n}].weight")
                 for n in numbers]  # fmt: skip
        return _invalid("u", found, object_ref="", source=None)

    before, after = refusal(range(60)), refusal(range(1, 61))  # 0 dropped, 60 brought
    assert (
        before.messages[-1]
        == after.messages[-1]
        == ("... and 10 more (run smictl validate for all)")
    )
    monkeypatch.setattr(policies, "admit", lambda *_: before)
    request = {"oldObject": {}, "object": {}}
    ratcheted = policies.ratchet(None, request, after, None)  # type: ignore[arg-type]
    assert not ratcheted.allowed
    assert ratcheted.messages == ("spec.backends[60].weight: problem 60 (SMI2103)",)
    assert len(ratcheted.warnings) == 59


def test_smictl_apply_ratchets_a_metadata_only_update_as_validate_does(
    strict_app: Flask,
) -> None:
    """The local store's apply admits each change with the chain of `/validate` (docs), but
    without its ratcheting: relabelling an object that predates a policy was refused there
    where the webhook admits it with the old problem as a warning."""
    store = strict_app.extensions["smictl"].store
    store.apply([split("web-split")])  # (stored before the policies: no team label)
    client = admin_client(strict_app)
    relabelled = split("web-split")
    relabelled["metadata"]["labels"]["tier"] = "gold"
    r = client.post(APPLY, json={"items": [relabelled]})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert [x["action"] for x in body["results"]] == ["configured"]
    kept = [w["message"] for w in body["warnings"]]
    assert any(
        "pre-existing, not enforced on a metadata-only update" in m
        and "[needs-team] no team label" in m
        for m in kept
    ), kept
    changed = split("web-split", weights=(80, 20))
    assert client.post(APPLY, json={"items": [changed]}).status_code == 403  # (a spec change)
