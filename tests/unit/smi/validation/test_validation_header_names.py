"""Header names a match may name: HTTP field names (RFC 9110 tokens), since a condition on a
name no request carries can never hold (SMI2207); `:authority`, HTTP/2's Host, is read as
`host` and said so (SMI2208), and the hub holds `host`."""

from __future__ import annotations

import pytest
from validation_helpers import findings, run_checks

from smi.apis import registry
from smi.loading import load_text


def group(headers: str, version: str = "v1alpha4") -> str:
    head = f"apiVersion: specs.smi-spec.io/{version}\nkind: HTTPRouteGroup\nmetadata: {{name: g}}\n"
    if version == "v1alpha2":
        return head + f"matches:\n- name: m\n  headers: {headers}\n"
    return head + f"spec:\n  matches:\n  - name: m\n    headers: {headers}\n"


@pytest.mark.parametrize(
    ("headers", "path", "shown"),
    [
        ('[{":path": /admin}]', "spec.matches[0].headers[0]", "':path' is not"),
        ('[{"x team": a}]', "spec.matches[0].headers[0]", "'x team' is not"),
        ('[{"": a}]', "spec.matches[0].headers[0]", "the header name is empty"),
        ('{"x-team:": a}', 'spec.matches[0].headers["x-team:"]', "'x-team:' is not"),
        ('{"x@team": a}', 'spec.matches[0].headers["x@team"]', "'x@team' is not"),
        # The Kelvin sign lower-cases to an ASCII `k`; the name as written is still no token.
        ('{"\\u212aey": a}', 'spec.matches[0].headers["\\u212aey"]', "'\\u212aey' is not"),
    ],
)
def test_a_name_that_is_no_http_field_name_is_an_error(headers: str, path: str, shown: str) -> None:
    [d] = run_checks(group(headers))
    assert (d.code, d.path, d.severity) == ("SMI2207", path, "error")
    assert d.message.startswith(shown)
    assert d.message.endswith(": no request carries it, so this match can never match")


def test_every_tchar_is_allowed() -> None:
    assert run_checks(group('[{"!#$%&\'*+-.^_`|~0-9aZ": a}]')) == []
    assert run_checks(group("{X-Team: a, user-agent: b}")) == []


@pytest.mark.parametrize("version", ["v1alpha2", "v1alpha3", "v1alpha4"])
@pytest.mark.parametrize("name", [":authority", ":Authority"])
def test_authority_is_read_as_host_with_a_warning(version: str, name: str) -> None:
    text = group(f'[{{"{name}": api.example.com}}]', version)
    [d] = run_checks(text)
    prefix = "matches" if version == "v1alpha2" else "spec.matches"
    assert (d.code, d.path, d.severity) == ("SMI2208", f"{prefix}[0].headers[0]", "warning")
    assert d.message == f"header {name!r} is read as 'host' (the Host header)"
    hub = load_text(text, filename="t.yaml").resources[0].obj
    assert hub.matches[0].headers == (("host", "api.example.com"),)


def test_authority_and_host_in_one_match_are_the_same_header_twice() -> None:
    diags = run_checks(group('{":authority": a, Host: b}'))
    assert findings(diags) == [
        ("SMI2208", 'spec.matches[0].headers[":authority"]'),
        ("SMI2205", "spec.matches[0].headers.Host"),
    ]
    assert diags[1].message == (
        "header 'host' is given twice (header names are case-insensitive and :authority is host)"
    )


def test_authority_converts_as_host() -> None:
    doc = load_text(group('[{":authority": a}]'), filename="t.yaml").resources[0].raw
    converted = registry.render(registry.parse(doc), "specs.smi-spec.io/v1alpha3")
    assert converted["spec"]["matches"][0]["headers"] == [{"host": "a"}]
