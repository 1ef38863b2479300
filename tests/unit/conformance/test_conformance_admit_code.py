"""`expect: {allowed: true, code: 200}` on an admit step means the same on every target. An
allowed AdmissionReview carries no `status`, so the webhook target read its code as None and
failed a step the in-process target passed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from flask.testing import FlaskClient

from conformance.assertions import check_admit
from conformance.model import AdmitStep, Scenario
from conformance.targets.controlplane import ADMISSION_V1, ControlPlane
from conformance.targets.inproc import InprocTarget
from conformance.targets.webhook import WebhookTarget
from smi.policy.policyset import PolicySet
from webhook import create_app
from webhook.settings import Settings

SCENARIO = """
description: an allowed review is code 200, a refused one carries its own
capability: admission/code
smi_versions: [specs.smi-spec.io/v1alpha4]
resources:
  good:
    apiVersion: specs.smi-spec.io/v1alpha4
    kind: TCPRoute
    metadata: {name: admin-port, namespace: store}
    spec: {matches: {ports: [9090]}}
  bad:
    apiVersion: specs.smi-spec.io/v1alpha4
    kind: TCPRoute
    metadata: {name: admin-port, namespace: store}
    spec: {matches: {ports: [9090, 9090]}}
steps:
  - admit: {resource: good}
    expect: {allowed: true, code: 200}
  - admit: {resource: bad}
    expect: {allowed: false, code: 422}
"""


class _InProcessPlane:
    """What the webhook target's `admit` uses of `ControlPlane`, answered by the app itself."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def validate(self, request: dict[str, Any]) -> dict[str, Any]:
        review = {"apiVersion": ADMISSION_V1, "kind": "AdmissionReview", "request": request}
        reply = self.client.post("/validate", json=review)
        assert reply.status_code == 200, reply.get_data(as_text=True)
        response: dict[str, Any] = reply.get_json()["response"]
        return response


@pytest.fixture
def webhook_target(tmp_path: Path) -> Iterator[WebhookTarget]:
    app = create_app(
        Settings(store=tmp_path / "store.db"), policies=PolicySet.load(include_shipped=False)
    )
    target = WebhookTarget()
    target.plane = cast(ControlPlane, _InProcessPlane(app.test_client()))
    yield target
    app.extensions["smictl"].store.close()


@pytest.fixture
def inproc_target() -> Iterator[InprocTarget]:
    target = InprocTarget()
    target.start()
    yield target
    target.stop()


def _admit_steps(scenario: Scenario) -> list[AdmitStep]:
    return [s for s in scenario.steps if isinstance(s, AdmitStep)]


def test_every_target_reports_an_allowed_review_as_200(
    make_scenario: Callable[..., Scenario],
    webhook_target: WebhookTarget,
    inproc_target: InprocTarget,
) -> None:
    scenario = make_scenario(SCENARIO, name="admission/code")
    inproc_target.begin(scenario)
    codes = {}
    for target in (webhook_target, inproc_target):
        observed = [target.admit(scenario, step.admit) for step in _admit_steps(scenario)]
        codes[target.name] = [o.code for o in observed]
        for step, obs in zip(_admit_steps(scenario), observed, strict=True):
            failed = [c.line() for c in check_admit(step.expect, obs) if not c.ok]
            assert failed == [], (target.name, failed)
    assert codes == {"webhook": [200, 422], "inproc": [200, 422]}
