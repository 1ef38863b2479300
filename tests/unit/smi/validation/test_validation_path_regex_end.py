"""SMI2206 looks at regex syntax, not characters: an escaped `$` or `.` at the end is a
literal, so the regex still matches longer paths; an empty pathRegex matches every path, as
the proxy's matcher treats it, and the warning says that instead of asking for an end anchor.
"""

from __future__ import annotations

import pytest
import re2
from validation_helpers import run_checks

from smi.compiler.build import compile
from smi.compiler.ir import PolicyIndex, authorize
from smi.loading import load_text
from smi.validation.regex import end_anchored


def group(regex: str) -> str:
    return (
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n"
        f"metadata: {{name: g, namespace: shop}}\nspec:\n  matches:\n  - name: m\n"
        f"    pathRegex: '{regex}'\n"
    )


@pytest.mark.parametrize(
    ("regex", "anchored"),
    [
        ("/api$", True),
        ("/api\\$", False),  # a literal dollar: /api$-admin matches
        ("/api\\\\$", True),  # a literal backslash, then the end
        ("/api\\\\\\$", False),  # a literal backslash, then a literal dollar
        ("/v1.*", True),
        ("/v1\\.*", False),  # any number of literal dots: /v1-admin matches
        ("/v1\\\\.*", True),
        ("/api/", True),
        ("/api\\/", True),  # an escaped slash is a slash
        ("", False),
    ],
)
def test_end_anchored_reads_escapes(regex: str, anchored: bool) -> None:
    assert end_anchored(regex) is anchored


@pytest.mark.parametrize("regex", ["/v1.*?", "/v1(/.*?)", "/a$|/v1.*?", "(?U)/v1.*"])
def test_a_lazy_dot_star_ends_a_regex_as_dot_star_does(regex: str) -> None:
    """Matched at the start only, `/v1.*?` takes every path `/v1.*` takes (laziness changes
    what the match spans, not which paths match): SMI2206 told its writer to end it with `.*`,
    which changes nothing. `(?U)/v1.*` (the same lazy `.*`) was never warned about."""
    assert end_anchored(regex)
    assert run_checks(group(regex)) == []
    lazy, greedy = re2.compile(regex), re2.compile(regex.replace(".*?", ".*"))
    for path in ("/v1", "/v1-admin", "/v1/x", "/a", "/a/b", "/v"):
        assert (lazy.match(path) is None) == (greedy.match(path) is None), path


@pytest.mark.parametrize("regex", ["/v1.+?", "/v1\\.*?", "/v1/*?", "/a.*?|/b"])
def test_other_lazy_repetitions_end_nothing(regex: str) -> None:
    assert not end_anchored(regex)
    assert [d.code for d in run_checks(group(regex))] == ["SMI2206"]


def test_an_escaped_dollar_is_warned_about_with_a_longer_path() -> None:
    [d] = run_checks(group("/api\\$"))
    assert (d.code, d.path, d.severity) == ("SMI2206", "spec.matches[0].pathRegex", "warning")
    assert d.message == (
        "'/api\\$' also matches longer paths (/api$-admin): \\$ is a literal $; "
        "end it with $, / or .*"
    )


def test_an_escaped_dot_before_the_star_is_warned_about() -> None:
    [d] = run_checks(group("/v1\\.*"))
    assert d.code == "SMI2206"
    assert d.message == "'/v1\\.*' also matches longer paths (/v1-admin); end it with $, / or .*"


def test_an_empty_path_regex_is_said_to_match_every_path() -> None:
    [d] = run_checks(group(""))
    assert (d.code, d.path, d.severity) == ("SMI2206", "spec.matches[0].pathRegex", "warning")
    assert d.message == (
        "'' matches every path, as if pathRegex were absent; remove it, or write .* to say so"
    )


def test_the_proxy_matches_an_empty_path_regex_as_every_path() -> None:
    """What the SMI2206 message for '' says is what the compiled policy enforces."""
    text = group("") + (
        "---\napiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\n"
        "metadata: {name: tt, namespace: shop}\nspec:\n"
        "  destination: {kind: ServiceAccount, name: api, namespace: shop}\n"
        "  rules: [{kind: HTTPRouteGroup, name: g}]\n"
        "  sources: [{kind: ServiceAccount, name: web, namespace: shop}]\n"
    )
    loaded = load_text(text, filename="t.yaml")
    index = PolicyIndex.build(compile(loaded.resources).policy)
    web, api = "spiffe://cluster.local/ns/shop/sa/web", "spiffe://cluster.local/ns/shop/sa/api"
    for path in ("/", "/admin", "/api/v1/items"):
        assert authorize(index, web, api, 8080, "GET", path).allowed, path


@pytest.mark.parametrize(
    ("regex", "anchored"),
    [
        ("/a\\z", True),  # RE2's end of text
        ("/a\\Z", True),  # (pyre2 reads it as \z)
        ("/a(?:$)", True),  # inside a trailing group
        ("/a($|/)", True),
        ("(/a|/b)$", True),
        ("/x(/a$|/b/)", True),  # each alternative of the trailing group ends
        ("/a$(x)?", True),  # the path ends at $, whatever may follow
        ("/a(.*)", True),
        ("(?P<p>/a$)(?i)", True),
        ("/a\\Qb/\\E", True),  # quoted text ending in /
        ("/x(/a$|/b)", False),  # /b is not ended
        ("/api|/v2$", False),  # only the second alternative ends: /apiary matches
        ("/a(?:$)?", False),  # an optional anchor: /ab matches
        ("/a(/.*)?", False),
        ("/a[$]", False),  # a dollar in a class is a literal
        ("/a[]$]", False),
        ("/a[[:alpha:]$]", False),
        ("/a\\Qb$\\E", False),  # a quoted dollar is a literal
        ("/a\\b", False),
        ("/a($|/b)x", False),  # /a/bx-admin matches
    ],
)
def test_end_anchored_reads_re2_end_anchors_and_alternatives(regex: str, anchored: bool) -> None:
    assert end_anchored(regex) is anchored


@pytest.mark.parametrize("regex", ["/a\\z", "/a(?:$)", "/a($|/)", "/x(/a$|/b/)"])
def test_regexes_ending_in_an_end_anchor_are_not_warned_about(regex: str) -> None:
    """`/a\\z` and `/a(?:$)` were told to "end it with $", which they do."""
    assert run_checks(group(regex)) == []


@pytest.mark.parametrize("regex", ["/a$x", "/a\\z/b", "/a$(x|y)", "(/a$x)|/b$.+"])
def test_text_after_the_end_anchor_matches_no_path(regex: str) -> None:
    """`/a$x` was told it "also matches longer paths; end it with $": it matches none."""
    [d] = run_checks(group(regex))
    assert (d.code, d.path, d.severity) == ("SMI2210", "spec.matches[0].pathRegex", "warning")
    assert d.message.startswith(f"'{regex}' matches no path: it asks for more after the end")
    compiled = re2.compile(regex)
    assert not any(compiled.match(p) for p in ("/a", "/ax", "/a/b", "/b", "/by", "/a$x"))


@pytest.mark.parametrize("regex", ["(?m)/a$x", "/a$(x)?", "/a$|/b$x", "/a($|/b)x"])
def test_a_regex_with_a_way_past_the_anchor_is_not_said_to_match_nothing(regex: str) -> None:
    assert "SMI2210" not in [d.code for d in run_checks(group(regex))]
