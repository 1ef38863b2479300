"""smi.yamlblock: the fast path reads plain block YAML (and one-line flow collections of simple
scalars) exactly as the full parser does, and declines (None) everything else, so that the
full parser reads it and reports its errors."""

from __future__ import annotations

import os
import re
import textwrap
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smi.yamlblock import parse_block
from smi.yamlpos import YamlError, load_documents


def full_parser(text: str) -> list[tuple[Any, int, int]] | None:
    """(value, index, line of the root) of each document, as `smi.yamlpos` reads them."""
    try:
        return [(d.value, d.index, d.line) for d in load_documents(text)]
    except YamlError:
        return None


def assert_same_as_full_parser(text: str) -> bool:
    """If the fast path reads `text`, it reads what the full parser reads (repr: 1, 1.0 and
    True are equal in Python, not in a manifest). Returns whether the fast path read it."""
    fast = parse_block(text)
    if fast is None:
        return False
    full = full_parser(text)
    assert full is not None, f"fast path accepted text the full parser refuses: {text!r}"
    assert repr([tuple(d) for d in fast]) == repr(full), text
    return True


def test_a_kubectl_style_manifest_is_read_with_its_values_and_root_line() -> None:
    text = textwrap.dedent(
        """\
        # leading comment
        apiVersion: split.smi-spec.io/v1alpha4
        kind: TrafficSplit
        metadata:
          name: canary
          annotations: {}
          labels:
            app.kubernetes.io/name: web
        spec:
          service: web  # the root
          backends:
          - service: 'web-v1'
            weight: 90
          - service: "web-v2"
            weight: 0x0a
          matches: []
        """
    )
    [doc] = parse_block(text) or []
    assert doc.line == 2 and doc.stream_index == 0
    assert doc.value["metadata"] == {
        "name": "canary",
        "annotations": {},
        "labels": {"app.kubernetes.io/name": "web"},
    }
    assert doc.value["spec"] == {
        "service": "web",
        "backends": [{"service": "web-v1", "weight": 90}, {"service": "web-v2", "weight": 10}],
        "matches": [],
    }
    assert assert_same_as_full_parser(text)


def test_documents_keep_their_index_in_the_stream_and_empty_ones_are_skipped() -> None:
    text = "---\na: 1\n---\n---\n# only a comment\n---\n- x\n-\n- y: null\n  z: ~\n"
    docs = parse_block(text)
    assert docs is not None
    assert [(d.value, d.stream_index, d.line) for d in docs] == [
        ({"a": 1}, 0, 2),
        (["x", None, {"y": None, "z": None}], 3, 7),
    ]
    assert assert_same_as_full_parser(text)


@pytest.mark.parametrize(
    "text",
    [
        "a:\n- 1\n- 2\nb:\n  - c: d\n    e:\n    - f\n",  # indentless and indented sequences
        "a:\nb: yes\nc: 'it''s'\nd: -1\ne: .5\nf: 1_000\ng: 0o17\nh: 2019-04-08T22:25:55Z\n",
        "'80': http\n'true': 1\n'a b': 2\n'': 3\n",  # keys PyYAML quotes
        "a: x#y\nb: x # y\nc: 'q' # r\nd:   \ne: http://x:80/y\n",
        "  a: 1\n  b:\n    - c\n",  # an indented root
        "-   a: 1\n    b: 2\n-\n  - nested\n",
        # one-line flow collections of simple scalars, as people write them
        "methods: [GET, HEAD]\nports: [80, 443]\nall: ['*', \"x\"]\nnone: []\n",
        "selector: {app: web}\n",
        "ports: [{port: 80}, {port: 443, name: https}]  # both\nm: {a: [x, -1, .5, yes, x.y]}\n",
        "- [ a , b ]\n- {80: http, 'a b': ''}\n- {}\n",
    ],
)
def test_block_constructs_read_as_the_full_parser_reads_them(text: str) -> None:
    assert assert_same_as_full_parser(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: [x y]\n",  # flow collections beyond the simplest
        "a: [x: y]\n",
        "a: {b:1}\n",
        "a: {b}\n",
        "a: [[[1]]]\n",
        "a: [1,\n  2]\n",
        "a: [*x]\n",
        "a: [x,]\n",
        "a: ['x', \"y\\n\"]\n",
        "a: [http://x]\n",
        "a: {b: 1, b: 2}\n",
        "a: [x] y\n",
        "[a, b]\n",
        "a: &x 1\nb: *x\n",  # anchors and aliases
        "a: !!str 1\n",  # tags
        "a: |\n  text\n",  # block scalars
        "a: b\n  c\n",  # a multi-line plain scalar
        'a: "x\\ty"\n',  # escapes
        "a: 'x\n  y'\n",  # a multi-line quoted scalar
        "a:\tb\n",  # tabs
        "a: 1\na: 2\n",  # a duplicate key (the full parser reports it)
        "%YAML 1.1\n---\na: 1\n",  # directives
        "a: 1\n...\n",  # document end markers
        "--- a: 1\n",
        "<<: {a: 1}\n",  # merge keys
        "'it''s': 1\n",  # quoted keys with quotes inside
        '"a": 1\n',
        "a b: 1\n",
        "? a\n: 1\n",
        "just text\n",
        "- - a\n",
        "a: b: c\n",
        "a:\n  - b\n  c: d\n",  # not YAML at all
        "a: 1\r\nb: 2\r\n",  # characters libyaml refuses or reads as line breaks
        "\ufeffa: 1\n",
        "a: b\x85c\n",
        "a: é\u2028b\n",
        "a: \x7f\n",
        "a: \x01\n",
    ],
)
def test_everything_else_is_left_to_the_full_parser(text: str) -> None:
    assert parse_block(text) is None


def test_documents_near_the_size_limits_are_left_to_the_full_parser() -> None:
    deep = "".join(f"{' ' * i}k:\n" for i in range(80)) + " " * 80 + "k: v\n"
    assert parse_block(deep) is None
    assert full_parser(deep) is None  # refused there, with SMI1010
    wide = "".join(f"k{i}: v\n" for i in range(70_000))
    assert parse_block(wide) is None


# --- property: the fast path agrees with the full parser ---------------------------------------

KEYS = ["a", "b", "name", "app.kubernetes.io/name", "80", "true", "x-y_z", "k:v", "a b", ""]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=True, width=32),
    st.sampled_from(
        [
            *["yes", "No", "~", "null", "0x1F", "0o17", "017", "1_000", "1:30", ".inf", "-.5"],
            *["-", "- a", "a: b", "a #b", "#", "'", '"', " a", "a ", "", "[]", "{}", "*a", "&a"],
            *["/api/v1(/[0-9]+)?$", "application/json.*", "500m", "é", "a\tb", "a\\b", "%x"],
            "1e3",
        ]
    ),
    st.text(alphabet="abc -:#'\"\\", max_size=6),
)
# Mostly what manifests hold: words, numbers, and strings PyYAML single-quotes.
PLAIN_SCALARS = st.one_of(
    st.integers(min_value=-100, max_value=10**5),
    st.booleans(),
    st.none(),
    st.from_regex(r"[a-z/][a-z0-9./$()*+?-]{0,12}", fullmatch=True),
    st.sampled_from(["yes", "80", "", "a: b", "# x", "'q'", "-x", "a #b", "1.5", "é"]),
)
TRICKY_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner),
    max_leaves=12,
)
PLAIN_VALUES = st.recursive(
    PLAIN_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS[:7]), inner),
    max_leaves=12,
)
VALUES = PLAIN_VALUES | TRICKY_VALUES
# Documents are objects (manifests), sometimes lists or scalars.
DOCUMENTS = st.one_of(
    st.dictionaries(st.sampled_from(KEYS[:7]), PLAIN_VALUES, min_size=1),
    st.dictionaries(st.sampled_from(KEYS[:7]), VALUES, min_size=1),
    VALUES,
)


def dump(docs: list[Any], style: int) -> str:
    options: list[dict[str, Any]] = [
        {},
        {"indent": 4},
        {"explicit_start": True},
        {"default_flow_style": None},
        {"width": 20},
    ]
    return yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True, **options[style])


def mutate(text: str, data: st.DataObject) -> str:
    """Comments, blank lines, separators, trailing spaces, shifted or deleted lines..."""
    lines = text.split("\n")
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(lines) - 1))
        line = lines[at]
        edit = data.draw(st.integers(0, 7))
        if edit == 0:
            lines.insert(at, " " * data.draw(st.integers(0, 4)) + "# note")
        elif edit == 1:
            lines[at] = line + data.draw(st.sampled_from([" # c", "  ", "#c", " :", ": x"]))
        elif edit == 2:
            lines.insert(at, data.draw(st.sampled_from(["", "---", "...", "--- #", "-"])))
        elif edit == 3:
            lines[at] = " " * data.draw(st.integers(1, 2)) + line
        elif edit == 4:
            lines[at] = line[data.draw(st.integers(1, 2)) :]
        elif edit == 5:
            del lines[at]
        elif edit == 6:
            lines.insert(at, line)
        else:
            pos = data.draw(st.integers(0, len(line)))
            char = data.draw(st.sampled_from(list("-:#'\"&*!|>[]{},?% \t")))
            lines[at] = line[:pos] + char + line[pos:]
        if not lines:
            lines = [""]
    return "\n".join(lines)


@settings(
    max_examples=int(os.environ.get("SMICTL_FUZZ_EXAMPLES", "600")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(DOCUMENTS, min_size=1, max_size=3), st.integers(0, 4), st.data())
def test_whatever_the_fast_path_reads_the_full_parser_reads_the_same(
    docs: list[Any], style: int, data: st.DataObject
) -> None:
    text = dump(docs, style)
    assert_same_as_full_parser(text)
    assert_same_as_full_parser(mutate(text, data))


MANIFESTS = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(["v1", "split.smi-spec.io/v1alpha4"]),
        "kind": st.sampled_from(["Service", "TrafficSplit"]),
        "metadata": st.fixed_dictionaries(
            {"name": st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)},
            optional={"namespace": st.sampled_from(["default", "team-1"])},
        ),
        "spec": st.dictionaries(
            st.sampled_from(["service", "ports", "backends", "weight"]),
            st.integers(0, 100)
            | st.from_regex(r"[a-z][a-z0-9./-]{0,10}", fullmatch=True)
            | st.lists(st.dictionaries(st.sampled_from(["port", "name"]), st.integers(1, 9))),
        ),
    }
)


@settings(max_examples=200, deadline=None)
@given(st.lists(MANIFESTS, min_size=1, max_size=4), st.sampled_from([0, 1, 2]))
def test_manifests_as_tools_write_them_take_the_fast_path(docs: list[Any], style: int) -> None:
    assert assert_same_as_full_parser(dump(docs, style))


FLOW_SCALARS = st.sampled_from(
    [
        *["a", "b1", "-1", "-x", ".5", "yes", "~", "null", "1e3", "0x1F", "017", "<<", "="],
        *["'q'", "''", "'it''s'", "' a '", '"d"', '""', "x.y/z", "a(b)?$", "application/json.*"],
        *["é", "a:b", "a#b", "a b", "*a", "&a", "!t", "-", "?x", "%x", "@x", "`x", "a'b", "\\"],
    ]
)
SEPARATORS = st.sampled_from([", ", ",", " , ", ",  "])


def flow_sequence(items: list[str], sep: str) -> str:
    return "[" + sep.join(items) + "]"


def flow_mapping(pairs: list[tuple[str, str]], sep: str) -> str:
    return "{" + sep.join(f"{k}: {v}" for k, v in pairs) + "}"


FLOWS = st.recursive(
    FLOW_SCALARS,
    lambda inner: (
        st.builds(flow_sequence, st.lists(inner, max_size=3), SEPARATORS)
        | st.builds(flow_mapping, st.lists(st.tuples(FLOW_SCALARS, inner), max_size=3), SEPARATORS)
    ),
    max_leaves=8,
).filter(lambda text: text[0] in "[{")


@settings(
    max_examples=int(os.environ.get("SMICTL_FUZZ_EXAMPLES", "600")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(FLOWS, st.sampled_from(["k: ", "- ", "- k: "]), st.sampled_from(["", "  # c", " ", "x"]))
def test_flow_collections_the_fast_path_reads_read_the_same(
    flow: str, prefix: str, suffix: str
) -> None:
    assert_same_as_full_parser(f"{prefix}{flow}{suffix}\n")


def test_sequence_entries_and_flow_lists_read_whole_on_every_python_3_11() -> None:
    # On CPython before 3.11.5 (Debian 12 ships 3.11.2), `re` matched possessive quantifiers
    # wrongly where the repeated part can backtrack: this path once read `- GET` as `ET` and
    # `- port: 8080` as a string there.
    docs = parse_block("methods:\n- GET\n- HEAD\nports: [8080, '9090']\nmatch:\n- port: 8080\n")
    assert docs is not None
    assert docs[0].value == {
        "methods": ["GET", "HEAD"],
        "ports": [8080, "9090"],
        "match": [{"port": 8080}],
    }


def _possessive(pattern: re.Pattern[str]) -> bool:
    """Whether the pattern holds a possessive quantifier (`*+`, `++`, `?+`, `{m,n}+`)."""
    from re import _constants, _parser  # type: ignore[attr-defined]

    def walk(node: object) -> bool:
        if isinstance(node, _parser.SubPattern):
            return any(walk(item) for item in node)
        if isinstance(node, (list, tuple)):
            if node and node[0] is _constants.POSSESSIVE_REPEAT:
                return True
            return any(walk(item) for item in node)
        return False

    return walk(_parser.parse(pattern.pattern, pattern.flags))


def test_no_module_pattern_uses_possessive_quantifiers() -> None:
    """Atomic groups (`(?>x*)`) say the same, and every 3.11 release matches them right."""
    import importlib
    import pkgutil

    import proxy
    import smi

    found = []
    for package in (smi, proxy):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            patterns = [(n, v) for n, v in vars(module).items() if isinstance(v, re.Pattern)]
            for name, pattern in patterns:
                if isinstance(pattern.pattern, str) and _possessive(pattern):
                    found.append(f"{info.name}.{name}")
    assert _possessive(re.compile("a*+b"))  # (the check itself finds one)
    assert not _possessive(re.compile("(?>a*)b"))
    assert found == []
