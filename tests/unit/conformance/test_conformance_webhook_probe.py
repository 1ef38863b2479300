"""The webhook target refuses to run against a control plane that enforces the shipped Rego
policies (they would refuse valid SMI objects): its probe object must be one a shipped *deny*
policy still refuses. The probe used to be an unanchored pathRegex, which path-regex-anchored
now only warns about, so a control plane with the shipped policies passed the check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from flask import Flask
from flask.testing import FlaskClient

from conformance.targets.base import TargetError
from conformance.targets.controlplane import ADMISSION_V1, ControlPlane
from conformance.targets.webhook import _check_no_rego_policies
from smi.policy.policyset import PolicySet
from webhook import create_app
from webhook.settings import Settings


class InProcessPlane:
    """What the check uses of `ControlPlane` (`validate`), answered by the app in-process."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def validate(self, request: dict[str, Any]) -> dict[str, Any]:
        review = {"apiVersion": ADMISSION_V1, "kind": "AdmissionReview", "request": request}
        reply = self.client.post("/validate", json=review)
        assert reply.status_code == 200, reply.get_data(as_text=True)
        response: dict[str, Any] = reply.get_json()["response"]
        return response


@pytest.fixture
def plane_with(tmp_path: Path) -> Iterator[Any]:
    apps: list[Flask] = []

    def make(policies: PolicySet) -> ControlPlane:
        app = create_app(Settings(store=tmp_path / f"s{len(apps)}.db"), policies=policies)
        apps.append(app)
        return cast(ControlPlane, InProcessPlane(app.test_client()))

    yield make
    for app in apps:
        app.extensions["smictl"].store.close()


def test_a_control_plane_with_the_shipped_policies_is_refused(plane_with: Any) -> None:
    with pytest.raises(TargetError) as info:
        _check_no_rego_policies(plane_with(PolicySet.load()))
    message = str(info.value)
    assert "enforces the shipped Rego policies" in message
    assert "[allowed-source-namespaces]" in message
    assert "SMI_WEBHOOK_SHIPPED_POLICIES=false" in message


def test_a_control_plane_without_them_admits_the_probe(plane_with: Any) -> None:
    # The probe is valid SMI: only an organisational policy refuses it.
    _check_no_rego_policies(plane_with(PolicySet.load(include_shipped=False)))
