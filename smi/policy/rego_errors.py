"""Turn what regopy (rego-cpp) says about a broken policy into one-line `Diagnostic`s.

rego-cpp reports problems in two shapes, and both are parsed here and nowhere else:

- a `RegoError` whose message is an S-expression of length-prefixed atoms, where a location is
  `<len>:<file>|<byte offset>|<byte length>` and a message is `(errormsg <len>:<text>)`:

      (rego-errorseq
        (error 11:syntax.rego|78|1
          (errormsg 16:this is unclosed)
          (errorast |78|1)))

  The offset is a byte offset into the module, so the line comes from the module's source.
- a human-readable log that rego-cpp writes to standard output when a later compiler pass fails
  (the bundle is then not `ok()`), with `-- <file>:<line>:<col>` under each message:

      Errors:
      Invalid arithmetic operator
      -- f.rego:3:11

Evaluation errors use the first shape without a location (`(error (errormsg ...))`), or no
detail at all (`<error>`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from smi.errors import Diagnostic

PARSE = "SMI5001"
COMPILE = "SMI5002"

_LOCATION = re.compile(rb"(\d+):")
_LOG_LOCATION = re.compile(r"^-- (?P<file>.+?):(?P<line>\d+):(?P<col>\d+)\s*$")
_FUNCTION_NOT_FOUND = re.compile(r"Function not found: (?P<name>[\w.]+)")
_AST_NODE = re.compile(r"^[a-z_]+(\$\d+)?$")  # `wellformed_error`, `compreturn$5`
_DEFAULT_RULE = re.compile(r"^default\s+(?P<name>\w+)", re.MULTILINE)
_NOT_RULES = frozenset({"package", "import", "default", "else"})


@dataclass(frozen=True, slots=True)
class RegoProblem:
    """One problem rego-cpp reported: where (if it said) and what."""

    message: str
    file: str | None = None
    offset: int | None = None


def _atom(data: bytes, pos: int) -> tuple[bytes, int]:
    """Read a length-prefixed atom `<n>:<n bytes>` at `pos`; return it and the end position."""
    m = _LOCATION.match(data, pos)
    if m is None:
        return b"", pos
    start = m.end()
    size = int(m.group(1))
    return data[start : start + size], start + size


def parse_sexpr(text: str) -> list[RegoProblem]:
    """Every `(error ...)` in a regopy error message, innermost-first as rego-cpp lists them."""
    data = text.encode("utf-8")
    problems: list[RegoProblem] = []
    pos = data.find(b"(error")
    while pos >= 0:
        cursor = pos + len(b"(error")
        if data[cursor : cursor + 1] in (b"s", b"m", b"a", b"c"):  # errorseq/errormsg/... tags
            pos = data.find(b"(error", cursor)
            continue
        cursor += len(data[cursor:]) - len(data[cursor:].lstrip())
        file, offset = None, None
        name, after = _atom(data, cursor)
        if name:
            file = name.decode("utf-8", "replace")
            offset_m = re.match(rb"\|(\d+)\|(\d+)", data[after:])
            if offset_m:
                offset = int(offset_m.group(1))
        message = _errormsg(data, cursor)
        problems.append(RegoProblem(message=message, file=file, offset=offset))
        pos = data.find(b"(error", cursor)
    return problems


def _errormsg(data: bytes, start: int) -> str:
    at = data.find(b"(errormsg ", start)
    if at < 0:
        return ""
    body, _ = _atom(data, at + len(b"(errormsg "))
    return body.decode("utf-8", "replace").strip()


def parse_log(text: str) -> list[tuple[str, str | None, int | None]]:
    """(message, file, line) for each block of rego-cpp's human-readable error log."""
    out: list[tuple[str, str | None, int | None]] = []
    message: str | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if line in ("Errors:", "") or line.startswith(("----", "Pass ")):
            continue
        loc = _LOG_LOCATION.match(line)
        if message is not None and line.startswith("--"):
            if loc:
                out.append((message, loc.group("file"), int(loc.group("line"))))
            else:
                out.append((message, None, None))
            message = None
            continue
        # Under a located message come the excerpt, more `-- ` lines naming AST nodes
        # (`wellformed_error`) and tildes: all part of the same error.
        if message is None and not raw.startswith((" ", "~", "-")) and not _AST_NODE.match(line):
            message = line
    return out


def line_of_offset(source: str, offset: int) -> int:
    """1-based line of a byte offset into a module's UTF-8 source."""
    return source.encode("utf-8")[:offset].count(b"\n") + 1


def diagnose_sexpr(
    text: str,
    *,
    sources: Mapping[str, str],
    code: str,
    fallback_file: str | None = None,
) -> Diagnostic:
    """The first located problem of a regopy error message as one Diagnostic."""
    problems = parse_sexpr(text)
    located = [p for p in problems if p.file]
    chosen = located[0] if located else (problems[0] if problems else None)
    if chosen is None:
        first = text.strip().splitlines()[0] if text.strip() else "unknown error"
        return Diagnostic(code=code, message=first, file=fallback_file)
    file = chosen.file or fallback_file
    line = None
    if file is not None and chosen.offset is not None and file in sources:
        line = line_of_offset(sources[file], chosen.offset)
    message = chosen.message or "rejected by the Rego compiler"
    if line is None and file is None:
        file, line = locate_message(message, sources)
    return Diagnostic(code=code, message=message, file=file, line=line)


def diagnose_log(
    text: str, *, sources: Mapping[str, str], code: str = COMPILE
) -> Diagnostic | None:
    """The first problem of rego-cpp's error log (None when the log names none)."""
    blocks = parse_log(text)
    if not blocks:
        return None
    located = [b for b in blocks if b[1] in sources]
    message, file, line = located[0] if located else blocks[0]
    if file not in sources:
        file, line = locate_message(message, sources)
    return Diagnostic(code=code, message=message, file=file, line=line)


def locate_message(message: str, sources: Mapping[str, str]) -> tuple[str | None, int | None]:
    """Best effort for messages rego-cpp gives without a location: `Function not found: foo` ->
    the first call `foo(`; `Multiple default rules` -> the second `default x`; `Recursion
    detected` (which names the rule evaluated, not the recursive one) -> the first function
    or rule that names itself in its own definition; otherwise the only module, if there is
    just one."""
    if "Multiple default rules" in message:
        return _second_default(sources)
    if "Recursion detected" in message:
        return _self_recursive(sources)
    m = _FUNCTION_NOT_FOUND.search(message)
    if m is None:
        return (next(iter(sources)), None) if len(sources) == 1 else (None, None)
    needle = re.compile(r"(?<![\w.])" + re.escape(m.group("name")) + r"\s*\(")
    for file, source in sources.items():
        hit = needle.search(source)
        if hit is not None:
            return file, source.count("\n", 0, hit.start()) + 1
    return None, None


def _second_default(sources: Mapping[str, str]) -> tuple[str | None, int | None]:
    for file, source in sources.items():
        seen: set[str] = set()
        for hit in _DEFAULT_RULE.finditer(source):
            if hit.group("name") in seen:
                return file, source.count("\n", 0, hit.start()) + 1
            seen.add(hit.group("name"))
    return None, None


_RULE_START = re.compile(r"^(?P<name>[a-z_]\w*)\b", re.MULTILINE)


def _self_recursive(sources: Mapping[str, str]) -> tuple[str | None, int | None]:
    for file, source in sources.items():
        code = re.sub(r'#[^\n]*|"(?:[^"\\\n]|\\.)*"', "", source)  # comments and strings
        starts = [m for m in _RULE_START.finditer(code) if m["name"] not in _NOT_RULES]
        for hit, after in zip(starts, [*starts[1:], None], strict=True):
            text = code[hit.end() : after.start() if after is not None else len(code)]
            if re.search(rf"(?<![\w.]){re.escape(hit['name'])}\b", text):
                return file, _line_of(source, hit["name"])
    return (next(iter(sources)), None) if len(sources) == 1 else (None, None)


def _line_of(source: str, name: str) -> int | None:
    """The line where rule `name` is first defined (a line starting with it); offsets in the
    blanked code differ from the source's."""
    hit = re.search(rf"^{re.escape(name)}\b", source, re.MULTILINE)
    return source.count("\n", 0, hit.start()) + 1 if hit is not None else None


def first_line_with(needle: str, sources: Mapping[str, str]) -> tuple[str | None, int | None]:
    """The first module and line that contain `needle` literally."""
    for file, source in sources.items():
        at = source.find(needle)
        if at >= 0:
            return file, source.count("\n", 0, at) + 1
    return None, None


_FUNCTION_HEAD = re.compile(
    r"^(?P<name>[a-z_]\w*)\((?P<args>[^()]*)\)\s*(?::=|=|if\b|\{)", re.MULTILINE
)


def arity_clashes(sources: Mapping[str, str]) -> list[str]:
    """Function names defined with different arities in different modules, as
    `name/2 (a.rego) vs name/1 (b.rego)`: rego-cpp 1.5.2 can then fail to compile with
    "Unable to unify due to cycle"."""
    seen: dict[str, tuple[int, str]] = {}
    out: list[str] = []
    for file, source in sources.items():
        for hit in _FUNCTION_HEAD.finditer(source):
            name, arity = hit.group("name"), len(hit.group("args").split(","))
            first = seen.setdefault(name, (arity, file))
            clash = f"{name}/{first[0]} ({first[1]}) vs {name}/{arity} ({file})"
            if first[0] != arity and clash not in out:
                out.append(clash)
    return out
