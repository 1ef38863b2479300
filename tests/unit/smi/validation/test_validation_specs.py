"""Per-object checks of HTTPRouteGroup, TCPRoute and UDPRoute (SMI22xx, SMI23xx): RE2-only
regexes, methods, unique match and header names, port ranges; wire paths per version."""

from __future__ import annotations

import pytest
from validation_helpers import findings, run_checks


def group(matches: str, version: str = "v1alpha4") -> str:
    head = f"apiVersion: specs.smi-spec.io/{version}\nkind: HTTPRouteGroup\nmetadata: {{name: g}}\n"
    if version in ("v1alpha1", "v1alpha2"):
        return head + "matches:\n" + matches
    return head + "spec:\n  matches:\n" + "\n".join(f"  {line}" for line in matches.splitlines())


def test_a_clean_group_has_no_findings() -> None:
    text = group(
        "- name: api\n  pathRegex: /api/.*\n  methods: [GET, '*']\n"
        "  headers: {user-agent: .*Firefox.*}\n"
    )
    assert run_checks(text) == []


@pytest.mark.parametrize("version", ["v1alpha2", "v1alpha3", "v1alpha4"])
def test_both_header_forms_are_accepted_and_paths_follow_the_form(version: str) -> None:
    prefix = "matches" if version == "v1alpha2" else "spec.matches"
    as_list = group("- name: a\n  headers:\n  - x-a: '(?=a)'\n  - X-A: b\n", version)
    assert findings(run_checks(as_list)) == [
        ("SMI2204", f"{prefix}[0].headers[0]"),
        ("SMI2205", f"{prefix}[0].headers[1]"),
    ]
    as_map = group("- name: a\n  headers:\n    x-a: '(?=a)'\n    X-A: b\n", version)
    assert findings(run_checks(as_map)) == [
        ("SMI2204", f"{prefix}[0].headers.x-a"),
        ("SMI2205", f"{prefix}[0].headers.X-A"),
    ]


def test_header_entry_with_two_keys_is_smi2205_from_the_schema() -> None:
    diags = run_checks(group("- name: a\n  headers:\n  - {a: x, b: y}\n"))
    assert [(d.code, d.path, d.message) for d in diags] == [
        (
            "SMI2205",
            "spec.matches[0].headers[0]",
            "a header entry must be a map with exactly one key, this one has 2",
        ),
    ]


@pytest.mark.parametrize(
    ("regex", "code"),
    [
        (r"/(a)\1", "SMI2204"),
        ("/(?<=a)b$", "SMI2204"),
        ("/[", "SMI2204"),
        ("/api", "SMI2206"),
        ("/api$", None),
        ("/api/", None),
        ("/api.*", None),
        ("(?i)/API$", None),
    ],
)
def test_path_regex_is_re2_and_end_anchored(regex: str, code: str | None) -> None:
    diags = run_checks(group(f"- name: a\n  pathRegex: '{regex}'\n"))
    assert [d.code for d in diags] == ([code] if code else [])
    if code == "SMI2206":
        assert diags[0].severity == "warning"
        assert diags[0].path == "spec.matches[0].pathRegex"


def test_back_references_are_refused_not_run_by_python_re() -> None:
    # pyre2 would silently fall back to Python `re` without the fallback notification.
    [d] = run_checks(group("- name: a\n  pathRegex: '/(x+)\\1$'\n"))
    assert "Backreferences not supported" in d.message


def test_methods_are_uppercase_enum_values() -> None:
    diags = run_checks(group("- name: a\n  methods: [GET, get, FETCH]\n"))
    assert [(d.code, d.path) for d in diags] == [
        ("SMI2203", "spec.matches[0].methods[1]"),
        ("SMI2203", "spec.matches[0].methods[2]"),
    ]
    assert diags[0].message.endswith("; write 'GET'")


def test_match_names_are_unique_and_groups_not_empty() -> None:
    diags = run_checks(group("- name: a\n- name: b\n- name: a\n", "v1alpha1"))
    assert findings(diags) == [("SMI2202", "matches[2].name")]
    empty = "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g}\n"
    assert findings(run_checks(empty + "spec: {matches: []}\n")) == [("SMI2201", "spec.matches")]


def l4(kind: str, ports: str) -> str:
    return (
        f"apiVersion: specs.smi-spec.io/v1alpha4\nkind: {kind}\nmetadata: {{name: r}}\n"
        f"spec:\n  matches:\n    ports: {ports}\n"
    )


@pytest.mark.parametrize("kind", ["TCPRoute", "UDPRoute"])
def test_ports_are_in_range_and_unique(kind: str) -> None:
    diags = run_checks(l4(kind, "[0, 80, 65536, 80, 65535]"))
    assert findings(diags) == [
        ("SMI2301", "spec.matches.ports[0]"),
        ("SMI2301", "spec.matches.ports[2]"),
        ("SMI2302", "spec.matches.ports[3]"),
    ]
    assert [d.line for d in diags] == [6, 6, 6]
    assert run_checks(l4(kind, "[]")) == []


def test_ports_must_be_integers() -> None:
    assert findings(run_checks(l4("TCPRoute", "['80']"))) == [("SMI2003", "spec.matches.ports[0]")]
