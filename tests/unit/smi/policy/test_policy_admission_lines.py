"""The lines of an admission answer stay lines: a policy's name cannot break one, a 422's field
lines and causes are escaped and bounded, and the full list stays in the diagnostics
(what `smictl admit` prints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smi.policy.admission import MAX_FIELD_LINES, admit
from smi.policy.policyset import PolicySet

NO_POLICIES = PolicySet.load([], include_shipped=False)
ROUTE = {
    "apiVersion": "specs.smi-spec.io/v1alpha4",
    "kind": "HTTPRouteGroup",
    "metadata": {"name": "admin", "namespace": "shop"},
    "spec": {"matches": [{"name": "m", "pathRegex": "/admin$"}]},
}


def request(obj: dict[str, Any]) -> dict[str, Any]:
    kind = {"group": obj["apiVersion"].split("/")[0], "version": "v1", "kind": obj["kind"]}
    return {"uid": "u-1", "kind": kind, "namespace": "shop", "operation": "CREATE", "object": obj}


def split(backends: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "split.smi-spec.io/v1alpha2",
        "kind": "TrafficSplit",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"service": "web", "backends": backends},
    }


def test_a_policy_directory_named_with_a_newline_gives_one_denial_line(tmp_path: Path) -> None:
    policy = tmp_path / "policies" / "org" / "forge\n[other-policy] forged"
    policy.mkdir(parents=True)
    (policy / "policy.rego").write_text(
        "# METADATA\n# title: forge\n# custom:\n#   code: T0001\n#   enforcement: deny\n"
        'package test.forge\n\nimport rego.v1\n\nviolation contains "no" if input.hub\n'
    )
    result = admit(request(ROUTE), PolicySet.load([tmp_path / "policies"], include_shipped=False))
    assert (result.code, result.messages) == (403, ("[forge [other-policy] forged] no",))
    assert result.to_response()["status"]["message"] == "[forge [other-policy] forged] no"


def test_causes_are_bounded_and_escaped_like_the_message() -> None:
    backends = [{"service": f"Bad\n_{i}", "weight": -1} for i in range(300)]
    result = admit(request(split(backends)), NO_POLICIES)
    status = result.to_response()["status"]
    causes = status["details"]["causes"]
    assert len(causes) == MAX_FIELD_LINES
    assert causes[0] == {
        "field": "spec.backends[0].service",
        "message": "Service name 'Bad\\n_0' is not a DNS-1123 label (lowercase letters, digits "
        "and '-', starting and ending alphanumeric, at most 63 characters) (SMI2006)",
        "reason": "FieldValueInvalid",
    }
    lines = status["message"].splitlines()
    assert lines[-1] == f"... and {600 - len(lines) + 1} more (run smictl validate for all)"
    assert len(result.messages) == len(lines) <= MAX_FIELD_LINES + 1


def test_every_problem_stays_in_the_diagnostics() -> None:
    backends = [{"service": f"Bad_Name_{i}", "weight": -1} for i in range(300)]
    result = admit(request(split(backends)), NO_POLICIES)
    assert len(result.messages) == MAX_FIELD_LINES + 1
    assert len(result.diagnostics) == 600
    assert result.diagnostics[-1].path == "spec.backends[299].weight"
