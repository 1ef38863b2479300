"""smi.apis.meta: `labels:` and `annotations:` left without a value (null, as Helm templates
leave them: `labels: {{- with .Values.labels }}...`) are no labels, as kubectl and the API
server read them. Every command refused them: `metadata.labels: must be an object, not null
(SMI2003)`."""

from __future__ import annotations

from pathlib import Path

import pytest

from smi import cli
from smi.apis.meta import ObjectMeta
from smi.loading import load_text

SPLIT = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata:
  name: s
  namespace: shop
  labels:
  annotations:
spec:
  service: web
  backends:
  - {service: web-v1, weight: 1}
"""


def test_null_maps_are_empty() -> None:
    meta = ObjectMeta.model_validate({"name": "s", "labels": None, "annotations": None})
    assert (meta.labels, meta.annotations) == ({}, {})
    assert meta == ObjectMeta(name="s")


def test_other_values_than_maps_are_still_refused() -> None:
    loaded = load_text(SPLIT.replace("  labels:\n", "  labels: [a]\n"), filename="s.yaml")
    assert [(d.code, d.path, d.line) for d in loaded.diagnostics] == [
        ("SMI2003", "metadata.labels", 6)
    ]


def test_an_object_with_null_maps_loads() -> None:
    loaded = load_text(SPLIT, filename="s.yaml")
    assert loaded.diagnostics == []
    assert loaded.resources[0].obj.metadata.labels == {}


@pytest.mark.parametrize(
    "argv",
    [
        ["validate"],
        ["compile"],
        ["convert", "--to", "split.smi-spec.io/v1alpha2"],
    ],
)
def test_every_command_takes_null_maps(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SPLIT)
    code = cli.main([*argv, "-f", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "SMI2003" not in err
    if argv[0] == "convert":
        assert "labels" not in out and "annotations" not in out
