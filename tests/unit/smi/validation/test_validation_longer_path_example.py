"""SMI2206's example of a longer path: a real path the regex matches, or none at all.

It used to be the regex with an "x" appended (`'/users/[0-9]+x'`), which is often not a path
and often not matched by the regex it was meant to illustrate.
"""

from __future__ import annotations

import pytest
import re2
from hypothesis import given
from hypothesis import strategies as st
from validation_helpers import run_checks

from smi.validation.regex import longer_path_example

SPEC = "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g}\n"


def smi2206(regex: str) -> str:
    text = SPEC + f"spec:\n  matches:\n  - name: a\n    pathRegex: '{regex}'\n"
    [d] = [d for d in run_checks(text) if d.code == "SMI2206"]
    return f"{d.path}: {d.message} ({d.code})"


@pytest.mark.parametrize(
    ("regex", "example"),
    [
        ("/metrics", "/metrics-admin"),
        ("/api", "/api-admin"),
        ("/users/[0-9]+", "/users/0-admin"),
        ("/users/[^/]+", "/users/a-admin"),
        ("/api/v1/(users|orders)/[0-9]+", "/api/v1/users/0-admin"),
        ("^/api(/v[0-9])?", "/api-admin"),
        ("/items/\\d{3}", "/items/000-admin"),
        ("/(?P<id>[a-f0-9]+)-[A-Z]*", "/a--admin"),
        ("/docs/[a-z]*", "/docs/-admin"),
    ],
)
def test_the_example_is_a_path_the_regex_matches(regex: str, example: str) -> None:
    assert longer_path_example(regex) == example
    assert re2.compile(regex).match(example) is not None


@pytest.mark.parametrize(
    "regex",
    [
        "metrics",  # no request path matches it: every path starts with "/"
        "[a-z]+/metrics",  # nor this one
        "(/a$|/b)",  # the first alternative ends the path
        "/a(?i)b",  # flags
        "/files/\\s",  # no path character in the class
        "/x\\b",  # assertions are not followed
        "/" + "a" * 80,  # too long to help in a one-line warning
        "/" + "(" * 400 + "a" + ")" * 400,  # RE2 runs it; a recursive walk would overflow
        "/" + "((((a{99}){99}){99}){99})",  # nested counts would multiply into gigabytes
    ],
)
def test_no_example_rather_than_a_wrong_one(regex: str) -> None:
    assert longer_path_example(regex) is None


@given(st.from_regex(r"/[a-z0-9/\[\]()|+*?.^\\-]{0,24}", fullmatch=True))
def test_any_example_given_is_matched_by_the_regex(regex: str) -> None:
    example = longer_path_example(regex)
    if example is not None:
        assert example.startswith("/") and example.endswith("-admin")
        assert re2.compile(regex).match(example) is not None


def test_the_warning_quotes_the_regex_once_and_fits_120_characters() -> None:
    line = smi2206("/users/[0-9]+")
    assert line == (
        "spec.matches[0].pathRegex: '/users/[0-9]+' also matches longer paths "
        "(/users/0-admin); end it with $, / or .* (SMI2206)"
    )
    assert len(line) <= 120 and line.count("/users/[0-9]+") == 1


def test_without_an_example_the_warning_says_longer_paths() -> None:
    assert smi2206("/a(?i)b") == (
        "spec.matches[0].pathRegex: '/a(?i)b' also matches longer paths; "
        "end it with $, / or .* (SMI2206)"
    )
