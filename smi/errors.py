"""The one error vocabulary of smictl.

Every problem a user can cause is a `Diagnostic`: a stable code (`SMI2103`), a reason, the JSON
path of the offending field and, where known, the file and line. Diagnostics are values; code that
must stop raises an `SMIError` carrying them. Third-party exceptions (YAML, pydantic, regopy,
cryptography) are mapped to these in one place per boundary, with ``raise ... from exc``.

    SMIError                  anything smictl reports to a user (carries diagnostics)
    ├── LoadError             a file or document cannot be read or parsed
    ├── SchemaError           a document does not match its kind's schema or a hard check
    ├── ConversionError       an object cannot be converted between two versions
    ├── CompileError          resources cannot be compiled into a MeshPolicy
    └── PolicyError           a Rego policy cannot be parsed, compiled or evaluated

Codes are grouped by the stage that finds them (see `smi.codes`): SMI1xxx loading, SMI2xxx
per-object schema and hard checks, SMI3xxx cross-resource checks, SMI4xxx conversion,
SMI5xxx Rego policies, SMI6xxx compiling and serving policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Self

Severity = Literal["error", "warning"]

# Messages quote user input (names, kinds, paths); a control character in it must not break the
# one-line form that editors, CI annotations and `grep` rely on.
# A file name that is not valid UTF-8 reaches Python as lone surrogates (surrogateescape); they
# get the same visible escape (`\udcff`), since printing one to a UTF-8 stream raises.
_ESCAPES = {c: repr(chr(c))[1:-1] for c in (*range(32), 127, *range(0xD800, 0xE000))}


# The text form quotes user input (a name, a key, a value) in paths and messages; a 100 KB
# name must not make a 100 KB line in a terminal or a CI log. JSON keeps the whole text.
MAX_PATH_CHARS = 300
MAX_MESSAGE_CHARS = 1000


def _elided(text: str, limit: int) -> str:
    """`text`, or its start and end around a marker saying how much was left out."""
    if len(text) <= limit:
        return text
    keep = (limit - 40) // 2
    return f"{text[:keep]}...[{len(text) - 2 * keep} characters]...{text[-keep:]}"


def escaped_line(text: str) -> str:
    """`text` with control characters and lone surrogates as visible escapes (`\n`, `\udcff`):
    the one-line form of every message that quotes user input."""
    return text.translate(_ESCAPES)


def first_lines(lines: Sequence[str], *, most: int, chars: int) -> tuple[list[str], int]:
    """The first of `lines` that fit in `most` lines and `chars` characters, and how many were
    left out: what an answer relayed whole (a review's status.message, its warnings) may hold."""
    kept: list[str] = []
    total = 0
    for line in lines:
        if len(kept) == most or total + len(line) > chars:
            break
        kept.append(line)
        total += len(line)
    return kept, len(lines) - len(kept)


def json_safe(value: Any) -> Any:
    """`value` (JSON data) with every lone surrogate in its strings replaced by U+FFFD: strict
    JSON parsers reject `"\udcff"`, and UTF-8 cannot encode it at all."""
    if isinstance(value, str):
        return _surrogate_free(value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _surrogate_free(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem (or warning) about one field of one object."""

    code: str
    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None
    severity: Severity = "error"
    object_ref: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def located(self, *, file: str | None = None, line: int | None = None) -> Diagnostic:
        """Fill in a location where this diagnostic has none yet."""
        return replace(
            self,
            file=self.file if self.file is not None else file,
            line=self.line if self.line is not None else line,
        )

    def format(self) -> str:
        """`file:line: path: reason (CODE)` — the one-line form every text output uses.

        A problem in no file (a flag, an object that does not exist) gets no location: an
        `<input>:` prefix sent users looking for a file. `<input>` names only the unnamed
        source of a line number."""
        where = self.file or ("<input>" if self.line is not None else "")
        if self.line is not None:
            where = f"{where}:{self.line}"
        where = f"{where}: " if where else ""
        prefix = "warning: " if self.severity == "warning" else ""
        path = f"{_elided(self.path, MAX_PATH_CHARS)}: " if self.path else ""
        message = _elided(self.message, MAX_MESSAGE_CHARS)
        return escaped_line(f"{where}{prefix}{path}{message} ({self.code})")

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "path": self.path,
            "file": self.file,
            "line": self.line,
            "object": self.object_ref,
        }


class SMIError(Exception):
    """Base of every error smictl reports to a user; never shown as a traceback."""

    def __init__(self, diagnostics: Diagnostic | Sequence[Diagnostic]) -> None:
        diags = (diagnostics,) if isinstance(diagnostics, Diagnostic) else tuple(diagnostics)
        if not diags:
            raise ValueError("an SMIError needs at least one diagnostic")
        self.diagnostics: tuple[Diagnostic, ...] = diags
        super().__init__("\n".join(d.format() for d in diags))

    @classmethod
    def of(
        cls,
        code: str,
        message: str,
        *,
        path: str = "",
        file: str | None = None,
        line: int | None = None,
    ) -> Self:
        return cls(Diagnostic(code=code, message=message, path=path, file=file, line=line))


class LoadError(SMIError):
    """A file or document cannot be read or parsed."""


class SchemaError(SMIError):
    """A document does not match its kind's schema or fails a hard check."""


class ConversionError(SMIError):
    """An object cannot be converted between two versions of its group."""


class CompileError(SMIError):
    """Resources cannot be compiled into a MeshPolicy."""


class PolicyError(SMIError):
    """A Rego policy cannot be parsed, compiled or evaluated."""


def errors_of(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.is_error]


def warnings_of(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if not d.is_error]
