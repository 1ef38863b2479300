"""Strings with a backslash, a quote or a control character reach a policy as the strings they
are: equal to the Rego literal that spells them, and a message made from them reads back.

They did not: handed to rego-cpp raw, `/admin\\..*` never equalled the literal
`"/admin\\\\..*"`, so a deny list of such values admitted them, and a `"` in a value made the
engine's output unreadable (SMI5003)."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_types import RunCli, WritePolicy

from smi.policy.policyset import PolicySet

# Each value, and the Rego literal that spells it.
VALUES = [
    ("/admin\\..*", '"/admin\\\\..*"'),
    ('/a"b', '"/a\\"b"'),
    ("a\nb", '"a\\nb"'),
    ("tab\there", '"tab\\there"'),
    ("bell\x07", '"bell\\u0007"'),
    ("grüße ✓", '"grüße ✓"'),
    ("plain/path", '"plain/path"'),
]

DENY_LIST = """
forbidden := {{{literals}}}

violation contains {{"msg": concat("", ["forbidden value ", v]), "path": "metadata.labels"}} if {{
	some v in input.hub.metadata.labels
	v in forbidden
}}
"""


def hub(value: str) -> dict[str, object]:
    return {"hub": {"kind": "TrafficSplit", "metadata": {"name": "s", "labels": {"x": value}}}}


@pytest.mark.parametrize(("value", "literal"), VALUES, ids=[repr(v) for v, _ in VALUES])
def test_a_value_equals_the_literal_that_spells_it_and_the_message_reads_back(
    write_policy: WritePolicy, value: str, literal: str
) -> None:
    root = write_policy("deny-list", DENY_LIST.format(literals=literal))
    policies = PolicySet.load([root], include_shipped=False)
    [decision] = policies.evaluate(kind="TrafficSplit", input_for=lambda _: hub(value))
    assert decision.error is None
    assert [v.msg for v in decision.violations] == [f"forbidden value {value}"]
    [other] = policies.evaluate(kind="TrafficSplit", input_for=lambda _: hub(value + "z"))
    assert other.error is None and other.violations == ()


def test_admit_denies_a_listed_regex_written_with_a_backslash(
    write_policy: WritePolicy, run_cli: RunCli, tmp_path: Path
) -> None:
    body = """
forbidden := {"/admin\\\\..*", "/debug/.*"}

violation contains {"msg": concat("", ["match ", m.name, " uses a forbidden pathRegex"])} if {
	some m in input.hub.matches
	m.pathRegex in forbidden
}
"""
    root = write_policy("deny-list", body, extra="kinds: [HTTPRouteGroup]")
    manifest = tmp_path / "hrg.yaml"
    manifest.write_text(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n"
        "metadata: {name: g, namespace: shop}\n"
        "spec:\n  matches:\n  - name: admin\n    pathRegex: '/admin\\..*'\n"
        "---\n"
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n"
        "metadata: {name: g2, namespace: shop}\n"
        "spec:\n  matches:\n  - name: debug\n    pathRegex: '/debug/.*'\n",
        encoding="utf-8",
    )
    code, out, err = run_cli(
        "admit", "-f", str(manifest), "--policies", str(root), "--no-shipped-policies"
    )
    assert code == 1, out + err
    assert "match admin uses a forbidden pathRegex" in out + err
    assert "match debug uses a forbidden pathRegex" in out + err


def test_a_data_document_string_equals_its_literal(
    write_policy: WritePolicy, tmp_path: Path
) -> None:
    """`data.parameters` strings go in as UTF-8 too: escaped as \\u00e9, `"é"` never matched."""
    body = """
violation contains "listed" if {
	some v in input.hub.metadata.labels
	v in data.parameters.names
}
"""
    root = write_policy("listed", body)
    policies = PolicySet.load(
        [root], include_shipped=False, parameters={"names": ["grüße", "a\\b"]}
    )
    for value in ("grüße", "a\\b"):
        [decision] = policies.evaluate(kind="TrafficSplit", input_for=lambda _, v=value: hub(v))
        assert [v.msg for v in decision.violations] == ["listed"], value
