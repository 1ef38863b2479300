"""`policies.parameters`: the policies' data.parameters in a cluster, as `smictl admit
--parameters` gives them in CI. Before it the chart had no way to set them and the webhook's
policies always saw `{}`.

The chain is value → `<release>-policy-parameters` ConfigMap (`parameters.yaml`) → a volume
mounted in the control plane → SMI_WEBHOOK_PARAMETERS naming the file in the mount. Without
helm (our CI machines) the templates are read as text and every link checked against the next;
with helm on the PATH the rendered objects are checked too, down to the file the control plane
reads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from chart_support import CHART, TEMPLATES, helm, render

from smi.policy.policyset import read_parameters
from webhook.settings import PREFIX, Settings

DEPLOYMENT = (TEMPLATES / "deployment.yaml").read_text(encoding="utf-8")
CONFIGMAP = (TEMPLATES / "policy-parameters-configmap.yaml").read_text(encoding="utf-8")
SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
VALUES = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
PARAMETERS = {
    "allowedSourceNamespaces": {"*": ["monitoring"], "payments": ["checkout"]},
    "canaryMaxStep": 20,
    "sensitive": True,
}
needs_helm = pytest.mark.skipif(helm() is None, reason="helm is not on PATH")


def _errors(parameters: Any) -> list[str]:
    values = {**VALUES, "policies": {**VALUES["policies"], "parameters": parameters}}
    return [e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(values)]


def test_the_value_is_a_map_and_empty_by_default() -> None:
    assert VALUES["policies"]["parameters"] == {}
    assert _errors(PARAMETERS) == []
    assert _errors("canaryMaxStep: 20") != []
    assert _errors(["canaryMaxStep"]) != []


def _env_value(name: str) -> str:
    match = re.search(rf"- name: {name}\n\s+value: (\S+)\n", DEPLOYMENT)
    assert match is not None, f"{name} is not set in deployment.yaml"
    return match.group(1)


def _volume_mount(name: str) -> str:
    match = re.search(rf"- name: {name}\n\s+mountPath: (\S+)\n", DEPLOYMENT)
    assert match is not None, f"no volumeMount {name} in deployment.yaml"
    return match.group(1)


def test_the_variable_names_the_file_the_configmap_holds_in_its_mount() -> None:
    assert f"{PREFIX}PARAMETERS" in {PREFIX + f.upper() for f in Settings.__dataclass_fields__}
    path = Path(_env_value(f"{PREFIX}PARAMETERS"))
    assert str(path.parent) == _volume_mount("policy-parameters")
    keys = re.findall(r"^  ([-._A-Za-z0-9]+): \|$", CONFIGMAP, re.MULTILINE)
    assert keys == [path.name]


def test_the_volume_is_the_configmap_the_chart_renders() -> None:
    name = re.search(r'name: \{\{ include "smictl.fullname" \. \}\}(-[a-z-]+)\n', CONFIGMAP)
    assert name is not None
    volume = re.search(r"- name: policy-parameters\n\s+configMap:\n\s+name: (.+)\n", DEPLOYMENT)
    assert volume is not None
    assert volume.group(1) == '{{ include "smictl.fullname" . }}' + name.group(1)


def test_every_part_is_rendered_only_with_parameters() -> None:
    """ConfigMap, variable, mount and volume: with none of them the control plane sees `{}`
    (SMI_WEBHOOK_PARAMETERS unset); with only some, it would fail to start."""
    assert CONFIGMAP.count("{{- if .Values.policies.parameters }}") == 1
    assert DEPLOYMENT.count("{{- $parameters := .Values.policies.parameters }}") == 1
    guarded = re.findall(r"\{\{- if \$parameters \}\}\n(.*?)\{\{- end \}\}", DEPLOYMENT, re.S)
    assert len(guarded) == 3
    assert f"{PREFIX}PARAMETERS" in guarded[0]
    assert "mountPath" in guarded[1] and "configMap" in guarded[2]


def test_the_pods_roll_when_the_parameters_change() -> None:
    assert "policy-parameters-configmap.yaml" in DEPLOYMENT.split("checksum/policy-parameters:")[1]


# --- with helm --------------------------------------------------------------------------------


def _render(tmp_path: Path, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"policies": {"parameters": parameters}}), encoding="utf-8")
    return render("-f", str(values))


@needs_helm
def test_rendered_parameters_are_what_the_control_plane_reads(tmp_path: Path) -> None:
    docs = _render(tmp_path, PARAMETERS)
    [configmap] = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-parameters")
    ]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    settings = Settings.from_env(env)
    assert settings.parameters is not None
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "policy-parameters"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "policy-parameters"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert str(settings.parameters.parent) == mount["mountPath"]
    mounted = tmp_path / settings.parameters.name
    mounted.write_text(configmap["data"][settings.parameters.name], encoding="utf-8")
    assert read_parameters(mounted) == PARAMETERS


@needs_helm
def test_no_parameters_render_nothing(tmp_path: Path) -> None:
    docs = _render(tmp_path, {})
    assert not [d for d in docs if d["metadata"]["name"].endswith("-policy-parameters")]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert f"{PREFIX}PARAMETERS" not in env
