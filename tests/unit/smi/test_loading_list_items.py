"""A `kind: List` or typed list whose `items` is not a list. Mis-indented into a mapping, the
list was skipped as "not an SMI resource" (an SMI1008 warning), so `validate` and `admit` passed
(exit 0) and the TrafficTarget in it was never checked; kubectl refuses such a list. It is now
SMI2003 at `items`, in every command. A list whose `items` is null or missing is a list without
items, as `items: []` is (kubectl reads it so): holding no object, it is SMI1012 when nothing
else is given, in every command."""

from __future__ import annotations

from pathlib import Path

import pytest

from smi.cli import main
from smi.loading import load_text, nothing_to_do

Capsys = pytest.CaptureFixture[str]

TARGET = """\
  apiVersion: access.smi-spec.io/v1alpha3
  kind: TrafficTarget
  metadata:
    name: t
    namespace: shop
  spec:
    destination: {kind: ServiceAccount, name: api, namespace: shop}
    rules: []
    sources: []
"""
MAPPED = {
    # The loader skipped this one (SMI1008): validate and admit passed.
    "List": "apiVersion: v1\nkind: List\nitems:\n" + TARGET,
    # These were refused, but as kinds that do not exist (SMI1007) or not at all.
    "TrafficSplitList": (
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplitList\nitems:\n"
        "  metadata: {name: s, namespace: shop}\n"
        "  spec: {service: a, backends: [{service: b, weight: 1}]}\n"
    ),
    "DeploymentList": "apiVersion: apps/v1\nkind: DeploymentList\nitems: 5\n",
}
WITHOUT_ITEMS = {
    "null": "apiVersion: v1\nkind: List\nitems:\n",
    "missing": "apiVersion: v1\nkind: List\n",
    "typed null": "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplitList\nitems: null\n",
}
# Every command that reads manifests, with the flags it needs besides -f.
COMMANDS = {
    "validate": [],
    "admit": [],
    "compile": [],
    "explain": ["--from", "shop/web", "--to", "shop/api"],
    "convert": ["--to", "split.smi-spec.io/v1alpha3"],
}


@pytest.mark.parametrize("kind", sorted(MAPPED))
def test_items_that_are_not_a_list_are_refused_at_their_line(kind: str) -> None:
    loaded = load_text(MAPPED[kind], filename="l.yaml")
    what = "an integer" if kind == "DeploymentList" else "an object"
    assert [d.format() for d in loaded.diagnostics] == [
        f"l.yaml:3: items: must be a list, not {what} (SMI2003)"
    ]
    assert loaded.resources == [] and loaded.context == []


@pytest.mark.parametrize("name", sorted(WITHOUT_ITEMS))
def test_a_list_without_items_holds_no_object(name: str) -> None:
    loaded = load_text(WITHOUT_ITEMS[name], filename="l.yaml")
    assert (loaded.diagnostics, loaded.resources, loaded.context) == ([], [], [])
    empty = nothing_to_do(loaded, ["l.yaml"])
    assert empty is not None and empty.code == "SMI1012"


def run(capsys: Capsys, command: str, path: Path) -> tuple[int, list[str]]:
    """Exit code and every line the command printed (standard output, then error)."""
    code = main([command, "-f", str(path), *COMMANDS[command]])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, (out + err).splitlines()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_list_whose_items_is_a_mapping(
    command: str, tmp_path: Path, capsys: Capsys
) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(MAPPED["List"], encoding="utf-8")
    code, lines = run(capsys, command, path)
    assert code == 1
    assert f"{path}:3: items: must be a list, not an object (SMI2003)" in lines
    assert not any("SMI1008" in line for line in lines)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_list_without_items_alone(
    command: str, tmp_path: Path, capsys: Capsys
) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(WITHOUT_ITEMS["null"], encoding="utf-8")
    code, lines = run(capsys, command, path)
    assert code == 1
    assert any(line.startswith(f"{path}: no objects: ") for line in lines)
    assert any(line.endswith("(SMI1012)") for line in lines)


def test_a_typed_list_without_items_converts_as_an_empty_one(
    tmp_path: Path, capsys: Capsys
) -> None:
    """`items: null` is `items: []`: convert converts an empty typed list of its group."""
    path = tmp_path / "list.yaml"
    path.write_text(WITHOUT_ITEMS["typed null"], encoding="utf-8")
    code = main(["convert", "-f", str(path), "--to", "split.smi-spec.io/v1alpha3"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out == "apiVersion: split.smi-spec.io/v1alpha3\nkind: TrafficSplitList\nitems: []\n"
