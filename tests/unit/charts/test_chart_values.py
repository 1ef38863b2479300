"""values.yaml, values-demo.yaml and values.schema.json: valid, documented key by key, and the
schema strict enough to catch the mistakes a user makes (a typo, an unknown mode)."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml
from chart_support import CHART, CHARTS, load_module, value_paths

VALUES_TEXT = (CHART / "values.yaml").read_text(encoding="utf-8")
VALUES = yaml.safe_load(VALUES_TEXT)
DEMO_TEXT = (CHART / "values-demo.yaml").read_text(encoding="utf-8")
SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
DOCS = load_module(CHARTS / "tools" / "gen_values_docs.py", "gen_values_docs")


def _merge(base: Any, overlay: Any) -> Any:
    """Helm's merge of a values file over the defaults (maps merge, everything else replaces)."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            out[key] = _merge(base.get(key), value)
        return out
    return copy.deepcopy(overlay)


def _errors(values: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(values)]


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_default_values_validate() -> None:
    assert _errors(VALUES) == []


def test_demo_overlay_validates_and_turns_the_demo_on() -> None:
    merged = _merge(VALUES, yaml.safe_load(DEMO_TEXT))
    assert _errors(merged) == []
    assert merged["demo"]["enabled"] is True


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("controlPlane.replicaCout", 3, "Additional properties are not allowed"),
        ("mesh.mode", "enforce", "is not one of ['deny', 'audit', 'permissive']"),
        ("webhook.validation.failurePolicy", "fail", "is not one of ['Fail', 'Ignore']"),
        ("webhook.timeoutSeconds", 31, "is greater than the maximum of 30"),
        ("certificates.provider", "vault", "is not one of ['job', 'cert-manager']"),
        ("certificates.certManager.duration", "90 days", "does not match"),
        ("policies.user", {"mine.txt": "package x"}, "does not match"),
        ("controlPlane.replicaCount", 0, "is less than the minimum of 1"),
        ("controlPlane.resources.limits.cpu", "one", "is not valid under any of the given schemas"),
        (
            "controlPlane.extraEnv",
            [{"name": "SMI_WEBHOOK_MODE", "value": "permissive"}],
            "should not be valid",
        ),
        ("mesh.trustDomain", "Cluster.Local", "does not match"),
        ("demo.catalogV2Weight", 101, "is greater than the maximum of 100"),
        ("controlPlane.antiAffinity", "strict", "is not one of"),
    ],
)
def test_schema_refuses_a_mistake(path: str, value: Any, message: str) -> None:
    values = copy.deepcopy(VALUES)
    node = values
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    errors = _errors(values)
    assert any(message in e for e in errors), errors


def _with(path: str, value: Any) -> list[str]:
    values = copy.deepcopy(VALUES)
    node = values
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return _errors(values)


@pytest.mark.parametrize(
    "domain",
    ["cluster.local", "a", "mesh.corp", "a..b", "mesh.-corp", "mesh-.corp", ".a", "a.", "x" * 254],
)
def test_schema_takes_the_trust_domains_the_control_plane_takes(domain: str) -> None:
    """A trust domain the schema passes and `serve` refuses (SMI7009) is a control plane that
    never starts after a successful install."""
    from smi.identity import IdentityError, check_trust_domain

    try:
        check_trust_domain(domain)
        accepted = True
    except IdentityError:
        accepted = False
    assert (_with("mesh.trustDomain", domain) == []) is accepted


def test_extra_env_cannot_override_a_variable_the_chart_sets() -> None:
    """Kubernetes keeps the last of two entries of one name, so an extraEnv copy would win over
    the chart's value while the chart still sizes memory and probes from its own."""
    import re

    deployment = (CHART / "templates" / "deployment.yaml").read_text(encoding="utf-8")
    names = sorted(set(re.findall(r"- name: (SMI\w+)", deployment)))
    assert "SMI_WEBHOOK_WORKERS" in names and "SMICTL_REGO_MEMORY_LIMIT" in names
    for name in names:
        assert _with("controlPlane.extraEnv", [{"name": name, "value": "1"}]), name
    assert _with("controlPlane.extraEnv", [{"name": "SMI_WEBHOOK_LONG_POLL_SECONDS"}]) == []


def test_every_key_has_a_doc_comment() -> None:
    for text, name in ((VALUES_TEXT, "values.yaml"), (DEMO_TEXT, "values-demo.yaml")):
        docs = DOCS.parse(text)
        assert docs, name
        undocumented = [f"{name}:{d.line}: {d.path}" for d in docs if not d.description]
        assert undocumented == []


def test_doc_parser_sees_every_key_of_values_yaml() -> None:
    assert [d.path for d in DOCS.parse(VALUES_TEXT)] == list(value_paths(VALUES))


def test_doc_parser_reports_a_key_without_comment() -> None:
    docs = DOCS.parse("# -- documented\na: 1\nb:\n  # -- inner\n  c: 2\n")
    assert [(d.path, d.description) for d in docs] == [
        ("a", "documented"),
        ("b", ""),
        ("b.c", "inner"),
    ]


def test_schema_describes_every_value_and_nothing_more() -> None:
    def schema_paths(node: dict[str, Any], prefix: str = "") -> list[str]:
        out = []
        for key, child in node.get("properties", {}).items():
            path = f"{prefix}.{key}" if prefix else key
            out.append(path)
            out += schema_paths(child, path)
        return out

    assert sorted(set(schema_paths(SCHEMA)) - {"global"}) == sorted(value_paths(VALUES))


def test_schema_descriptions_are_the_values_comments() -> None:
    assert DOCS.schema_with_descriptions(SCHEMA, VALUES_TEXT) == SCHEMA, (
        "run python charts/tools/gen_values_docs.py"
    )


def test_readme_values_table_is_current() -> None:
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    assert DOCS.readme_with_table(readme, VALUES_TEXT) == readme, (
        "run python charts/tools/gen_values_docs.py"
    )
    assert '| `webhook.validation.failurePolicy` | string | `"Fail"` |' in readme


def test_safe_defaults() -> None:
    # What "safely by default" means for this chart, in values a reviewer can check.
    assert VALUES["controlPlane"]["replicaCount"] >= 2
    assert VALUES["controlPlane"]["podDisruptionBudget"]["enabled"] is True
    assert VALUES["mesh"]["mode"] == "deny"
    assert VALUES["webhook"]["validation"]["failurePolicy"] == "Fail"
    assert VALUES["webhook"]["timeoutSeconds"] == 3
    assert VALUES["demo"]["enabled"] is False
    assert VALUES["controlPlane"]["resources"]["limits"]


def test_demo_servers_listen_on_loopback_only() -> None:
    """Nothing redirects a pod's traffic to its sidecar, so a demo server bound to the pod's IP
    would let the intruder skip its proxy and call payments directly."""
    import runpy

    server = runpy.run_path(str(CHART / "files" / "demo" / "server.py"), run_name="demo_server")
    assert server["BIND"] == "127.0.0.1"
