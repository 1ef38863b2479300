"""RE2 matchers: linear time on hostile input, no silent fallback to backtracking `re`."""

from __future__ import annotations

import time

import pytest

from smi.compiler.ir.matching import (
    HttpMatcher,
    RegexCache,
    RegexError,
    check_regex,
    compile_regex,
    literal_prefix,
    path_readings,
    request_path,
    strip_query,
)
from smi.compiler.ir.model import HttpMatch


def test_catastrophic_backtracking_pattern_returns_fast() -> None:
    matcher = HttpMatcher(HttpMatch(origin="g#m", path_regex="(a+)+$"), RegexCache())
    hostile = "a" * 50_000 + "b"
    started = time.perf_counter()
    for _ in range(10):
        assert not matcher.matches("GET", hostile, {})
    # Python's `re` would not finish this in hours; RE2 takes well under a millisecond each.
    assert time.perf_counter() - started < 1.0


def test_hostile_header_value_returns_fast() -> None:
    matcher = HttpMatcher(HttpMatch(origin="g#m", headers=(("x", "(a|aa)+$"),)), RegexCache())
    started = time.perf_counter()
    assert not matcher.matches("GET", "/", {"x": "a" * 50_000 + "!"})
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=x)", "(?<!x)y", "(?P=name)", "("])
def test_patterns_re2_cannot_run_are_errors_not_a_fallback(pattern: str) -> None:
    with pytest.raises(RegexError):
        compile_regex(pattern)
    assert check_regex(pattern) is not None


def test_valid_patterns_compile() -> None:
    assert check_regex("/api/v[0-9]+/books/(?P<id>[^/]+)$") is None


@pytest.mark.parametrize(
    ("path", "stripped"),
    [("/a?b=c", "/a"), ("/a#frag", "/a"), ("/a?b#c", "/a"), ("/a", "/a"), ("?x", "")],
)
def test_strip_query(path: str, stripped: str) -> None:
    assert strip_query(path) == stripped


def test_failures_name_every_unmet_condition() -> None:
    matcher = HttpMatcher(
        HttpMatch(
            origin="g#m",
            methods=("GET",),
            path_regex="/books",
            headers=(("user-agent", ".*Firefox.*"),),
        ),
        RegexCache(),
    )
    assert matcher.failures("POST", "/x", {}) == [
        "method GET",
        "path /books",
        "header user-agent: .*Firefox.*",
    ]
    assert matcher.failures("GET", "/books/1", {"user-agent": "Firefox"}) == []


def test_regex_cache_compiles_each_pattern_once() -> None:
    cache = RegexCache()
    assert cache.get("/a") is cache.get("/a")
    assert cache.get(r"(a)\1") is None
    assert r"(a)\1" in cache.errors


@pytest.mark.parametrize(
    ("raw", "seen"),
    [
        ("/books/7?x=/../admin", "/books/7"),
        ("/public/../admin", "/admin"),
        ("/public/%2e%2E/admin", "/admin"),
        ("/public//../admin", "/admin"),  # as a server that merges slashes resolves it
        ("/a/./b/", "/a/b/"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("//a///b", "/a/b"),
        ("/a/..b/.c", "/a/..b/.c"),  # not dot segments
        ("/", "/"),
        ("", ""),
    ],
)
def test_request_path_normalises_before_matching(raw: str, seen: str) -> None:
    assert request_path(raw) == seen


@pytest.mark.parametrize(
    ("pattern", "prefix", "literal"),
    [
        ("/metrics", "/metrics", True),
        ("^/metrics", "/metrics", True),
        ("/api/v1/items/[0-9]+$", "/api/v1/items/", False),
        ("/restock-books$", "/restock-books", False),
        ("/apis?/x", "/api", False),  # the quantified "s" is not part of the prefix
        ("/a{2}", "/", False),
        ("/a|/b", "", False),
        ("(?i)/admin", "", False),
        ("\\/x", "", False),
        ("", "", True),
    ],
)
def test_literal_prefix(pattern: str, prefix: str, literal: bool) -> None:
    assert literal_prefix(pattern) == (prefix, literal)


@pytest.mark.parametrize(
    ("path_regex", "path", "expected"),
    [
        ("/metrics", "/metrics", True),
        ("/metrics", "/metricsz", True),
        ("/metrics", "/metric", False),
        ("/apis?/x", "/api/x", True),
        ("/apis?/x", "/apis/x", True),
        ("/a|/b", "/b", True),
        ("(?i)/admin", "/ADMIN", True),
        ("/api/v[0-9]+$", "/api/v12", True),
        ("/api/v[0-9]+$", "/api/v12/x", False),
    ],
)
def test_prefix_shortcut_agrees_with_re2(path_regex: str, path: str, expected: bool) -> None:
    matcher = HttpMatcher(HttpMatch(origin="g#m", path_regex=path_regex), RegexCache())
    assert matcher.matches("GET", path, {}) is expected
    assert (compile_regex(path_regex).match(path) is not None) is expected


@pytest.mark.parametrize(
    ("regex", "value", "expected"),
    [
        ("bookbuyer", "bookbuyer", True),
        ("bookbuyer", "bookbuyer2", False),
        ("bookbuyer", "xbookbuyer", False),
        ("book.*", "bookbuyer", True),
        ("yes|true", "true", True),
        ("yes|true", "yes!", False),
    ],
)
def test_header_values_match_whole(regex: str, value: str, expected: bool) -> None:
    matcher = HttpMatcher(HttpMatch(origin="g#m", headers=(("x", regex),)), RegexCache())
    assert matcher.matches("GET", "/", {"x": value}) is expected


@pytest.mark.parametrize(
    ("raw", "includes"),
    [
        ("/public/..%2fadmin", "/admin"),  # %2F decoded before dot segments
        ("/public/..%5Cadmin", "/admin"),
        ("/public/..\\admin", "/admin"),
        ("/public/..;/admin", "/admin"),  # ";" parameters of a dot segment dropped (Tomcat)
        ("/public/x#/../../admin", "/admin"),  # "#" kept in the path (Go)
        ("/admin//..", "/admin/"),  # RFC 3986: an empty segment is a segment
        ("/public/x//../../admin", "/public/admin"),
        ("/public/x//../../admin", "/admin"),
    ],
)
def test_path_readings_cover_what_applications_may_act_on(raw: str, includes: str) -> None:
    assert includes in path_readings(raw)


@pytest.mark.parametrize("raw", ["/public/x", "/api/v1/items?id=%2f..", "/a/./b/../c", ""])
def test_a_plain_path_has_no_other_reading(raw: str) -> None:
    assert path_readings(raw) == ()
