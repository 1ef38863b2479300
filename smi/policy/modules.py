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
    #   replaces: [SMI2206]       # optional: built-in codes this policy reports instead

A policy's name (the `[name]` of its messages) is its directory when the file is `policy.rego`,
otherwise the file's stem. Files ending in `_test.rego` are test modules and never part of an
admission policy set. A module that defines `violation` without METADATA is an error (SMI5004):
it would otherwise be loaded and silently never enforced; so is one that defines it through a
ref head (`foo.violation contains ...`, i.e. `data.<package>.foo.violation`). The kinds a policy
names (`custom.kinds`, `custom.inventory`) must be kinds smictl knows, spelled as Kubernetes
spells them: `TrafficSplits` would otherwise match no object, and the policy never apply.
`custom.replaces` names built-in check codes (SMI2xxx, SMI3xxx) registered in `smi.codes`: a
misspelt code would leave the user two findings for one field instead of one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from smi.codes import CODES
from smi.errors import Diagnostic, PolicyError
from smi.loading import CONTEXT_KINDS, SMI_KIND_GROUPS
from smi.policy import compat
from smi.policy.coverage import blank_comments, blanked
from smi.sources import LINKED_DIRECTORY, manifests_under, read_file, special_kind

METADATA_INVALID = "SMI5004"
TEST_SUFFIX = "_test.rego"
VIOLATION_RULE = "violation"

Enforcement = Literal["deny", "warn"]

_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_VIOLATION = re.compile(rf"^{VIOLATION_RULE}\b", re.MULTILINE)
# `foo.violation contains ...`, `foo["x"].violation := ...`: a ref head below the package.
_REF_VIOLATION = re.compile(
    rf"^(?P<ref>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[[^\]\n]*\])*)\.{VIOLATION_RULE}\b", re.MULTILINE
)

# The kinds a policy is evaluated for (admission sees SMI objects), and the kinds it may ask
# for in its inventory (SMI objects in hub form, and the context objects).
POLICY_KINDS = tuple(SMI_KIND_GROUPS)
INVENTORY_KINDS = (*SMI_KIND_GROUPS, *CONTEXT_KINDS)

# The codes a policy may replace: those of the built-in checks admission runs before the
# policies (per-object SMI2xxx, cross-resource SMI3xxx).
BUILTIN_CHECK_CODES = ("SMI2", "SMI3")


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
    # Built-in codes whose findings admission drops when this policy was evaluated: the
    # policy reports the same thing at the same field (METADATA `custom.replaces`).
    replaces: tuple[str, ...] = ()

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
            "replaces": list(self.replaces),
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


def _named_as_given(path: Path) -> str:
    """`path` shown as `display_path` shows its directory, the file itself named as found: a
    link that leads nowhere was named by its target, which the user never wrote."""
    return str(Path(display_path(path.parent)) / path.name)


def find_files(dirs: Iterable[Path | str]) -> list[Path]:
    """Every .rego file under the directories (or the files themselves), sorted, unique (by
    what they resolve to), each as found. Directories are walked as manifest directories are
    (`smi.sources.manifests_under`): a FIFO, socket or device named `*.rego` (or a link to
    one, `/dev/zero`) is an error (SMI1001) and never opened, where reading it waited for a
    writer or read without end; so is a directory that cannot be listed, whose policies were
    skipped without a word. A FIFO, socket or device named itself is refused the same way: it
    was "no such policy directory or file" (SMI5010), of a path that exists."""
    seen: dict[Path, Path] = {}
    for d in dirs:
        p = Path(d)
        if p.is_file():
            seen.setdefault(p.resolve(), p)
            continue
        if not p.is_dir():
            raise PolicyError.of(*_not_a_policy_path(p), file=str(d))
        listed = manifests_under(str(p), extensions=(".rego",), fifo_hint=False, linked_dirs=True)
        for found, problem in listed:
            f = Path(found)
            if problem is not None and problem.code == LINKED_DIRECTORY:
                # An error here, not the manifests' warning: a policy left out in silence is a
                # deny that never denies.
                raise PolicyError(
                    replace(
                        problem,
                        severity="error",
                        message="symbolic link to a directory, not entered: its policies would "
                        "not be loaded (name it with --policies to load them)",
                        file=_named_as_given(f),
                    )
                )
            if problem is not None:
                raise PolicyError(replace(problem, file=_named_as_given(f)))
            seen.setdefault(f.resolve(), f)
    return list(seen.values())


def _not_a_policy_path(path: Path) -> tuple[str, str]:
    """(code, message) for a path named as a policy that is neither a regular file nor a
    directory: not there (or a link that leads nowhere), or a FIFO, socket or device, which is
    never opened (a FIFO would wait for a writer, a device read without end)."""
    try:
        what = special_kind(path.stat().st_mode)
    except OSError:
        what = None
    if what is None:
        return "SMI5010", "no such policy directory or file"
    return (
        "SMI1001",
        f"cannot read: {what}, not a regular file (policies are read from regular files)",
    )


_DECLARATION = re.compile(r"^[ \t]*(?:package|import)\b[^\n]*", re.MULTILINE)


def _without_declaration_comments(source: str, uncommented: str) -> str:
    """`source` with the comment at the end of a `package` or `import` line blanked (offsets and
    lines kept; `uncommented` is `source` with every comment blanked). OPA reads `import
    rego.v1 # v1 syntax`; regopy refuses the line ("Invalid import declaration", "Invalid
    reference"), so a valid policy set would not load."""
    if uncommented == source:
        return source
    out = list(source)
    for m in _DECLARATION.finditer(uncommented):
        out[m.start() : m.end()] = uncommented[m.start() : m.end()]
    return "".join(out)


# An import line of blanked code (indented or not, its line end maybe CRLF): its path, a quoted
# part's contents blanked to spaces, and its alias, with what a blanked comment left after them.
_IMPORT: Final = re.compile(
    r"(?m)^[ \t]*import[ \t]+(\S[^\n]*?)(?:[ \t]+as[ \t]+([A-Za-z_]\w*))?[ \t\r]*$"
)
# A path's last part, from the source: a name, or a quoted one (`input["request"]`).
_LAST_PART: Final = re.compile(r'(?:([A-Za-z_]\w*)|\[\s*"([A-Za-z_]\w*)"\s*\])[ \t\r]*\Z')


def import_names(code: str, source: str) -> Iterator[tuple[str, str]]:
    """(name, path) of each import (`code` is `source` blanked): the name is its alias, else
    the path's last part when it is a name (`import data.lib.k8s`: `k8s`; `import
    input["request"]`: `request`); the path as the source writes it."""
    for found in _IMPORT.finditer(code):
        alias = found.group(2)
        last = _LAST_PART.search(source, found.start(1), found.end(1))
        name = alias or (last.group(1) or last.group(2) if last is not None else None)
        if name:
            yield name, source[found.start(1) : found.end(1)].strip()


_WITH_TARGET: Final = re.compile(r"(?<![\w.])with\s+([A-Za-z_]\w*)(?=[.\[\s])")


def _with_targets_resolved(source: str) -> str:
    """`with lib.max_backends as 1`, `lib` an import's alias, written as the import's path
    (`with data.acme.a.max_backends as 1`). OPA resolves the alias; regopy ignores such a
    `with`, so a test of a mocked rule or function ran on the real one and passed or failed
    for the wrong reason. Lines are kept (a line grows by the path's length)."""
    code = blanked(source)
    aliases = {
        name: path
        for name, path in import_names(code, source)
        if path.startswith(("data.", "data[", "input.", "input["))
    }
    if not aliases:
        return source
    out: list[str] = []
    last = 0
    for m in _WITH_TARGET.finditer(code):
        path = aliases.get(m.group(1))
        if path is not None:
            out += [source[last : m.start(1)], path]
            last = m.end(1)
    return "".join(out) + source[last:] if out else source


# What regopy 1.5.2 gets wrong where a policy cannot tell (`time.parse_rfc3339_ns` of a `Z`
# time, `semver.compare`, `urlquery.*`; see smi.policy.compat): calls go through that module.
COMPAT_NAME = compat.NAME
COMPAT_PACKAGE = compat.PACKAGE
_COMPAT_REF: Final = re.compile(
    r"(?<![\w.])("
    + "|".join(re.escape(n) for n in sorted(compat.BUILT_INS, key=len, reverse=True))
    + r")(?![\w.])"
)
_CALL_FOLLOWS: Final = re.compile(r"\s*\(")
_WITH_BEFORE: Final = re.compile(r"(?<![\w.])with\s+\Z")


def with_compat(modules: Sequence[RegoModule]) -> list[RegoModule]:
    """`modules`, each call of a built-in regopy gets wrong written as a call of the compat
    module's function for it (`data.__smictl.compat.semver_compare(a, b)`), and that module
    added when one was. A `with time.parse_rfc3339_ns as ...` still replaces the built-in (a
    `with` holds in the functions a call reaches); a `with semver.compare as ...` is written
    as one of the compat function, which never calls the built-in. Lines are kept."""
    out: list[RegoModule] = []
    used = False
    for module in modules:
        code = blanked(module.source)
        spans = [
            (m.start(), m.end(), compat.BUILT_INS[m.group(1)])
            for m in _COMPAT_REF.finditer(code)
            if _CALL_FOLLOWS.match(code, m.end())
            or (
                m.group(1) in compat.WRITTEN_IN_REGO
                and _WITH_BEFORE.search(code, max(0, m.start() - 64), m.start())
            )
        ]
        if not spans:
            out.append(module)
            continue
        used = True
        source, last, parts = module.source, 0, []
        for start, end, function in spans:
            parts += [source[last:start], f"data.{COMPAT_PACKAGE}.{function}"]
            last = end
        out.append(replace(module, source="".join(parts) + source[last:]))
    if used:
        out.append(RegoModule(COMPAT_NAME, compat.SOURCE, COMPAT_PACKAGE, False))
    return out


def read_modules(dirs: Iterable[Path | str]) -> list[RegoModule]:
    """Every module under `dirs`, with its package; unreadable or package-less files raise, and
    so do files a user meant to be loaded that never would be (`_data_files`,
    `_test_named_policy`)."""
    dirs = list(dirs)
    out: list[RegoModule] = []
    for path in find_files(dirs):
        # Read as manifests are: at most 64 MiB (SMI1010), a byte-order mark dropped (it hid
        # `package` on line 1), not UTF-8 text at its line (UTF-16 named), SMI1001.
        _, source, problem = read_file(str(path))
        if problem is not None:
            raise PolicyError(replace(problem, file=_named_as_given(path)))
        name = display_path(path)
        uncommented = blank_comments(source)
        m = _PACKAGE.search(uncommented)
        if m is None:
            raise PolicyError.of("SMI5001", "no `package` declaration", file=name, line=1)
        rest = uncommented[m.end() :].partition("\n")[0]
        if rest.strip():
            # `package acme["my-policy"]` is valid Rego, but its policy would be looked up as
            # `acme` and never run: an undefined violation is no violation (fail-open).
            line = source.count("\n", 0, m.start()) + 1
            raise PolicyError.of(
                "SMI5001",
                f"package {m.group(1)}{rest.rstrip()}: smictl needs a package path of dotted "
                "names (`package acme.my_policy`), not brackets or quoted parts",
                file=name,
                line=line,
            )
        package = m.group(1).removeprefix("data.")
        source = _with_targets_resolved(_without_declaration_comments(source, uncommented))
        out.append(RegoModule(name, source, package, path.name.endswith(TEST_SUFFIX)))
    problems = [*_data_files(dirs), *(d for m in out if (d := _test_named_policy(m)) is not None)]
    if problems:
        raise PolicyError(problems)
    return with_compat(out)


# What `opa run DIR` and OPA bundles load as data at their directory's path.
DATA_FILES = ("data.json", "data.yaml", "data.yml")


def _data_files(dirs: Iterable[Path | str]) -> list[Diagnostic]:
    """A `data.json` next to the policies: OPA would load it as `data.<its directory path>`,
    smictl does not (the embedded engine and a remote OPA would have to agree on it), so a
    policy reading it would see undefined and a denylist admit everything."""
    out: list[Diagnostic] = []
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("data.*"), key=lambda x: x.as_posix()):
            if path.name not in DATA_FILES:
                continue
            where = ".".join(("data", *path.parent.relative_to(root).parts))
            out.append(
                Diagnostic(
                    code=METADATA_INVALID,
                    message=f"a policy data file is not loaded (OPA would make it {where}, "
                    "smictl leaves that undefined): put its content in the --parameters file "
                    "and read it as data.parameters",
                    file=display_path(path),
                )
            )
    return out


def _test_named_policy(module: RegoModule) -> Diagnostic | None:
    """A `*_test.rego` with METADATA and `violation`: test modules are never loaded as policies,
    so that policy would be silently skipped by `admit`, `serve` and `policy list`."""
    if not module.is_test or not _VIOLATION.search(blank_comments(module.source)):
        return None
    try:
        meta, line = _metadata_block(module)
    except PolicyError:
        meta, line = {}, 1  # METADATA that does not parse is still METADATA
    if meta is None:
        return None
    return Diagnostic(
        code=METADATA_INVALID,
        message=f"has METADATA and defines `violation`, but files named `*{TEST_SUFFIX}` are "
        "test modules and never loaded as policies: rename it (`policy.rego`)",
        file=module.name,
        line=line,
    )


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
        code = blank_comments(module.source)
        if _VIOLATION.search(code):
            raise PolicyError.of(
                METADATA_INVALID,
                "defines `violation` but has no `# METADATA` block before `package`",
                file=module.name,
                line=1,
            )
        ref = _REF_VIOLATION.search(code)
        if ref is not None:
            rule = f"{ref['ref']}.{VIOLATION_RULE}"
            raise PolicyError.of(
                METADATA_INVALID,
                f"defines `{rule}` (data.{module.package}.{rule}) but no package here has "
                "`# METADATA`, so it would never be enforced: make it a policy of its own "
                f"(`package {module.package}.{ref['ref']}` with METADATA and `violation`)",
                file=module.name,
                line=code.count("\n", 0, ref.start()) + 1,
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
            reason, at = _yaml_problem(exc, lines=len(body))
            raise PolicyError.of(
                METADATA_INVALID,
                f"METADATA is not valid YAML: {reason}",
                file=module.name,
                line=i + 2 + at if at is not None else i + 1,
            ) from exc
        if not isinstance(doc, dict):
            raise PolicyError.of(
                METADATA_INVALID, "METADATA must be a YAML mapping", file=module.name, line=i + 1
            )
        return doc, i + 1
    return None, 0


def _yaml_problem(exc: yaml.YAMLError, *, lines: int) -> tuple[str, int | None]:
    """PyYAML's multi-line message as one line, and the 0-based line of the METADATA body it
    means."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return " ".join(str(exc).split()), None
    reason = ", ".join(" ".join(str(x).split()) for x in (exc.context, exc.problem) if x)
    mark = exc.problem_mark
    # An unclosed `[`, `{` or quote is noticed lines later; the line to fix is where it opened.
    opened = any(w in str(exc.context or "") for w in ("flow", "quoted", "scanning"))
    if exc.context_mark is not None and (mark is None or opened):
        mark = exc.context_mark
    return reason or "cannot be parsed", (min(mark.line, lines - 1) if mark is not None else None)


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
        kinds=_kinds(custom.get("kinds"), module=module, line=line, what="kinds"),
        inventory=_kinds(custom.get("inventory"), module=module, line=line, what="inventory"),
        file=module.name,
        line=line,
        replaces=_replaces(custom.get("replaces"), module=module, line=line),
    )


def _kinds(value: object, *, module: RegoModule, line: int, what: str) -> tuple[str, ...]:
    """`custom.kinds` / `custom.inventory`, every entry a kind smictl knows, spelled exactly:
    an unknown kind matches no object, so a typo would switch the policy (or its inventory)
    off without a word."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError.of(
            METADATA_INVALID,
            f"METADATA `custom.{what}` must be a list of kind names",
            file=module.name,
            line=line,
        )
    known = POLICY_KINDS if what == "kinds" else INVENTORY_KINDS
    problems = [
        Diagnostic(
            code=METADATA_INVALID,
            message=f"METADATA custom.{what}: {_unknown_kind(kind, known, what=what)}",
            file=module.name,
            line=_entry_line(module.source, start=line, key=what, entry=kind),
        )
        for kind in value
        if kind not in known
    ]
    if problems:
        raise PolicyError(problems)
    return tuple(value)


def _unknown_kind(kind: str, known: Sequence[str], *, what: str) -> str:
    folded = kind.strip().lower()
    stems = {folded, folded.removesuffix("s"), folded.removesuffix("es")}
    close = next((k for k in known if k.lower() in stems), None)
    if close is not None:
        return (
            f"unknown kind {kind!r}: did you mean {close!r}? (kinds are case-sensitive, singular)"
        )
    if what == "kinds" and kind in INVENTORY_KINDS:
        return (
            f"{kind!r} is not a kind policies are evaluated for (only SMI objects are admitted); "
            f"one of {', '.join(known)}"
        )
    return f"unknown kind {kind!r}: one of {', '.join(known)}"


def _replaces(value: object, *, module: RegoModule, line: int) -> tuple[str, ...]:
    """`custom.replaces`, every entry a built-in check's code, spelled exactly: a code that no
    built-in check reports replaces nothing, and the user would get both findings with no word
    about why."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError.of(
            METADATA_INVALID,
            "METADATA `custom.replaces` must be a list of built-in codes, e.g. [SMI2206]",
            file=module.name,
            line=_key_line(module.source, start=line, key="replaces"),
        )
    problems = [
        Diagnostic(
            code=METADATA_INVALID,
            message=f"METADATA custom.replaces: {problem}",
            file=module.name,
            line=_entry_line(module.source, start=line, key="replaces", entry=code),
        )
        for code in value
        if (problem := _replace_problem(code)) is not None
    ]
    if problems:
        raise PolicyError(problems)
    return tuple(value)


def _replace_problem(code: str) -> str | None:
    if code not in CODES:
        meant = code.strip().upper()
        hint = f": did you mean {meant!r}?" if meant in CODES else ""
        return f"unknown code {code!r}{hint} (`smictl explain-code` lists the codes)"
    if not code.startswith(BUILTIN_CHECK_CODES):
        return (
            f"{code} is not a code of the built-in checks (SMI2xxx, SMI3xxx), so there is "
            "nothing for the policy to replace"
        )
    return None


def _key_line(source: str, *, start: int, key: str) -> int:
    """The line of the METADATA block (from line `start`) where `key:` is written; else
    `start`."""
    lines = source.split("\n")
    for number in range(start, len(lines) + 1):
        text = lines[number - 1]
        if not text.lstrip().startswith("#"):
            break
        if re.search(rf"^\s*#\s*{key}\s*:", text):
            return number
    return start


def _entry_line(source: str, *, start: int, key: str, entry: str) -> int:
    """The line of the METADATA block (from line `start`) naming `entry`, under `key:` when
    that key is found; else `start`."""
    lines = source.split("\n")
    found_key = False
    for number in range(start, len(lines) + 1):
        text = lines[number - 1]
        if not text.lstrip().startswith("#"):
            break
        found_key = found_key or re.search(rf"\b{key}\s*:", text) is not None
        if found_key and re.search(rf"(?<![\w.-]){re.escape(entry)}(?![\w.-])", text):
            return number
    return start
