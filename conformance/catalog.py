"""Finding, reading and selecting scenario files.

Scenarios ship as package data under `conformance/scenarios/<area>/<behaviour>.yaml`; a
scenario's name is its path there without `.yaml` (`access/default-deny.v0.6.0`). A file that
does not fit the model is reported as `file:line: field.path: reason`, so a typo in a scenario
reads like a typo in a manifest.

Selection by SMI version: `--smi-version` takes a spec release (`v0.6.0`), one API
`group/version`, or `all`. A scenario belongs to a release when every group/version it
exercises is part of that release (SPEC.md §0).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from conformance.model import STEP_KINDS, Scenario

# SPEC.md §0: the API versions each SMI spec release ships.
RELEASES: dict[str, frozenset[str]] = {
    "v0.4.0": frozenset(
        {
            "access.smi-spec.io/v1alpha1",
            "specs.smi-spec.io/v1alpha2",
            "split.smi-spec.io/v1alpha3",
            "metrics.smi-spec.io/v1alpha1",
        }
    ),
    "v0.5.0": frozenset(
        {
            "access.smi-spec.io/v1alpha2",
            "specs.smi-spec.io/v1alpha3",
            "split.smi-spec.io/v1alpha3",
            "metrics.smi-spec.io/v1alpha1",
        }
    ),
    "v0.6.0": frozenset(
        {
            "access.smi-spec.io/v1alpha3",
            "specs.smi-spec.io/v1alpha4",
            "split.smi-spec.io/v1alpha4",
            "metrics.smi-spec.io/v1alpha1",
        }
    ),
}

# Every group/version smictl serves (DESIGN.md §3 "Versions"); the report lists each.
GROUP_VERSIONS: tuple[str, ...] = (
    "access.smi-spec.io/v1alpha1",
    "access.smi-spec.io/v1alpha2",
    "access.smi-spec.io/v1alpha3",
    "access.smi-spec.io/v1alpha4",
    "specs.smi-spec.io/v1alpha1",
    "specs.smi-spec.io/v1alpha2",
    "specs.smi-spec.io/v1alpha3",
    "specs.smi-spec.io/v1alpha4",
    "split.smi-spec.io/v1alpha1",
    "split.smi-spec.io/v1alpha2",
    "split.smi-spec.io/v1alpha3",
    "split.smi-spec.io/v1alpha4",
)


class ScenarioError(Exception):
    """A scenario file cannot be read or does not fit the scenario model."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class ScenarioFile:
    name: str
    path: Path


def scenario_root() -> Path:
    """The directory of the shipped scenarios (package data)."""
    return Path(str(resources.files("conformance") / "scenarios"))


def iter_files(root: Path | None = None) -> Iterator[ScenarioFile]:
    base = root or scenario_root()
    for path in sorted(base.rglob("*.yaml")):
        rel = path.relative_to(base).with_suffix("")
        yield ScenarioFile(name=rel.as_posix(), path=path)


def load_file(path: Path, *, name: str) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([f"{path}: cannot read: {exc}"]) from exc
    return load_text(text, name=name, filename=str(path))


# libyaml when present: reading the suite is then a few times faster.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(text: str) -> yaml.Node | None:
    """The node tree, for line numbers; composed only when an error needs one."""
    node: yaml.Node | None = yaml.compose(text, Loader=_Loader)
    return node


def load_text(text: str, *, name: str, filename: str) -> Scenario:
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        raise ScenarioError([f"{where}: YAML syntax error: {exc}"]) from exc
    if not isinstance(doc, dict):
        raise ScenarioError([f"{filename}:1: a scenario is a mapping"])
    if doc.get("name", name) != name:
        raise ScenarioError(
            [f"{filename}:{_line(_compose(text), ('name',))}: name: must be {name!r} (its path)"]
        )
    try:
        return Scenario.model_validate({**doc, "name": name})
    except ValidationError as exc:
        raise ScenarioError(_format_errors(exc, _compose(text), filename)) from exc


def _format_errors(exc: ValidationError, node: yaml.Node | None, filename: str) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        loc = _strip_tags(tuple(err["loc"]))
        path = _dotted(loc)
        where = f"{filename}:{_line(node, loc)}"
        lines.append(f"{where}: {path}: {err['msg']}" if path else f"{where}: {err['msg']}")
    return lines


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic puts the union tag after `steps[i]`; it repeats the step's own key."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        if i >= 2 and loc[i - 2] == "steps" and isinstance(loc[i - 1], int) and part in STEP_KINDS:
            continue
        out.append(part)
    return tuple(out)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the deepest YAML node along `loc` (pydantic's error location)."""
    line = 1
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        node = _child(node, part)
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _child(node: yaml.Node, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                found: yaml.Node = value
                return found
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item: yaml.Node = node.value[part]
        return item
    return None


# --- selection -------------------------------------------------------------------------------


def parse_version_filter(value: str) -> frozenset[str] | None:
    """`all` -> None (no filter); a release -> its group/versions; a group/version -> itself."""
    if value == "all":
        return None
    if value in RELEASES:
        return RELEASES[value]
    if value in GROUP_VERSIONS:
        return frozenset({value})
    known = ", ".join(["all", *RELEASES, *GROUP_VERSIONS])
    raise ValueError(f"unknown SMI version {value!r}; use one of: {known}")


def selected(scenario: Scenario, versions: frozenset[str] | None) -> bool:
    if versions is None:
        return True
    if len(versions) == 1:  # one group/version: every scenario that exercises it
        return bool(versions & set(scenario.smi_versions))
    return set(scenario.smi_versions) <= versions


def _name_problem(name: str) -> str | None:
    """A scenario's name is its path: it appears in the console and in every report, so it
    must be text. A file name that is not UTF-8 (Python keeps its bytes as lone surrogates)
    would crash writing the reports after the whole run; control characters would garble
    the terminal."""
    if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        return "the file name is not valid UTF-8; rename the file"
    if any(not c.isprintable() for c in name):
        return "the file name holds control characters; rename the file"
    return None


def discover(
    *,
    patterns: Iterable[str] = ("*",),
    smi_version: str = "all",
    root: Path | None = None,
) -> list[Scenario]:
    """Load every scenario whose name matches one of `patterns` (shell globs) and the version
    filter. All broken files are reported together in one ScenarioError."""
    versions = parse_version_filter(smi_version)
    pats = tuple(patterns)
    found: list[Scenario] = []
    problems: list[str] = []
    for f in iter_files(root):
        if not any(fnmatch.fnmatchcase(f.name, p) for p in pats):
            continue
        bad_name = _name_problem(f.name)
        if bad_name:
            problems.append(f"{ascii(str(f.path))[1:-1]}: {bad_name}")
            continue
        try:
            scenario = load_file(f.path, name=f.name)
        except ScenarioError as exc:
            problems.extend(exc.lines)
            continue
        if selected(scenario, versions):
            found.append(scenario)
    if problems:
        raise ScenarioError(problems)
    return found
