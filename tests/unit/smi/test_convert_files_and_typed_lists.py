"""`smictl convert` reads its input as every other command does: `-f` repeatable, files,
directories and `-`, all converted in the order given (`-f a.yaml -f b.yaml` converted b.yaml
alone and exited 0); and typed lists (`TrafficSplitList`, items without apiVersion and kind, as
the API server lists them), which validate, compile and apply read, are converted too and stay
typed lists (they were refused: `has no kind TrafficSplitList (SMI1007)`)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from smi import cli

Capsys = pytest.CaptureFixture[str]
V1, V2, V4 = (f"split.smi-spec.io/{v}" for v in ("v1alpha1", "v1alpha2", "v1alpha4"))


def split(name: str, weight: Any = 1, version: str = V4) -> str:
    return (
        f"apiVersion: {version}\nkind: TrafficSplit\nmetadata: {{name: {name}, namespace: shop}}\n"
        f"spec:\n  service: web\n  backends:\n  - {{service: {name}-v1, weight: {weight}}}\n"
    )


TYPED_LIST = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplitList
metadata: {resourceVersion: "12"}
items:
- metadata: {name: a, namespace: shop}
  spec:
    service: web
    backends:
    - {service: a-v1, weight: 1}
- apiVersion: split.smi-spec.io/v1alpha4
  kind: TrafficSplit
  metadata: {name: b, namespace: shop}
  spec:
    service: api
    backends:
    - {service: b-v1, weight: 3}
"""


def run(capsys: Capsys, *argv: str) -> tuple[int, list[Any], str]:
    code = cli.main(["convert", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err
    return code, [d for d in yaml.safe_load_all(out) if d is not None], err


def names(docs: list[Any]) -> list[str]:
    return [d["metadata"]["name"] for d in docs]


# --- several inputs --------------------------------------------------------------------------


def test_every_file_is_converted_in_the_order_given(tmp_path: Path, capsys: Capsys) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.yaml").write_text(split(name))
    files = [str(tmp_path / f"{n}.yaml") for n in ("b", "a", "c")]
    code, docs, err = run(
        capsys, "-f", files[0], "-f", files[1], "--filename", files[2], "--to", V2
    )
    assert (code, err) == (0, "")
    assert names(docs) == ["b", "a", "c"]
    assert {d["apiVersion"] for d in docs} == {V2}


def test_directories_and_standard_input_are_read_like_files(
    tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text(split("b"))
    (tmp_path / "a.yaml").write_text(split("a"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(split("c").encode()), "utf-8"))
    code, docs, err = run(capsys, "-f", str(tmp_path), "-f", "-", "--to", V1)
    assert (code, err) == (0, "")
    assert names(docs) == ["a", "b", "c"]
    assert [d["spec"]["backends"][0]["weight"] for d in docs] == ["1", "1", "1"]


def test_a_file_that_cannot_be_read_stops_everything(tmp_path: Path, capsys: Capsys) -> None:
    """A stream without the objects of one file would look complete."""
    (tmp_path / "a.yaml").write_text(split("a"))
    (tmp_path / "broken.yaml").write_text("kind: [\n")
    missing = tmp_path / "missing.yaml"
    argv = ["-f", str(tmp_path / "a.yaml"), "-f", str(tmp_path / "broken.yaml")]
    code, docs, err = run(capsys, *argv, "-f", str(missing), "--to", V2)
    assert (code, docs) == (1, [])
    lines = err.splitlines()
    assert lines[0].startswith(f"{tmp_path / 'broken.yaml'}:") and "(SMI1002)" in lines[0]
    assert lines[1] == f"{missing}: cannot read: no such file or directory (SMI1001)"


def test_problems_of_every_file_are_reported(tmp_path: Path, capsys: Capsys) -> None:
    (tmp_path / "a.yaml").write_text(split("a", weight=-1))
    (tmp_path / "b.yaml").write_text(split("b", weight=-2))
    files = [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]
    code, docs, err = run(capsys, "-f", files[0], "-f", files[1], "--to", V2)
    assert (code, docs) == (1, [])
    assert [line.split(": ")[0] for line in err.splitlines()] == [f"{f}:7" for f in files]


def test_no_object_of_the_group_in_several_files_names_them_all(
    tmp_path: Path, capsys: Capsys
) -> None:
    service = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
    (tmp_path / "a.yaml").write_text(service)
    (tmp_path / "b.yaml").write_text(service)
    files = [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]
    code, docs, err = run(capsys, "-f", files[0], "-f", files[1], "--to", V2)
    assert (code, docs) == (1, [])
    assert err == f"no split.smi-spec.io object to convert in {files[0]}, {files[1]} (SMI4003)\n"


# --- typed lists -------------------------------------------------------------------------------


def test_a_typed_list_converts_item_by_item_and_stays_a_typed_list(
    tmp_path: Path, capsys: Capsys
) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(TYPED_LIST)
    code, [doc], err = run(capsys, "-f", str(path), "--to", V1)
    assert (code, err) == (0, "")
    assert (doc["apiVersion"], doc["kind"], doc["metadata"]) == (
        V1,
        "TrafficSplitList",
        {"resourceVersion": "12"},
    )
    first, second = doc["items"]
    assert "apiVersion" not in first and "kind" not in first  # as the item was written
    assert first["spec"]["backends"] == [{"service": "a-v1", "weight": "1"}]
    assert (second["apiVersion"], second["kind"]) == (V1, "TrafficSplit")
    assert second["spec"]["backends"] == [{"service": "b-v1", "weight": "3"}]
    back = tmp_path / "back.yaml"
    back.write_text(yaml.safe_dump(doc))
    code, [again], err = run(capsys, "-f", str(back), "--to", V4)
    assert (code, err) == (0, "")
    assert again == yaml.safe_load(TYPED_LIST)


def test_an_invalid_item_of_a_typed_list_is_reported_at_its_line(
    tmp_path: Path, capsys: Capsys
) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(TYPED_LIST.replace("weight: 3", "weight: -3"))
    code, docs, err = run(capsys, "-f", str(path), "--to", V2)
    assert (code, docs) == (1, [])
    assert err == (
        f"{path}:16: spec.backends[0].weight: must be an integer >= 0 (got -3) (SMI2103)\n"
    )


def test_an_empty_typed_list_converts(tmp_path: Path, capsys: Capsys) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(f"apiVersion: {V4}\nkind: TrafficSplitList\nmetadata: {{}}\nitems: []\n")
    code, docs, err = run(capsys, "-f", str(path), "--to", V2)
    assert (code, err) == (0, "")
    assert docs == [{"apiVersion": V2, "kind": "TrafficSplitList", "metadata": {}, "items": []}]


def test_a_typed_list_of_a_kind_the_target_lacks_is_refused(tmp_path: Path, capsys: Capsys) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("apiVersion: specs.smi-spec.io/v1alpha4\nkind: UDPRouteList\nitems: []\n")
    code, docs, err = run(capsys, "-f", str(path), "--to", "specs.smi-spec.io/v1alpha3")
    assert (code, docs) == (1, [])
    assert err == (
        f"{path}:2: kind: specs.smi-spec.io/v1alpha3 has no kind UDPRoute, so no UDPRouteList "
        "(SMI4002)\n"
    )


def test_a_traffic_metrics_list_is_an_object_not_a_typed_list(
    tmp_path: Path, capsys: Capsys
) -> None:
    """Its items are TrafficMetrics, but it has fields of its own: converted whole."""
    doc = {
        "apiVersion": "metrics.smi-spec.io/v1alpha1",
        "kind": "TrafficMetricsList",
        "resource": {"kind": "Pod", "namespace": "shop"},
        "items": [],
    }
    path = tmp_path / "metrics.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, docs, err = run(capsys, "-f", str(path), "--to", "metrics.smi-spec.io/v1alpha1")
    assert (code, err, docs) == (0, "", [doc])
