"""Header names reach smictl as the scenario sent them. The in-process and webhook targets
used to lower-case them before `authorize`, so a step about case-insensitive header names
tested the suite, not smictl; that matching is smictl proxy's HTTP parsing, so such a step is
skipped there with the reason, and run on the proxy target."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from conformance.model import RequestStep, Scenario
from conformance.runner import run
from conformance.targets import decide
from conformance.targets.inproc import InprocTarget
from conformance.targets.proxy import ProxyTarget
from conformance.targets.webhook import WebhookTarget

TEXT = """
description: header names in any case
capability: traffic-specs/headers
smi_versions: [access.smi-spec.io/v1alpha3, specs.smi-spec.io/v1alpha4]
workloads:
  - identity: shop/frontend
  - {identity: shop/catalog, services: [catalog], ports: [8080]}
steps:
  - request: {from: shop/frontend, to: catalog, headers: {x-tenant: a}}
    expect: {status: 403}
  - request: {from: shop/frontend, to: catalog, headers: {X-Tenant: a, user-agent: b}}
    expect: {status: 403}
"""
REASON = (
    "header names X-Tenant: matching names case-insensitively is smictl proxy's HTTP "
    "parsing (run the proxy target)"
)


def test_a_step_with_names_not_lower_case_is_skipped_with_the_reason(
    make_scenario: Callable[..., Scenario],
) -> None:
    [r] = run([InprocTarget()], [make_scenario(TEXT)]).results
    assert [(s.status, s.reason) for s in r.steps] == [
        ("passed", ""),
        ("skipped", f"inproc: {REASON}"),
    ]


def test_the_webhook_target_skips_it_too_and_the_proxy_target_runs_it(
    make_scenario: Callable[..., Scenario],
) -> None:
    scenario = make_scenario(TEXT)
    step = scenario.steps[1]
    assert WebhookTarget().unsupported(step, scenario) == REASON
    assert ProxyTarget().unsupported(step, scenario) is None
    assert WebhookTarget.unobserved.keys() == {"identity"}
    assert dict(ProxyTarget.unobserved) == {}


def test_header_names_reach_authorize_as_sent(
    make_scenario: Callable[..., Scenario], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Mapping[str, str]] = []
    real = decide.authorize

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[6])
        return real(*args, **kwargs)

    monkeypatch.setattr(decide, "authorize", spy)
    scenario = make_scenario(TEXT)
    target = InprocTarget()
    target.begin(scenario)
    step = scenario.steps[1]
    assert isinstance(step, RequestStep)
    decide.decide_requests(
        target._index,  # type: ignore[arg-type]
        scenario,
        step.request,
        rng=random.Random(1),
    )
    assert seen == [{"X-Tenant": "a", "user-agent": "b"}]
