"""Reading manifest sources: files, directories, standard input; text -> raw documents.

Directories are walked recursively in sorted order for `.yaml`, `.yml` and `.json` files (one
so named that is not a regular file, a FIFO say, is reported and never opened; a symlinked
directory is not entered, with a warning, SMI1014). A file or a directory that cannot be read
is a diagnostic (SMI1001), never an exception for the caller to catch, nor skipped;
`read_documents` and `read_source` (used by `smictl convert`) raise `LoadError` instead.

Line maps: building them costs more than reading the values, and a clean set never needs them.
JSON is parsed by the `json` module and plain block YAML by `smi.yamlblock`, without lines; a
file's maps are computed once, by `smi.yamlpos` (reading JSON as YAML), only when a diagnostic
or `Resource.line_of` asks for a line (`LazyLines`, `FileLines`). Other YAML gets its maps from
`smi.yamlpos` while it is parsed.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from smi.errors import Diagnostic, LoadError, json_safe
from smi.yamlbuild import too_long_number
from smi.yamlpos import (
    MAX_DEPTH,
    LineMap,
    PathPart,
    YamlError,
    bounds_problem,
    format_path,
    load_documents,
    parse_path,
)

EXTENSIONS = (".yaml", ".yml", ".json")
# The warning for a symlinked directory a walk did not enter.
LINKED_DIRECTORY = "SMI1014"
MAX_FILE_BYTES = 64 * 1024 * 1024
STDIN = "-"


class Lines(Protocol):
    """Where the fields of one document were written (absent for objects given as data)."""

    def line_of(self, path: str | Sequence[PathPart]) -> int | None: ...

    def sub(self, path: str | Sequence[PathPart]) -> Lines: ...


@dataclass(frozen=True, slots=True)
class RawDocument:
    """One document of a file as data, before dispatch (for `smictl convert`)."""

    value: Any
    index: int
    lines: Lines | None


def read_documents(text: str, *, filename: str) -> list[RawDocument]:
    """Every non-empty document of one file's text; LoadError (SMI1002, SMI1010) when the
    text is not YAML (or JSON, for a .json name). An empty (or blank) .json file holds no
    document, as an empty .yaml file holds none."""
    try:
        if filename.lower().endswith(".json"):
            if is_blank(text):
                return []
            return [RawDocument(parse_json(text), 0, LazyLines(FileLines(text)))]
        return [RawDocument(d.value, d.index, d.lines) for d in load_documents(text)]
    except YamlError as exc:
        code = "SMI1010" if exc.too_large else "SMI1002"
        raise LoadError.of(
            code, exc.message, path=format_path(exc.path), file=filename, line=exc.line
        ) from exc


# JSON's whitespace (RFC 8259), matched without copying a large text.
_BLANK = re.compile(r"[ \t\r\n]*")


def is_blank(text: str) -> bool:
    """Whether `text` is empty or JSON whitespace only: an empty .json file, which holds no
    object (as kubectl reads it). `json` called it "Expecting value" at line 1, so an empty
    .json placeholder failed a directory where an empty .yaml one passed."""
    return _BLANK.fullmatch(text) is not None


class _DuplicateKey(Exception):
    """Raised by `_unique_keys` out of `json.loads` (not a ValueError: `json` would take
    that for a number too long)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads`' object hook: a key written twice in one object is an error, as in YAML.
    `json` keeps the last silently, so `{"weight": 1, "weight": -5}` or a second `kind` passed
    or failed on a value the reader of the file may never have seen."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:  # pragma: no branch - a duplicate is there
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return value


# A `\uD800`-`\uDFFF` escape: half of a UTF-16 surrogate pair, which alone is no character.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
# Both halves, as `json.dumps` writes any character beyond U+FFFF (an emoji): libyaml refuses
# each half, so the line maps of such a JSON file are computed with a placeholder of the same
# length in their place.
_SURROGATE_PAIR_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def parse_json(text: str) -> Any:
    """The value of one JSON text, held to what YAML documents are held to: no duplicate keys,
    no lone surrogates (`"\\ud800"`, which no UTF-8 output can hold: reports and `convert`
    ended as internal errors), the size and depth limits. YamlError (`too_large` for the
    limits) otherwise, with the line where it can be found."""
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise _json_syntax_error(text, exc) from None
    except _DuplicateKey as exc:
        raise _located(text, f"duplicate key {exc.key!r} in one mapping", key=exc.key) from None
    except ValueError:  # an integer too long for int(): the YAML reader says the same
        raise json_too_long(text) from None
    except RecursionError:
        raise _located(text, f"nested deeper than {MAX_DEPTH} levels", too_large=True) from None
    problem = bounds_problem(value)
    if problem is not None:
        raise _located(text, problem, too_large=True)
    if _SURROGATE_ESCAPE.search(text) is not None and json_safe(value) != value:
        raise _located(text, "invalid JSON: a lone surrogate escape is no Unicode character")
    return value


def _json_syntax_error(text: str, exc: json.JSONDecodeError) -> YamlError:
    """`json`'s error at its line, unless it stopped at the end of the text (an object, list
    or value never closed), which is on a line past the last when the text ends in a line
    break: then at the line where the YAML reader finds the unclosed bracket opened."""
    if not exc.msg.startswith("Expecting") or _BLANK.fullmatch(text, exc.pos) is None:
        return YamlError(f"invalid JSON: {exc.msg}", line=exc.lineno)
    found = _located(text, f"invalid JSON: {exc.msg} at the end of the file")
    if found.line is None:  # YAML reads it whole: name the last line that holds anything
        found.line = text.rstrip(" \t\r\n").count("\n") + 1
    return found


def _located(
    text: str, message: str, *, too_large: bool = False, key: str | None = None
) -> YamlError:
    """`message` at the line the YAML reader finds the same problem on (JSON is YAML; `json`
    does not say where, and this runs only on the error path), with the field path of the
    duplicate `key` when the YAML reader stops at that key too."""
    line: int | None = None
    path: tuple[PathPart, ...] = ()
    try:
        for _ in load_documents(_yaml_readable(text)):
            pass
    except YamlError as exc:
        line = exc.line
        if key is not None and exc.path[-1:] == (key,):
            path = exc.path
    return YamlError(message, line=line, too_large=too_large, path=path)


def _yaml_readable(text: str) -> str:
    """`text` for the line maps: each escaped surrogate pair replaced by two U+FFFD escapes
    (same length, same lines), which libyaml reads."""
    return _SURROGATE_PAIR_ESCAPE.sub(r"\\uFFFD\\uFFFD", text)


def json_too_long(text: str) -> YamlError:
    """What `json.loads` meant by a ValueError that is not a JSONDecodeError: an integer longer
    than `int()` reads (`sys.get_int_max_str_digits()`). It says neither where nor which, so
    find the first such run of digits for the line (only ever on this error path)."""
    limit = sys.get_int_max_str_digits()
    # ASCII digits, the only ones a JSON number has: a string of `٥`s before it is not it.
    found = re.search(rf"[0-9]{{{limit + 1},}}", text) if limit else None
    if found is None:  # pragma: no cover - json raises ValueError for nothing else
        return YamlError("JSON number too long", line=None, too_large=True)
    return too_long_number(found.group(), line=text.count("\n", 0, found.start()) + 1)


# Named when a value holds more of them than this: the first few are enough to find the rest.
_MORE_SHOWN = 3


def non_json_number(value: Any, *, filename: str) -> tuple[tuple[PathPart, ...], str] | None:
    """The path of the first NaN or infinity in `value` (as read from `filename`) and the
    problem to report there, naming the others; None when it holds none. YAML's `.inf` and
    `.nan`, and `NaN` and `Infinity` in a .json file (Python's reader takes them), are numbers
    JSON has no form for (RFC 8259): a request or a policy's data holding one is refused
    whole, far from the file and line that wrote it."""
    if all(map(_finite, value.values() if isinstance(value, Mapping) else (value,))):
        return None
    found = list(_non_finite(value, ()))
    path, number = found[0]
    message = f"{_spelled(number, filename)} is not a number JSON can carry"
    if others := [format_path(p) for p, _ in found[1:]]:
        more = len(others) - _MORE_SHOWN
        listed = ", ".join(others[:_MORE_SHOWN]) + (f" and {more} more" if more > 0 else "")
        message += f" (also {listed})"
    return path, message


def _finite(value: Any) -> bool:
    """Whether `value` holds no NaN or infinity. Every object of every apply passes here, so
    it looks only at the types the readers build, mostly through `map` (a quarter of the
    cost of the path-keeping walk below, which only the values that fail it need)."""
    kind = type(value)
    if kind is dict:
        return all(map(_finite, value.values()))
    if kind is list:
        return all(map(_finite, value))
    return kind is not float or math.isfinite(value)


def _non_finite(
    value: Any, path: tuple[PathPart, ...]
) -> Iterator[tuple[tuple[PathPart, ...], float]]:
    """Every NaN and infinity in `value`, with its path, in the order written. Keys need no
    look: the readers give only strings as keys."""
    if isinstance(value, float):
        if not math.isfinite(value):
            yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _non_finite(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _non_finite(item, (*path, i))


def _spelled(number: float, filename: str) -> str:
    """`number` as the file wrote it (up to case and a `+`): YAML's `.inf`, `-.inf` and `.nan`,
    or, in a .json file (read by Python's reader, as `read_documents` does), JavaScript's."""
    json_file = filename.lower().endswith(".json")
    if math.isnan(number):
        return "NaN" if json_file else ".nan"
    sign = "-" if number < 0 else ""
    return sign + ("Infinity" if json_file else ".inf")


def read_source(path: str, *, stdin: TextIO | None = None) -> tuple[str, str]:
    """(name, text) of one file or `-`; LoadError (SMI1001) when it cannot be read."""
    for name, text, problem in read_path(path, stdin=stdin):
        if problem is not None and problem.is_error:
            raise LoadError(problem)
        if Path(path).is_dir():
            raise LoadError.of("SMI1001", "is a directory; give a file", file=path)
        return name, text
    raise LoadError.of("SMI1001", "nothing to read", file=path)  # pragma: no cover


def read_path(path: str, *, stdin: TextIO | None) -> Iterator[tuple[str, str, Diagnostic | None]]:
    if path == STDIN:
        yield _read_stdin(stdin if stdin is not None else sys.stdin)
        return
    p = Path(path)
    if p.is_dir():
        files = manifests_under(str(p), linked_dirs=True)
        if all(problem is not None and not problem.is_error for _, problem in files):
            yield (
                path,
                "",
                Diagnostic(
                    code="SMI1001",
                    message="directory holds no .yaml, .yml or .json files",
                    file=path,
                ),
            )
        for f, problem in files:
            yield read_file(f) if problem is None else (f, "", problem)
        return
    yield read_file(path)


def manifests_under(
    root: str,
    *,
    extensions: tuple[str, ...] = EXTENSIONS,
    fifo_hint: bool = True,
    linked_dirs: bool = False,
) -> list[tuple[str, Diagnostic | None]]:
    """The `.yaml`, `.yml` and `.json` files (or those ending in one of `extensions`: `.rego`
    for the policies) under directory `root` (a normalised path, as `str(Path(...))` gives),
    recursively, sorted, named as `Path(root).rglob("*")` names them, each with None, or with
    the problem to report in its place (SMI1001; `fifo_hint`: say a FIFO is read with -f).
    Same rules as rglob: symlinked directories are not entered (as `kubectl apply -R` and
    kubeconform do not: a link may lead out of the tree or back into it), symlinked files are
    read; but one `scandir` per directory and no `stat` per file (the directory entry says
    what it is; only a symlink is followed, to tell a linked directory from a linked file).
    With `linked_dirs`, each symlinked directory is listed with a warning (SMI1014) saying it
    was not entered: skipped in silence, the broken manifests in it passed the run.
    Departures, all so that no manifest is passed over in silence (a skipped TrafficTarget
    allows nothing, and a CI run would pass without it): a directory
    that cannot be listed (permissions) is reported, as `kubectl apply -R` fails on it; a
    symlink whose target cannot be reached (it does not exist, or the links loop) is listed,
    so that reading it fails, as `kubectl apply -f` fails on it; and a FIFO, socket or device
    (or a link to one) is reported and never opened: reading a FIFO blocks until some process
    writes to it. (A FIFO named with `-f`, as `-f <(helm template ...)` names one, is read:
    that is asked for.)"""
    found: list[tuple[str, Diagnostic | None]] = []
    directories = [root]
    while directories:
        directory = directories.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError as exc:
            found.append((directory, _unreadable(directory, exc)))
            continue
        prefix = "" if directory == "." else directory.rstrip("/") + "/"
        for entry in entries:
            name = prefix + entry.name
            try:
                link = entry.is_symlink()
                if not link and entry.is_dir(follow_symlinks=False):
                    directories.append(name)
                    continue
            except OSError:
                continue  # gone since the listing: Path.rglob does not name it either
            if link and linked_dirs and _leads_to_directory(entry):
                found.append((name, _linked_directory(name)))
                continue
            if _suffix(entry.name).lower() in extensions:
                listed = _listed(entry, name, link=link, fifo_hint=fifo_hint)
                if listed is not None:
                    found.append(listed)
    found.sort(key=lambda f: f[0])
    return found


def _leads_to_directory(entry: os.DirEntry[str]) -> bool:
    """Whether the symlink `entry` leads to a directory (one `stat`, for links only). A link
    that leads nowhere (dangling, looping) is not one: `_listed` lists it, to fail when read."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _linked_directory(name: str) -> Diagnostic:
    return Diagnostic(
        code=LINKED_DIRECTORY,
        message="symbolic link to a directory, not entered (name it with -f to read it)",
        file=name,
        severity="warning",
    )


def _listed(
    entry: os.DirEntry[str], name: str, *, link: bool, fifo_hint: bool
) -> tuple[str, Diagnostic | None] | None:
    """How the entry `name`, named like a manifest, is listed; None for a link to a directory
    (skipped, as by rglob) or a file gone since the listing. `DirEntry.is_file` and `stat`
    follow links and raise for a link loop (ELOOP): caught with the rest, that passed a
    looping `tt.yaml` over in silence."""
    try:
        if entry.is_file():
            return name, None
        special = special_kind(entry.stat().st_mode)  # rare: a stat only here
    except OSError:
        # A link that leads nowhere (dangling, looping, through an unreadable directory):
        # reading it fails, with why. A plain file that raises here is gone.
        return (name, None) if link else None
    if special is None:
        return None
    return name, _not_regular(name, special, fifo_hint=fifo_hint)


def special_kind(mode: int) -> str | None:
    """What a file that is neither regular nor a directory is (None for those two)."""
    for test, what in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return what
    return None


def _not_regular(name: str, what: str, *, fifo_hint: bool) -> Diagnostic:
    hint = "; name it with -f to read it" if fifo_hint and what == "a FIFO" else ""
    return Diagnostic(
        code="SMI1001",
        message=f"cannot read: {what}, not a regular file (in a directory only regular files "
        f"are read{hint})",
        file=name,
    )


def _suffix(name: str) -> str:
    """`Path(name).suffix`: `.yaml` of `a.yaml`; nothing for `.yaml` (a hidden file) or `a.`"""
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def read_file(name: str) -> tuple[str, str, Diagnostic | None]:
    """(name, text, None), or (name, "", why it cannot be read): one open, its size from the
    open file."""
    try:
        with Path(name).open("rb") as f:
            if os.fstat(f.fileno()).st_size > MAX_FILE_BYTES:
                return name, "", _too_large(name)
            return _decoded(name, f.read(MAX_FILE_BYTES + 1))
    except OSError as exc:
        return name, "", _unreadable(name, exc)


def _read_stdin(stdin: TextIO | None) -> tuple[str, str, Diagnostic | None]:
    """Standard input as a file is read: its bytes, decoded as strict UTF-8. Its text layer
    decodes with `surrogateescape` (and the locale's encoding), so a byte that is not UTF-8
    became a lone surrogate that ended as an internal error further on."""
    name = "<stdin>"
    if stdin is None:  # started with standard input closed (`<&-`)
        return (
            name,
            "",
            Diagnostic(code="SMI1001", message="cannot read: standard input is closed", file=name),
        )
    raw = getattr(stdin, "buffer", None)
    try:
        if raw is not None:
            return _decoded(name, raw.read(MAX_FILE_BYTES + 1))
        text = _read_bounded(stdin)  # a text stream handed over as such (tests, callers)
    except (OSError, UnicodeDecodeError) as exc:
        return name, "", _unreadable(name, exc)
    return (name, "", _too_large(name)) if text is None else (name, text, None)


def _decoded(name: str, data: bytes) -> tuple[str, str, Diagnostic | None]:
    """(name, text, None) for at most MAX_FILE_BYTES of UTF-8, a leading byte-order mark
    dropped (`json` refused one that the YAML reader skips); else (name, "", the problem),
    with the line of the first byte that is not UTF-8."""
    if len(data) > MAX_FILE_BYTES:
        return name, "", _too_large(name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return name, "", _not_utf8(name, data, exc.start)
    return name, text.removeprefix("\ufeff"), None


def _read_bounded(f: TextIO) -> str | None:
    """The whole text, or None when it is longer than MAX_FILE_BYTES characters. A size from
    `fstat` bounds only regular files: `/dev/zero`, a pipe or standard input have none, and
    reading them whole ran out of memory (an internal error) instead of refusing them."""
    text = f.read(MAX_FILE_BYTES + 1)
    return None if len(text) > MAX_FILE_BYTES else text


def _not_utf8(name: str, data: bytes, start: int) -> Diagnostic:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return Diagnostic(
            code="SMI1001",
            message="cannot read: not UTF-8 text (UTF-16, by its byte-order mark: save it as "
            "UTF-8)",
            file=name,
        )
    line = data.count(b"\n", 0, start) + 1
    return Diagnostic(code="SMI1001", message="cannot read: not UTF-8 text", file=name, line=line)


def _too_large(name: str) -> Diagnostic:
    return Diagnostic(
        code="SMI1010",
        message=f"file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
        file=name,
    )


def _unreadable(name: str, exc: OSError | UnicodeDecodeError) -> Diagnostic:
    if isinstance(exc, UnicodeDecodeError):
        reason = "not UTF-8 text"
    elif isinstance(exc, FileNotFoundError):
        reason = "no such file or directory"
    else:
        reason = exc.strerror or type(exc).__name__
    return Diagnostic(code="SMI1001", message=f"cannot read: {reason}", file=name)


class FileLines:
    """The line maps of one file's documents, computed (by `smi.yamlpos`) at most once, when
    the first diagnostic or `Resource.line_of` of any document of the file asks for a line.
    A file whose text stops being YAML part way keeps the maps of the documents before."""

    __slots__ = ("_maps", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._maps: dict[int, LineMap] | None = None

    def document(self, index: int) -> LineMap | None:
        """The map of the document at `index` in the stream (None when there is none)."""
        if self._maps is None:
            maps: dict[int, LineMap] = {}
            try:
                for doc in load_documents(_yaml_readable(self.text)):
                    maps[doc.index] = doc.lines
            except YamlError:
                pass
            self._maps = maps
        return self._maps.get(index)


class LazyLines:
    """Line map of one document, computed only when a diagnostic asks for a line: JSON is
    parsed by the much faster `json` module, plain block YAML by `smi.yamlblock`, and neither
    records lines. `line` is the line of the (sub)document's root where it is known without
    the map (YAML documents: their first line, and the items of a `kind: List` in them; a
    JSON text: the line its value starts on, `JsonLines`).

    One per loaded document, so a plain class with slots (cheaper to build than a frozen
    dataclass); nothing assigns its attributes after `__init__`."""

    __slots__ = ("file", "index", "line", "prefix")

    def __init__(
        self,
        file: FileLines,
        index: int = 0,
        prefix: tuple[PathPart, ...] = (),
        line: int | None = None,
    ) -> None:
        self.file = file
        self.index = index
        self.prefix = prefix
        self.line = line

    def __repr__(self) -> str:
        return f"LazyLines(index={self.index}, prefix={self.prefix!r}, line={self.line})"

    def _map(self) -> LineMap | None:
        whole = self.file.document(self.index)
        return None if whole is None else whole.sub(self.prefix)

    def line_of(self, path: str | Sequence[PathPart]) -> int | None:
        lines = self._map()
        return None if lines is None else lines.line_of(path)

    def sub(self, path: str | Sequence[PathPart]) -> LazyLines:
        parts = tuple(path) if not isinstance(path, str) else parse_path(path)
        sub = LazyLines(self.file, self.index, self.prefix + parts)
        if self.line is not None:  # YAML: the sub-document's root line, from the file's map
            lines = sub._map()
            sub.line = None if lines is None else lines.line
        return sub


class JsonLines(LazyLines):
    """The root of a JSON text, whose `line` is where its value starts (its `{`, where the map
    puts an object too): found by skipping the leading whitespace, where the map would cost a
    second, far slower parse of every file. Its parts have no `line` until the map is asked
    for one (the items of a `kind: List`: their lines are found only with the map, which a
    clean set never needs)."""

    __slots__ = ()

    def __init__(self, file: FileLines) -> None:
        blank = _BLANK.match(file.text)
        super().__init__(file, line=file.text.count("\n", 0, blank.end() if blank else 0) + 1)

    def sub(self, path: str | Sequence[PathPart]) -> LazyLines:
        parts = tuple(path) if not isinstance(path, str) else parse_path(path)
        return LazyLines(self.file, self.index, self.prefix + parts)
