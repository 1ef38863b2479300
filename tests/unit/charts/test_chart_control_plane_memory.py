"""The control plane's memory follows `controlPlane.workers`, `maxParkedPolls` and
`regoMemoryLimit` (templates/_resources.tpl). Before, the chart rendered a fixed 128Mi/512Mi:
raising maxParkedPolls to 20000 for a large fleet left the limit where it was, and the pod was
OOM-killed once the polls were parked.

Without helm (our CI machines) the sizing is checked as text: memory is left to the chart, the
Deployment renders the computed resources, the template's figures are the measured ones, and
every size the docs, the README and values.yaml quote is what the formula gives. With helm on
the PATH the rendered Deployment is checked against the same sizes, against the evaluator's own
reading of regoMemoryLimit, and against memory set by hand."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from chart_support import CHART, REPO, TEMPLATES, helm, helm_run, render

from smi.policy.sandbox import MEMORY_LIMIT_ENV, memory_limit_from_env

VALUES_TEXT = (CHART / "values.yaml").read_text(encoding="utf-8")
VALUES = yaml.safe_load(VALUES_TEXT)
SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
DEPLOYMENT = (TEMPLATES / "deployment.yaml").read_text(encoding="utf-8")
SIZING = TEMPLATES / "_resources.tpl"
HELM_DOC = (REPO / "docs" / "helm.md").read_text(encoding="utf-8")
CONTROL_PLANE_DOC = (REPO / "docs" / "control-plane.md").read_text(encoding="utf-8")
README = (CHART / "README.md").read_text(encoding="utf-8")
MI, KI = 1 << 20, 1 << 10
needs_helm = pytest.mark.skipif(helm() is None, reason="helm is not on PATH")


def _figure(name: str) -> int:
    """A figure of the formula as _resources.tpl sets it (`{{- $name := 65 }}`)."""
    match = re.search(rf"\{{\{{- \${name} := (\d+) \}}\}}", SIZING.read_text(encoding="utf-8"))
    assert match is not None, f"_resources.tpl sets no ${name}"
    return int(match.group(1))


def _sized(workers: int, polls: int, rego_bytes: int) -> tuple[str, str]:
    """(request, limit) as docs/helm.md states the formula, from the template's figures."""
    parked = workers * polls * _figure("parkedPollKi") * KI
    request = workers * _figure("idleWorkerMi") * MI + parked
    limit = workers * (_figure("workerWithEvaluatorMi") * MI + rego_bytes) + parked
    return f"{math.ceil(request / MI)}Mi", f"{math.ceil(limit / MI)}Mi"


def _rego_bytes(quantity: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """regoMemoryLimit as the evaluator reads it from SMICTL_REGO_MEMORY_LIMIT."""
    monkeypatch.setenv(MEMORY_LIMIT_ENV, quantity)
    return memory_limit_from_env()


def _doc_table() -> list[tuple[int, int, str, str, str]]:
    """(workers, maxParkedPolls, regoMemoryLimit, request, limit) rows of docs/helm.md."""
    rows = re.findall(
        r"^\| (\d+) \| (\d+) \| (\d+[A-Za-z]*) \| (\d+Mi) \| (\d+Mi) \|$", HELM_DOC, re.MULTILINE
    )
    return [(int(w), int(p), rego, req, lim) for w, p, rego, req, lim in rows]


def _errors(path: str, value: Any) -> list[str]:
    values = json.loads(json.dumps(VALUES))
    node = values
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return [e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(values)]


# --- without helm -----------------------------------------------------------------------------


def test_memory_is_left_to_the_chart_by_default() -> None:
    resources = VALUES["controlPlane"]["resources"]
    assert resources["requests"]["memory"] == ""
    assert resources["limits"]["memory"] == ""
    for side in ("requests", "limits"):
        path = f"controlPlane.resources.{side}.memory"
        assert _errors(path, "") == []
        assert _errors(path, "1.5Gi") == []
        assert _errors(path, 536870912) == []
        assert _errors(path, "lots") != []


def test_the_deployment_renders_the_sized_resources() -> None:
    block = re.search(r"\n\s+resources:\n\s+(\{\{.*\}\})\n", DEPLOYMENT)
    assert block is not None
    assert block.group(1) == '{{- include "smictl.controlPlaneResources" . | nindent 12 }}'
    assert "toYaml .Values.controlPlane.resources" not in DEPLOYMENT


def test_the_figures_are_the_measured_ones() -> None:
    # docs/control-plane.md measures a worker with 0, 300, 1,000 and 5,000 parked polls.
    idle = re.search(r"^\| 0 \| (\d+) MiB \|", CONTROL_PLANE_DOC, re.MULTILINE)
    assert idle is not None
    assert _figure("idleWorkerMi") == int(idle.group(1))
    per_poll = re.search(r"about (\d+) KiB and [0-9.]+ ms of CPU per poll", CONTROL_PLANE_DOC)
    assert per_poll is not None and _figure("parkedPollKi") == int(per_poll.group(1))
    rego_doc = next(d for d in VALUES_TEXT.split("# --") if "SMICTL_REGO_MEMORY_LIMIT" in d)
    assert f"({_figure('workerWithEvaluatorMi')}Mi + this)" in " ".join(rego_doc.split())


def test_the_documented_sizes_are_what_the_formula_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _doc_table()
    assert (2, 1000, "128Mi", *_sized(2, 1000, 128 * MI)) in rows  # the defaults
    assert any(polls >= 20000 for _, polls, *_ in rows)
    for workers, polls, rego, request, limit in rows:
        sized = _sized(workers, polls, _rego_bytes(rego, monkeypatch))
        assert (request, limit) == sized, (workers, polls, rego)


def test_values_and_readme_quote_the_sizes_of_the_defaults() -> None:
    cp = VALUES["controlPlane"]
    assert cp["regoMemoryLimit"] == "128Mi"
    request, limit = _sized(cp["workers"], cp["maxParkedPolls"], 128 * MI)
    flat = " ".join(VALUES_TEXT.split())
    assert f"({request} with the defaults;" in flat
    assert f"({limit} with the defaults;" in flat
    assert f"{request} and {limit} with the defaults" in README
    big = _sized(cp["workers"], 20000, 128 * MI)
    assert f"{big[0]} and {big[1]} with `--set controlPlane.maxParkedPolls=20000`" in README


def test_a_zero_rego_memory_limit_is_refused() -> None:
    # The evaluator reads 0 as "unset" and takes its 1 GiB default: never what was meant.
    for zero in ("0", "0Mi", "000ki"):
        assert _errors("controlPlane.regoMemoryLimit", zero) != [], zero
    assert _errors("controlPlane.regoMemoryLimit", "100Mi") == []
    assert _errors("controlPlane.regoMemoryLimit", "10") == []


# --- with helm --------------------------------------------------------------------------------


def _container(tmp_path: Path, values: dict[str, Any]) -> dict[str, Any]:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    [deployment] = [d for d in render("-f", str(path)) if d["kind"] == "Deployment"]
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def _memory(container: dict[str, Any]) -> tuple[Any, Any]:
    resources = container["resources"]
    return resources["requests"]["memory"], resources["limits"]["memory"]


@needs_helm
@pytest.mark.parametrize("row", _doc_table(), ids=lambda row: "-".join(map(str, row[:3])))
def test_rendered_memory_is_the_documented_size(
    tmp_path: Path, row: tuple[int, int, str, str, str]
) -> None:
    workers, polls, rego, requested, limit = row
    values = {
        "controlPlane": {"workers": workers, "maxParkedPolls": polls, "regoMemoryLimit": rego}
    }
    container = _container(tmp_path, values)
    assert _memory(container) == (requested, limit)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["SMI_WEBHOOK_WORKERS"], env["SMI_WEBHOOK_MAX_PARKED_POLLS"]) == (
        str(workers),
        str(polls),
    )


@needs_helm
@pytest.mark.parametrize("rego", ["128mi", "1g", "200M", "134217728", "1Gi"])
def test_rendered_limit_reads_rego_memory_limit_as_the_evaluator_does(
    tmp_path: Path, rego: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = _container(tmp_path, {"controlPlane": {"regoMemoryLimit": rego}})
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env[MEMORY_LIMIT_ENV] == rego
    assert _memory(container)[1] == _sized(2, 1000, _rego_bytes(rego, monkeypatch))[1]


@needs_helm
@pytest.mark.parametrize(
    ("resources", "polls", "expected"),
    [
        ({"limits": {"memory": "1Gi"}}, 1000, ("189Mi", "1Gi")),
        # A limit below the computed request: the request follows it (else the pod is refused).
        ({"limits": {"memory": "256Mi"}}, 20000, ("256Mi", "256Mi")),
        ({"requests": {"memory": "2Gi"}}, 1000, ("2Gi", "2Gi")),
        ({"requests": {"memory": "300M"}}, 1000, ("300M", "535Mi")),
        ({"requests": {"memory": "1Gi"}, "limits": {"memory": "3Gi"}}, 20000, ("1Gi", "3Gi")),
        ({"limits": {"memory": 2147483648}}, 1000, ("189Mi", 2147483648)),
    ],
)
def test_memory_set_by_hand_is_kept_and_the_other_side_agrees(
    tmp_path: Path, resources: dict[str, Any], polls: int, expected: tuple[Any, Any]
) -> None:
    from kubernetes.utils import parse_quantity

    values = {"controlPlane": {"maxParkedPolls": polls, "resources": resources}}
    container = _container(tmp_path, values)
    request, limit = _memory(container)
    assert (request, limit) == expected
    assert parse_quantity(request) <= parse_quantity(limit)
    assert container["resources"]["limits"]["cpu"] == "1"


def _notes(tmp_path: Path, values: dict[str, Any]) -> str:
    """NOTES.txt as `helm install` prints it: `helm template` leaves the notes out, so a copy of
    the chart renders them into a ConfigMap (every file of templates/ is a named template)."""
    chart = tmp_path / "chart"
    if not chart.exists():
        shutil.copytree(CHART, chart)
        (chart / "templates" / "notes-probe.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-probe\ndata:\n"
            '  notes: {{ include "smictl/templates/NOTES.txt" . | quote }}\n',
            encoding="utf-8",
        )
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    done = helm_run(
        "template", "smictl", str(chart), "--namespace", "smictl-system",
        "--kube-version", "1.29.0", "--show-only", "templates/notes-probe.yaml", "-f", str(path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    notes: str = yaml.safe_load(done.stdout)["data"]["notes"]
    assert notes.startswith("smictl ")
    return notes


@needs_helm
def test_notes_warn_about_a_limit_set_below_what_the_settings_need(tmp_path: Path) -> None:
    low = {"controlPlane": {"maxParkedPolls": 20000, "resources": {"limits": {"memory": "512Mi"}}}}
    warning = [line for line in _notes(tmp_path, low).splitlines() if "WARNING" in line]
    assert len(warning) == 1
    assert "limits.memory (512Mi) is below the 1648Mi" in warning[0]
    assert "maxParkedPolls=20000" in warning[0]
    enough = {"controlPlane": {"resources": {"limits": {"memory": "1Gi"}}}}
    assert "limits.memory" not in _notes(tmp_path, enough)
    assert "limits.memory" not in _notes(tmp_path, {})
