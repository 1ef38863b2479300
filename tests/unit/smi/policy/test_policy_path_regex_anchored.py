"""The shipped policy specs/path-regex-anchored as admission runs it (regopy): it reports what
the built-in SMI2206 reports, which it replaces, and its evaluation never fails on a regex."""

from __future__ import annotations

from typing import Any

from smi.policy.admission import admit
from smi.policy.policyset import PolicySet


def review(regexes: list[str]) -> dict[str, Any]:
    group = {
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": "routes", "namespace": "shop", "labels": {"owner": "team"}},
        "spec": {"matches": [{"name": f"m{i}", "pathRegex": r} for i, r in enumerate(regexes)]},
    }
    return {
        "uid": "u-1",
        "kind": {"group": "", "version": "", "kind": "HTTPRouteGroup"},
        "namespace": "shop",
        "name": "routes",
        "operation": "CREATE",
        "userInfo": {"username": "alice"},
        "object": group,
    }


def findings(regexes: list[str], shipped: PolicySet) -> list[tuple[str, str]]:
    result = admit(review(regexes), shipped)
    assert result.allowed
    return [(d.code, d.path or "") for d in result.diagnostics]


def test_a_hex_escape_does_not_fail_the_evaluation(shipped: PolicySet) -> None:
    # rego-cpp's trim_right failed on `\x41`: the policy's evaluation failed (SMI5003) for
    # every HRG with such a regex ending in `$`, and a deny copy refused it.
    assert findings(["/a\\x41$", "/a\\x41"], shipped) == [("SMI5103", "spec.matches[1].pathRegex")]
