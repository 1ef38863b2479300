"""The shipped policy specs/path-regex-anchored as admission runs it (regopy): it reports what
the built-in SMI2206 reports, which it replaces, and its evaluation never fails on a regex."""

from __future__ import annotations

from typing import Any

from smi.policy.admission import admit
from smi.policy.policyset import PolicySet
from smi.validation.regex import end_anchored, re2_problem


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


# pathRegexes RE2 accepts, read both ways: the shapes of SMI2206's end_anchored (alternatives,
# anchors in groups, repetitions, classes, escapes, quotes, flags) and plain paths.
CORPUS = [
    "/api",
    "/api$",
    "/api/",
    "/static/.*",
    ".*",
    "",
    "/admin|/api$",
    "(/admin)|(/api)$",
    "/internal|/api.*",
    "/api/|/internal",
    "/a|",
    "|/a$",
    "/api\\z",
    "/a(?:$|/)",
    "(/a|/b)$",
    "(?P<v>/a$)",
    "/a(?:/b$|/c/)",
    "/a(?:/b|/c$)",
    "/a(?:/b|/c)",
    "/a(|/b$)",
    "((/a|/b/)|(/c.*))",
    "/a(?:$)x",
    "/a$x",
    "/api/?",
    "/a(/)?",
    "/a(/b$)*",
    "/a.*?",
    "/a(/.*?)",
    "/a.*?|/b",
    "/a.+?",
    "/a\\.*?",
    "/a/*?",
    "(?U)/a.*",
    "(" * 65 + "/a$" + ")" * 65 + ".*?",
    "/a.+",
    "/a/{2}",
    "/api\\.*",
    "/api[$]",
    "/api\\$",
    "/api\\\\$",
    "/a\\/",
    "/a[/]",
    "/a\\Q/\\E",
    "/a\\Qx$\\E",
    "/a[\\]|]/",
    "/a[[:alpha:]]$",
    "/a\\x41",
    "/a\\x{41}$",
    "/a\\p{Greek}/",
    '/a"b',
    '/a"b$',
    "/é",
    "(?i)/api$",
    "/a(?i)",
    "/.*$(?i)?",
    "/a.*(?m)\\Q\\E{2,}",
    "^/users/[0-9]+$",
    "/users/[^/]+",
    "(" * 65 + "/a$" + ")" * 65,
]


def test_the_policy_reports_exactly_the_regexes_smi2206_reports(shipped: PolicySet) -> None:
    assert all(re2_problem(r) is None for r in CORPUS)
    # SMI2206 warns about an empty pathRegex and about one that is not end-anchored.
    built_in = {i for i, r in enumerate(CORPUS) if not r or not end_anchored(r)}
    found = findings(CORPUS, shipped)
    assert not {"SMI2206", "SMI5003"} & {code for code, _ in found}  # replaced; never failed
    reported = {path for code, path in found if code == "SMI5103"}
    assert reported == {f"spec.matches[{i}].pathRegex" for i in built_in}
    assert 15 < len(built_in) < len(CORPUS) - 15  # both answers are well represented
