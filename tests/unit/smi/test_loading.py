"""smi.loading: files, directories, stdin, multi-document YAML, `kind: List`, JSON, context
objects, and every loader diagnostic with its file, line, path and code."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml

from smi.apis.split.hub import TrafficSplit
from smi.compiler import validate
from smi.errors import LoadError
from smi.loading import (
    EXTENSIONS,
    load_identities,
    load_object,
    load_paths,
    load_text,
    read_documents,
    read_source,
)
from smi.yamlblock import parse_block

SPLIT = """\
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata:
  name: canary
  namespace: shop
spec:
  service: web
  backends:
  - service: web-v1
    weight: 90
  - service: web-v2
    weight: 10
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports: [{port: 80}]
"""


def load(text: str, name: str = "m.yaml") -> tuple[list[str], list[tuple[str, int | None, str]]]:
    """(keys of the resources, [(code, line, path)] of the diagnostics)."""
    result = load_text(textwrap.dedent(text), filename=name)
    return [r.key for r in result.resources], [(d.code, d.line, d.path) for d in result.diagnostics]


def test_a_valid_object_becomes_a_resource_with_its_hub_form_and_source() -> None:
    result = load_text(SPLIT, filename="split.yaml")
    assert result.ok and result.diagnostics == []
    [res] = result.resources
    assert isinstance(res.obj, TrafficSplit)
    assert res.obj.backends[1].weight_milli == 10_000
    assert (res.key, res.api_version, res.kind) == (
        "TrafficSplit/shop/canary",
        "split.smi-spec.io/v1alpha4",
        "TrafficSplit",
    )
    assert (res.source.file, res.source.line, res.source.index) == ("split.yaml", 1, 0)
    assert res.raw["spec"]["service"] == "web"


def test_line_of_points_at_the_field_or_its_nearest_parent() -> None:
    [res] = load_text(SPLIT, filename="s.yaml").resources
    assert res.line_of("spec.backends[1].weight") == 12
    assert res.line_of("spec.backends[1]") == 11
    assert res.line_of("spec.backends[1].nope") == 11
    assert res.line_of("spec.backends[7].weight") == 8
    assert res.line_of("metadata.namespace") == 5


def test_multi_document_yaml_keeps_order_index_and_skips_empty_documents() -> None:
    text = f"---\n{SPLIT}---\n---\n# only a comment\n---\n{SERVICE}"
    result = load_text(text, filename="all.yaml")
    assert [r.key for r in result.resources] == ["TrafficSplit/shop/canary"]
    [svc] = result.context
    assert (svc.kind, svc.namespace, svc.name) == ("Service", "default", "web")
    assert result.resources[0].source.index == 0
    assert svc.source.index == 3
    assert svc.source.line == 18


def test_missing_namespace_gets_the_default_but_raw_stays_as_written() -> None:
    text = SPLIT.replace("  namespace: shop\n", "")
    [res] = load_text(text, filename="s.yaml", default_namespace="team-a").resources
    assert res.namespace == "team-a"
    assert "namespace" not in res.raw["metadata"]


def test_kind_list_items_are_loaded_with_lines_inside_the_list() -> None:
    text = """\
    apiVersion: v1
    kind: List
    items:
    - apiVersion: specs.smi-spec.io/v1alpha4
      kind: TCPRoute
      metadata: {name: db}
      spec:
        matches:
          ports: [5432]
    - apiVersion: specs.smi-spec.io/v1alpha4
      kind: TCPRoute
      metadata: {name: cache}
      spec:
        matches:
          ports: [0]
    """
    result = load_text(textwrap.dedent(text), filename="list.yaml")
    assert [r.key for r in result.resources] == ["TCPRoute/default/db", "TCPRoute/default/cache"]
    assert [r.source.line for r in result.resources] == [4, 10]
    assert result.resources[1].line_of("spec.matches.ports[0]") == 15


def test_json_files_load_and_report_lines_on_demand(tmp_path: Path) -> None:
    doc = json.loads(
        json.dumps(
            {
                "apiVersion": "split.smi-spec.io/v1alpha4",
                "kind": "TrafficSplit",
                "metadata": {"name": "j"},
                "spec": {"service": "web", "backends": [{"service": "a", "weight": 1, "typo": 2}]},
            }
        )
    )
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc, indent=2))
    result = load_paths([str(path)])
    [d] = result.diagnostics
    assert (d.code, d.path, d.file) == ("SMI2001", "spec.backends[0].typo", str(path))
    assert d.line == path.read_text().splitlines().index('        "typo": 2') + 1


def test_invalid_json_is_a_syntax_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "apiVersion": "v1",\n  "kind": \n}\n')
    [d] = load_paths([str(path)]).diagnostics
    assert (d.code, d.line) == ("SMI1002", 4)


def test_directories_are_walked_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a.yaml").write_text(SERVICE)
    (tmp_path / "b" / "z.yml").write_text(SPLIT)
    (tmp_path / "b" / "notes.txt").write_text("not a manifest: [")
    (tmp_path / "c.json").write_text(
        json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    )
    result = load_paths([str(tmp_path)])
    assert result.diagnostics == []
    assert result.files == [
        str(tmp_path / "a.yaml"),
        str(tmp_path / "b" / "z.yml"),
        str(tmp_path / "c.json"),
    ]
    assert [(c.kind, c.namespace) for c in result.context] == [
        ("Service", "default"),
        ("Namespace", ""),
    ]


def test_stdin_is_read_for_a_dash() -> None:
    result = load_paths(["-"], stdin=io.StringIO(SPLIT))
    assert [r.source.file for r in result.resources] == ["<stdin>"]


def test_unreadable_inputs_are_smi1001(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    result = load_paths(
        [str(tmp_path / "nope.yaml"), str(tmp_path / "empty"), str(tmp_path / "latin1.yaml")]
    )
    assert [(d.code, d.message) for d in result.diagnostics] == [
        ("SMI1001", "cannot read: no such file or directory"),
        ("SMI1001", "directory holds no .yaml, .yml or .json files"),
        ("SMI1001", "cannot read: not UTF-8 text"),
    ]
    assert not result.ok


def test_yaml_syntax_error_keeps_the_documents_before_it() -> None:
    keys, diags = load(SPLIT + "---\nkind: [unclosed\n")
    assert keys == ["TrafficSplit/shop/canary"]
    assert [(c, line) for c, line, _ in diags] == [("SMI1002", 14)]


def test_duplicate_keys_are_refused_with_the_line_of_the_second() -> None:
    _, diags = load("apiVersion: v1\nkind: Service\nkind: Pod\n")
    assert diags == [("SMI1002", 3, "kind")]


# A second `weight` in spec.backends[1]: as YAML, as a key that is an alias, as JSON.
DUPLICATE_WEIGHT = SPLIT + "    weight: 5\n"
DUPLICATE_ALIAS = "a: &k weight\nspec:\n  backends:\n  - {}\n  - weight: 1\n    *k : 2\n"
DUPLICATE_JSON = json.dumps(yaml.safe_load(SPLIT), indent=1).replace(
    '"weight": 10', '"weight": 10, "weight": 5'
)


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("dupkeys.yaml", DUPLICATE_WEIGHT, 13),
        ("dupkeys.yaml", DUPLICATE_ALIAS, 6),
        ("dupkeys.json", DUPLICATE_JSON, 17),
    ],
)
def test_a_duplicate_key_names_its_field_path(name: str, text: str, line: int) -> None:
    """`dupkeys.yaml:11: duplicate key 'weight' in one mapping` left the reader of a long
    file to find which of its many `weight:` keys it meant."""
    [d] = load_text(text, filename=name).diagnostics
    assert d.format() == (
        f"{name}:{line}: spec.backends[1].weight: duplicate key 'weight' in one mapping (SMI1002)"
    )
    with pytest.raises(LoadError) as err:  # `smictl convert` reads it the same way
        read_documents(text, filename=name)
    assert err.value.diagnostics[0].format() == d.format()


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("apiVersion: v1\nkind: Service\nmetadata:\n\tname: web\n", 4, 1),
        ("spec:\n  ports:\n  - port: 80\n\t- port: 81\n", 4, 1),
        ("spec:\n  ports:\n  - port: 80\n  \t name: http\n", 4, 3),
    ],
)
def test_a_tab_in_indentation_is_named(text: str, line: int, column: int) -> None:
    # libyaml said "found character that cannot start any token" (or "a tab character that
    # violates indentation"), and an editor shows a tab as spaces.
    [d] = load_text(text, filename="tab.yaml").diagnostics
    assert d.format() == (
        f"tab.yaml:{line}: tabs are not allowed in YAML indentation (a tab at {line}:{column}) "
        "(SMI1002)"
    )


def test_a_character_that_starts_no_token_and_is_no_tab_keeps_libyaml_s_words() -> None:
    [d] = load_text("a: 1\n@b: 2\n", filename="at.yaml").diagnostics
    assert "cannot start any token" in d.message and "tab" not in d.message


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("null.json", "null\n", "null.json:1: document is null"),
        ("five.json", "\n\n  5\n", "five.json:3: document is a number"),
        ("five.yaml", "a: 1\n---\n5.5\n", "five.yaml:3: document is a number"),
        ("yes.json", "true", "yes.json:1: document is a boolean"),
        ("text.yaml", "just text\n", "text.yaml:1: document is a string"),
        ("list.json", "[{}]", "list.json:1: document is a list"),
    ],
)
def test_a_document_that_is_not_an_object_is_named_in_yaml_terms(
    name: str, text: str, expected: str
) -> None:
    """Not `a NoneType scalar` or `a int scalar`: Python's names for what the file holds."""
    formatted = [d.format() for d in load_text(text, filename=name).diagnostics]
    assert [f for f in formatted if "SMI1003" in f] == [f"{expected}, not an object (SMI1003)"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: TrafficSplit\nmetadata: {name: a}\n", [("SMI1004", 1, "apiVersion")]),
        ("apiVersion: v1\n", [("SMI1005", 1, "kind")]),
        ("metadata: {}\n", [("SMI1004", 1, "apiVersion"), ("SMI1005", 1, "kind")]),
        ("- a\n- b\n", [("SMI1003", 1, "")]),
        ("just text\n", [("SMI1003", 1, "")]),
        ("apiVersion: 3\nkind: Service\n", [("SMI2003", 1, "apiVersion")]),
        (
            "apiVersion: split.smi-spec.io/v1alpha5\nkind: TrafficSplit\n",
            [("SMI1006", 1, "apiVersion")],
        ),
        ("apiVersion: specs.smi-spec.io/v1alpha3\nkind: UDPRoute\n", [("SMI1007", 2, "kind")]),
        ("apiVersion: v1alpha1\nkind: HTTPRouteGroup\n", [("SMI1011", 1, "apiVersion")]),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", [("SMI1008", 1, "")]),
        (
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {}\n",
            [("SMI1009", 3, "metadata.name")],
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n",
            [("SMI1009", 3, "metadata.name")],
        ),
    ],
)
def test_loader_codes(text: str, expected: list[tuple[str, int, str]]) -> None:
    keys, diags = load(text)
    assert keys == []
    assert diags == expected


def test_skipped_objects_are_warnings_not_errors() -> None:
    result = load_text("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n", filename="r")
    [d] = result.diagnostics
    assert d.severity == "warning"
    assert result.ok


def test_context_kinds_are_kept_with_their_api_versions() -> None:
    text = "\n---\n".join(
        f"apiVersion: {av}\nkind: {kind}\nmetadata: {{name: x, namespace: ns}}"
        for av, kind in [
            ("v1", "Service"),
            ("v1", "ServiceAccount"),
            ("v1", "Pod"),
            ("apps/v1", "Deployment"),
            ("v1", "Namespace"),
            ("v2", "Service"),
        ]
    )
    result = load_text(text, filename="ctx.yaml")
    assert [(c.kind, c.namespace) for c in result.context] == [
        ("Service", "ns"),
        ("ServiceAccount", "ns"),
        ("Pod", "ns"),
        ("Deployment", "ns"),
        ("Namespace", ""),
    ]
    assert [d.code for d in result.diagnostics] == ["SMI1008"]


def test_schema_errors_carry_wire_paths_and_lines() -> None:
    text = SPLIT.replace("    weight: 10\n", "    weight: ten\n    wieght: 1\n")
    _, diags = load(text)
    assert sorted(diags) == [
        ("SMI2001", 13, "spec.backends[1].wieght"),
        ("SMI2003", 12, "spec.backends[1].weight"),
    ]


def test_flat_layout_in_a_spec_version_is_smi2005_at_the_misplaced_field() -> None:
    text = """\
    apiVersion: specs.smi-spec.io/v1alpha4
    kind: HTTPRouteGroup
    metadata: {name: g}
    matches:
    - name: all
    """
    _, diags = load(text)
    assert diags == [("SMI2005", 4, "matches")]


def test_spec_in_a_flat_version_is_smi2005() -> None:
    _, diags = load(
        "apiVersion: access.smi-spec.io/v1alpha1\nkind: TrafficTarget\n"
        "metadata: {name: t}\nspec: {}\n"
    )
    assert diags == [("SMI2005", 4, "spec")]


def test_timestamps_stay_strings_and_keys_are_always_strings() -> None:
    [doc] = read_documents("a: 2019-04-08T22:25:55Z\n80: x\ntrue: y\n", filename="t.yaml")
    assert doc.value == {"a": "2019-04-08T22:25:55Z", "80": "x", "true": "y"}


def test_exponents_are_floats_as_kubectl_reads_them() -> None:
    """go-yaml (kubectl, the API server) reads `1e3` as 1000.0 where YAML 1.1 wants a point and
    a signed exponent: a split weight the cluster takes must not be "a string" here."""
    text = "a: 1e3\nb: 1.5e3\nc: -2E+2\nd: 1e-3\ne: 1e\nf: e3\ng: '1e3'\nh: 1_0e1\n"
    [doc] = read_documents(text, filename="t.yaml")
    assert doc.value == {
        "a": 1000.0, "b": 1500.0, "c": -200.0, "d": 0.001,
        "e": "1e", "f": "e3", "g": "1e3", "h": 100.0,
    }  # fmt: skip
    weight = SPLIT.replace("weight: 90", "weight: 9e1")
    assert "weight: 9e1" in weight
    assert load(weight)[1] == []


def test_a_number_beyond_a_double_stays_text_as_go_yaml_keeps_it() -> None:
    """go-yaml resolves a float only when strconv.ParseFloat succeeds: `7e12345` (a short git
    SHA in a label) stays a string there, so it must not become infinity here."""
    [doc] = read_documents("a: 7e12345\nb: 1.5e400\nc: -1e999\nd: .inf\ne: 1e308\n", filename="t")
    assert doc.value == {"a": "7e12345", "b": "1.5e400", "c": "-1e999", "d": float("inf"),
                         "e": 1e308}  # fmt: skip
    labelled = SPLIT.replace(
        "  namespace: shop\n", "  namespace: shop\n  labels: {commit: 7e12345}\n"
    )
    assert "7e12345" in labelled
    assert load(labelled)[1] == []


def test_merge_keys_and_aliases_resolve() -> None:
    text = "base: &b {x: 1, y: 2}\nmerged:\n  <<: *b\n  y: 3\ncopy: *b\n"
    [doc] = read_documents(text, filename="m.yaml")
    assert doc.value["merged"] == {"x": 1, "y": 3}
    assert doc.value["copy"] == {"x": 1, "y": 2}


def test_alias_bombs_and_deep_nesting_are_refused_as_too_large() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdef", "bcdefg", strict=True)
    )
    _, diags = load(bomb)
    assert [c for c, _, _ in diags] == ["SMI1010"]
    _, diags = load("deep: " + "[" * 200 + "]" * 200)
    assert [c for c, _, _ in diags] == ["SMI1010"]
    _, diags = load('{"deep": ' + "[" * 200 + "]" * 200 + "}", name="deep.json")
    assert [c for c, _, _ in diags] == ["SMI1010"]
    assert [d.code for d in load_object({"deep": [[[[[[]]]]]] * 50_000}).diagnostics] == ["SMI1010"]


def test_unsupported_tags_are_syntax_errors() -> None:
    _, diags = load("apiVersion: !!python/name:os.system v1\n")
    assert [(c, line) for c, line, _ in diags] == [("SMI1002", 1)]


def test_load_object_has_no_lines_but_full_checks() -> None:
    doc = {
        "apiVersion": "split.smi-spec.io/v1alpha4",
        "kind": "TrafficSplit",
        "metadata": {"name": "x"},
        "spec": {"service": "web", "backends": "none"},
    }
    result = load_object(doc, default_namespace="ns")
    [d] = result.diagnostics
    assert (d.code, d.path, d.file, d.line) == ("SMI2003", "spec.backends", "<request>", None)


def test_load_object_accepts_any_mapping() -> None:
    doc = yaml.safe_load(SPLIT)
    [res] = load_object(MappingProxyType(doc)).resources
    assert res.key == "TrafficSplit/shop/canary"
    assert res.line_of("spec.backends[0].weight") is None


def test_read_source_and_read_documents_raise_our_errors(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as err:
        read_source(str(tmp_path / "missing.yaml"))
    assert err.value.diagnostics[0].code == "SMI1001"
    with pytest.raises(LoadError) as err:
        read_documents("a: [\n", filename="x.yaml")
    assert (err.value.diagnostics[0].code, err.value.diagnostics[0].line) == ("SMI1002", 1)


def test_block_yaml_locates_diagnostics_in_any_document_of_a_file() -> None:
    """Plain block YAML is read without line maps; the file's maps are computed when the
    first diagnostic asks, for every document of the file (empty ones counted)."""
    service = SERVICE.replace("ports: [{port: 80}]", "ports:\n  - port: 80")
    text = f"# header\n---\n{service}---\n---\n{SPLIT.replace('weight: 10', 'weight: -1')}"
    assert parse_block(text) is not None  # the fast path reads it
    result = load_text(text, filename="set.yaml")
    [svc] = result.context
    [split] = result.resources
    assert (svc.source.line, svc.source.index) == (3, 0)
    assert (split.source.line, split.source.index) == (12, 2)
    assert split.line_of("spec.backends[1].weight") == 23
    [d] = validate(result.resources, result.context)
    assert (d.code, d.path, d.line) == ("SMI2103", "spec.backends[1].weight", 23)


def test_kind_list_items_in_block_yaml_have_their_own_lines() -> None:
    text = """\
    apiVersion: v1
    kind: List
    items:
    - apiVersion: specs.smi-spec.io/v1alpha4
      kind: TCPRoute
      metadata:
        name: db
      spec:
        matches:
          ports:
          - 5432
    - apiVersion: specs.smi-spec.io/v1alpha4
      kind: TCPRoute
      metadata:
        name: cache
      spec:
        matches:
          ports: []
          extra: 1
    """
    assert parse_block(textwrap.dedent(text)) is not None
    result = load_text(textwrap.dedent(text), filename="list.yaml")
    assert [r.source.line for r in result.resources] == [4]
    assert [(d.code, d.path, d.line) for d in result.diagnostics] == [
        ("SMI2001", "spec.matches.extra", 19)
    ]


def test_loading_leaves_the_cyclic_collector_on_and_working() -> None:
    import gc
    import weakref

    class Node:
        pass

    def cycle() -> weakref.ref[Node]:
        a, b = Node(), Node()
        a.other, b.other = b, a  # type: ignore[attr-defined]
        return weakref.ref(a)

    assert gc.isenabled()
    gc.collect()
    young = cycle()
    load_text(SPLIT, filename="s.yaml")  # a small load leaves young garbage young
    assert gc.isenabled()
    gc.collect(0)
    assert young() is None
    big = "---\n".join([SPLIT.replace("canary", f"canary-{i}") for i in range(2_000)])
    old = cycle()
    assert len(load_text(big, filename="big.yaml").resources) == 2_000
    gc.collect()  # what a bulk load promoted is still collected by a full collection
    assert old() is None


def test_directories_are_walked_as_rglob_walks_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One scandir per directory, no stat per file, the same files as `Path.rglob("*")`:
    symlinked files read, symlinked directories not entered, hidden files and odd names; but a
    broken symlink named like a manifest is an error, not skipped."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "dir.yaml").mkdir()
    for name in ["x.yaml", "a/y.YML", "a/b/z.json", ".hidden.yaml", ".yaml", "a/b/q.txt"]:
        (tmp_path / name).write_text(SERVICE)
    (tmp_path / "a" / "sp ace.yaml").write_text(SERVICE)
    (tmp_path / "dir.yaml" / "in.json").write_text("{}")
    (tmp_path / "a_link").symlink_to(tmp_path / "a")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "x.yaml")
    (tmp_path / "broken.yaml").symlink_to(tmp_path / "nowhere.yaml")

    def rglob(root: str) -> list[str]:
        return [
            str(f)
            for f in sorted(
                (
                    f
                    for f in Path(root).rglob("*")
                    if f.suffix.lower() in EXTENSIONS and f.is_file()
                ),
                key=lambda f: f.as_posix(),
            )
        ]

    monkeypatch.chdir(tmp_path.parent)
    for root in [tmp_path.name, f"{tmp_path.name}/", f"./{tmp_path.name}", str(tmp_path)]:
        loaded = load_paths([root])
        assert loaded.files == rglob(root)
        broken = root.rstrip("/") + "/broken.yaml"
        unreadable = [d.format() for d in loaded.diagnostics if d.code == "SMI1001"]
        assert unreadable == [
            f"{broken.removeprefix('./')}: cannot read: no such file or directory (SMI1001)"
        ]
    monkeypatch.chdir(tmp_path)
    assert (
        load_paths(["."]).files
        == rglob(".")
        == [
            ".hidden.yaml",
            "a/b/z.json",
            "a/sp ace.yaml",
            "a/y.YML",
            "dir.yaml/in.json",
            "link.yaml",
            "x.yaml",
        ]
    )


def test_identities_are_read_as_the_loader_reads_objects_without_their_schema() -> None:
    """`smictl delete -f` reads identities: a split whose spec smictl refuses still names its
    object, while what is no object (an unserved version, a missing name) is refused with the
    loader's own codes, at its lines."""
    text = (
        SPLIT.replace("weight: 90", "weight: -1")
        + "---\napiVersion: split.smi-spec.io/v9\nkind: TrafficSplit\nmetadata: {name: x}\n"
        + "---\napiVersion: v1\nkind: Service\nmetadata: {namespace: shop}\n"
        + "---\napiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplitList\n"
        + "items: [{metadata: {name: listed}}]\n"
    )
    assert load_text(text, filename="m.yaml").ok is False  # the spec is refused there
    result = load_identities(text, filename="m.yaml", default_namespace="dev")
    assert [(o.kind, o.namespace, o.name) for o in result.context] == [
        ("TrafficSplit", "shop", "canary"),
        ("TrafficSplit", "dev", "listed"),
    ]
    assert result.resources == []
    assert [(d.code, d.line) for d in result.diagnostics] == [("SMI1006", 14), ("SMI1009", 20)]


PORT_TARGET = """\
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: db, namespace: shop}
spec: {matches: {ports: [5432]}}
---
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: tt, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: db, namespace: shop, port: 8080}
  rules: [{kind: TCPRoute, name: db}]
  sources: [{kind: ServiceAccount, name: api, namespace: shop}]
"""


def test_a_file_the_paths_name_twice_is_loaded_once(tmp_path: Path) -> None:
    """`-f dir -f dir/tt.yaml` (or one file twice): its objects were loaded twice, so validate
    said every problem of the file twice, SMI6004 included, at the same line, and called each
    object "defined twice, identically" (SMI3008) where it was written once."""
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "tt.yaml"
    path.write_text(PORT_TARGET)
    names = [str(tmp_path), str(path), str(path), f"{tmp_path}/./sub//tt.yaml"]
    result = load_paths(names)
    assert [r.key for r in result.resources] == ["TCPRoute/shop/db", "TrafficTarget/shop/tt"]
    assert result.files == [str(path)]
    assert [d.format() for d in validate(result.resources, result.context)] == [
        f"{path}:10: warning: spec.destination.port: destination.port 8080 is none of the ports "
        "its rules open (TCPRoute db: 5432): this TrafficTarget allows nothing, and compile "
        "leaves it out (SMI6004)"
    ]
