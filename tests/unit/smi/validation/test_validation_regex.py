"""smi.validation.regex: the quick syntax check never accepts a pattern RE2 refuses, and it
recognises the patterns route sets are made of; RE2 still decides the rest."""

from __future__ import annotations

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from smi.validation.regex import plainly_re2, re2_problem

TOKENS = [
    *"ab/.-*+?()[]^$|{},:\\é ",
    "(?:",
    "(?=",
    "(?P<n>",
    "[^",
    "\\d",
    "\\w",
    "\\.",
    "\\/",
    "\\1",
    "\\q",
    "\\z",
    "0-9",
    "a-z",
    "z-a",
    "{2}",
    "{2,1}",
    "*?",
    "\x00",
]


def compiles(pattern: str) -> bool:
    try:
        re2.compile(pattern)
    except Exception:
        return False
    return True


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=14).map("".join))
def test_what_the_quick_check_accepts_re2_compiles(pattern: str) -> None:
    if plainly_re2(pattern):
        assert compiles(pattern), pattern
        assert re2_problem(pattern) is None


@pytest.mark.parametrize(
    "pattern",
    [
        "/api/v1/items(/[0-9]+)?$",
        "/metrics$",
        ".*",
        "",
        "application/json.*",
        "/api/(v1|v2)/users/[a-zA-Z0-9_-]+/?$",
        "^/static/.+\\.(css|js)$",
        "/healthz?",
        "[^/]+",
        "(a+)+$",
    ],
)
def test_route_patterns_take_the_quick_path(pattern: str) -> None:
    assert plainly_re2(pattern)
    assert compiles(pattern)


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("(a)\\1", "Backreferences not supported"),
        ("a(?=b)", "invalid perl operator: (?="),
        ("[z-a]", "invalid character class range: z-a"),
        ("a**", "bad repetition operator: **"),
    ],
)
def test_patterns_outside_it_are_compiled_and_their_problem_reported(
    pattern: str, problem: str
) -> None:
    assert not plainly_re2(pattern)
    reason = re2_problem(pattern)
    assert reason is not None and problem in reason


@pytest.mark.parametrize("pattern", ["a{2}", "[[:alpha:]]+", "(?i)get", "((((a))))", "\\pL"])
def test_valid_patterns_outside_it_still_pass(pattern: str) -> None:
    assert not plainly_re2(pattern)
    assert re2_problem(pattern) is None
