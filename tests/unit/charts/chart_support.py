"""Helpers for the Helm chart tests: CRD structural rules, strict schema validation of
manifests, example-manifest discovery, a Go-template action scanner, and helm/kubernetes-client
round trips. Kept apart from the test files so each test reads as the behaviour it checks.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
CHARTS = REPO / "charts"
CHART = CHARTS / "smictl"
CRD_DIR = CHART / "crds"
TEMPLATES = CHART / "templates"
SHARED_EXAMPLES = REPO.parent / "shared" / "smi" / "examples"  # as tests/conftest.py
SMI_GROUPS = ("access.smi-spec.io", "specs.smi-spec.io", "split.smi-spec.io")


def load_module(path: Path, name: str) -> ModuleType:
    """Import a script that is not on sys.path (charts/tools, charts/smictl/files)."""
    qualified = f"smictl_chart_{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


# --- CRDs -------------------------------------------------------------------------------------


def load_crds() -> dict[str, dict[str, Any]]:
    """CRD name -> document, for every file in crds/."""
    out = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        out[doc["metadata"]["name"]] = doc
    return out


def served_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every served version."""
    out = {}
    for crd in load_crds().values():
        spec = crd["spec"]
        for version in spec["versions"]:
            if version["served"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                out[key] = version["schema"]["openAPIV3Schema"]
    return out


_FORBIDDEN_KEYWORDS = (
    "$ref",
    "$schema",
    "id",
    "definitions",
    "dependencies",
    "patternProperties",
    "additionalItems",
)
_NOT_IN_JUNCTORS = ("type", "description", "default", "additionalProperties", "nullable")
_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


def structural_problems(node: dict[str, Any], path: str = "<root>") -> list[str]:
    """Violations of the apiextensions.k8s.io/v1 structural-schema rules (and the keywords
    v1 CRDs reject), one line each; [] for a structural schema."""
    problems: list[str] = []
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    problems += [
        f"{path}: {k} is not allowed in a v1 CRD" for k in _FORBIDDEN_KEYWORDS if k in node
    ]
    if node.get("uniqueItems") is True:
        problems.append(f"{path}: uniqueItems: true is not allowed")
    if "type" not in node and not (int_or_string or preserve):
        problems.append(f"{path}: no type (only int-or-string and preserve-unknown-fields nodes)")
    if int_or_string and "type" in node:
        problems.append(f"{path}: x-kubernetes-int-or-string with a type")
    problems += _junctor_problems(node, path, int_or_string=int_or_string)
    kind = node.get("type")
    if "properties" in node and kind != "object":
        problems.append(f"{path}: properties on a node of type {kind}")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties together")
    if node.get("additionalProperties") is False:
        problems.append(f"{path}: additionalProperties: false is not allowed")
    for name in node.get("required", []):
        if name not in node.get("properties", {}):
            problems.append(f"{path}: required {name!r} is not a property")
    if kind == "array" and not isinstance(node.get("items"), dict):
        problems.append(f"{path}: array without one items schema")
    for value in node.get("enum", []):
        if kind == "string" and not isinstance(value, str):
            problems.append(f"{path}: enum value {value!r} is not a string")
    for name, child in node.get("properties", {}).items():
        problems += structural_problems(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}.*")
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{path}[]")
    if path == "<root>" and "metadata" in node.get("properties", {}):
        meta = node["properties"]["metadata"]
        if set(meta.get("properties", {})) - {"name", "generateName"}:
            problems.append("<root>.metadata: only name and generateName may be restricted")
    return problems


def _junctor_problems(node: dict[str, Any], path: str, *, int_or_string: bool) -> list[str]:
    problems = []
    for junctor in _JUNCTORS:
        if junctor not in node:
            continue
        if junctor == "anyOf" and int_or_string and node["anyOf"] == _INT_OR_STRING:
            continue
        branches = node[junctor] if isinstance(node[junctor], list) else [node[junctor]]
        for branch in branches:
            for key in _NOT_IN_JUNCTORS:
                if key in branch:
                    problems.append(f"{path}: {key} inside {junctor}")
            for name in branch.get("properties", {}):
                if name not in node.get("properties", {}):
                    problems.append(f"{path}: {junctor} names {name!r}, not specified outside it")
    return problems


def strict_schema(node: dict[str, Any], *, root: bool = True) -> dict[str, Any]:
    """A JSON Schema (draft 7) that validates like the API server with strict field validation
    (kubectl's default since 1.25): unknown fields are errors, not silently pruned."""
    if node.get("x-kubernetes-preserve-unknown-fields") and "type" not in node:
        return {}
    out = {k: copy.deepcopy(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    out.pop("description", None)
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = copy.deepcopy(_INT_OR_STRING)
    if node.get("type") == "object":
        props = {k: strict_schema(v, root=False) for k, v in node.get("properties", {}).items()}
        if root:
            props |= {"apiVersion": {"type": "string"}, "kind": {"type": "string"}}
            props["metadata"] = {"type": "object"}
        out["properties"] = props
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            out["additionalProperties"] = strict_schema(extra, root=False)
            out.pop("properties")
        elif not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(node.get("items"), dict):
        out["items"] = strict_schema(node["items"], root=False)
    return out


# --- the SMI example manifests ----------------------------------------------------------------

_IMPLIED = re.compile(
    r"implied (?:apiVersion is )?(?P<av>[a-z.-]+/v[0-9a-z-]+)(?: or (?P<alt>v[0-9a-z]+))?"
)
_INTENDED = re.compile(r"intended (?P<av>[a-z.-]+/v[0-9a-z-]+)")


@dataclass(frozen=True)
class Example:
    path: Path
    rel: str
    api_version: str
    kind: str
    doc: dict[str, Any]

    @property
    def group(self) -> str:
        return self.api_version.partition("/")[0]


def example_api_versions(text: str, doc: dict[str, Any]) -> list[str]:
    """The apiVersion(s) a manifest is for: as written when it names a group, else what its
    `# note:` comment says the document implies (or, for a doc typo, intends)."""
    written = doc.get("apiVersion")
    if isinstance(written, str) and "/" in written:
        return [written]
    notes = " ".join(line for line in text.splitlines() if line.startswith("# note"))
    match = _IMPLIED.search(notes) or _INTENDED.search(notes)
    if match is None:
        return []
    versions = [match["av"]]
    if match.groupdict().get("alt"):
        versions.append(f"{match['av'].partition('/')[0]}/{match['alt']}")
    return versions


@functools.cache
def smi_examples(root: Path) -> tuple[Example, ...]:
    """Every document of an SMI CRD group among the example manifests (parsed once)."""
    return tuple(_smi_examples(root))


def _smi_examples(root: Path) -> Iterator[Example]:
    for path in sorted(root.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        try:
            docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        except yaml.YAMLError:
            continue  # the one elided APIResourceList response (metrics, not a CRD)
        for doc in docs:
            for api_version in example_api_versions(text, doc):
                if api_version.partition("/")[0] in SMI_GROUPS:
                    rel = path.relative_to(root).as_posix()
                    yield Example(path, rel, api_version, str(doc.get("kind")), doc)


# --- Go templates -----------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_OPENERS = ("if", "range", "with", "define", "block")
_VALUES_REF = re.compile(r"(?<![\w)])(?:\$\w*)?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


@dataclass(frozen=True)
class Action:
    line: int
    body: str  # trimmed of `{{-`, `-}}` and whitespace

    @property
    def keyword(self) -> str:
        return self.body.split(maxsplit=1)[0] if self.body else ""


def actions(text: str) -> list[Action]:
    """The template actions of a file, comments dropped."""
    out = []
    for match in _ACTION.finditer(text):
        body = match.group(1).strip()
        body = body.removeprefix("-").removesuffix("-").strip()
        if body.startswith("/*"):
            continue
        out.append(Action(text.count("\n", 0, match.start()) + 1, body))
    return out


def block_problems(text: str, name: str) -> list[str]:
    """Unbalanced `{{ if/range/with/define/block }}` ... `{{ end }}`, a stray `else`, an
    unterminated action or comment."""
    problems = []
    if text.count("{{") != text.count("}}"):
        problems.append(f"{name}: {text.count('{{')} '{{{{' but {text.count('}}')} '}}}}'")
    for match in re.finditer(r"\{\{-?\s*/\*", text):
        if "*/" not in text[match.end() : text.find("}}", match.end()) + 2]:
            problems.append(f"{name}: unterminated comment at offset {match.start()}")
    stack: list[Action] = []
    for action in actions(text):
        if action.keyword in _OPENERS:
            stack.append(action)
        elif action.keyword == "else":
            if not stack or stack[-1].keyword not in ("if", "range", "with"):
                problems.append(f"{name}:{action.line}: else outside if/range/with")
        elif action.keyword == "end":
            if not stack:
                problems.append(f"{name}:{action.line}: end without an opening block")
            else:
                stack.pop()
    problems += [f"{name}:{a.line}: {a.keyword} is never closed" for a in stack]
    return problems


def values_references(text: str) -> list[tuple[int, str]]:
    """(line, dotted path) of every `.Values.x.y` in the template's actions."""
    out = []
    for action in actions(text):
        for match in _VALUES_REF.finditer(action.body):
            out.append((action.line, match.group(1).lstrip(".")))
    return out


def defined_templates(text: str) -> set[str]:
    return set(re.findall(r'\{\{-?\s*define\s+"([^"]+)"', text))


def used_templates(text: str) -> set[str]:
    return set(re.findall(r'(?:include|template)\s+"([^"]+)"', text))


def value_paths(values: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key path of a values tree (maps only; lists are leaves)."""
    if isinstance(values, dict):
        for key, child in values.items():
            path = f"{prefix}.{key}" if prefix else key
            yield path
            yield from value_paths(child, path)


# --- helm and the kubernetes client -----------------------------------------------------------


def helm() -> str | None:
    return shutil.which("helm")


def helm_run(*args: str) -> subprocess.CompletedProcess[str]:
    binary = helm()
    assert binary is not None
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False, timeout=120)


def render(
    *args: str, release: str = "smictl", namespace: str = "smictl-system"
) -> list[dict[str, Any]]:
    """`helm template` of the chart; every non-empty document, hooks included."""
    done = helm_run(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        "1.29.0",
        *args,
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def model_name(api_version: str, kind: str) -> str:
    """The kubernetes client's model class for a built-in kind: apps/v1 Deployment ->
    V1Deployment, policy/v1 PodDisruptionBudget -> V1PodDisruptionBudget."""
    version = api_version.rpartition("/")[2]
    return version[0].upper() + version[1:] + kind


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def client_problem(doc: dict[str, Any]) -> str | None:
    """Why the kubernetes client's model refuses or changes the object, or None.

    The client's models (pydantic in client 37) refuse a missing required field or a value of
    the wrong type; a misspelt or misplaced key is dropped, so the round trip differs."""
    try:
        back = client_round_trip(doc)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        return f"refused by the model: {str(exc).splitlines()[0]}"
    if back != doc:
        return "changed by the round trip (an unknown or misplaced field)"
    return None


def client_round_trip(doc: dict[str, Any]) -> dict[str, Any]:
    """Deserialise into the kubernetes client's model and serialise back."""
    from kubernetes import client

    api = client.ApiClient()
    name = model_name(doc["apiVersion"], doc["kind"])
    obj = api._ApiClient__deserialize(copy.deepcopy(doc), name)  # type: ignore[attr-defined]
    return _drop_none(api.sanitize_for_serialization(obj))
