"""The admission chain's verdicts: 200 / 403 `[policy] msg` / 422 per field path, warnings apart."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from policy_types import WritePolicy

from smi.loading import load_object
from smi.policy.admission import admit
from smi.policy.input import Inventory
from smi.policy.policyset import PolicySet

NO_POLICIES = PolicySet()

SPLIT = {
    "apiVersion": "split.smi-spec.io/v1alpha4",
    "kind": "TrafficSplit",
    "metadata": {"name": "rollout", "namespace": "shop", "labels": {"owner": "team"}},
    "spec": {
        "service": "web",
        "backends": [{"service": "web-v1", "weight": 90}, {"service": "web-v2", "weight": 10}],
    },
}
TARGET = {
    "apiVersion": "access.smi-spec.io/v1alpha3",
    "kind": "TrafficTarget",
    "metadata": {"name": "t", "namespace": "shop", "labels": {"owner": "team"}},
    "spec": {
        "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "shop"},
        "rules": [{"kind": "TCPRoute", "name": "db"}],
        "sources": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}],
    },
}
ROUTE = {
    "apiVersion": "specs.smi-spec.io/v1alpha4",
    "kind": "TCPRoute",
    "metadata": {"name": "db", "namespace": "shop", "labels": {"owner": "team"}},
    "spec": {"matches": {"ports": [5432]}},
}


def request(
    obj: Any, *, operation: str = "CREATE", old: Any = None, uid: str = "u-1"
) -> dict[str, Any]:
    kind = (obj or old)["kind"]
    return {
        "uid": uid,
        "kind": {"group": "", "version": "", "kind": kind},
        "namespace": "shop",
        "name": (obj or old)["metadata"]["name"],
        "operation": operation,
        "userInfo": {"username": "alice"},
        "object": obj,
        "oldObject": old,
        "dryRun": False,
    }


def inventory(*docs: dict[str, Any]) -> Inventory:
    resources = [r for d in docs for r in load_object(d).resources]
    return Inventory.of(resources)


def with_weights(
    v1: int, v2: int, *, api_version: str = "split.smi-spec.io/v1alpha4"
) -> dict[str, Any]:
    doc = copy.deepcopy(SPLIT)
    doc["apiVersion"] = api_version
    doc["spec"]["backends"][0]["weight"] = v1
    doc["spec"]["backends"][1]["weight"] = v2
    return doc


def test_a_valid_object_is_allowed_and_the_uid_echoed() -> None:
    result = admit(request(ROUTE, uid="abc"), NO_POLICIES)
    assert (result.allowed, result.code, result.messages, result.warnings) == (True, 200, (), ())
    assert result.to_response() == {"uid": "abc", "allowed": True}


def test_an_invalid_object_is_422_with_one_line_per_field_path() -> None:
    bad = copy.deepcopy(SPLIT)
    bad["spec"]["backends"][0]["weight"] = -1
    bad["spec"]["backends"].append({"service": "web-v1", "weight": 1})
    result = admit(request(bad), NO_POLICIES)
    assert (result.allowed, result.code) == (False, 422)
    assert result.messages == (
        "spec.backends[0].weight: must be an integer >= 0 (got -1) (SMI2103)",
        "spec.backends[2].service: backend 'web-v1' is listed twice (SMI2105)",
    )
    response = result.to_response()
    assert response["status"]["reason"] == "Invalid" and response["uid"] == "u-1"
    assert [c["field"] for c in response["status"]["details"]["causes"]] == [
        "spec.backends[0].weight",
        "spec.backends[2].service",
    ]


def test_a_broken_document_is_422_too() -> None:
    result = admit(
        request(
            {
                "apiVersion": "split.smi-spec.io/v1alpha4",
                "kind": "TrafficSplit",
                "metadata": {"name": "x"},
                "spec": {"service": 5},
            }
        ),
        NO_POLICIES,
    )
    assert result.code == 422 and result.messages


def test_built_in_warnings_are_warnings_and_strict_makes_them_invalid() -> None:
    relaxed = admit(request(TARGET), NO_POLICIES)
    assert relaxed.allowed and relaxed.warnings == (
        "spec.rules[0].name: TCPRoute shop/db is not in the set; until it exists this rule "
        "allows nothing (SMI3001)",
    )
    strict = admit(request(TARGET), NO_POLICIES, strict=True)
    assert strict.code == 422 and strict.messages == relaxed.warnings
    known = admit(request(TARGET), NO_POLICIES, inventory=inventory(ROUTE), strict=True)
    assert known.allowed and known.warnings == ()


def test_deny_policy_is_403_with_policy_name_lines(write_policy: WritePolicy) -> None:
    root = write_policy(
        "no-canary",
        'violation contains {"msg": "canaries are banned", "path": "spec.backends"} if {\n'
        '\tinput.hub.kind == "TrafficSplit"\n}\n',
    )
    result = admit(request(SPLIT), PolicySet.load([root], include_shipped=False))
    assert (result.allowed, result.code, result.messages) == (
        False,
        403,
        ("[no-canary] canaries are banned",),
    )
    assert result.to_response()["status"] == {
        "code": 403,
        "reason": "Forbidden",
        "message": "[no-canary] canaries are banned",
    }
    [diag] = result.diagnostics
    assert (diag.code, diag.path, diag.severity) == ("T0001", "spec.backends", "error")


def test_warn_policy_admits_with_a_warning(write_policy: WritePolicy) -> None:
    root = write_policy(
        "hint", 'violation contains "consider a label" if true\n', enforcement="warn"
    )
    result = admit(request(ROUTE), PolicySet.load([root], include_shipped=False))
    assert result.allowed and result.warnings == ("[hint] consider a label",)
    assert result.to_response() == {
        "uid": "u-1",
        "allowed": True,
        "warnings": ["[hint] consider a label"],
    }


CONFLICT = 'x := 1 if input.hub\nx := 2 if input.hub\nviolation contains "x" if x\n'


def test_evaluation_error_in_a_deny_policy_fails_closed(write_policy: WritePolicy) -> None:
    policies = PolicySet.load([write_policy("flaky", CONFLICT)], include_shipped=False)
    result = admit(request(ROUTE), policies)
    assert result.code == 403
    [line] = result.messages
    assert line.startswith("[flaky] policy evaluation failed: ")
    assert [d.code for d in result.diagnostics] == ["SMI5003"]


def test_evaluation_error_in_a_warn_policy_is_only_a_warning(write_policy: WritePolicy) -> None:
    root = write_policy("flaky", CONFLICT, enforcement="warn")
    result = admit(request(ROUTE), PolicySet.load([root], include_shipped=False))
    assert result.allowed and result.warnings[0].startswith("[flaky] policy evaluation failed")


def test_policies_see_the_documented_input(write_policy: WritePolicy) -> None:
    body = """
    old := "no-old" if input.oldHub == null

    violation contains concat(" ", [
        input.request.operation, input.request.userInfo.username, input.hub.kind,
        input.hub.metadata.namespace, format_int(input.hub.backends[0].weightMilli, 10), old,
        format_int(input.inventory.TCPRoute.shop.db.ports[0], 10),
    ])
    """
    root = write_policy("echo", body, extra="inventory: [TCPRoute]")
    policies = PolicySet.load([root], include_shipped=False)
    result = admit(request(SPLIT), policies, inventory=inventory(ROUTE))
    assert result.messages == ("[echo] CREATE alice TrafficSplit shop 90000 no-old 5432",)


def test_canary_step_compares_old_and_new_across_api_versions(shipped: PolicySet) -> None:
    old = with_weights(900, 100, api_version="split.smi-spec.io/v1alpha1")
    old["spec"]["backends"][0]["weight"] = "900m"
    old["spec"]["backends"][1]["weight"] = "100m"
    small = admit(request(with_weights(70, 30), operation="UPDATE", old=old), shipped)
    assert small.allowed, small.messages
    big = admit(request(with_weights(50, 50), operation="UPDATE", old=old), shipped)
    assert big.code == 403
    assert big.messages[0].startswith("[canary-step] backend web-v1 moves from 90% to 50%")


def test_delete_is_not_validated_and_policies_see_the_old_object(write_policy: WritePolicy) -> None:
    body = (
        'violation contains "keep it" if {\n'
        '\tinput.hub == null\n\tinput.oldHub.kind == "TCPRoute"\n}\n'
    )
    policies = PolicySet.load([write_policy("keep", body)], include_shipped=False)
    result = admit(request(None, operation="DELETE", old=ROUTE), policies)
    assert result.messages == ("[keep] keep it",) and result.object_ref == "TCPRoute/shop/db"


def test_inventory_lets_a_policy_cross_reference(shipped: PolicySet) -> None:
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "api", "namespace": "shop", "labels": {"smictl.io/sensitive": "true"}},
    }
    binding = {
        "apiVersion": "access.smi-spec.io/v1alpha4",
        "kind": "IdentityBinding",
        "metadata": {"name": "all", "namespace": "shop"},
        "spec": {"schemes": {"podLabelSelector": {}}},
    }
    target = copy.deepcopy(TARGET)
    target["apiVersion"] = "access.smi-spec.io/v1alpha4"
    target["spec"]["sources"] = [
        {
            "kind": "IdentityBinding",
            "group": "access.smi-spec.io",
            "name": "all",
            "namespace": "shop",
        }
    ]
    without = admit(request(target), shipped, inventory=inventory(ROUTE, binding))
    assert without.allowed, without.messages
    ctx = load_object(account).context
    inv = Inventory.of(inventory(ROUTE, binding).resources, ctx)
    denied = admit(request(target), shipped, inventory=inv)
    assert denied.code == 403 and denied.messages[0].startswith("[sensitive-destination]")


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}},
    ],
)
def test_objects_that_are_not_smi_are_let_through(obj: dict[str, Any], shipped: PolicySet) -> None:
    result = admit(request(obj), shipped)
    assert result.allowed and result.code == 200
