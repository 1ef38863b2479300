"""`webhook.clientAuth`: the chart's switch for the control plane's review-caller check
(`SMI_WEBHOOK_CLIENT_CA_FILE`, `SMI_WEBHOOK_CLIENT_NAMES`, webhook/callers.py). Before it a
cluster could not turn the check on without hand-editing the Deployment: `extraEnv` can name a
file but not mount one.

The chain is value → a volume of the user's ConfigMap (key `ca.crt`) mounted in the control
plane → SMI_WEBHOOK_CLIENT_CA_FILE naming the file in the mount, and the names joined into
SMI_WEBHOOK_CLIENT_NAMES. Without helm (our CI machines) the template is read as text and every
link checked against the next; with helm on the PATH the rendered Deployment is checked too,
down to the settings and the caller check the control plane builds from it."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from chart_support import CHART, TEMPLATES, helm, helm_run, render

from webhook.callers import ReviewCallers
from webhook.settings import PREFIX, Settings
from webhook.wsgiloop import PEER_CERT

DEPLOYMENT = (TEMPLATES / "deployment.yaml").read_text(encoding="utf-8")
SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
VALUES = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
CA_FILE = f"{PREFIX}CLIENT_CA_FILE"
NAMES = f"{PREFIX}CLIENT_NAMES"
ON = {"caConfigMap": "kube-root-ca.crt", "names": ["kube-apiserver", "apiserver.internal"]}
needs_helm = pytest.mark.skipif(helm() is None, reason="helm is not on PATH")


def _errors(client_auth: Any) -> list[str]:
    values = copy.deepcopy(VALUES)
    values["webhook"]["clientAuth"] = client_auth
    return [e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(values)]


def test_off_by_default_naming_the_api_server() -> None:
    assert VALUES["webhook"]["clientAuth"] == {"caConfigMap": "", "names": ["kube-apiserver"]}
    assert _errors(ON) == []
    assert _errors({**ON, "names": ["kube apiserver"]}) == []  # a CN may hold a space


@pytest.mark.parametrize(
    ("client_auth", "message"),
    [
        ({**ON, "names": []}, "[] should be non-empty"),
        ({**ON, "names": [""]}, "'' should be non-empty"),
        ({**ON, "names": ["kube-apiserver,admin"]}, "does not match"),
        ({**ON, "names": [" kube-apiserver"]}, "does not match"),
        ({**ON, "names": "kube-apiserver"}, "is not of type 'array'"),
        ({**ON, "caConfigMap": "Kube_Root_CA"}, "does not match"),
        ({**ON, "caSecret": "apiserver-ca"}, "Additional properties are not allowed"),
    ],
)
def test_the_schema_refuses_a_mistake(client_auth: dict[str, Any], message: str) -> None:
    errors = _errors(client_auth)
    assert any(message in e for e in errors), errors


def test_a_name_with_a_comma_would_reach_the_control_plane_as_two() -> None:
    """Why the schema refuses commas: the variable is comma-separated, so `a,b` would let a
    certificate naming `b` in (and every name is stripped, so spaces around one are lost)."""
    assert Settings.from_env({NAMES: "kube-apiserver,admin"}).client_names == (
        "kube-apiserver",
        "admin",
    )
    for names in (["kube-apiserver"], ON["names"], ["kube apiserver"]):
        assert Settings.from_env({NAMES: ",".join(names)}).client_names == tuple(names)


@pytest.mark.parametrize(
    "name", [f"{PREFIX}CLIENT_CA_FILE", f"{PREFIX}CLIENT_NAMES"], ids=["ca-file", "names"]
)
def test_extra_env_cannot_set_them_behind_the_values_back(name: str) -> None:
    values = copy.deepcopy(VALUES)
    values["controlPlane"]["extraEnv"] = [{"name": name, "value": "x"}]
    errors = [e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(values)]
    assert any("should not be valid" in e for e in errors), errors


def _env_value(name: str) -> str:
    match = re.search(rf"- name: {name}\n\s+value: (.+)\n", DEPLOYMENT)
    assert match is not None, f"{name} is not set in deployment.yaml"
    return match.group(1)


def _volume_mount(name: str) -> re.Match[str]:
    match = re.search(rf"- name: {name}\n\s+mountPath: (\S+)\n\s+readOnly: (\S+)\n", DEPLOYMENT)
    assert match is not None, f"no volumeMount {name} in deployment.yaml"
    return match


def _volume() -> re.Match[str]:
    match = re.search(
        r"- name: client-ca\n\s+configMap:\n\s+name: (.+)\n"
        r"\s+items:\n\s+- key: (\S+)\n\s+path: (\S+)\n",
        DEPLOYMENT,
    )
    assert match is not None, "no client-ca ConfigMap volume in deployment.yaml"
    return match


def test_the_variables_are_settings_the_control_plane_reads() -> None:
    fields = {PREFIX + f.upper() for f in Settings.__dataclass_fields__}
    assert {CA_FILE, NAMES} <= fields


def test_the_variable_names_the_ca_file_in_its_read_only_mount() -> None:
    path = Path(_env_value(CA_FILE))
    mount = _volume_mount("client-ca")
    assert str(path.parent) == mount.group(1)
    assert mount.group(2) == "true"
    _, key, item_path = _volume().groups()
    assert (key, item_path) == ("ca.crt", path.name)


def test_the_volume_is_the_configured_configmap_and_the_names_are_joined() -> None:
    assert DEPLOYMENT.count("{{- $clientCA := .Values.webhook.clientAuth.caConfigMap }}") == 1
    assert _volume().group(1) == "{{ $clientCA }}"
    assert _env_value(NAMES) == '{{ join "," .Values.webhook.clientAuth.names | quote }}'


def test_every_part_is_rendered_only_with_a_ca_configmap() -> None:
    """Variables, mount and volume: with none of them the control plane answers any caller
    (today's behaviour); a variable without its mount would stop it starting."""
    guarded = re.findall(r"\{\{- if \$clientCA \}\}\n(.*?)\{\{- end \}\}", DEPLOYMENT, re.S)
    assert len(guarded) == 3
    assert CA_FILE in guarded[0] and NAMES in guarded[0]
    assert "mountPath" in guarded[1] and "configMap" in guarded[2]
    unguarded = re.sub(r"\{\{- if \$clientCA \}\}\n.*?\{\{- end \}\}", "", DEPLOYMENT, flags=re.S)
    assert "client-ca" not in unguarded and "CLIENT_" not in unguarded
    assert "clientAuth.names" not in unguarded


def test_what_the_chart_sets_makes_the_control_plane_take_only_the_api_server() -> None:
    settings = Settings.from_env(
        {CA_FILE: _env_value(CA_FILE), NAMES: ",".join(VALUES["webhook"]["clientAuth"]["names"])}
    )
    assert settings.client_ca_file == Path("/etc/smictl/client-ca/ca.crt")
    callers = ReviewCallers(settings.client_names)
    api_server = {"subject": ((("commonName", "kube-apiserver"),),)}
    kubelet = {"subject": ((("commonName", "system:node:worker-1"),),)}
    assert callers.refusal(_environ(api_server)) is None
    refused = callers.refusal(_environ(kubelet))
    assert refused is not None and refused[0] == "name"


def _environ(cert: dict[str, Any]) -> dict[str, Any]:
    return {PEER_CERT: cert}


# --- with helm --------------------------------------------------------------------------------


def _render(tmp_path: Path, client_auth: dict[str, Any]) -> dict[str, Any]:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"webhook": {"clientAuth": client_auth}}), encoding="utf-8")
    [deployment] = [d for d in render("-f", str(values)) if d["kind"] == "Deployment"]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


@needs_helm
def test_rendered_deployment_is_what_the_control_plane_reads(tmp_path: Path) -> None:
    pod = _render(tmp_path, ON)
    container = pod["containers"][0]
    settings = Settings.from_env({e["name"]: e["value"] for e in container["env"]})
    assert settings.client_names == tuple(ON["names"])
    assert settings.client_ca_file is not None
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "client-ca"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "client-ca"]
    assert mount["readOnly"] is True and "subPath" not in mount
    assert str(settings.client_ca_file.parent) == mount["mountPath"]
    assert volume["configMap"] == {
        "name": ON["caConfigMap"],
        "items": [{"key": "ca.crt", "path": settings.client_ca_file.name}],
    }


@needs_helm
def test_off_renders_nothing(tmp_path: Path) -> None:
    pod = _render(tmp_path, {"caConfigMap": "", "names": ["kube-apiserver"]})
    container = pod["containers"][0]
    assert not {CA_FILE, NAMES} & {e["name"] for e in container["env"]}
    assert "client-ca" not in {m["name"] for m in container["volumeMounts"]}
    assert "client-ca" not in {v["name"] for v in pod["volumes"]}


@needs_helm
def test_helm_refuses_an_empty_name_list(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump({"webhook": {"clientAuth": {**ON, "names": []}}}), encoding="utf-8"
    )
    done = helm_run("template", "smictl", str(CHART), "--kube-version", "1.29.0", "-f", str(values))
    assert done.returncode != 0
    assert "names" in done.stderr
