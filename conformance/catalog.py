"""Finding, reading and selecting scenario files.

Scenarios ship as package data under `conformance/scenarios/<area>/<behaviour>.yaml`; a
scenario's name is its path there without `.yaml` (`access/default-deny.v0.6.0`). A file that
does not fit the model is reported as one line `file:line: field.path: reason`, so a typo in a
scenario reads like a typo in a manifest. The YAML is read by the manifest reader (`smi.yamlpos`),
which keeps the line of every field and refuses a key written twice in one mapping: PyYAML keeps
the last, so a step with two `expect:` keys silently checked only the second.

Selection by SMI version: `--smi-version` takes a spec release (`v0.6.0`), one API
`group/version`, or `all`. A scenario belongs to a release when every group/version it
exercises is part of that release (SPEC.md §0).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from conformance.model import GROUP_VERSIONS, STEP_KINDS, FieldError, Scenario
from smi.yamlpos import LineMap, YamlError, format_path, load_documents

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


def load_text(text: str, *, name: str, filename: str) -> Scenario:
    doc, lines = _read_yaml(text, filename)
    if doc.get("name", name) != name:
        where = f"{filename}:{lines.line_of(('name',))}"
        raise ScenarioError([f"{where}: name: must be {name!r} (its path)"])
    try:
        return Scenario.model_validate({**doc, "name": name})
    except ValidationError as exc:
        raise ScenarioError(_format_errors(exc, lines, filename)) from exc


def _read_yaml(text: str, filename: str) -> tuple[dict[str, Any], LineMap]:
    """The one mapping of a scenario file and where each of its fields was written."""
    try:
        docs = list(islice(load_documents(text), 2))
    except YamlError as exc:
        raise ScenarioError([f"{filename}:{exc.line or 1}: YAML syntax error: {exc}"]) from None
    if len(docs) > 1:
        raise ScenarioError([f"{filename}:{docs[1].line}: a scenario file holds one document"])
    if not docs or not isinstance(docs[0].value, dict):
        line = docs[0].line if docs else 1
        raise ScenarioError([f"{filename}:{line}: a scenario is a mapping"])
    return docs[0].value, docs[0].lines


def _format_errors(exc: ValidationError, lines: LineMap, filename: str) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc, reason = _strip_tags(tuple(err["loc"])), str(err["msg"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            loc, reason = (*loc, *cause.loc), cause.reason
        elif isinstance(cause, Exception):  # pydantic prefixes it: "Value error, ..."
            reason = str(cause)
        path = format_path(loc)
        where = f"{filename}:{lines.line_of(loc)}"
        out.append(f"{where}: {path}: {reason}" if path else f"{where}: {reason}")
    return out


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic puts the union tag after `steps[i]`; it repeats the step's own key."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        if i >= 2 and loc[i - 2] == "steps" and isinstance(loc[i - 1], int) and part in STEP_KINDS:
            continue
        out.append(part)
    return tuple(out)


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
