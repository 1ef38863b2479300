"""Find Rego modules on disk and read each admission policy's METADATA.

Layout (gatekeeper-library style), for the shipped policies and for every `--policies DIR`:

    <dir>/<area>/<policy>/policy.rego        one package, one `violation` set, METADATA
    <dir>/<area>/<policy>/policy_test.rego   `test_*` rules, run by `smictl policy test`
    <dir>/<area>/<policy>/samples/           example manifests the tests also check
    <dir>/lib/...                            helper packages (no METADATA, no `violation`)

A policy is a module whose package carries a `# METADATA` block (YAML in comments, right
before `package`):

    # METADATA
    # title: Canary weight moves in small steps
    # description: ...
    # custom:
    #   code: SMI5101             # reported with every violation
    #   enforcement: deny         # deny (403) or warn (a warning, admitted)
    #   kinds: [TrafficSplit]     # optional: only these kinds are evaluated
    #   inventory: [Service]      # optional: kinds copied into input.inventory

A policy's name (the `[name]` of its messages) is its directory when the file is `policy.rego`,
otherwise the file's stem. Files ending in `_test.rego` are test modules and never part of an
admission policy set. A module that defines `violation` without METADATA is an error (SMI5004):
it would otherwise be loaded and silently never enforced.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from smi.errors import Diagnostic, PolicyError
from smi.policy.coverage import blank_comments

METADATA_INVALID = "SMI5004"
TEST_SUFFIX = "_test.rego"
VIOLATION_RULE = "violation"

Enforcement = Literal["deny", "warn"]

_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_VIOLATION = re.compile(rf"^{VIOLATION_RULE}\b", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class RegoModule:
    """One .rego file: `name` is how users see it (and how regopy names it in errors)."""

    name: str
    source: str
    package: str
    is_test: bool

    @property
    def package_path(self) -> str:
        """`smi.split.canary_step` -> `smi/split/canary_step` (regopy entrypoint form)."""
        return self.package.replace(".", "/")


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """An admission policy: a package with METADATA and a `violation` set."""

    name: str
    package: str
    title: str
    description: str
    code: str
    enforcement: Enforcement
    kinds: tuple[str, ...]
    inventory: tuple[str, ...]
    file: str
    line: int

    @property
    def entrypoint(self) -> str:
        return f"{self.package.replace('.', '/')}/{VIOLATION_RULE}"

    def applies_to(self, kind: str) -> bool:
        return not self.kinds or kind in self.kinds

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "package": self.package,
            "title": self.title,
            "description": self.description,
            "code": self.code,
            "enforcement": self.enforcement,
            "kinds": list(self.kinds),
            "inventory": list(self.inventory),
            "file": self.file,
            "line": self.line,
        }


def display_path(path: Path) -> str:
    """Relative to the working directory when below it: what users typed, short."""
    resolved = path.resolve()
    try:
        return os.path.relpath(resolved) if resolved.is_relative_to(Path.cwd()) else str(resolved)
    except ValueError:
        return str(resolved)


def find_files(dirs: Iterable[Path | str]) -> list[Path]:
    """Every .rego file under the directories (or the files themselves), sorted, unique."""
    seen: dict[Path, None] = {}
    for d in dirs:
        p = Path(d)
        if p.is_file():
            seen.setdefault(p.resolve(), None)
            continue
        if not p.is_dir():
            raise PolicyError.of("SMI5010", "no such policy directory or file", file=str(d))
        for f in sorted(p.rglob("*.rego"), key=lambda x: x.as_posix()):
            seen.setdefault(f.resolve(), None)
    return list(seen)


def read_modules(dirs: Iterable[Path | str]) -> list[RegoModule]:
    """Every module under `dirs`, with its package; unreadable or package-less files raise."""
    out: list[RegoModule] = []
    for path in find_files(dirs):
        name = display_path(path)
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError.of("SMI5001", f"cannot read policy: {exc}", file=name) from exc
        m = _PACKAGE.search(blank_comments(source))
        if m is None:
            raise PolicyError.of("SMI5001", "no `package` declaration", file=name, line=1)
        package = m.group(1).removeprefix("data.")
        out.append(RegoModule(name, source, package, path.name.endswith(TEST_SUFFIX)))
    return out


def policies_of(modules: Sequence[RegoModule]) -> list[PolicyInfo]:
    """The admission policies among `modules` (test modules are skipped); raises on bad METADATA."""
    policies: list[PolicyInfo] = []
    problems: list[Diagnostic] = []
    for module in modules:
        if module.is_test:
            continue
        try:
            info = _policy_of(module)
        except PolicyError as exc:
            problems.extend(exc.diagnostics)
            continue
        if info is not None:
            policies.append(info)
    problems.extend(_duplicates(policies))
    if problems:
        raise PolicyError(problems)
    return sorted(policies, key=lambda p: p.name)


def _duplicates(policies: Sequence[PolicyInfo]) -> list[Diagnostic]:
    first: dict[str, PolicyInfo] = {}
    out: list[Diagnostic] = []
    for p in policies:
        for key, what in ((p.name, "policy name"), (p.package, "package")):
            other = first.setdefault(f"{what}:{key}", p)
            if other is not p:
                out.append(
                    Diagnostic(
                        code=METADATA_INVALID,
                        message=f"{what} {key!r} is already used by {other.file}",
                        file=p.file,
                        line=p.line,
                    )
                )
    return out


def _policy_of(module: RegoModule) -> PolicyInfo | None:
    meta, line = _metadata_block(module)
    if meta is None:
        if _VIOLATION.search(blank_comments(module.source)):
            raise PolicyError.of(
                METADATA_INVALID,
                "defines `violation` but has no `# METADATA` block before `package`",
                file=module.name,
                line=1,
            )
        return None  # a helper package
    return _policy_from_meta(module, meta, line)


def _metadata_block(module: RegoModule) -> tuple[dict[str, Any] | None, int]:
    """The YAML of the `# METADATA` comment block that precedes `package`, and its line."""
    lines = module.source.split("\n")
    for i, text in enumerate(lines):
        stripped = text.strip()
        if stripped.startswith("package "):
            return None, 0
        if stripped != "# METADATA":
            continue
        body: list[str] = []
        for follow in lines[i + 1 :]:
            if not follow.lstrip().startswith("#"):
                break
            body.append(re.sub(r"^\s*# ?", "", follow))
        try:
            doc = yaml.safe_load("\n".join(body))
        except yaml.YAMLError as exc:
            raise PolicyError.of(
                METADATA_INVALID, f"METADATA is not valid YAML: {exc}", file=module.name, line=i + 1
            ) from exc
        if not isinstance(doc, dict):
            raise PolicyError.of(
                METADATA_INVALID, "METADATA must be a YAML mapping", file=module.name, line=i + 1
            )
        return doc, i + 1
    return None, 0


def _policy_from_meta(module: RegoModule, meta: dict[str, Any], line: int) -> PolicyInfo:
    def bad(reason: str) -> PolicyError:
        diag = Diagnostic(code=METADATA_INVALID, message=reason, file=module.name, line=line)
        return PolicyError(diag)

    custom = meta.get("custom") or {}
    if not isinstance(custom, dict):
        raise bad("METADATA `custom` must be a mapping")
    code, enforcement = custom.get("code"), custom.get("enforcement", "deny")
    if not isinstance(code, str) or not code.strip():
        raise bad("METADATA lacks `custom.code` (the code reported with each violation)")
    if enforcement not in ("deny", "warn"):
        raise bad(f"METADATA `custom.enforcement` must be deny or warn, not {enforcement!r}")
    if not _VIOLATION.search(blank_comments(module.source)):
        raise bad(f'a policy package must define `{VIOLATION_RULE} contains {{"msg": ...}} if`')
    path = Path(module.name)
    name = path.parent.name if path.name == "policy.rego" else path.stem
    return PolicyInfo(
        name=name,
        package=module.package,
        title=str(meta.get("title") or name),
        description=" ".join(str(meta.get("description") or "").split()),
        code=code.strip(),
        enforcement=enforcement,
        kinds=_names(custom.get("kinds"), bad, "kinds"),
        inventory=_names(custom.get("inventory"), bad, "inventory"),
        file=module.name,
        line=line,
    )


def _names(value: object, bad: Callable[[str], PolicyError], what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad(f"METADATA `custom.{what}` must be a list of kind names")
    return tuple(value)
