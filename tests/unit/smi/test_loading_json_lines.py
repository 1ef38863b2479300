"""A JSON file's object has its line, as a YAML document has (the line it starts on: its `{`,
where the line map puts it too), found without the line map. It had none: `admit --format
junit` gave its testcase `line="0"` and `--format json` `"line": null`, while the field
diagnostics of the same object had lines. The items of a JSON `kind: List` still get their
lines only from the map, when asked (`Resource.line_of`), which a clean set never needs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from smi.cli import main
from smi.loading import load_text
from smi.sources import FileLines

SPLIT = {
    "apiVersion": "split.smi-spec.io/v1alpha4",
    "kind": "TrafficSplit",
    "metadata": {"name": "s", "namespace": "store"},
    "spec": {"service": "checkout", "backends": [{"service": "a", "weight": -1}]},
}
TEXT = "\n\n" + json.dumps(SPLIT, indent=2) + "\n"  # starts on line 3
WEIGHT = '        "weight": -1'


def test_a_json_object_starts_on_the_line_of_its_brace() -> None:
    [resource] = load_text(TEXT, filename="split.json").resources
    assert resource.source.line == 3 == resource.line_of(())
    assert resource.line_of("spec.backends[0].weight") == TEXT.splitlines().index(WEIGHT) + 1


@pytest.mark.parametrize("fmt", ["junit", "json"])
def test_admit_reports_name_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    path = tmp_path / "split.json"
    path.write_text(TEXT)
    code = main(["admit", "-f", str(path), "--format", fmt])
    out, _ = capsys.readouterr()
    assert code == 1
    if fmt == "json":
        [result] = json.loads(out)["results"]
        assert (result["verdict"], result["line"]) == ("invalid", 3)
    else:
        [case] = ET.fromstring(out).iter("testcase")
        assert case.get("line") == "3"


def test_a_skipped_json_object_is_located_without_the_line_map(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ConfigMap's warning (SMI1008) needs only where the object starts: it asked the line
    map of every such file, a second parse far slower than the first."""

    def refuse(self: FileLines, index: int) -> None:
        raise AssertionError("the line map was built")

    monkeypatch.setattr(FileLines, "document", refuse)
    text = '\n{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}'
    [d] = load_text(text, filename="c.json").diagnostics
    assert (d.code, d.line) == ("SMI1008", 2)
    listed = '{"apiVersion": "v1", "kind": "List", "items": [\n' + json.dumps(SPLIT) + "]}"
    loaded = load_text(listed, filename="list.json")
    assert [r.source.line for r in loaded.resources] == [None]  # only with the map


def test_a_json_list_item_has_its_line_when_asked() -> None:
    text = '{"apiVersion": "v1", "kind": "List", "items": [\n' + json.dumps(SPLIT) + "]}"
    [resource] = load_text(text, filename="list.json").resources
    assert resource.line_of(()) == 2 == resource.line_of("spec.backends[0].weight")
